//! SQL functions that reach the knowledge base and the pack's parameters.
//!
//! Knowledge tables are large and fixed per KB version, so rules do not join them:
//! they call these functions, which probe the indexes the KB version built once
//! (exact code and 12-character drug prefix). Nothing is rebuilt per batch. The
//! measured alternative (a hash join against a KB table) is in `benches/RESULTS.md`.
//!
//! | function | returns | meaning |
//! |---|---|---|
//! | `kb_lookup(class, code, day)` | BIGINT | knowledge row of `class` for `code` in force on `day`, or NULL |
//! | `kb_pair(class, main, sub, day)` | BIGINT | pair row (重复收费: 主项 `main`, 从项 `sub`) in force on `day` |
//! | `kb_in_pair(class, code)` | BOOLEAN | `code` appears in any pair of `class` (cheap prefilter) |
//! | `kb_str(row, field)` | VARCHAR | `item_name`, `limit_value`, `partner_name`, `kp_id`, `constraint_text`, `cond_sex`, `cond_settings`, `evidence_kind` |
//! | `kb_num(row, field)` | DOUBLE | `limit_num`, `period_days`, `age_min_years`, `age_max_years`, `limit_level` (一/二/三级 → 1/2/3), `limit_setting` (门诊 1, 住院 2) |
//! | `kb_flag(row, field)` | BOOLEAN | `dx_decidable`, `needs_evidence` |
//! | `kb_dx_match(row, dise_codg)` | BOOLEAN | the diagnosis falls in the row's indication prefixes |
//! | `param(name, poolarea)` | DOUBLE | pack parameter with the 统筹区 override |

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use fundwatch_kb::{KnowledgeBase, KnowledgePoint};
use fundwatch_rules::Parameters;

/// Which function a [`KbFunction`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Lookup,
    Pair,
    InPair,
    Str,
    Num,
    Flag,
    DxMatch,
    Param,
}

impl Kind {
    const ALL: [(Kind, &'static str); 8] = [
        (Kind::Lookup, "kb_lookup"),
        (Kind::Pair, "kb_pair"),
        (Kind::InPair, "kb_in_pair"),
        (Kind::Str, "kb_str"),
        (Kind::Num, "kb_num"),
        (Kind::Flag, "kb_flag"),
        (Kind::DxMatch, "kb_dx_match"),
        (Kind::Param, "param"),
    ];

    fn signature(self) -> Signature {
        use DataType::*;
        let types = match self {
            Kind::Lookup => vec![Utf8, Utf8, Date32],
            Kind::Pair => vec![Utf8, Utf8, Utf8, Date32],
            Kind::InPair => vec![Utf8, Utf8],
            Kind::Str | Kind::Num | Kind::Flag => vec![Int64, Utf8],
            Kind::DxMatch => vec![Int64, Utf8],
            Kind::Param => vec![Utf8, Utf8],
        };
        Signature::exact(types, Volatility::Immutable)
    }

    /// The argument that must be a constant (class, field or parameter name).
    fn constant_arg(self) -> Option<usize> {
        match self {
            Kind::Lookup | Kind::Pair | Kind::InPair | Kind::Param => Some(0),
            Kind::Str | Kind::Num | Kind::Flag => Some(1),
            Kind::DxMatch => None,
        }
    }

    fn return_type(self) -> DataType {
        match self {
            Kind::Lookup | Kind::Pair => DataType::Int64,
            Kind::InPair | Kind::Flag | Kind::DxMatch => DataType::Boolean,
            Kind::Str => DataType::Utf8,
            Kind::Num | Kind::Param => DataType::Float64,
        }
    }
}

/// One KB/parameter function bound to a KB version and a pack's parameters.
#[derive(Debug)]
pub struct KbFunction {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    kb: Arc<KnowledgeBase>,
    params: Arc<Parameters>,
}

impl PartialEq for KbFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.kb, &other.kb)
    }
}
impl Eq for KbFunction {}
impl Hash for KbFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        (Arc::as_ptr(&self.kb) as usize).hash(state);
    }
}

/// All functions, bound to `kb` and `params`, ready to register.
pub fn kb_functions(kb: &Arc<KnowledgeBase>, params: &Arc<Parameters>) -> Vec<ScalarUDF> {
    Kind::ALL
        .iter()
        .map(|&(kind, name)| {
            ScalarUDF::new_from_impl(KbFunction {
                kind,
                name,
                signature: kind.signature(),
                kb: Arc::clone(kb),
                params: Arc::clone(params),
            })
        })
        .collect()
}

