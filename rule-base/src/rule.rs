//! One rule: national metadata, logic as SQL, and its cases.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::case::Case;

/// A trigger scenario (`trig_scen`, DOMAIN.md §2.3): 1–5 事前 (3101), 6–10 事中 (3102).
pub type TrigScen = u8;

/// One rule of a pack, as written in `rules/<rule_id>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// National rule code (`gz_code_1_0`), `NHSA2025-<seq>`, or `FW-<name>` for local rules.
    pub rule_id: String,
    /// National rule name, e.g. `药品区分性别使用`.
    pub name: String,
    /// Knowledge rule class the SQL reads (usually equal to `name`).
    pub class: String,
    /// Tier: `政策类`, `管理类` or `医疗类`.
    pub tier: String,
    /// Default `sev_deg` code (a key of the pack's `sev_deg` dictionary).
    pub sev_deg: String,
    /// `vola_bhvr_type` code (a key of the pack's `vola_bhvr_type` dictionary).
    pub vola_bhvr_type: String,
    /// Trigger scenarios the rule runs in.
    pub trig_scen: Vec<TrigScen>,
    /// `vola_cont` template; placeholders are documented in `docs/rule-pack.md`.
    pub message: String,
    /// Legal basis (条例 article).
    pub legal_basis: String,
    /// 违法违规使用 or 欺诈骗保.
    pub penalty_class: String,
    /// What the rule checks and why, for rule authors.
    #[serde(default)]
    pub description: String,
    /// The logic: one SQL query over the documented tables.
    pub sql: String,
    /// Days of per-person history the rule reads (0: none); the engine keeps the
    /// largest `history_days` of the enabled rules.
    #[serde(default)]
    pub history_days: u32,
    /// When a micro-batch cannot give the rule a finding, so the engine skips its
    /// plan (see [`Gate`]); empty: the rule runs for every batch.
    #[serde(default, skip_serializing_if = "Gate::is_empty")]
    pub gate: Gate,
    /// Disabled rules are validated but not evaluated.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Test cases: input events → expected alerts of this rule.
    #[serde(default)]
    pub cases: Vec<Case>,
    /// The file the rule was read from (not part of the format).
    #[serde(skip)]
    pub source: PathBuf,
}

/// A rule's promise about the batches it can report on, so a batch that cannot
/// give it a finding skips its plan.
///
/// Executing a compiled plan costs about 0.1 ms however small the batch, and an
/// inline request of 30 lines names the codes of three or four knowledge classes,
/// not of the twenty the pack reads: most plans would run to return nothing. Both
/// conditions must hold for the plan to run. `rules test` checks every case both
/// ways: a gate that closes on a case the rule reports is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The rule reports only when a fee line of the batch's requests (table
    /// `orders`, current and context lines) has a code one of these knowledge
    /// classes lists (exact, 12-character drug prefix or 重复收费 pair code), in
    /// force on any date. Each must be a class the SQL reads.
    #[serde(default)]
    pub codes_in: Vec<String>,
    /// The rule reports only when each of these event tables has rows in the
    /// batch (e.g. `trace_uses`, `person_status`).
    #[serde(default)]
    pub rows_in: Vec<String>,
}

impl Gate {
    /// Whether the gate never closes.
    pub fn is_empty(&self) -> bool {
        self.codes_in.is_empty() && self.rows_in.is_empty()
    }
}

fn enabled_default() -> bool {
    true
}

impl Rule {
    /// Whether the rule runs in scenario `scen`.
    pub fn runs_in(&self, scen: TrigScen) -> bool {
        self.trig_scen.contains(&scen)
    }
}
