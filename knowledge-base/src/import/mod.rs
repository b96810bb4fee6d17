//! Importers: official xlsx attachments (batches 1–8), JSON batches (9–17 and
//! updates), ICD lists — and the assembly of a new KB version from an existing
//! version plus new files.
//!
//! Assembly order (see `docs/knowledge-base.md`):
//! 1. start from the base version's points and ICD lists (or nothing);
//! 2. import each file; a file imported again replaces the points its batch and
//!    rule classes had in the base, an ICD list replaces the old list;
//! 3. refuse duplicate `kp_id`s;
//! 4. apply supersede links: the superseded point stops on the superseding
//!    point's `effective_from`, and the new point inherits `limit_value` /
//!    `limit_num` / `period_days` it lacks (the JSON drops the 限定 column);
//! 5. derive limits still missing from the text (`限二级及以上` → 二级, `住院`,
//!    `支付不超过3天` → 3);
//! 6. read conditions (限适应症, 限二线, 限儿童使用) with the keyword table.
//!
//! # Local tables
//! Local CSV tables (institutions, persons' status such as death date, drug
//! interactions, price caps) are a later concern. The extension point is
//! [`source::classify`]: add a `SourceKind` for the table, a reader module next
//! to `xlsx.rs`/`json.rs`, and a Parquet file in the version directory; the
//! manifest's `sources` list already records any kind of source.

mod icd;
mod json;
mod source;
mod xlsx;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::condition::parse_condition;
use crate::error::KbError;
use crate::index::KnowledgeBase;
use crate::model::{IcdCode, KnowledgePoint};
use crate::store::VersionMeta;
use source::SourceKind;

/// Progress callback: receives one human-readable line per source file.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Options of an import.
#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Overrides the publication date of every point imported in this run
    /// (points taken over from a base version keep theirs).
    pub effective_from: Option<NaiveDate>,
    /// Who made the version (manifest `author`); default `unknown`.
    pub author: Option<String>,
    /// Free text for the manifest.
    pub notes: Option<String>,
    /// Creation time for the manifest; default now. Not part of the content hash.
    pub created_at: Option<DateTime<Utc>>,
    /// Called with one line per source file read.
    pub progress: Option<Progress>,
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("effective_from", &self.effective_from)
            .field("author", &self.author)
            .field("notes", &self.notes)
            .field("created_at", &self.created_at)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl ImportOptions {
    fn say(&self, line: &str) {
        if let Some(p) = &self.progress {
            p(line);
        }
    }
}

/// Points and codes of one rule class in one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    /// Knowledge points.
    pub points: u64,
    /// Codes listed by those points (partner codes included).
    pub codes: u64,
}

/// What one source file contributed to a version (manifest `sources`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// File name as read (`batch01-drug-age.xlsx`, `batch_12.json`, `ZD_INFO.dat`).
    pub file: String,
    /// `xlsx`, `json`, `icd10` or `icd9`.
    pub kind: String,
    /// Batch tag (`batch_01`, `updates_2026-01`), none for ICD lists.
    pub batch: Option<String>,
    /// Publication date applied to its points.
    pub published_at: Option<NaiveDate>,
    /// Data rows read: code rows for the drug lists (sheet 2), item or pair rows
    /// otherwise, records for JSON, codes for ICD lists.
    pub rows: u32,
    /// Rows left out (footers, blank rows, records without codes).
    pub skipped_rows: u32,
    /// Points and codes per rule class.
    pub rule_classes: BTreeMap<String, ClassCount>,
}

/// What an importer returns for one file.
pub(crate) struct Imported {
    pub points: Vec<KnowledgePoint>,
    pub summary: SourceSummary,
}

/// The official 判断逻辑 per class, for points whose source carries none.
pub(crate) fn default_detect_logic(rule_class: &str) -> &'static str {
    match rule_class {
        "药品区分性别使用" | "医疗服务项目区分性别使用" => "与限定性别不符",
        "药品儿童专用" | "药品限儿童使用" | "医疗服务项目儿童专用" => {
            "参保人年龄超出儿童年龄限制"
        }
        "手术项目未按规定折价收费" => {
            "经同一切口进行的两种及以上不同的手术，第二及以后的手术未按规定折价计收"
        }
        "药品限工伤保险" => "参保人险种非工伤保险",
        "药品限生育保险" => "参保人险种非生育保险",
        "药品限就医方式" => "使用药品的就医方式不符合限定就医方式",
        "药品限医疗机构级别" => "使用药品的医疗机构级别低于限定级别",
        "药品限支付疗程" => "使用药品的日期总计超过限制天数",
        "医疗服务项目重复收费" => "项目A和项目B同时收费",
        "医疗服务项目限定频次" => "使用项目的数量总计超过上限数量",
        "医疗服务项目限年龄" => "参保人年龄超出法定就业年龄限制",
        "医疗服务项目限支付疗程" => "使用项目的日期总计超过限制天数",
        "医疗服务项目周期超频次" => "在设定的周期内超出限定支付数量",
        _ => "",
    }
}

