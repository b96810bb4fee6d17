//! [`Program`]: compiled rules + KB version + dictionaries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::{Rule, RulePack};

use super::functions::kb_functions;
use super::gate::{CompiledGate, Scope, scopes};
use super::lean::lean_projections;
use super::slot::{CurrentBatch, SlotTable};
use crate::batch::{EventBatch, TABLES};

/// Errors compiling or running a program.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A rule's SQL does not compile against the tables and functions.
    #[error("while compiling rule {rule_id} of pack {pack}: {message}")]
    Compile {
        /// The rule.
        rule_id: String,
        /// `name@version` of the pack.
        pack: String,
        /// What is wrong.
        message: String,
    },
    /// The history state could not be written.
    #[error("history: {0}")]
    History(String),
    /// Execution failed (a bug or an invalid knowledge reference).
    #[error("while evaluating rule {rule_id}: {source}")]
    Execute {
        /// The rule.
        rule_id: String,
        /// DataFusion's error.
        source: DataFusionError,
    },
}

/// Views over the event and history tables (docs/tables.md): the request's lines
/// and encounters together with the stored ones of the same person.
pub const VIEWS: [&str; 2] = [
    "CREATE VIEW patient_orders AS \
       SELECT event_idx, patn_id, mdtrt_id, rx_id, hilist_code, hilist_name, medins_id, \
              begn_time, service_date, cnt, sumamt, prd_days, line_id, curr, false AS from_store, \
              setting, hilist_type, drord_bhvr \
       FROM orders \
     UNION ALL \
       SELECT event_idx, patn_id, mdtrt_id, rx_id, hilist_code, hilist_name, medins_id, \
              begn_time, service_date, cnt, sumamt, prd_days, CAST(NULL AS BIGINT) AS line_id, \
              false AS curr, true AS from_store, setting, hilist_type, drord_bhvr \
       FROM history_orders",
    "CREATE VIEW patient_encounters AS \
       SELECT event_idx, patn_id, mdtrt_id, medins_id, setting, med_type, adm_time, dscg_time, \
              main_dise, enc_current, false AS from_store \
       FROM encounters \
     UNION ALL \
       SELECT event_idx, patn_id, mdtrt_id, medins_id, setting, med_type, adm_time, dscg_time, \
              main_dise, false AS enc_current, true AS from_store \
       FROM history_encounters",
];

/// Knobs of the DataFusion session the rules run in.
#[derive(Debug, Clone)]
pub struct ProgramOptions {
    /// DataFusion `batch_size` (rows per internal batch).
    pub batch_size: usize,
}

impl Default for ProgramOptions {
    fn default() -> Self {
        Self { batch_size: 8192 }
    }
}

/// Where each output column of a rule's SQL is.
///
/// Contract (docs/rule-pack.md): every row is one detail line of one alert.
/// Required: `event_idx BIGINT`, `line_id BIGINT` (NULL for encounter-level
/// findings), `vola_amt DOUBLE`. Optional: `kp BIGINT` (knowledge row), `fact VARCHAR`
/// (the patient fact for the message), `alert_key VARCHAR` (rows with the same key in
/// one event form one alert; default: one alert per line), `item_type BIGINT` (1 违规项,
/// 2 涉及项; default 1), `sev_deg VARCHAR` (overrides the rule's), `extra VARCHAR`
/// (free text for the message template's `{extra}`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumns {
    event_idx: usize,
    line_id: usize,
    vola_amt: usize,
    kp: Option<usize>,
    fact: Option<usize>,
    alert_key: Option<usize>,
    item_type: Option<usize>,
    sev_deg: Option<usize>,
    extra: Option<usize>,
}

impl OutputColumns {
    fn resolve(schema: &SchemaRef) -> Result<Self, String> {
        let find = |name: &str, ty: DataType, required: bool| -> Result<Option<usize>, String> {
            match schema.index_of(name) {
                Ok(idx) => {
                    let actual = schema.field(idx).data_type();
                    let text_like = ty == DataType::Utf8
                        && matches!(actual, DataType::Utf8View | DataType::LargeUtf8);
                    if *actual != ty && *actual != DataType::Null && !text_like {
                        return Err(format!(
                            "output column `{name}` is {actual}, expected {ty} (add a CAST)"
                        ));
                    }
                    Ok(Some(idx))
                }
                Err(_) if required => Err(format!(
                    "output column `{name}` is missing; a rule must return event_idx, line_id and vola_amt"
                )),
                Err(_) => Ok(None),
            }
        };
        let required = |name: &str, ty: DataType| -> Result<usize, String> {
            find(name, ty, true)?.ok_or_else(|| format!("output column `{name}` is missing"))
        };
        Ok(Self {
            event_idx: required("event_idx", DataType::Int64)?,
            line_id: required("line_id", DataType::Int64)?,
            vola_amt: required("vola_amt", DataType::Float64)?,
            kp: find("kp", DataType::Int64, false)?,
            fact: find("fact", DataType::Utf8, false)?,
            alert_key: find("alert_key", DataType::Utf8, false)?,
            item_type: find("item_type", DataType::Int64, false)?,
            sev_deg: find("sev_deg", DataType::Utf8, false)?,
            extra: find("extra", DataType::Utf8, false)?,
        })
    }
}

