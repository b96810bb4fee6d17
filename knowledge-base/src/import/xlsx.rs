//! The official xlsx attachments of batches 1–8, read with calamine.
//!
//! Layouts are recognised by their header row (column order does not matter):
//!
//! | layout | header (row 1) | rule class |
//! |---|---|---|
//! | drug list | sheet 1 `药品通用名 药品说明 限定类型 限定对象/限定值域`, sheet 2 `药品通用名 序号 国标代码 限定类型` | by 限定类型 (and 限定对象 for 保险类型) |
//! | item sex | `项目名称 项目说明 国标代码 限定类型 限定性别` | 医疗服务项目区分性别使用 |
//! | item age | `项目名称 国标代码 限定类型 限定对象` | 医疗服务项目儿童专用 |
//! | surgery groups | `项目名称 项目说明 国标代码 限定类型 限定值域` | 手术项目未按规定折价收费 |
//! | duplicate charge | `序号 频度 主项名称 主项编码 从项名称 从项编码 备注` | 医疗服务项目重复收费 |
//! | frequency | `序号 项目名称 限制数量 数量单位 项目编码` | 医疗服务项目限定频次 |
//! | note | `序号 项目名称 备注 项目代码` | 医疗服务项目限年龄 / 限支付疗程 (by sheet or file name) |
//! | periodic | `序号 项目名称 频次上限 疗程周期 备注 项目代码` | 医疗服务项目周期超频次 |
//!
//! Footer rows (合计, 备注：…), blank rows and repeated header rows are skipped.
//! Where the JSON batch next to the xlsx directory (`../json/batch_NN.json`) has a
//! record of the same rule class and item name (for batch 2 also the same group,
//! for batch 7 the same pair of codes) its `kp_id` and `detect_logic` are used, so
//! evidence and supersede links line up; otherwise a stable id `KPD-…` is derived.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use calamine::{Data, Reader};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::json::{JsonRecord, read_records};
use super::source::{batch_tag, builtin_date};
use super::{ClassCount, Imported, SourceSummary, days_in_text, default_detect_logic};
use crate::error::KbError;
use crate::model::KnowledgePoint;

/// One sheet: header and data rows with their 1-based spreadsheet row numbers.
struct Sheet {
    path: PathBuf,
    name: String,
    header: Vec<String>,
    rows: Vec<(u32, Vec<Data>)>,
}

/// Header text without spaces and without a unit in parentheses (`疗程周期(天)`).
fn normalise_header(h: &str) -> String {
    let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    match h.find(['(', '（']) {
        Some(i) if i > 0 => h[..i].to_string(),
        _ => h,
    }
}

/// A cell as trimmed text; whole floats print without a fraction.
fn cell_text(d: &Data) -> String {
    match d {
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => dt.to_string(),
        Data::Error(e) => format!("#{e:?}"),
        Data::Empty => String::new(),
    }
}

impl Sheet {
    fn load(
        path: &Path,
        workbook: &mut calamine::Sheets<std::io::BufReader<std::fs::File>>,
        index: usize,
    ) -> Result<Option<Sheet>, KbError> {
        let names = workbook.sheet_names();
        let Some(name) = names.get(index).cloned() else {
            return Ok(None);
        };
        let range = workbook
            .worksheet_range(&name)
            .map_err(|e| KbError::Workbook {
                path: path.to_path_buf(),
                message: format!("sheet {name:?}: {e}"),
            })?;
        let first_row = range.start().map(|(r, _)| r).unwrap_or(0);
        let mut rows = range.rows().enumerate();
        let header = rows
            .next()
            .map(|(_, r)| r.iter().map(|c| normalise_header(&cell_text(c))).collect())
            .unwrap_or_default();
        let rows = rows
            .map(|(i, r)| (first_row + i as u32 + 1, r.to_vec()))
            .collect();
        Ok(Some(Sheet {
            path: path.to_path_buf(),
            name,
            header,
            rows,
        }))
    }

    fn has(&self, name: &str) -> bool {
        self.header.iter().any(|h| h == name)
    }

    /// Index of the first column named any of `names`.
    fn col(&self, names: &[&str]) -> Result<usize, KbError> {
        self.header
            .iter()
            .position(|h| names.contains(&h.as_str()))
            .ok_or_else(|| KbError::UnknownLayout {
                path: self.path.clone(),
                sheet: self.name.clone(),
                found: self.header.clone(),
                expected: format!("a column named {}", names.join(" or ")),
            })
    }

