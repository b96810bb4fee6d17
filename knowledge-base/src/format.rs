//! The columnar files of a KB version and the content hash.
//!
//! `knowledge_points.parquet` holds one row per point:
//!
//! | column | type | |
//! |---|---|---|
//! | `kp_id`, `rule_class`, `batch`, `item_name` | Utf8 | |
//! | `codes`, `partner_codes` | List<Utf8> | |
//! | `partner_name`, `limit_value` | Utf8, nullable | |
//! | `limit_num`, `period_days` | Float64, nullable | |
//! | `constraint_text`, `detect_logic` | Utf8 | |
//! | `effective_from` | Date32 | |
//! | `effective_to` | Date32, nullable | exclusive |
//! | `supersedes` | Utf8, nullable | |
//! | `source_file` | Utf8 | |
//! | `source_row` | UInt32 | |
//! | `has_condition` | Boolean | false: the class needs no condition |
//! | `cond_age_min_years`, `cond_age_max_years` | Float64, nullable | |
//! | `cond_sex` | Utf8, nullable | `1` 男, `2` 女 |
//! | `cond_settings`, `cond_dx_prefixes` | List<Utf8> | |
//! | `cond_dx_decidable`, `cond_needs_evidence` | Boolean | |
//! | `cond_evidence_kind` | Utf8, nullable | |
//!
//! `icd10.parquet` and `icd9.parquet` hold `code`, `name` (Utf8).
//!
//! The content hash is SHA-256 over a canonical text of the rows — a format tag,
//! each point as JSON in version order, then the ICD lists — so it does not
//! depend on Parquet encoding, compression or writer version.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Float64Array,
    Float64Builder, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder, UInt32Array,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use crate::error::KbError;
use crate::model::{Condition, IcdCode, KnowledgePoint};

/// Tag of the on-disk format, part of the manifest and of the content hash.
pub const FORMAT: &str = "fundwatch-kb/1";

/// Days since 1970-01-01 (Arrow Date32) of a date.
pub fn date_to_days(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (d - epoch).num_days() as i32
}

/// The date of an Arrow Date32 value.
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

/// SHA-256 (hex) over the canonical content.
pub(crate) fn content_hash(
    points: &[KnowledgePoint],
    icd10: &[IcdCode],
    icd9: &[IcdCode],
) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(b"\npoints\n");
    for p in points {
        // Serialising a plain struct of strings, numbers and dates cannot fail.
        let line = serde_json::to_string(p).unwrap_or_default();
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    for (label, list) in [("icd10", icd10), ("icd9", icd9)] {
        h.update(format!("{label}\n").as_bytes());
        for c in list {
            h.update(c.code.as_bytes());
            h.update(b"\t");
            h.update(c.name.as_bytes());
            h.update(b"\n");
        }
    }
    hex::encode(h.finalize())
}

fn list_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

fn points_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kp_id", DataType::Utf8, false),
        Field::new("rule_class", DataType::Utf8, false),
        Field::new("batch", DataType::Utf8, false),
        Field::new("item_name", DataType::Utf8, false),
        list_field("codes"),
        Field::new("partner_name", DataType::Utf8, true),
        list_field("partner_codes"),
        Field::new("limit_value", DataType::Utf8, true),
        Field::new("limit_num", DataType::Float64, true),
        Field::new("period_days", DataType::Float64, true),
        Field::new("constraint_text", DataType::Utf8, false),
        Field::new("detect_logic", DataType::Utf8, false),
        Field::new("effective_from", DataType::Date32, false),
        Field::new("effective_to", DataType::Date32, true),
        Field::new("supersedes", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_row", DataType::UInt32, false),
        Field::new("has_condition", DataType::Boolean, false),
        Field::new("cond_age_min_years", DataType::Float64, true),
        Field::new("cond_age_max_years", DataType::Float64, true),
        Field::new("cond_sex", DataType::Utf8, true),
        list_field("cond_settings"),
        list_field("cond_dx_prefixes"),
        Field::new("cond_dx_decidable", DataType::Boolean, false),
        Field::new("cond_needs_evidence", DataType::Boolean, false),
        Field::new("cond_evidence_kind", DataType::Utf8, true),
    ]))
}