/// One output row of one rule: a detail line of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Index of the rule in [`Program::rules`].
    pub rule: usize,
    /// Event index in the batch.
    pub event_idx: u32,
    /// `orders.line_id`, `None` for encounter-level findings.
    pub line_id: Option<u64>,
    /// Grouping key (rows with the same key in one event form one alert); empty:
    /// one alert per line, keyed by the line's `mdtrt_id`/`rx_id`.
    pub alert_key: String,
    /// 1 违规项, 2 涉及项.
    pub item_type: u8,
    /// Money of this line at issue; `None` when the rule could not compute it.
    pub vola_amt: Option<f64>,
    /// Knowledge row.
    pub kp: Option<u32>,
    /// Patient fact for the message.
    pub fact: Option<String>,
    /// Severity override.
    pub sev_deg: Option<String>,
    /// Free text for `{extra}`.
    pub extra: Option<String>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule's metadata (SQL included, for display).
    pub rule: Rule,
    plan: Arc<dyn ExecutionPlan>,
    columns: OutputColumns,
    gate: CompiledGate,
    cost: RuleCost,
}

impl CompiledRule {
    /// Runs a fresh copy of the kept plan (its state reset) over `task`'s batch;
    /// the copy is returned too, holding this run's operator metrics.
    async fn execute(
        &self,
        task: Arc<TaskContext>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Vec<RecordBatch>), EvalError> {
        let exec_err = |source| EvalError::Execute {
            rule_id: self.rule.rule_id.clone(),
            source,
        };
        let plan = reset_plan_states(Arc::clone(&self.plan)).map_err(exec_err)?;
        let batches = collect(Arc::clone(&plan), task).await.map_err(exec_err)?;
        Ok((plan, batches))
    }

    /// How often this rule's plan ran and the time it took, since compilation.
    pub fn cost(&self) -> (u64, Duration) {
        (
            self.cost.runs.load(Ordering::Relaxed),
            Duration::from_nanos(self.cost.nanos.load(Ordering::Relaxed)),
        )
    }
}

/// Running totals of one rule's executions: which rule of a pack costs the most is
/// the first question when a batch gets slower (two relaxed atomic adds per rule
/// per batch).
#[derive(Debug, Default)]
struct RuleCost {
    runs: AtomicU64,
    nanos: AtomicU64,
}

/// A rule left out of a program because the KB version holds no knowledge of a
/// class its SQL reads (e.g. a batch-8 rule against a KB of batches 1–7): it has
/// nothing to check yet and becomes live with the first KB version that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DormantRule {
    /// The rule.
    pub rule_id: String,
    /// Classes its SQL names that the KB lacks.
    pub missing_classes: Vec<String>,
}

/// A rule pack compiled against one KB version.
#[derive(Debug)]
pub struct Program {
    pack: Arc<RulePack>,
    kb: Arc<KnowledgeBase>,
    rules: Arc<[CompiledRule]>,
    dormant: Vec<DormantRule>,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
}