/// Days named by a payment-length text: `支付不超过30天`, `总时间不超过90天`,
/// `单次最多支付14天`, `支付不超过12个月` (= 365), `支付不超过一年` (= 365).
pub(crate) fn days_in_text(text: &str) -> Option<f64> {
    static DAYS: OnceLock<Option<Regex>> = OnceLock::new();
    static MONTHS: OnceLock<Option<Regex>> = OnceLock::new();
    let days = DAYS
        .get_or_init(|| Regex::new(r"(?:不超过|最多支付|支付)\s*(\d+)\s*天").ok())
        .as_ref()?;
    if let Some(n) = days
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<f64>().ok())
    {
        return Some(n);
    }
    let months = MONTHS
        .get_or_init(|| Regex::new(r"不超过\s*(\d+)\s*个月").ok())
        .as_ref()?;
    if let Some(n) = months
        .captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<f64>().ok())
    {
        return Some(if n == 12.0 { 365.0 } else { n * 30.0 });
    }
    if text.contains("不超过一年") || text.contains("不超过1年") {
        return Some(365.0);
    }
    // A bare "14天" limit value.
    text.trim()
        .strip_suffix('天')
        .and_then(|n| n.trim().parse().ok())
}

/// The limit a point of `rule_class` states in its text, for points whose
/// source has no limit column and nothing to inherit.
pub(crate) fn derive_limit(rule_class: &str, text: &str) -> (Option<String>, Option<f64>) {
    match rule_class {
        "药品限医疗机构级别" => {
            // The first level named is the required one ("限二级及以上…",
            // "需三级医院眼科或二级及以上眼科专科医院" → 三级, as the official lists).
            let first = ["一级", "二级", "三级"]
                .into_iter()
                .filter_map(|l| text.find(l).map(|i| (i, l)))
                .min();
            (first.map(|(_, l)| l.to_string()), None)
        }
        "药品限就医方式" => (text.contains("住院").then(|| "住院".to_string()), None),
        "药品限支付疗程" | "医疗服务项目限支付疗程" => match days_in_text(text) {
            Some(d) => (Some(format!("{d}天")), Some(d)),
            None => (None, None),
        },
        "药品儿童专用" | "药品限儿童使用" => (Some("儿童".into()), None),
        "药品限工伤保险" => (Some("工伤".into()), None),
        "药品限生育保险" => (Some("生育".into()), None),
        "药品区分性别使用" => {
            let male = ["男性", "前列腺", "睾丸", "阴茎"]
                .iter()
                .any(|w| text.contains(w));
            let female = [
                "女性", "妇女", "子宫", "阴道", "卵巢", "月经", "妊娠", "绝经", "孕",
            ]
            .iter()
            .any(|w| text.contains(w));
            match (male, female) {
                (true, false) => (Some("男".into()), None),
                (false, true) => (Some("女".into()), None),
                _ => (None, None),
            }
        }
        _ => (None, None),
    }
}

/// The national file set under `data_dir` (laid out as `../shared/data`):
/// every xlsx of batches 1–8, JSON batches 9–17, JSON updates, both ICD lists.
pub fn national_files(data_dir: &Path) -> Result<Vec<PathBuf>, KbError> {
    source::national_files(data_dir)
}

/// Imports the whole national set (batches 1–17, the 2026-01 update, ICD-10 and
/// ICD-9-CM-3) from `data_dir` into a new version.
pub fn import_national(data_dir: &Path, options: &ImportOptions) -> Result<KnowledgeBase, KbError> {
    let files = national_files(data_dir)?;
    import_files(None, &files, options)
}