fn icd_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
    ]))
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn opt_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn lists<'a>(values: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for list in values {
        for v in list {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn floats(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn bools(values: impl Iterator<Item = bool>) -> ArrayRef {
    let mut b = BooleanBuilder::new();
    for v in values {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

/// The points as one Arrow record batch.
pub fn points_batch(points: &[KnowledgePoint]) -> Result<RecordBatch, KbError> {
    let cond = |p: &KnowledgePoint| p.condition.clone().unwrap_or_default();
    let conds: Vec<Condition> = points.iter().map(cond).collect();
    let mut from = Date32Builder::new();
    let mut to = Date32Builder::new();
    let mut row = UInt32Builder::new();
    for p in points {
        from.append_value(date_to_days(p.effective_from));
        to.append_option(p.effective_to.map(date_to_days));
        row.append_value(p.source_row);
    }
    let columns: Vec<ArrayRef> = vec![
        strings(points.iter().map(|p| p.kp_id.as_str())),
        strings(points.iter().map(|p| p.rule_class.as_str())),
        strings(points.iter().map(|p| p.batch.as_str())),
        strings(points.iter().map(|p| p.item_name.as_str())),
        lists(points.iter().map(|p| p.codes.as_slice())),
        opt_strings(points.iter().map(|p| p.partner_name.as_deref())),
        lists(points.iter().map(|p| p.partner_codes.as_slice())),
        opt_strings(points.iter().map(|p| p.limit_value.as_deref())),
        floats(points.iter().map(|p| p.limit_num)),
        floats(points.iter().map(|p| p.period_days)),
        strings(points.iter().map(|p| p.constraint_text.as_str())),
        strings(points.iter().map(|p| p.detect_logic.as_str())),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        opt_strings(points.iter().map(|p| p.supersedes.as_deref())),
        strings(points.iter().map(|p| p.source_file.as_str())),
        Arc::new(row.finish()),
        bools(points.iter().map(|p| p.condition.is_some())),
        floats(conds.iter().map(|c| c.age_min_years)),
        floats(conds.iter().map(|c| c.age_max_years)),
        opt_strings(conds.iter().map(|c| c.sex.as_deref())),
        lists(conds.iter().map(|c| c.settings.as_slice())),
        lists(conds.iter().map(|c| c.dx_prefixes.as_slice())),
        bools(conds.iter().map(|c| c.dx_decidable)),
        bools(conds.iter().map(|c| c.needs_evidence)),
        opt_strings(conds.iter().map(|c| c.evidence_kind.as_deref())),
    ];
    RecordBatch::try_new(points_schema(), columns)
        .map_err(|e| KbError::format("knowledge_points", e))
}

/// An ICD list as one Arrow record batch.
pub fn icd_batch(codes: &[IcdCode]) -> Result<RecordBatch, KbError> {
    RecordBatch::try_new(
        icd_schema(),
        vec![
            strings(codes.iter().map(|c| c.code.as_str())),
            strings(codes.iter().map(|c| c.name.as_str())),
        ],
    )
    .map_err(|e| KbError::format("icd", e))
}

/// Writes one record batch as a Snappy-compressed Parquet file.
pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), KbError> {
    let file = File::create(path).map_err(|e| KbError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("fundwatch-kb ({FORMAT})"))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| KbError::format(path, e))?;
    writer.write(batch).map_err(|e| KbError::format(path, e))?;
    writer.close().map_err(|e| KbError::format(path, e))?;
    Ok(())
}

/// Reads every record batch of a Parquet file held in memory.
pub(crate) fn read_parquet(bytes: Bytes, origin: &Path) -> Result<Vec<RecordBatch>, KbError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(65_536).build())
        .map_err(|e| KbError::format(origin, e))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| KbError::format(origin, e))
}

/// Column `name` of `batch` as `T`.
fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    origin: &Path,
) -> Result<&'a T, KbError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            KbError::format(
                origin,
                format!("column {name} is missing or has the wrong type"),
            )
        })
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

fn opt_f64(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn list_values(a: &ListArray, i: usize, origin: &Path) -> Result<Vec<String>, KbError> {
    let values = a.value(i);
    let s = values
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| KbError::format(origin, "a list column does not hold strings"))?;
    Ok((0..s.len())
        .filter(|k| !s.is_null(*k))
        .map(|k| s.value(k).to_string())
        .collect())
}