impl Program {
    /// Compiles every enabled rule of `pack` against `kb`: SQL → logical plan →
    /// optimized physical plan, once.
    pub async fn compile(
        pack: Arc<RulePack>,
        kb: Arc<KnowledgeBase>,
        options: &ProgramOptions,
    ) -> Result<Self, EvalError> {
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(options.batch_size)
            .with_coalesce_batches(false)
            .with_information_schema(false);
        // Dynamic filters are state inside the plan that `reset_plan_states` cannot
        // reset; kept plans must not use them.
        config
            .options_mut()
            .optimizer
            .enable_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_topk_dynamic_filter_pushdown = false;
        config
            .options_mut()
            .optimizer
            .enable_aggregate_dynamic_filter_pushdown = false;
        config.options_mut().optimizer.repartition_joins = false;
        config.options_mut().optimizer.repartition_aggregations = false;
        config.options_mut().optimizer.repartition_windows = false;
        config.options_mut().optimizer.repartition_sorts = false;
        config.options_mut().execution.parquet.pushdown_filters = false;

        let ctx = SessionContext::new_with_config(config.clone());
        let pack_label = pack.version_label();
        let compile_err = |rule_id: &str, message: String| EvalError::Compile {
            rule_id: rule_id.to_string(),
            pack: pack_label.clone(),
            message,
        };
        for (table, name) in TABLES {
            ctx.register_table(name, Arc::new(SlotTable::new(table)))
                .map_err(|err| compile_err("-", err.to_string()))?;
        }
        for view in VIEWS {
            ctx.sql(view)
                .await
                .map_err(|err| compile_err("-", format!("history views: {err}")))?;
        }
        let params = Arc::new(pack.manifest.parameters.clone());
        for udf in kb_functions(&kb, &params) {
            ctx.register_udf(udf);
        }

        let mut rules = Vec::new();
        let mut dormant = Vec::new();
        for rule in pack.rules.iter().filter(|r| r.enabled) {
            let sql_classes = kb_classes(&rule.sql);
            let missing: Vec<String> = sql_classes
                .iter()
                .filter(|class| kb.class_id(class).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                // A class the pack declares required must be there: that is a
                // wrong KB, not a rule waiting for its knowledge.
                if let Some(class) = missing
                    .iter()
                    .find(|c| pack.manifest.requires_classes.contains(c))
                {
                    return Err(compile_err(
                        &rule.rule_id,
                        format!(
                            "KB {} has no rule class `{class}`, which the pack requires (requires_classes)",
                            kb.id()
                        ),
                    ));
                }
                dormant.push(DormantRule {
                    rule_id: rule.rule_id.clone(),
                    missing_classes: missing,
                });
                continue;
            }
            // Every class of codes_in is one the SQL reads, so all are in this KB.
            let gate = CompiledGate::compile(&rule.gate, &sql_classes, &kb)
                .map_err(|message| compile_err(&rule.rule_id, message))?
                .unwrap_or_default();
            let frame = ctx
                .sql(&rule.sql)
                .await
                .map_err(|err| compile_err(&rule.rule_id, err.to_string()))?;
            let plan = frame
                .create_physical_plan()
                .await
                .and_then(lean_projections)
                .map_err(|err| compile_err(&rule.rule_id, err.to_string()))?;
            let columns = OutputColumns::resolve(&plan.schema())
                .map_err(|message| compile_err(&rule.rule_id, message))?;
            rules.push(CompiledRule {
                rule: rule.clone(),
                plan,
                columns,
                gate,
                cost: RuleCost::default(),
            });
        }
        let runtime = ctx.runtime_env();
        Ok(Self {
            pack,
            kb,
            rules: rules.into(),
            dormant,
            config,
            runtime,
        })
    }

    /// The compiled rules, in pack order (by `rule_id`).
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Enabled rules left out because the KB lacks their knowledge classes.
    pub fn dormant(&self) -> &[DormantRule] {
        &self.dormant
    }

    /// Days of history the enabled rules need (the largest `history_days`).
    pub fn history_days(&self) -> u32 {
        self.rules
            .iter()
            .map(|r| r.rule.history_days)
            .max()
            .unwrap_or(0)
    }

    /// The pack.
    pub fn pack(&self) -> &Arc<RulePack> {
        &self.pack
    }

    /// The KB version.
    pub fn kb(&self) -> &Arc<KnowledgeBase> {
        &self.kb
    }

    /// Executes the rules whose index is in `wanted` (all when `None`) and whose
    /// gate is open for `batch`, each over the events its gate lets through (see
    /// [`fundwatch_rules::Gate`]).
    ///
    /// Findings come rule by rule, each rule's rows in the plan's output order; the
    /// caller orders them for output.
    pub async fn evaluate(
        &self,
        batch: Arc<EventBatch>,
        wanted: Option<&[bool]>,
    ) -> Result<Vec<Finding>, EvalError> {
        let selected = self.selected(wanted);
        let scopes = scopes(
            selected.iter().map(|&idx| &self.rules[idx].gate),
            &batch,
            &self.kb,
        );
        let work = selected
            .into_iter()
            .zip(scopes)
            .filter(|(_, scope)| *scope != Scope::Skip)
            .collect();
        self.run(batch, work).await
    }