    fn text(row: &[Data], col: usize) -> String {
        row.get(col).map(cell_text).unwrap_or_default()
    }

    fn err(&self, row: u32, col: usize, value: &str, problem: impl Into<String>) -> KbError {
        KbError::Cell {
            path: self.path.clone(),
            sheet: self.name.clone(),
            row,
            column: self
                .header
                .get(col)
                .cloned()
                .unwrap_or_else(|| format!("#{}", col + 1)),
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// A required non-empty text cell.
    fn required(&self, row_no: u32, row: &[Data], col: usize) -> Result<String, KbError> {
        let v = Self::text(row, col);
        if v.is_empty() {
            return Err(self.err(row_no, col, &v, "this cell must not be empty"));
        }
        Ok(v)
    }

    /// A required number cell (numbers stored as text are accepted).
    fn number(&self, row_no: u32, row: &[Data], col: usize) -> Result<f64, KbError> {
        let v = Self::text(row, col);
        let n = match row.get(col) {
            Some(Data::Int(i)) => Some(*i as f64),
            Some(Data::Float(f)) => Some(*f),
            _ => v.trim_end_matches(['天', '次']).trim().parse::<f64>().ok(),
        };
        n.filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| self.err(row_no, col, &v, "expected a non-negative number"))
    }

    /// Data rows that carry knowledge: blank, footer (合计, 备注：…) and repeated
    /// header rows are left out; returns them with the count of skipped rows.
    fn data_rows(&self) -> (Vec<(u32, &[Data])>, u32) {
        let mut out = Vec::new();
        let mut skipped = 0;
        for (no, row) in &self.rows {
            let texts: Vec<String> = row.iter().map(cell_text).collect();
            let first = texts.iter().find(|t| !t.is_empty());
            let is_header = texts
                .iter()
                .map(|t| normalise_header(t))
                .collect::<Vec<_>>()
                == self.header;
            let footer = first.is_some_and(|t| {
                ["合计", "备注", "说明", "注："]
                    .iter()
                    .any(|w| t.starts_with(w))
            });
            match first {
                None => {}
                Some(_) if footer || is_header => skipped += 1,
                Some(_) => out.push((*no, row.as_slice())),
            }
        }
        (out, skipped)
    }
}

/// JSON records of the same batch, for ids and the 儿童 class split.
struct Companion {
    records: Vec<JsonRecord>,
    by_class_name: HashMap<(String, String), Vec<usize>>,
    by_pair: HashMap<(String, String), usize>,
}

impl Companion {
    fn load(xlsx: &Path, batch: u32) -> Result<Option<Companion>, KbError> {
        let Some(json) = xlsx
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("json").join(format!("batch_{batch:02}.json")))
        else {
            return Ok(None);
        };
        if !json.is_file() {
            return Ok(None);
        }
        let records = read_records(&json)?;
        let mut by_class_name: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut by_pair = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            by_class_name
                .entry((
                    r.rule_class.trim().to_string(),
                    r.item_name.trim().to_string(),
                ))
                .or_default()
                .push(i);
            if let [a, b] = r.med_codes.as_slice() {
                by_pair.insert((a.trim().to_string(), b.trim().to_string()), i);
            }
        }
        Ok(Some(Companion {
            records,
            by_class_name,
            by_pair,
        }))
    }

    /// The record of `class`/`name`; several (batch 2 lists an item in several
    /// groups) are told apart by `pick`.
    fn find(
        &self,
        class: &str,
        name: &str,
        pick: impl Fn(&JsonRecord) -> bool,
    ) -> Option<&JsonRecord> {
        let list = self
            .by_class_name
            .get(&(class.to_string(), name.to_string()))?;
        match list.as_slice() {
            [one] => self.records.get(*one),
            many => {
                let found: Vec<&JsonRecord> = many
                    .iter()
                    .filter_map(|i| self.records.get(*i))
                    .filter(|r| pick(r))
                    .collect();
                match found.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                }
            }
        }
    }

    fn pair(&self, main: &str, sub: &str) -> Option<&JsonRecord> {
        self.by_pair
            .get(&(main.to_string(), sub.to_string()))
            .and_then(|i| self.records.get(*i))
    }

    /// The 儿童 class (药品儿童专用 / 药品限儿童使用) of a batch-1 drug.
    fn child_class(&self, name: &str) -> Option<&str> {
        ["药品儿童专用", "药品限儿童使用"].into_iter().find(|c| {
            self.by_class_name
                .contains_key(&(c.to_string(), name.to_string()))
        })
    }
}