/// Builds a new version from `base` (if any) plus `files`.
pub fn import_files(
    base: Option<&KnowledgeBase>,
    files: &[PathBuf],
    options: &ImportOptions,
) -> Result<KnowledgeBase, KbError> {
    let mut points: Vec<KnowledgePoint> = base.map(|b| b.points().to_vec()).unwrap_or_default();
    let mut icd10: Vec<IcdCode> = base.map(|b| b.icd10_codes().to_vec()).unwrap_or_default();
    let mut icd9: Vec<IcdCode> = base.map(|b| b.icd9_codes().to_vec()).unwrap_or_default();
    let mut sources: Vec<SourceSummary> = base
        .map(|b| b.manifest().sources.clone())
        .unwrap_or_default();

    for path in files {
        let kind = source::classify(path)?;
        let summary = match kind {
            SourceKind::Icd10 | SourceKind::Icd9 => {
                let codes = icd::read(path)?;
                let (label, target) = match kind {
                    SourceKind::Icd10 => ("icd10", &mut icd10),
                    _ => ("icd9", &mut icd9),
                };
                *target = codes;
                sources.retain(|s| s.kind != label);
                SourceSummary {
                    file: file_name(path),
                    kind: label.into(),
                    batch: None,
                    published_at: None,
                    rows: target.len() as u32,
                    skipped_rows: 0,
                    rule_classes: BTreeMap::new(),
                }
            }
            SourceKind::Xlsx { batch } => merge(
                &mut points,
                &mut sources,
                xlsx::import(path, batch, options.effective_from)?,
            ),
            SourceKind::JsonBatch { batch } => merge(
                &mut points,
                &mut sources,
                json::import(path, &source::batch_tag(batch), options.effective_from)?,
            ),
            SourceKind::JsonUpdate { tag } => merge(
                &mut points,
                &mut sources,
                json::import(path, &tag, options.effective_from)?,
            ),
        };
        options.say(&progress_line(&summary));
        sources.push(summary);
    }

    check_unique(&points)?;
    let unresolved = apply_supersedes(&mut points);
    for p in &mut points {
        if p.limit_value.is_none() && p.limit_num.is_none() {
            let (value, num) = derive_limit(&p.rule_class, &p.constraint_text);
            p.limit_value = value;
            p.limit_num = num;
        }
        p.condition = parse_condition(&p.rule_class, &p.constraint_text)?;
    }
    if unresolved > 0 {
        options.say(&format!(
            "note: {unresolved} supersede link(s) name a kp_id this version does not hold (import the superseded batch too)"
        ));
    }
    KnowledgeBase::assemble(
        points,
        icd10,
        icd9,
        VersionMeta {
            created_at: options.created_at.unwrap_or_else(Utc::now),
            author: options.author.clone().unwrap_or_else(|| "unknown".into()),
            notes: options.notes.clone().unwrap_or_default(),
            base: base.map(|b| b.manifest().id.clone()),
            sources,
        },
    )
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Adds an import's points; a source imported again replaces what its batch and
/// rule classes contributed before.
fn merge(
    points: &mut Vec<KnowledgePoint>,
    sources: &mut Vec<SourceSummary>,
    imported: Imported,
) -> SourceSummary {
    let summary = imported.summary;
    if sources
        .iter()
        .any(|s| s.file == summary.file && s.batch == summary.batch)
    {
        points.retain(|p| {
            !(Some(&p.batch) == summary.batch.as_ref()
                && summary.rule_classes.contains_key(&p.rule_class))
        });
        sources.retain(|s| !(s.file == summary.file && s.batch == summary.batch));
    }
    points.extend(imported.points);
    summary
}

fn progress_line(s: &SourceSummary) -> String {
    let classes: Vec<String> = s
        .rule_classes
        .iter()
        .map(|(c, n)| format!("{c} {}", n.points))
        .collect();
    match s.kind.as_str() {
        "icd10" | "icd9" => format!("read {} ({}): {} codes", s.file, s.kind, s.rows),
        _ => format!(
            "read {} ({}, {}): {} rows, {} skipped; {}",
            s.file,
            s.batch.as_deref().unwrap_or("-"),
            s.published_at.map(|d| d.to_string()).unwrap_or_default(),
            s.rows,
            s.skipped_rows,
            classes.join(", ")
        ),
    }
}

fn check_unique(points: &[KnowledgePoint]) -> Result<(), KbError> {
    let mut seen: HashMap<&str, &KnowledgePoint> = HashMap::new();
    for p in points {
        if let Some(first) = seen.insert(p.kp_id.as_str(), p) {
            return Err(KbError::DuplicateKpId {
                kp_id: p.kp_id.clone(),
                first: format!("{} row {}", first.source_file, first.source_row),
                second: format!("{} row {}", p.source_file, p.source_row),
            });
        }
    }
    Ok(())
}

/// Applies every `supersedes` link; returns how many name an absent kp_id.
/// `effective_to` comes only from these links, so it is recomputed from scratch
/// (a base version's ends do not survive a re-import with other dates).
fn apply_supersedes(points: &mut [KnowledgePoint]) -> usize {
    for p in points.iter_mut() {
        p.effective_to = None;
    }
    let index: HashMap<String, usize> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.kp_id.clone(), i))
        .collect();
    let mut unresolved = 0;
    for i in 0..points.len() {
        let Some(old_id) = points[i].supersedes.clone() else {
            continue;
        };
        let Some(&j) = index.get(&old_id) else {
            unresolved += 1;
            continue;
        };
        if i == j {
            continue;
        }
        let from = points[i].effective_from;
        let old = &mut points[j];
        old.effective_to = Some(old.effective_to.map_or(from, |t| t.min(from)));
        let (limit_value, limit_num, period_days) =
            (old.limit_value.clone(), old.limit_num, old.period_days);
        let new = &mut points[i];
        if new.limit_value.is_none() {
            new.limit_value = limit_value;
        }
        if new.limit_num.is_none() {
            new.limit_num = limit_num;
        }
        if new.period_days.is_none() {
            new.period_days = period_days;
        }
    }
    unresolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_payment_texts() {
        assert_eq!(days_in_text("支付不超过30天。"), Some(30.0));
        assert_eq!(
            days_in_text("总时间不超过90天，评定间隔时间不短于14天。"),
            Some(90.0)
        );
        assert_eq!(
            days_in_text("支付不超过一年，每周最多支付一次。"),
            Some(365.0)
        );
        assert_eq!(
            days_in_text("限以下情况方可支付，且支付不超过12个月：1.HER2阳性"),
            Some(365.0)
        );
        assert_eq!(days_in_text("单次住院最多支付14天。"), Some(14.0));
        assert_eq!(days_in_text("14天"), Some(14.0));
        assert_eq!(days_in_text("限二级及以上医疗机构。"), None);
    }

    #[test]
    fn limits_derived_from_text() {
        assert_eq!(
            derive_limit("药品限医疗机构级别", "限二级及以上医疗机构。")
                .0
                .as_deref(),
            Some("二级")
        );
        assert_eq!(
            derive_limit("药品限医疗机构级别", "限糖尿病黄斑水肿(DME)。应同时符合以下条件：1.需三级医院眼科或二级及以上眼科专科医院医师处方").0.as_deref(),
            Some("三级")
        );
        assert_eq!(
            derive_limit("药品限就医方式", "限急诊或住院患者")
                .0
                .as_deref(),
            Some("住院")
        );
        assert_eq!(
            derive_limit("药品限支付疗程", "住院方可支付，单次支付不超过3天。"),
            (Some("3天".to_string()), Some(3.0))
        );
        assert_eq!(
            derive_limit("药品区分性别使用", "治疗转移性去势抵抗性前列腺癌（mCRPC）")
                .0
                .as_deref(),
            Some("男")
        );
        assert_eq!(
            derive_limit("药品区分性别使用", "用于子宫肌瘤和前列腺").0,
            None
        );
    }

    fn point(id: &str, from: (i32, u32, u32)) -> KnowledgePoint {
        KnowledgePoint {
            kp_id: id.into(),
            rule_class: "药品区分性别使用".into(),
            batch: "batch_01".into(),
            item_name: "x".into(),
            codes: vec!["XA".into()],
            partner_name: None,
            partner_codes: vec![],
            limit_value: None,
            limit_num: None,
            period_days: None,
            constraint_text: String::new(),
            detect_logic: String::new(),
            condition: None,
            effective_from: NaiveDate::from_ymd_opt(from.0, from.1, from.2).unwrap_or_default(),
            effective_to: None,
            supersedes: None,
            source_file: "f".into(),
            source_row: 1,
        }
    }

    #[test]
    fn supersede_sets_end_and_inherits_limits() {
        let mut old = point("A", (2025, 5, 23));
        old.limit_value = Some("男".into());
        let mut new = point("B", (2026, 1, 28));
        new.supersedes = Some("A".into());
        let mut dangling = point("C", (2026, 1, 28));
        dangling.supersedes = Some("gone".into());
        let mut pts = vec![old, new, dangling];
        assert_eq!(apply_supersedes(&mut pts), 1);
        assert_eq!(pts[0].effective_to, NaiveDate::from_ymd_opt(2026, 1, 28));
        assert_eq!(pts[1].limit_value.as_deref(), Some("男"));
        assert_eq!(pts[1].effective_to, None);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = check_unique(&[point("A", (2025, 1, 1)), point("A", (2025, 1, 1))])
            .expect_err("duplicate");
        assert!(err.to_string().contains("kp_id A"), "{err}");
    }
}