    /// [`Program::evaluate`] without the gates: every wanted rule's plan runs over
    /// the whole batch. For checking that gates hide no finding (`rules test`) and
    /// for benchmarks.
    pub async fn evaluate_ungated(
        &self,
        batch: Arc<EventBatch>,
        wanted: Option<&[bool]>,
    ) -> Result<Vec<Finding>, EvalError> {
        let work = self
            .selected(wanted)
            .into_iter()
            .map(|idx| (idx, Scope::All))
            .collect();
        self.run(batch, work).await
    }

    /// Runs each rule whose gate is open for `batch` once, over its scope, and
    /// returns its time with its physical plan annotated by DataFusion's operator
    /// metrics (rows out, compute time per operator): where a slow rule spends its
    /// time. Slowest rule first.
    pub async fn profile(
        &self,
        batch: Arc<EventBatch>,
    ) -> Result<Vec<(String, Duration, String)>, EvalError> {
        let scopes = scopes(self.rules.iter().map(|r| &r.gate), &batch, &self.kb);
        let mut out = Vec::new();
        for (compiled, scope) in self.rules.iter().zip(scopes) {
            let task = match scope {
                Scope::Skip => continue,
                Scope::All => self.task(&batch, None),
                Scope::Events(events) => self.task(&batch, Some(events)),
            };
            let started = Instant::now();
            let (plan, _) = compiled.execute(task).await?;
            let elapsed = started.elapsed();
            let shown = DisplayableExecutionPlan::with_metrics(plan.as_ref())
                .indent(true)
                .to_string();
            out.push((compiled.rule.rule_id.clone(), elapsed, shown));
        }
        out.sort_by_key(|(_, elapsed, _)| std::cmp::Reverse(*elapsed));
        Ok(out)
    }

    /// The rules a closed gate skips for `batch` (indexes into [`Program::rules`]).
    pub fn gated_out(&self, batch: &EventBatch) -> Vec<usize> {
        let scopes = scopes(self.rules.iter().map(|r| &r.gate), batch, &self.kb);
        (0..self.rules.len())
            .filter(|&idx| scopes[idx] == Scope::Skip)
            .collect()
    }

    fn selected(&self, wanted: Option<&[bool]>) -> Vec<usize> {
        (0..self.rules.len())
            .filter(|&idx| wanted.is_none_or(|w| w.get(idx).copied().unwrap_or(false)))
            .collect()
    }

    /// A task context carrying `batch`, narrowed to `events` when given.
    fn task(&self, batch: &Arc<EventBatch>, events: Option<Arc<[bool]>>) -> Arc<TaskContext> {
        let current = CurrentBatch {
            batch: Arc::clone(batch),
            events,
        };
        Arc::new(TaskContext::new(
            None,
            String::new(),
            self.config.clone().with_extension(Arc::new(current)),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            Arc::clone(&self.runtime),
        ))
    }

    /// Executes each rule of `work` over its scope of `batch`.
    async fn run(
        &self,
        batch: Arc<EventBatch>,
        work: Vec<(usize, Scope)>,
    ) -> Result<Vec<Finding>, EvalError> {
        if work.is_empty() {
            return Ok(Vec::new());
        }
        let whole = self.task(&batch, None);
        let work: Vec<(usize, Arc<TaskContext>)> = work
            .into_iter()
            .map(|(idx, scope)| match scope {
                Scope::Events(events) => (idx, self.task(&batch, Some(events))),
                Scope::All | Scope::Skip => (idx, Arc::clone(&whole)),
            })
            .collect();
        // A batch's fixed cost is one plan execution per rule (~0.1 ms each in release),
        // so a small batch — one inline request — is dominated by it. The rules are
        // independent: on a multi-threaded runtime one task per core takes the next
        // rule from a shared cursor until none is left (rule costs differ by 100× once
        // gates narrow them, so fixed shares left one core idle); findings are put back
        // in rule order.
        let lanes = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.metrics().num_workers() > 1 => {
                handle.metrics().num_workers().min(work.len()).max(1)
            }
            _ => 1,
        };
        let work = Arc::new(work);
        let cursor = Arc::new(AtomicUsize::new(0));
        let mut done = if lanes <= 1 {
            run_lane(Arc::clone(&self.rules), work, cursor).await?
        } else {
            let tasks: Vec<_> = (0..lanes)
                .map(|_| {
                    tokio::spawn(run_lane(
                        Arc::clone(&self.rules),
                        Arc::clone(&work),
                        Arc::clone(&cursor),
                    ))
                })
                .collect();
            let mut done = Vec::new();
            for joined in futures::future::join_all(tasks).await {
                done.extend(joined.map_err(|e| EvalError::Execute {
                    rule_id: String::from("(evaluation task)"),
                    source: DataFusionError::External(Box::new(e)),
                })??);
            }
            done
        };
        done.sort_unstable_by_key(|(position, _)| *position);
        Ok(done.into_iter().flat_map(|(_, found)| found).collect())
    }
}