/// The constant first/second argument (class name, field name, parameter name).
fn constant(arrays: &[ArrayRef], idx: usize, what: &str) -> Result<String> {
    let array = arrays[idx].as_string::<i32>();
    if array.is_empty() || array.is_null(0) {
        return exec_err!("{what} must be a non-null constant");
    }
    Ok(array.value(0).to_string())
}

fn level_rank(text: &str) -> Option<f64> {
    if text.contains('三') || text.contains('3') {
        Some(3.0)
    } else if text.contains('二') || text.contains('2') {
        Some(2.0)
    } else if text.contains('一') || text.contains('1') {
        Some(1.0)
    } else {
        None
    }
}

fn setting_code(text: &str) -> Option<f64> {
    if text.contains("住院") {
        Some(2.0)
    } else if text.contains("门诊") {
        Some(1.0)
    } else {
        None
    }
}

fn str_field(point: &KnowledgePoint, field: &str) -> Result<Option<String>> {
    let cond = point.condition.as_ref();
    Ok(match field {
        "item_name" => Some(point.item_name.clone()),
        "limit_value" => point.limit_value.clone(),
        "partner_name" => point.partner_name.clone(),
        "kp_id" => Some(point.kp_id.clone()),
        "constraint_text" => Some(point.constraint_text.clone()),
        "cond_sex" => cond.and_then(|c| c.sex.clone()),
        "cond_settings" => cond
            .filter(|c| !c.settings.is_empty())
            .map(|c| c.settings.join(",")),
        "evidence_kind" => cond.and_then(|c| c.evidence_kind.clone()),
        other => return exec_err!("kb_str: unknown field `{other}`"),
    })
}

fn num_field(point: &KnowledgePoint, field: &str) -> Result<Option<f64>> {
    let cond = point.condition.as_ref();
    Ok(match field {
        "limit_num" => point.limit_num,
        "period_days" => point.period_days,
        "age_min_years" => cond.and_then(|c| c.age_min_years),
        "age_max_years" => cond.and_then(|c| c.age_max_years),
        "limit_level" => point.limit_value.as_deref().and_then(level_rank),
        "limit_setting" => point.limit_value.as_deref().and_then(setting_code),
        other => return exec_err!("kb_num: unknown field `{other}`"),
    })
}

fn flag_field(point: &KnowledgePoint, field: &str) -> Result<Option<bool>> {
    let cond = point.condition.as_ref();
    Ok(match field {
        "dx_decidable" => cond.map(|c| c.dx_decidable),
        "needs_evidence" => cond.map(|c| c.needs_evidence),
        other => return exec_err!("kb_flag: unknown field `{other}`"),
    })
}

impl KbFunction {
    fn point(&self, row: i64) -> Option<&KnowledgePoint> {
        u32::try_from(row).ok().map(|r| self.kb.point(r))
    }

