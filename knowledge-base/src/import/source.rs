//! What an input file is (by name), and the publication dates of the batches.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::KbError;

/// The kinds of input the importer understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// An official NHSA xlsx attachment of batch `batch` (1–8).
    Xlsx { batch: u32 },
    /// A JSON batch `batch_NN.json` (9–17 are imported from JSON).
    JsonBatch { batch: u32 },
    /// A JSON update `updates_YYYY-MM.json`.
    JsonUpdate { tag: String },
    /// ICD-10 医保版 diagnoses (`ZD_INFO.dat`).
    Icd10,
    /// ICD-9-CM-3 医保版 procedures (`SS_INFO.dat`).
    Icd9,
}

/// Batch tag of a numbered batch, as in the JSON (`batch_01`).
pub(crate) fn batch_tag(batch: u32) -> String {
    format!("batch_{batch:02}")
}

/// Publication dates from `data/README.md` for the sources whose JSON carries none.
const PUBLISHED: [(&str, (i32, u32, u32)); 9] = [
    ("batch_01", (2025, 5, 23)),
    ("batch_02", (2025, 7, 22)),
    ("batch_03", (2025, 7, 30)),
    ("batch_04", (2025, 8, 8)),
    ("batch_05", (2025, 8, 14)),
    ("batch_06", (2025, 8, 26)),
    ("batch_07", (2025, 12, 12)),
    ("batch_08", (2026, 1, 6)),
    ("updates_2026-01", (2026, 1, 28)),
];

/// The built-in publication date of a batch tag, if it is one of the published ones.
pub(crate) fn builtin_date(tag: &str) -> Option<NaiveDate> {
    PUBLISHED
        .iter()
        .find(|(t, _)| *t == tag)
        .and_then(|(_, (y, m, d))| NaiveDate::from_ymd_opt(*y, *m, *d))
}

/// Tells what `path` is from its file name.
pub(crate) fn classify(path: &Path) -> Result<SourceKind, KbError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let unknown = |reason: String| KbError::UnknownSource {
        path: path.to_path_buf(),
        reason,
    };
    if lower == "zd_info.dat" {
        return Ok(SourceKind::Icd10);
    }
    if lower == "ss_info.dat" {
        return Ok(SourceKind::Icd9);
    }
    if lower.ends_with(".xlsx") || lower.ends_with(".xls") {
        return match xlsx_batch_number(name) {
            Some(batch @ 1..=8) => Ok(SourceKind::Xlsx { batch }),
            Some(batch) => Err(unknown(format!(
                "batch {batch} has no official xlsx layout known to FundWatch; batches 9–17 are imported from json/batch_{batch:02}.json"
            ))),
            None => Err(unknown(
                "the file name does not say which batch it is; name it like batch08-1-item-frequency.xlsx or keep the official title (【第八批-1】…)".into(),
            )),
        };
    }
    if lower.ends_with(".json") {
        if let Some(rest) = lower
            .strip_prefix("batch_")
            .and_then(|r| r.strip_suffix(".json"))
            && let Ok(batch) = rest.parse::<u32>()
        {
            return if batch <= 8 {
                Err(unknown(format!(
                    "the JSON of batch {batch} drops the official 限定 columns (frequency limits, sexes, groups); import the xlsx attachments of batch {batch} instead — the JSON next to them is read automatically for kp_ids"
                )))
            } else {
                Ok(SourceKind::JsonBatch { batch })
            };
        }
        if let Some(tag) = lower.strip_suffix(".json")
            && tag.starts_with("updates_")
        {
            return Ok(SourceKind::JsonUpdate {
                tag: name.trim_end_matches(".json").to_string(),
            });
        }
        return Err(unknown(
            "not a knowledge batch; expected batch_NN.json or updates_YYYY-MM.json (index.json and rule_catalog_*.json are read for metadata only)".into(),
        ));
    }
    if lower.ends_with(".csv") {
        return Err(unknown(
            "local CSV tables (institutions, persons, interactions, price caps) are not imported yet; see docs/knowledge-base.md, \"Local tables\"".into(),
        ));
    }
    Err(unknown(
        "expected an official xlsx attachment (batch01-….xlsx … batch08-….xlsx), a JSON batch (batch_09.json … batch_17.json, updates_2026-01.json) or an ICD list (ZD_INFO.dat, SS_INFO.dat)".into(),
    ))
}

