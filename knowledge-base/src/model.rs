//! The knowledge model: one [`KnowledgePoint`] per national knowledge row.
//!
//! Every national rule class that FundWatch implements reads the same shape: a list
//! of codes (drug, service item, herb) with a limit (a sex, an age object, a setting,
//! an institution level, a number of days or uses, a partner item for duplicate
//! charges). Keeping one shape — instead of one struct per class — is what lets the
//! engine evaluate all "code list × patient attribute" rules through one index
//! (see `ARCHITECTURE.md`, "restriction table keyed by rule class").

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One national knowledge point (知识点), in force from `effective_from` until
/// `effective_to` (exclusive) when a later batch superseded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgePoint {
    /// Stable id: the national JSON `kp_id` where one exists, else derived from
    /// (batch, rule class, source row).
    pub kp_id: String,
    /// National rule class name, e.g. `药品区分性别使用`.
    pub rule_class: String,
    /// Batch tag: `batch_01` … `batch_17`, `updates_2026-01`, or a local import tag.
    pub batch: String,
    /// Item (drug generic, service item, herb) name as published.
    pub item_name: String,
    /// National codes of the item (23/20-char drugs, 15-digit items, `T` herbs).
    pub codes: Vec<String>,
    /// Partner item for pair knowledge (重复收费: 从项), else `None`.
    pub partner_name: Option<String>,
    /// Partner codes for pair knowledge.
    pub partner_codes: Vec<String>,
    /// The published limit value: 限定对象/限定值域/频度/单位, e.g. `女`, `儿童`,
    /// `住院`, `二级`, `14天`, `单日`, `胃肠手术组`, `日`, `小时`.
    pub limit_value: Option<String>,
    /// A numeric limit: uses per unit (限定频次), days (支付疗程), uses per period
    /// (周期超频次).
    pub limit_num: Option<f64>,
    /// Period in days (周期超频次 疗程周期).
    pub period_days: Option<f64>,
    /// Official free text (药品说明 / 限定支付范围 / 备注).
    pub constraint_text: String,
    /// Official detection logic (判断逻辑).
    pub detect_logic: String,
    /// Machine-readable reading of `constraint_text` where the class needs one
    /// (限适应症, 限二线, 限儿童使用 age bands); `None` when not applicable.
    pub condition: Option<Condition>,
    /// First service date the point applies to (the batch's publication date).
    pub effective_from: NaiveDate,
    /// First service date it no longer applies to (superseding batch's date).
    pub effective_to: Option<NaiveDate>,
    /// `kp_id` this point supersedes, if any.
    pub supersedes: Option<String>,
    /// Source attachment file name.
    pub source_file: String,
    /// 1-based data row in the source attachment.
    pub source_row: u32,
}

/// What a constraint text says, as far as settlement data can decide it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Minimum age in years (inclusive), when the text names one.
    pub age_min_years: Option<f64>,
    /// Maximum age in years (inclusive), when the text names one.
    pub age_max_years: Option<f64>,
    /// Required sex: `1` 男, `2` 女.
    pub sex: Option<String>,
    /// Required setting: `住院`, `门诊`, `急诊`.
    pub settings: Vec<String>,
    /// ICD-10 医保版 prefixes any of which satisfies the diagnosis part.
    pub dx_prefixes: Vec<String>,
    /// True when the diagnosis part of the text was mapped to `dx_prefixes`.
    pub dx_decidable: bool,
    /// True when the text also needs evidence settlement data cannot carry
    /// (biomarker, prior therapy, test result, first-line failure).
    pub needs_evidence: bool,
    /// Short reason for `needs_evidence`, e.g. `既往治疗`, `检测结果`.
    pub evidence_kind: Option<String>,
}

/// One code of the ICD-10 医保版 2.0 or ICD-9-CM-3 医保版 lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcdCode {
    /// Code, e.g. `A00.000`, `I10.x00x002`, `00.0100`.
    pub code: String,
    /// Chinese name.
    pub name: String,
}