    fn invoke(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        Ok(match self.kind {
            Kind::Lookup => {
                let class_name = constant(arrays, 0, "kb_lookup class")?;
                let Some(class) = self.kb.class_id(&class_name) else {
                    return exec_err!("kb_lookup: the KB has no rule class `{class_name}`");
                };
                let codes = arrays[1].as_string::<i32>();
                let days = arrays[2].as_primitive::<Date32Type>();
                let mut out = Int64Builder::with_capacity(rows);
                for i in 0..rows {
                    if codes.is_null(i) || days.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    out.append_option(
                        self.kb
                            .lookup(class, codes.value(i), days.value(i))
                            .map(i64::from),
                    );
                }
                Arc::new(out.finish())
            }
            Kind::Pair => {
                let class_name = constant(arrays, 0, "kb_pair class")?;
                let Some(class) = self.kb.class_id(&class_name) else {
                    return exec_err!("kb_pair: the KB has no rule class `{class_name}`");
                };
                let mains = arrays[1].as_string::<i32>();
                let subs = arrays[2].as_string::<i32>();
                let days = arrays[3].as_primitive::<Date32Type>();
                let mut out = Int64Builder::with_capacity(rows);
                for i in 0..rows {
                    if mains.is_null(i) || subs.is_null(i) || days.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    out.append_option(
                        self.kb
                            .lookup_pair(class, mains.value(i), subs.value(i), days.value(i))
                            .map(i64::from),
                    );
                }
                Arc::new(out.finish())
            }
            Kind::InPair => {
                let class_name = constant(arrays, 0, "kb_in_pair class")?;
                let Some(class) = self.kb.class_id(&class_name) else {
                    return exec_err!("kb_in_pair: the KB has no rule class `{class_name}`");
                };
                let codes = arrays[1].as_string::<i32>();
                let mut out = BooleanBuilder::with_capacity(rows);
                for i in 0..rows {
                    out.append_value(
                        !codes.is_null(i) && self.kb.in_any_pair(class, codes.value(i)),
                    );
                }
                Arc::new(out.finish())
            }
            Kind::Str => {
                let field = constant(arrays, 1, "kb_str field")?;
                let rows_in = arrays[0].as_primitive::<Int64Type>();
                let mut out = StringBuilder::with_capacity(rows, rows * 8);
                for i in 0..rows {
                    match (!rows_in.is_null(i))
                        .then(|| self.point(rows_in.value(i)))
                        .flatten()
                    {
                        Some(point) => out.append_option(str_field(point, &field)?),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Kind::Num => {
                let field = constant(arrays, 1, "kb_num field")?;
                let rows_in = arrays[0].as_primitive::<Int64Type>();
                let mut out = Float64Builder::with_capacity(rows);
                for i in 0..rows {
                    match (!rows_in.is_null(i))
                        .then(|| self.point(rows_in.value(i)))
                        .flatten()
                    {
                        Some(point) => out.append_option(num_field(point, &field)?),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Kind::Flag => {
                let field = constant(arrays, 1, "kb_flag field")?;
                let rows_in = arrays[0].as_primitive::<Int64Type>();
                let mut out = BooleanBuilder::with_capacity(rows);
                for i in 0..rows {
                    match (!rows_in.is_null(i))
                        .then(|| self.point(rows_in.value(i)))
                        .flatten()
                    {
                        Some(point) => out.append_option(flag_field(point, &field)?),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Kind::DxMatch => {
                let rows_in = arrays[0].as_primitive::<Int64Type>();
                let codes = arrays[1].as_string::<i32>();
                let mut out = BooleanBuilder::with_capacity(rows);
                for i in 0..rows {
                    if rows_in.is_null(i) || codes.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let code = codes.value(i);
                    let matched = self
                        .point(rows_in.value(i))
                        .and_then(|p| p.condition.as_ref())
                        .is_some_and(|c| {
                            c.dx_prefixes.iter().any(|p| code.starts_with(p.as_str()))
                        });
                    out.append_value(matched);
                }
                Arc::new(out.finish())
            }
            Kind::Param => {
                let name = constant(arrays, 0, "param name")?;
                if !self.params.defaults.contains_key(&name) {
                    return exec_err!("param: the pack declares no parameter `{name}`");
                }
                let areas = arrays[1].as_string::<i32>();
                let mut out = Float64Builder::with_capacity(rows);
                for i in 0..rows {
                    let area = if areas.is_null(i) { "" } else { areas.value(i) };
                    out.append_option(self.params.get(&name, area));
                }
                Arc::new(out.finish())
            }
        })
    }
}

impl ScalarUDFImpl for KbFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() != self.signature_len() {
            return plan_err!("{} takes {} arguments", self.name, self.signature_len());
        }
        Ok(self.kind.return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if rows == 0 && !all_scalar {
            return Ok(ColumnarValue::Array(arrow::array::new_empty_array(
                &self.kind.return_type(),
            )));
        }
        let rows = if all_scalar { 1 } else { rows };
        // The constant argument stays one value: expanding the class name to a
        // column of `rows` copies cost more than the lookups (every call, every rule).
        let arrays = args
            .args
            .iter()
            .enumerate()
            .map(|(idx, arg)| match arg {
                ColumnarValue::Scalar(scalar) if Some(idx) == self.kind.constant_arg() => {
                    scalar.to_array_of_size(1)
                }
                other => other.to_array(rows),
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self.invoke(&arrays, rows)?;
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

impl KbFunction {
    fn signature_len(&self) -> usize {
        match self.kind {
            Kind::Lookup => 3,
            Kind::Pair => 4,
            _ => 2,
        }
    }
}