/// Takes the next item of `work` until none is left, running its rule over its
/// task context; returns each item's position with its findings.
async fn run_lane(
    rules: Arc<[CompiledRule]>,
    work: Arc<Vec<(usize, Arc<TaskContext>)>>,
    cursor: Arc<AtomicUsize>,
) -> Result<Vec<(usize, Vec<Finding>)>, EvalError> {
    let mut done = Vec::new();
    loop {
        let position = cursor.fetch_add(1, Ordering::Relaxed);
        let Some((idx, task)) = work.get(position) else {
            return Ok(done);
        };
        let compiled = &rules[*idx];
        let started = Instant::now();
        let (_, batches) = compiled.execute(Arc::clone(task)).await?;
        compiled.cost.runs.fetch_add(1, Ordering::Relaxed);
        compiled.cost.nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut found = Vec::new();
        for out in &batches {
            read_findings(*idx, &compiled.columns, out, &mut found);
        }
        done.push((position, found));
    }
}

/// Knowledge classes a rule's SQL names as the first (literal) argument of
/// `kb_lookup`, `kb_pair` or `kb_in_pair`.
fn kb_classes(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for function in ["kb_lookup", "kb_pair", "kb_in_pair"] {
        let mut rest = sql;
        while let Some(at) = rest.find(function) {
            rest = &rest[at + function.len()..];
            let args = rest.trim_start();
            let Some(args) = args.strip_prefix('(') else {
                continue;
            };
            let Some(quoted) = args.trim_start().strip_prefix('\'') else {
                continue;
            };
            if let Some(end) = quoted.find('\'') {
                let class = quoted[..end].to_string();
                if !out.contains(&class) {
                    out.push(class);
                }
            }
        }
    }
    out
}

fn read_findings(rule: usize, cols: &OutputColumns, batch: &RecordBatch, out: &mut Vec<Finding>) {
    let int = |idx: usize| batch.column(idx).as_primitive_opt::<Int64Type>().cloned();
    // Text columns may come as Utf8View or LargeUtf8 (CAST, string_agg): read as Utf8.
    let text = |idx: Option<usize>| {
        idx.and_then(|i| arrow::compute::cast(batch.column(i), &DataType::Utf8).ok())
            .and_then(|a| a.as_string_opt::<i32>().cloned())
    };
    let (Some(events), Some(lines)) = (int(cols.event_idx), int(cols.line_id)) else {
        return;
    };
    let amounts = batch
        .column(cols.vola_amt)
        .as_primitive_opt::<Float64Type>()
        .cloned();
    let kps = cols.kp.and_then(int);
    let item_types = cols.item_type.and_then(int);
    let facts = text(cols.fact);
    let keys = text(cols.alert_key);
    let sevs = text(cols.sev_deg);
    let extras = text(cols.extra);
    let opt_text = |arr: &Option<arrow::array::StringArray>, i: usize| {
        arr.as_ref()
            .filter(|a| !a.is_null(i))
            .map(|a| a.value(i).to_string())
    };
    for i in 0..batch.num_rows() {
        if events.is_null(i) {
            continue;
        }
        let line_id = (!lines.is_null(i)).then(|| lines.value(i) as u64);
        // Empty key: the engine keys the alert by the line's (mdtrt_id, rx_id), which,
        // unlike line_id, does not depend on the batch the event was in.
        let alert_key = opt_text(&keys, i).unwrap_or_default();
        out.push(Finding {
            rule,
            event_idx: events.value(i) as u32,
            line_id,
            alert_key,
            item_type: item_types
                .as_ref()
                .filter(|a| !a.is_null(i))
                .map_or(1, |a| if a.value(i) == 2 { 2 } else { 1 }),
            vola_amt: amounts
                .as_ref()
                .filter(|a| !a.is_null(i))
                .map(|a| a.value(i))
                .filter(|x| x.is_finite()),
            kp: kps
                .as_ref()
                .filter(|a| !a.is_null(i))
                .and_then(|a| u32::try_from(a.value(i)).ok()),
            fact: opt_text(&facts, i),
            sev_deg: opt_text(&sevs, i),
            extra: opt_text(&extras, i),
        });
    }
}