/// Points from the record batches of `knowledge_points.parquet`.
pub(crate) fn points_from_batches(
    batches: &[RecordBatch],
    origin: &Path,
) -> Result<Vec<KnowledgePoint>, KbError> {
    let mut out = Vec::new();
    for b in batches {
        let kp_id = column::<StringArray>(b, "kp_id", origin)?;
        let rule_class = column::<StringArray>(b, "rule_class", origin)?;
        let batch = column::<StringArray>(b, "batch", origin)?;
        let item_name = column::<StringArray>(b, "item_name", origin)?;
        let codes = column::<ListArray>(b, "codes", origin)?;
        let partner_name = column::<StringArray>(b, "partner_name", origin)?;
        let partner_codes = column::<ListArray>(b, "partner_codes", origin)?;
        let limit_value = column::<StringArray>(b, "limit_value", origin)?;
        let limit_num = column::<Float64Array>(b, "limit_num", origin)?;
        let period_days = column::<Float64Array>(b, "period_days", origin)?;
        let constraint_text = column::<StringArray>(b, "constraint_text", origin)?;
        let detect_logic = column::<StringArray>(b, "detect_logic", origin)?;
        let effective_from = column::<Date32Array>(b, "effective_from", origin)?;
        let effective_to = column::<Date32Array>(b, "effective_to", origin)?;
        let supersedes = column::<StringArray>(b, "supersedes", origin)?;
        let source_file = column::<StringArray>(b, "source_file", origin)?;
        let source_row = column::<UInt32Array>(b, "source_row", origin)?;
        let has_condition = column::<BooleanArray>(b, "has_condition", origin)?;
        let age_min = column::<Float64Array>(b, "cond_age_min_years", origin)?;
        let age_max = column::<Float64Array>(b, "cond_age_max_years", origin)?;
        let sex = column::<StringArray>(b, "cond_sex", origin)?;
        let settings = column::<ListArray>(b, "cond_settings", origin)?;
        let dx_prefixes = column::<ListArray>(b, "cond_dx_prefixes", origin)?;
        let dx_decidable = column::<BooleanArray>(b, "cond_dx_decidable", origin)?;
        let needs_evidence = column::<BooleanArray>(b, "cond_needs_evidence", origin)?;
        let evidence_kind = column::<StringArray>(b, "cond_evidence_kind", origin)?;
        for i in 0..b.num_rows() {
            let bad_date = |what: &str| {
                KbError::format(origin, format!("row {i}: {what} is not a valid date"))
            };
            let condition = if has_condition.value(i) {
                Some(Condition {
                    age_min_years: opt_f64(age_min, i),
                    age_max_years: opt_f64(age_max, i),
                    sex: opt_str(sex, i),
                    settings: list_values(settings, i, origin)?,
                    dx_prefixes: list_values(dx_prefixes, i, origin)?,
                    dx_decidable: dx_decidable.value(i),
                    needs_evidence: needs_evidence.value(i),
                    evidence_kind: opt_str(evidence_kind, i),
                })
            } else {
                None
            };
            out.push(KnowledgePoint {
                kp_id: kp_id.value(i).to_string(),
                rule_class: rule_class.value(i).to_string(),
                batch: batch.value(i).to_string(),
                item_name: item_name.value(i).to_string(),
                codes: list_values(codes, i, origin)?,
                partner_name: opt_str(partner_name, i),
                partner_codes: list_values(partner_codes, i, origin)?,
                limit_value: opt_str(limit_value, i),
                limit_num: opt_f64(limit_num, i),
                period_days: opt_f64(period_days, i),
                constraint_text: constraint_text.value(i).to_string(),
                detect_logic: detect_logic.value(i).to_string(),
                condition,
                effective_from: days_to_date(effective_from.value(i))
                    .ok_or_else(|| bad_date("effective_from"))?,
                effective_to: if effective_to.is_null(i) {
                    None
                } else {
                    Some(
                        days_to_date(effective_to.value(i))
                            .ok_or_else(|| bad_date("effective_to"))?,
                    )
                },
                supersedes: opt_str(supersedes, i),
                source_file: source_file.value(i).to_string(),
                source_row: source_row.value(i),
            });
        }
    }
    Ok(out)
}

/// ICD codes from the record batches of `icd10.parquet` / `icd9.parquet`.
pub(crate) fn icd_from_batches(
    batches: &[RecordBatch],
    origin: &Path,
) -> Result<Vec<IcdCode>, KbError> {
    let mut out = Vec::new();
    for b in batches {
        let code = column::<StringArray>(b, "code", origin)?;
        let name = column::<StringArray>(b, "name", origin)?;
        for i in 0..b.num_rows() {
            out.push(IcdCode {
                code: code.value(i).to_string(),
                name: name.value(i).to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date32_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 28).expect("date");
        assert_eq!(
            date_to_days(NaiveDate::from_ymd_opt(1970, 1, 2).expect("date")),
            1
        );
        assert_eq!(days_to_date(date_to_days(d)), Some(d));
    }
}