/// Batch number from `batch08-1-…` or from the official title `【第八批-1】…`.
fn xlsx_batch_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("batch") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return digits.parse().ok();
    }
    let start = name.find('第')? + '第'.len_utf8();
    let numeral: String = name[start..].chars().take_while(|c| *c != '批').collect();
    chinese_number(numeral.trim())
}

/// 一 … 十九.
fn chinese_number(s: &str) -> Option<u32> {
    let digit = |c: char| {
        "一二三四五六七八九"
            .chars()
            .position(|d| d == c)
            .map(|p| p as u32 + 1)
    };
    let chars: Vec<char> = s.chars().collect();
    match chars.as_slice() {
        [c] if *c == '十' => Some(10),
        [c] => digit(*c),
        ['十', c] => digit(*c).map(|d| 10 + d),
        _ => None,
    }
}

/// The national file set under a data directory laid out as `../shared/data`.
pub(crate) fn national_files(data_dir: &Path) -> Result<Vec<PathBuf>, KbError> {
    let xlsx_dir = data_dir.join("nhsa-batches").join("xlsx");
    let json_dir = data_dir.join("nhsa-batches").join("json");
    let icd_dir = data_dir.join("icd-chs");
    let mut files: Vec<PathBuf> = Vec::new();
    let entries = std::fs::read_dir(&xlsx_dir).map_err(|e| KbError::io(&xlsx_dir, e))?;
    let mut xlsx: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| KbError::io(&xlsx_dir, e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("xlsx") {
            xlsx.push(path);
        }
    }
    xlsx.sort();
    files.extend(xlsx);
    for batch in 9..=17 {
        files.push(json_dir.join(format!("batch_{batch:02}.json")));
    }
    let entries = std::fs::read_dir(&json_dir).map_err(|e| KbError::io(&json_dir, e))?;
    let mut updates: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| KbError::io(&json_dir, e))?;
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("updates_") && name.ends_with(".json") {
            updates.push(path);
        }
    }
    updates.sort();
    files.extend(updates);
    files.push(icd_dir.join("ZD_INFO.dat"));
    files.push(icd_dir.join("SS_INFO.dat"));
    for f in &files {
        if !f.is_file() {
            return Err(KbError::io(
                f,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "national data file is missing",
                ),
            ));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_name() {
        assert_eq!(
            classify(Path::new("x/batch08-1-item-frequency.xlsx")).ok(),
            Some(SourceKind::Xlsx { batch: 8 })
        );
        assert_eq!(
            classify(Path::new("【第七批 】项目规则库（重复收费）.xlsx")).ok(),
            Some(SourceKind::Xlsx { batch: 7 })
        );
        assert_eq!(
            classify(Path::new("batch_12.json")).ok(),
            Some(SourceKind::JsonBatch { batch: 12 })
        );
        assert!(matches!(
            classify(Path::new("updates_2026-01.json")),
            Ok(SourceKind::JsonUpdate { tag }) if tag == "updates_2026-01"
        ));
        assert_eq!(
            classify(Path::new("ZD_INFO.dat")).ok(),
            Some(SourceKind::Icd10)
        );
        assert!(classify(Path::new("batch_08.json")).is_err());
        assert!(classify(Path::new("index.json")).is_err());
        assert!(classify(Path::new("hospitals.csv")).is_err());
        assert_eq!(chinese_number("十七"), Some(17));
    }

    #[test]
    fn builtin_dates_follow_the_readme() {
        assert_eq!(
            builtin_date("batch_01"),
            NaiveDate::from_ymd_opt(2025, 5, 23)
        );
        assert_eq!(
            builtin_date("batch_08"),
            NaiveDate::from_ymd_opt(2026, 1, 6)
        );
        assert_eq!(
            builtin_date("updates_2026-01"),
            NaiveDate::from_ymd_opt(2026, 1, 28)
        );
        assert_eq!(builtin_date("batch_12"), None);
    }
}
