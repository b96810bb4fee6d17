//! JSON batches (`batch_NN.json`, `updates_YYYY-MM.json`): one record per
//! knowledge point, read with serde.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;

use super::source::builtin_date;
use super::{ClassCount, Imported, SourceSummary};
use crate::error::KbError;
use crate::model::KnowledgePoint;

/// One record of a JSON batch, as published by the third-party extraction.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JsonRecord {
    pub kp_id: String,
    pub rule_class: String,
    #[serde(default)]
    pub item_name: String,
    #[serde(default)]
    pub med_codes: Vec<String>,
    #[serde(default)]
    pub constraint: Option<String>,
    #[serde(default)]
    pub detect_logic: Option<String>,
    #[serde(default)]
    pub batch_tag: Option<String>,
    #[serde(default)]
    pub published_at: Option<String>,
    #[serde(default)]
    pub supersedes: Option<String>,
    #[serde(default)]
    pub source: Option<JsonSource>,
}

/// Where a record came from in the official attachment.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JsonSource {
    #[serde(default)]
    pub attachment_file: Option<String>,
    #[serde(default)]
    pub row: Option<u32>,
}

/// `index.json`: batch tags and publication dates.
#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    batches: Vec<IndexBatch>,
}

#[derive(Debug, Deserialize)]
struct IndexBatch {
    batch_tag: String,
    #[serde(default)]
    published_at: Option<String>,
}

/// Reads the records of a JSON batch file.
pub(crate) fn read_records(path: &Path) -> Result<Vec<JsonRecord>, KbError> {
    let text = std::fs::read_to_string(path).map_err(|e| KbError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| KbError::Json {
        path: path.to_path_buf(),
        message: format!("not a JSON batch (an array of knowledge-point records): {e}"),
    })
}

/// Publication date of `tag` from `index.json` next to `path`, if present.
fn index_date(path: &Path, tag: &str) -> Result<Option<NaiveDate>, KbError> {
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    let index_path = dir.join("index.json");
    if !index_path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&index_path).map_err(|e| KbError::io(&index_path, e))?;
    let index: Index = serde_json::from_str(&text).map_err(|e| KbError::Json {
        path: index_path.clone(),
        message: format!("not a batch index: {e}"),
    })?;
    index
        .batches
        .iter()
        .find(|b| b.batch_tag == tag)
        .and_then(|b| b.published_at.as_deref())
        .map(|d| {
            parse_date_field(
                d,
                &format!("{} published_at of {tag}", index_path.display()),
            )
        })
        .transpose()
}

fn parse_date_field(value: &str, field: &str) -> Result<NaiveDate, KbError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| KbError::Date {
        field: field.to_string(),
        value: value.to_string(),
    })
}

/// Imports a JSON batch or update. `tag` is the batch tag the file stands for;
/// `effective_from` overrides every publication date.
pub(crate) fn import(
    path: &Path,
    tag: &str,
    effective_from: Option<NaiveDate>,
) -> Result<Imported, KbError> {
    let records = read_records(path)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    // Date for records that carry none: index.json, then the README table.
    let fallback = match index_date(path, tag)? {
        Some(d) => Some(d),
        None => builtin_date(tag),
    };
    let mut points = Vec::with_capacity(records.len());
    let mut classes: BTreeMap<String, ClassCount> = BTreeMap::new();
    let mut skipped = 0u32;
    let mut dates: Vec<NaiveDate> = Vec::new();
    for (index, r) in records.into_iter().enumerate() {
        let codes: Vec<String> = r
            .med_codes
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if codes.is_empty() {
            // Footnotes extracted as records ("说明：…") carry no code.
            skipped += 1;
            continue;
        }
        let record_err = |problem: String| KbError::Record {
            path: path.to_path_buf(),
            index,
            kp_id: r.kp_id.clone(),
            problem,
        };
        if r.kp_id.trim().is_empty() || r.rule_class.trim().is_empty() {
            return Err(record_err("kp_id and rule_class are required".into()));
        }
        let published = match r.published_at.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(d) => Some(parse_date_field(
                d,
                &format!("{} record {index} published_at", path.display()),
            )?),
            None => None,
        };
        let effective = match effective_from.or(published).or(fallback) {
            Some(d) => d,
            None => {
                return Err(KbError::MissingDate {
                    path: path.to_path_buf(),
                    batch: tag.to_string(),
                });
            }
        };
        dates.push(effective);
        let count = classes.entry(r.rule_class.clone()).or_default();
        count.points += 1;
        count.codes += codes.len() as u64;
        let source = r.source.clone();
        points.push(KnowledgePoint {
            kp_id: r.kp_id.trim().to_string(),
            rule_class: r.rule_class.trim().to_string(),
            batch: r.batch_tag.clone().unwrap_or_else(|| tag.to_string()),
            item_name: r.item_name.trim().to_string(),
            codes,
            partner_name: None,
            partner_codes: Vec::new(),
            limit_value: None,
            limit_num: None,
            period_days: None,
            constraint_text: r.constraint.clone().unwrap_or_default(),
            detect_logic: r.detect_logic.clone().unwrap_or_default(),
            condition: None,
            effective_from: effective,
            effective_to: None,
            supersedes: r.supersedes.clone().filter(|s| !s.trim().is_empty()),
            source_file: source
                .as_ref()
                .and_then(|s| s.attachment_file.clone())
                .unwrap_or_else(|| file_name.clone()),
            source_row: source.and_then(|s| s.row).unwrap_or(index as u32 + 1),
        });
    }
    let rows = points.len() as u32 + skipped;
    Ok(Imported {
        points,
        summary: SourceSummary {
            file: file_name,
            kind: "json".into(),
            batch: Some(tag.to_string()),
            published_at: dates.iter().max().copied(),
            rows,
            skipped_rows: skipped,
            rule_classes: classes,
        },
    })
}
