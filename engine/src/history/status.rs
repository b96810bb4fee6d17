//! The person-status table (`person_status`): persons' death dates, for 死亡后就医.
//!
//! FundWatch cannot learn a death from the settlement stream: 3101/3102 requests carry
//! no death date, and `die_date` of 结算/就诊信息 (MDTRT_D) only records deaths during a
//! stay. Death records come from outside — the 公安 户籍注销 and 民政 殡葬/火化 data a
//! 医保局 receives through the government data-sharing exchange (政务数据共享交换平台),
//! and 卫健 death certificates (死亡医学证明) — as a file per deployment, refreshed
//! daily. The engine loads it from a CSV (`--person-status FILE`): columns `patn_id`
//! (or `psn_no`), `die_date` (yyyy-MM-dd or yyyyMMdd) and optional `source`. A person
//! listed twice keeps the last row (the file is read as a sequence of updates).
//!
//! Rule SQL sees only the rows of the batch's persons (one row per event and patient
//! with a status), so a registry of millions of deaths costs one hash probe per
//! patient, not a join against the whole registry.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Int64Builder, RecordBatch, StringBuilder};
use chrono::NaiveDate;

use crate::batch::{TableName, table_schema};
use crate::event::Event;

/// A person's registered status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonStatus {
    /// Date of death.
    pub die_date: NaiveDate,
    /// Where the record came from (e.g. `公安户籍注销`, `民政火化`, `卫健死亡证明`).
    pub source: String,
}

/// Persons' statuses by `patn_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonStatuses {
    rows: HashMap<Box<str>, PersonStatus>,
}

/// A person-status file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The file cannot be read.
    #[error("person status file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A row or the header is invalid.
    #[error("person status file {path}, line {line}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Parses `yyyy-MM-dd` or `yyyyMMdd`.
pub fn parse_die_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y%m%d"))
        .ok()
}

impl PersonStatuses {
    /// Number of persons with a status.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no person has a status.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The status of `patn_id`.
    pub fn get(&self, patn_id: &str) -> Option<&PersonStatus> {
        self.rows.get(patn_id)
    }

    /// Sets the status of `patn_id` (a later record replaces an earlier one).
    pub fn insert(&mut self, patn_id: &str, status: PersonStatus) {
        self.rows.insert(patn_id.into(), status);
    }

    /// Loads a CSV file (see the module documentation for the columns).
    pub fn load_csv(path: &Path) -> Result<Self, StatusError> {
        let text = std::fs::read_to_string(path).map_err(|source| StatusError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_csv(&text, &path.display().to_string())
    }

    /// Parses CSV text; `origin` names it in errors.
    pub fn parse_csv(text: &str, origin: &str) -> Result<Self, StatusError> {
        let invalid = |line: u64, message: String| StatusError::Invalid {
            path: origin.to_string(),
            line,
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let header = reader
            .headers()
            .map_err(|err| invalid(1, format!("header: {err}")))?
            .clone();
        let column = |names: &[&str]| header.iter().position(|h| names.contains(&h));
        let patn_col = column(&["patn_id", "psn_no"])
            .ok_or_else(|| invalid(1, "no `patn_id` (or `psn_no`) column".into()))?;
        let date_col =
            column(&["die_date"]).ok_or_else(|| invalid(1, "no `die_date` column".into()))?;
        let source_col = column(&["source"]);
        let mut statuses = Self::default();
        for record in reader.records() {
            let record = record.map_err(|err| {
                let line = err.position().map_or(0, |p| p.line());
                invalid(line, err.to_string())
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let patn_id = record.get(patn_col).unwrap_or("");
            if patn_id.is_empty() {
                return Err(invalid(line, "`patn_id` is empty".into()));
            }
            let raw_date = record.get(date_col).unwrap_or("");
            let die_date = parse_die_date(raw_date).ok_or_else(|| {
                invalid(
                    line,
                    format!("`die_date` \"{raw_date}\" is not a date (yyyy-MM-dd or yyyyMMdd)"),
                )
            })?;
            let source = source_col
                .and_then(|c| record.get(c))
                .unwrap_or("")
                .to_string();
            statuses.insert(patn_id, PersonStatus { die_date, source });
        }
        Ok(statuses)
    }
}

/// The `person_status` table of a batch: the statuses of its persons.
pub fn status_table(events: &[&Event], statuses: Option<&PersonStatuses>) -> RecordBatch {
    let mut event_idx = Int64Builder::new();
    let mut patn = StringBuilder::new();
    let mut date = Date32Builder::new();
    let mut source = StringBuilder::new();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    if let Some(statuses) = statuses.filter(|s| !s.is_empty()) {
        for (idx, event) in events.iter().enumerate() {
            for patient in &event.patients {
                if let Some(status) = statuses.get(&patient.patn_id) {
                    event_idx.append_value(idx as i64);
                    patn.append_value(&patient.patn_id);
                    date.append_value((status.die_date - epoch).num_days() as i32);
                    source.append_value(&status.source);
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(event_idx.finish()),
        Arc::new(patn.finish()),
        Arc::new(date.finish()),
        Arc::new(source.finish()),
    ];
    RecordBatch::try_new(table_schema(TableName::PersonStatus), columns)
        .unwrap_or_else(|err| panic!("person_status builder out of sync with its schema: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_aliases_and_both_date_forms() {
        let text = "\u{feff}psn_no,die_date,source\nP1,2026-03-01,公安户籍注销\nP2, 20260415 ,\nP1,2026-03-02,民政火化\n";
        let s = PersonStatuses::parse_csv(text, "t.csv").expect("parses");
        assert_eq!(s.len(), 2);
        let p1 = s.get("P1").expect("P1");
        assert_eq!(
            p1.die_date,
            NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
        );
        assert_eq!(p1.source, "民政火化", "the last row wins");
        assert_eq!(s.get("P2").map(|p| p.source.as_str()), Some(""));
    }

    #[test]
    fn bad_rows_name_the_line_and_field() {
        let err = PersonStatuses::parse_csv("patn_id,die_date\nP1,2026-13-01\n", "t.csv")
            .expect_err("bad date");
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("`die_date` \"2026-13-01\""),
            "{text}"
        );
        let err = PersonStatuses::parse_csv("patn_id,date\nP1,2026-01-01\n", "t.csv")
            .expect_err("no column");
        assert!(err.to_string().contains("no `die_date` column"), "{err}");
        let err = PersonStatuses::parse_csv("patn_id,die_date\n,2026-01-01\n", "t.csv")
            .expect_err("empty id");
        assert!(err.to_string().contains("`patn_id` is empty"), "{err}");
    }
}