/// A point under construction before ids are assigned.
struct Draft {
    rule_class: String,
    item_name: String,
    codes: Vec<String>,
    partner_name: Option<String>,
    partner_codes: Vec<String>,
    limit_value: Option<String>,
    limit_num: Option<f64>,
    period_days: Option<f64>,
    constraint_text: String,
    source_row: u32,
}

/// Imports one official attachment of batch `batch`.
pub(crate) fn import(
    path: &Path,
    batch: u32,
    effective_from: Option<NaiveDate>,
) -> Result<Imported, KbError> {
    let tag = batch_tag(batch);
    let date = effective_from
        .or_else(|| builtin_date(&tag))
        .ok_or_else(|| KbError::MissingDate {
            path: path.to_path_buf(),
            batch: tag.clone(),
        })?;
    let companion = Companion::load(path, batch)?;
    let mut workbook = calamine::open_workbook_auto(path).map_err(|e| KbError::Workbook {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let sheet_names = workbook.sheet_names();
    let first = Sheet::load(path, &mut workbook, 0)?.ok_or_else(|| KbError::MissingSheet {
        path: path.to_path_buf(),
        sheet: 1,
        found: sheet_names.clone(),
    })?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();

    let (drafts, rows, skipped) = if first.has("药品通用名") {
        let second = Sheet::load(path, &mut workbook, 1)?.ok_or_else(|| KbError::MissingSheet {
            path: path.to_path_buf(),
            sheet: 2,
            found: sheet_names.clone(),
        })?;
        drug_list(&first, &second, companion.as_ref())?
    } else if first.has("主项编码") && first.has("从项编码") {
        duplicate_charge(&first)?
    } else if first.has("限定性别") {
        single_code_items(
            &first,
            "医疗服务项目区分性别使用",
            &["限定性别"],
            Some("项目说明"),
        )?
    } else if first.has("项目名称") && first.has("限定值域") {
        single_code_items(
            &first,
            "手术项目未按规定折价收费",
            &["限定值域"],
            Some("项目说明"),
        )?
    } else if first.has("项目名称") && first.has("限定对象") {
        single_code_items(&first, "医疗服务项目儿童专用", &["限定对象"], None)?
    } else if first.has("限制数量") && first.has("数量单位") {
        frequency(&first)?
    } else if first.has("频次上限") {
        periodic(&first)?
    } else if first.has("项目名称") && first.has("备注") {
        note_items(&first, &file_name)?
    } else {
        return Err(KbError::UnknownLayout {
            path: path.to_path_buf(),
            sheet: first.name.clone(),
            found: first.header.clone(),
            expected: "the national layouts of data/README.md (drug list; 项目名称…限定性别; 项目名称…限定对象; 项目名称…限定值域; 序号 频度 主项名称 主项编码 从项名称 从项编码 备注; 序号 项目名称 限制数量 数量单位 项目编码; 序号 项目名称 备注 项目代码; 序号 项目名称 频次上限 疗程周期 备注 项目代码)".into(),
        });
    };

    let mut classes: BTreeMap<String, ClassCount> = BTreeMap::new();
    let mut points = Vec::with_capacity(drafts.len());
    for d in drafts {
        let record = companion.as_ref().and_then(|c| {
            if d.rule_class == "医疗服务项目重复收费" {
                match (d.codes.first(), d.partner_codes.first()) {
                    (Some(a), Some(b)) => c.pair(a, b),
                    _ => None,
                }
            } else {
                c.find(&d.rule_class, &d.item_name, |r| {
                    r.constraint.as_deref().map(str::trim) == d.limit_value.as_deref()
                        && r.med_codes
                            .iter()
                            .map(|c| c.trim())
                            .eq(d.codes.iter().map(String::as_str))
                })
            }
        });
        let kp_id = match record {
            Some(r) => r.kp_id.trim().to_string(),
            None => derived_id(&tag, &d),
        };
        let detect_logic = record
            .and_then(|r| r.detect_logic.clone())
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| default_detect_logic(&d.rule_class).to_string());
        let count = classes.entry(d.rule_class.clone()).or_default();
        count.points += 1;
        count.codes += (d.codes.len() + d.partner_codes.len()) as u64;
        points.push(KnowledgePoint {
            kp_id,
            rule_class: d.rule_class,
            batch: tag.clone(),
            item_name: d.item_name,
            codes: d.codes,
            partner_name: d.partner_name,
            partner_codes: d.partner_codes,
            limit_value: d.limit_value,
            limit_num: d.limit_num,
            period_days: d.period_days,
            constraint_text: d.constraint_text,
            detect_logic,
            condition: None,
            effective_from: date,
            effective_to: None,
            supersedes: None,
            source_file: file_name.clone(),
            source_row: d.source_row,
        });
    }
    Ok(Imported {
        points,
        summary: SourceSummary {
            file: file_name,
            kind: "xlsx".into(),
            batch: Some(tag),
            published_at: Some(date),
            rows,
            skipped_rows: skipped,
            rule_classes: classes,
        },
    })
}

/// `KPD-` + 16 hex digits of a hash over what identifies the row.
fn derived_id(tag: &str, d: &Draft) -> String {
    let mut h = Sha256::new();
    for part in [
        tag,
        &d.rule_class,
        &d.item_name,
        &d.codes.join(","),
        &d.partner_codes.join(","),
        d.limit_value.as_deref().unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    let hex = hex::encode(h.finalize());
    format!("KPD-{}", &hex[..16])
}

type Drafts = (Vec<Draft>, u32, u32);

fn drug_list(
    first: &Sheet,
    second: &Sheet,
    companion: Option<&Companion>,
) -> Result<Drafts, KbError> {
    let name_c = first.col(&["药品通用名"])?;
    let text_c = first.col(&["药品说明"])?;
    let type_c = first.col(&["限定类型"])?;
    let limit_c = first.col(&["限定对象", "限定值域"])?;
    let name2_c = second.col(&["药品通用名"])?;
    let code2_c = second.col(&["国标代码", "药品代码"])?;

    let (rows1, skipped1) = first.data_rows();
    let (rows2, skipped2) = second.data_rows();
    // Generic → (first sheet-2 row, codes in sheet order).
    let mut codes: HashMap<String, (u32, Vec<String>)> = HashMap::new();
    for (no, row) in &rows2 {
        let name = second.required(*no, row, name2_c)?;
        let code = second.required(*no, row, code2_c)?;
        codes
            .entry(name)
            .or_insert_with(|| (*no, Vec::new()))
            .1
            .push(code);
    }
    let mut drafts = Vec::with_capacity(rows1.len());
    let mut seen: HashMap<String, u32> = HashMap::new();
    for (no, row) in &rows1 {
        let name = first.required(*no, row, name_c)?;
        if let Some(prev) = seen.insert(name.clone(), *no) {
            return Err(first.err(
                *no,
                name_c,
                &name,
                format!("the generic is listed twice (also row {prev})"),
            ));
        }
        let kind = first.required(*no, row, type_c)?;
        let limit = first.required(*no, row, limit_c)?;
        let rule_class = match kind.as_str() {
            "限定性别对象" => "药品区分性别使用".to_string(),
            "限定年龄对象" => match companion {
                Some(c) => c
                    .child_class(&name)
                    .ok_or_else(|| first.err(*no, name_c, &name, "json/batch_01.json has no 药品儿童专用 or 药品限儿童使用 record of this generic; the xlsx alone cannot tell the two classes apart"))?
                    .to_string(),
                None => {
                    return Err(first.err(*no, type_c, &kind, "限定年龄对象 mixes 药品儿童专用 and 药品限儿童使用; put json/batch_01.json next to the xlsx directory (../json/) so each generic's class can be read"));
                }
            },
            "限定保险类型" => match limit.as_str() {
                "工伤" => "药品限工伤保险".to_string(),
                "生育" => "药品限生育保险".to_string(),
                _ => return Err(first.err(*no, limit_c, &limit, "expected 工伤 or 生育")),
            },
            "限定就医方式" => "药品限就医方式".to_string(),
            "限定机构等级" => "药品限医疗机构级别".to_string(),
            "限定支付疗程" => "药品限支付疗程".to_string(),
            _ => {
                return Err(first.err(
                    *no,
                    type_c,
                    &kind,
                    "unknown 限定类型; expected 限定性别对象, 限定年龄对象, 限定保险类型, 限定就医方式, 限定机构等级 or 限定支付疗程",
                ));
            }
        };
        let item_codes = codes.remove(&name).map(|(_, c)| c).unwrap_or_default();
        if item_codes.is_empty() {
            return Err(first.err(
                *no,
                name_c,
                &name,
                "sheet 2 lists no national code for this generic",
            ));
        }
        let limit_num = if rule_class == "药品限支付疗程" {
            Some(
                days_in_text(&limit)
                    .or_else(|| limit.trim_end_matches('天').trim().parse().ok())
                    .ok_or_else(|| {
                        first.err(
                            *no,
                            limit_c,
                            &limit,
                            "expected a number of days such as 14天",
                        )
                    })?,
            )
        } else {
            None
        };
        drafts.push(Draft {
            rule_class,
            item_name: name,
            codes: item_codes,
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value: Some(limit),
            limit_num,
            period_days: None,
            constraint_text: Sheet::text(row, text_c),
            source_row: no - 1,
        });
    }
    if let Some((name, (row, _))) = codes.into_iter().min_by_key(|(_, (row, _))| *row) {
        return Err(second.err(
            row,
            name2_c,
            &name,
            "sheet 2 lists codes of a generic that sheet 1 does not have",
        ));
    }
    let rows = (rows2.len()) as u32;
    Ok((drafts, rows, skipped1 + skipped2))
}

fn single_code_items(
    sheet: &Sheet,
    rule_class: &str,
    limit: &[&str],
    text: Option<&str>,
) -> Result<Drafts, KbError> {
    let name_c = sheet.col(&["项目名称"])?;
    let code_c = sheet.col(&["国标代码", "项目编码", "项目代码"])?;
    let limit_c = sheet.col(limit)?;
    let text_c = text.map(|t| sheet.col(&[t])).transpose()?;
    let (rows, skipped) = sheet.data_rows();
    let mut drafts = Vec::with_capacity(rows.len());
    for (no, row) in &rows {
        drafts.push(Draft {
            rule_class: rule_class.to_string(),
            item_name: sheet.required(*no, row, name_c)?,
            codes: vec![sheet.required(*no, row, code_c)?],
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value: Some(sheet.required(*no, row, limit_c)?),
            limit_num: None,
            period_days: None,
            constraint_text: text_c.map(|c| Sheet::text(row, c)).unwrap_or_default(),
            source_row: no - 1,
        });
    }
    Ok((drafts, rows.len() as u32, skipped))
}

fn duplicate_charge(sheet: &Sheet) -> Result<Drafts, KbError> {
    let window_c = sheet.col(&["频度"])?;
    let main_name_c = sheet.col(&["主项名称"])?;
    let main_c = sheet.col(&["主项编码"])?;
    let sub_name_c = sheet.col(&["从项名称"])?;
    let sub_c = sheet.col(&["从项编码"])?;
    let note_c = sheet.col(&["备注"])?;
    let (rows, skipped) = sheet.data_rows();
    let mut drafts = Vec::with_capacity(rows.len());
    for (no, row) in &rows {
        drafts.push(Draft {
            rule_class: "医疗服务项目重复收费".into(),
            item_name: sheet.required(*no, row, main_name_c)?,
            codes: vec![sheet.required(*no, row, main_c)?],
            partner_name: Some(sheet.required(*no, row, sub_name_c)?),
            partner_codes: vec![sheet.required(*no, row, sub_c)?],
            limit_value: Some(sheet.required(*no, row, window_c)?),
            limit_num: None,
            period_days: None,
            constraint_text: Sheet::text(row, note_c),
            source_row: no - 1,
        });
    }
    Ok((drafts, rows.len() as u32, skipped))
}

fn frequency(sheet: &Sheet) -> Result<Drafts, KbError> {
    let name_c = sheet.col(&["项目名称"])?;
    let num_c = sheet.col(&["限制数量"])?;
    let unit_c = sheet.col(&["数量单位"])?;
    let code_c = sheet.col(&["项目编码", "项目代码", "国标代码"])?;
    let (rows, skipped) = sheet.data_rows();
    let mut drafts = Vec::with_capacity(rows.len());
    for (no, row) in &rows {
        let unit = sheet.required(*no, row, unit_c)?;
        let unit = match unit.as_str() {
            "日" | "天" => "日".to_string(),
            "小时" => unit,
            _ => return Err(sheet.err(*no, unit_c, &unit, "expected 日, 天 or 小时")),
        };
        drafts.push(Draft {
            rule_class: "医疗服务项目限定频次".into(),
            item_name: sheet.required(*no, row, name_c)?,
            codes: vec![sheet.required(*no, row, code_c)?],
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value: Some(unit),
            limit_num: Some(sheet.number(*no, row, num_c)?),
            period_days: None,
            constraint_text: String::new(),
            source_row: no - 1,
        });
    }
    Ok((drafts, rows.len() as u32, skipped))
}

fn periodic(sheet: &Sheet) -> Result<Drafts, KbError> {
    let name_c = sheet.col(&["项目名称"])?;
    let num_c = sheet.col(&["频次上限"])?;
    let period_c = sheet.col(&["疗程周期"])?;
    let note_c = sheet.col(&["备注"])?;
    let code_c = sheet.col(&["项目代码", "项目编码", "国标代码"])?;
    let (rows, skipped) = sheet.data_rows();
    let mut drafts = Vec::with_capacity(rows.len());
    for (no, row) in &rows {
        drafts.push(Draft {
            rule_class: "医疗服务项目周期超频次".into(),
            item_name: sheet.required(*no, row, name_c)?,
            codes: vec![sheet.required(*no, row, code_c)?],
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value: None,
            limit_num: Some(sheet.number(*no, row, num_c)?),
            period_days: Some(sheet.number(*no, row, period_c)?),
            constraint_text: Sheet::text(row, note_c),
            source_row: no - 1,
        });
    }
    Ok((drafts, rows.len() as u32, skipped))
}

/// `序号 项目名称 备注 项目代码`: batch 8-2 (限年龄) and 8-3 (限支付疗程) share
/// this layout; the sheet name (or else the file name) tells them apart.
fn note_items(sheet: &Sheet, file_name: &str) -> Result<Drafts, KbError> {
    let says = |w: &[&str]| {
        w.iter()
            .any(|w| sheet.name.contains(w) || file_name.contains(w))
    };
    let rule_class = if says(&["限年龄", "item-age", "限定年龄"]) {
        "医疗服务项目限年龄"
    } else if says(&["限支付疗程", "payment-course", "限定疗程"]) {
        "医疗服务项目限支付疗程"
    } else {
        return Err(KbError::UnknownLayout {
            path: sheet.path.clone(),
            sheet: sheet.name.clone(),
            found: sheet.header.clone(),
            expected: "the layout 序号 项目名称 备注 项目代码 is used by 8-2 (限年龄) and 8-3 (限支付疗程); the sheet name or file name must say which (…限年龄… / …限支付疗程…)".into(),
        });
    };
    let name_c = sheet.col(&["项目名称"])?;
    let note_c = sheet.col(&["备注"])?;
    let code_c = sheet.col(&["项目代码", "项目编码", "国标代码"])?;
    let (rows, skipped) = sheet.data_rows();
    let mut drafts = Vec::with_capacity(rows.len());
    for (no, row) in &rows {
        let note = sheet.required(*no, row, note_c)?;
        let (limit_value, limit_num) = if rule_class == "医疗服务项目限支付疗程" {
            let days = days_in_text(&note).ok_or_else(|| {
                sheet.err(*no, note_c, &note, "no payment length found; expected wording such as 支付不超过30天, 总时间不超过90天 or 支付不超过一年")
            })?;
            (Some(format!("{days}天")), Some(days))
        } else {
            (Some("法定就业年龄".to_string()), None)
        };
        drafts.push(Draft {
            rule_class: rule_class.into(),
            item_name: sheet.required(*no, row, name_c)?,
            codes: vec![sheet.required(*no, row, code_c)?],
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value,
            limit_num,
            period_days: None,
            constraint_text: note,
            source_row: no - 1,
        });
    }
    Ok((drafts, rows.len() as u32, skipped))
}
