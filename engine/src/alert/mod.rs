//! Alerts in the national 3101/3102 result shape (SPEC §3), built from findings.
//!
//! - `jr_id` is a hash of what the alert is about (rule, versions, patient,
//!   encounter, the lines, the knowledge row), so the same input evaluated twice
//!   with the same versions gets the same id and consumers can de-duplicate.
//! - `vola_cont` fills the rule's template; `vola_evid` cites batch, rule class and
//!   row of the knowledge point.
//! - Money: an alert counts each of its 违规项 lines once; totals across alerts
//!   count each fee line once ([`distinct_line_amount`]).

mod text;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use text::{batch_label, fill_template};

/// One violation (`output.result[]`), plus FundWatch's engine fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// 违规标识: deterministic id.
    pub jr_id: String,
    /// National rule code.
    pub rule_id: String,
    /// National rule name.
    pub rule_name: String,
    /// 违规内容: a Chinese sentence naming item, limit and patient fact.
    pub vola_cont: String,
    /// Patient.
    pub patn_id: String,
    /// Encounter.
    pub mdtrt_id: String,
    /// 违规明细.
    pub judge_result_detail_dtos: Vec<AlertDetail>,
    /// 违规金额 (2 decimals).
    pub vola_amt: f64,
    /// 违规金额计算状态: `1` 正常, `0` 异常 (amount could not be computed).
    pub vola_amt_stas: String,
    /// 严重程度 (pack dictionary `sev_deg`).
    pub sev_deg: String,
    /// 违规依据: the knowledge row cited.
    pub vola_evid: String,
    /// 违规行为分类 (pack dictionary `vola_bhvr_type`).
    pub vola_bhvr_type: String,
    /// The request's `task_id`.
    pub task_id: String,
    /// Institution (`fixmedins_code`).
    pub fixmedins_code: String,
    /// Scenario(s) of the request, comma-separated.
    pub trig_scen: String,
    /// `name@version` of the rule pack.
    pub rule_pack_version: String,
    /// KB version id.
    pub kb_version: String,
    /// When the event happened (yyyy-MM-dd HH:mm:ss).
    pub event_time: String,
    /// When the alert was emitted (yyyy-MM-dd HH:mm:ss.SSS).
    pub emitted_at: String,
}

/// 违规明细 (`judge_result_detail_dtos[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    /// Detail id: `jr_id` + sequence.
    pub jrd_id: String,
    /// Patient.
    pub patn_id: String,
    /// Encounter of the line.
    pub mdtrt_id: String,
    /// Order line.
    pub rx_id: String,
    /// `1` 违规项, `2` 涉及项.
    pub vola_item_type: String,
    /// Money of the line (0 for 涉及项).
    pub vola_amt: f64,
}

/// Rounds money to 2 decimals (N16,2).
pub fn money(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// The deterministic `jr_id` of an alert.
pub fn jr_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    format!("JR{}", &hex::encode(digest)[..30])
}

/// Total money over `alerts`, counting each (mdtrt_id, rx_id) 违规项 line once even
/// when several rules hit it (finding reconciliation, DOMAIN.md §1.12).
pub fn distinct_line_amount<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> f64 {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut total = 0.0;
    for alert in alerts {
        for detail in &alert.judge_result_detail_dtos {
            if detail.vola_item_type == "1"
                && seen.insert((detail.mdtrt_id.as_str(), detail.rx_id.as_str()))
            {
                total += detail.vola_amt;
            }
        }
    }
    money(total)
}

/// Alert counts and money per rule, with money reconciled per fee line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertSummary {
    /// rule_id → (alerts, money as the alerts state it).
    pub per_rule: BTreeMap<String, (u64, f64)>,
    /// Alerts in all.
    pub alerts: u64,
    /// Money with each fee line counted once.
    pub distinct_amount: f64,
}

impl AlertSummary {
    /// Summarises `alerts`.
    pub fn of(alerts: &[Alert]) -> Self {
        let mut per_rule: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for alert in alerts {
            let entry = per_rule.entry(alert.rule_id.clone()).or_default();
            entry.0 += 1;
            entry.1 = money(entry.1 + alert.vola_amt);
        }
        Self {
            per_rule,
            alerts: alerts.len() as u64,
            distinct_amount: distinct_line_amount(alerts),
        }
    }
}
