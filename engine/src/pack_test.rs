//! The rule-pack test runner: every case of every rule through the real path
//! (case → national JSON → decoder → batch → compiled plan → alert).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use serde::Serialize;

use crate::alert::Alert;
use crate::batch::EventBatch;
use crate::engine::Engine;
use crate::event::{Event, decode_value};
use crate::history::{PersonStatus, parse_die_date};

/// Outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Whether the alerts matched the expectation.
    pub passed: bool,
    /// Why it failed (empty when passed).
    pub message: String,
    /// Whether the case expects at least one alert.
    pub positive: bool,
}

/// Outcome of one rule's cases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// Rule id.
    pub rule_id: String,
    /// Rule name.
    pub name: String,
    /// Each case.
    pub cases: Vec<CaseResult>,
}

impl RuleResult {
    /// Cases that expect an alert.
    pub fn positives(&self) -> usize {
        self.cases.iter().filter(|c| c.positive).count()
    }
    /// Cases that expect none.
    pub fn negatives(&self) -> usize {
        self.cases.len() - self.positives()
    }
    /// Whether all cases passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }
    /// Coverage as the pack requires it: ≥ 2 positive and ≥ 2 negative cases.
    pub fn covered(&self) -> bool {
        self.positives() >= 2 && self.negatives() >= 2
    }
}

/// Runs every case of every compiled rule of `engine`'s program.
pub async fn run_pack_cases(engine: &Engine) -> Vec<RuleResult> {
    let program = engine.program();
    let mut results = Vec::new();
    for (rule_idx, compiled) in program.rules().iter().enumerate() {
        let rule = &compiled.rule;
        let mut cases = Vec::new();
        for (i, case) in rule.cases.iter().enumerate() {
            let case_id = format!("{}-{}", rule.rule_id, i + 1);
            let default_scen = rule.trig_scen.first().copied().unwrap_or(1);
            let statuses = add_statuses(engine, case, &case_id);
            let outcome = match statuses.and_then(|()| case.to_event(&case_id, default_scen)) {
                Err(message) => Err(message),
                Ok(json) => match decode_value(&json) {
                    Err(err) => Err(format!("case event does not decode: {err}")),
                    Ok(mut event) => {
                        // A case tests its own rule: ask for it explicitly.
                        event.rule_ids = vec![rule.rule_id.clone()];
                        match gate_hides_nothing(engine, &event, rule_idx).await {
                            Err(message) => Err(message),
                            Ok(()) => match engine.evaluate(&[&event]).await {
                                Err(err) => Err(err.to_string()),
                                Ok(mut alerts) => Ok(alerts.pop().unwrap_or_default()),
                            },
                        }
                    }
                },
            };
            let (passed, message) = match outcome {
                Err(message) => (false, message),
                Ok(alerts) => compare(&alerts, &case.expect),
            };
            cases.push(CaseResult {
                name: case.name.clone(),
                passed,
                message,
                positive: !case.expect.is_empty(),
            });
        }
        results.push(RuleResult {
            rule_id: rule.rule_id.clone(),
            name: rule.name.clone(),
            cases,
        });
    }
    results
}

/// A rule's gate must never hide a finding: when it closes for the case's event,
/// the rule's plan runs anyway and must find nothing.
async fn gate_hides_nothing(engine: &Engine, event: &Event, rule_idx: usize) -> Result<(), String> {
    let program = engine.program();
    let batch = {
        let history = engine
            .history()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::new(EventBatch::build_with_history(
            &[event],
            &program.pack().manifest.dictionaries,
            Some(history.store()),
        ))
    };
    if !program.gated_out(&batch).contains(&rule_idx) {
        return Ok(());
    }
    let mut wanted = vec![false; program.rules().len()];
    wanted[rule_idx] = true;
    let findings = program
        .evaluate_ungated(batch, Some(&wanted))
        .await
        .map_err(|err| err.to_string())?;
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the rule's gate skips this case, but without the gate the rule finds {} line(s): the gate (codes_in/rows_in) is wrong",
            findings.len()
        ))
    }
}

/// Adds the case's person-status rows to the engine's table (they stay: every case
/// has its own patient).
fn add_statuses(
    engine: &Engine,
    case: &fundwatch_rules::Case,
    case_id: &str,
) -> Result<(), String> {
    if case.person_status.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for row in &case.person_status {
        let die_date = parse_die_date(&row.die_date).ok_or_else(|| {
            format!(
                "person_status: die_date \"{}\" is not a date (yyyy-MM-dd)",
                row.die_date
            )
        })?;
        let patn_id = row
            .patn_id
            .clone()
            .unwrap_or_else(|| fundwatch_rules::Case::patient_id(case_id));
        let source = row.source.clone();
        rows.push((patn_id, PersonStatus { die_date, source }));
    }
    let mut history = engine
        .history()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    history.update_person_statuses(|statuses| {
        for (patn_id, status) in rows {
            statuses.insert(&patn_id, status);
        }
    });
    Ok(())
}

fn violating_rx_ids(alert: &Alert) -> Vec<String> {
    let mut ids: Vec<String> = alert
        .judge_result_detail_dtos
        .iter()
        .filter(|d| d.vola_item_type == "1")
        .map(|d| d.rx_id.clone())
        .collect();
    ids.sort();
    ids
}

fn compare(alerts: &[Alert], expect: &[fundwatch_rules::CaseExpect]) -> (bool, String) {
    let mut actual: BTreeMap<Vec<String>, &Alert> = BTreeMap::new();
    for alert in alerts {
        actual.insert(violating_rx_ids(alert), alert);
    }
    let mut problems = Vec::new();
    if actual.len() != alerts.len() {
        problems.push("two alerts name the same lines".to_string());
    }
    for exp in expect {
        let mut ids = exp.rx_ids.clone();
        ids.sort();
        match actual.remove(&ids) {
            None => problems.push(format!("expected an alert on {ids:?}, got none")),
            Some(alert) => {
                if let Some(amount) = exp.vola_amt
                    && (alert.vola_amt - amount).abs() > 0.005
                {
                    problems.push(format!(
                        "alert on {ids:?}: vola_amt {} ≠ expected {amount}",
                        alert.vola_amt
                    ));
                }
                if let Some(sev) = &exp.sev_deg
                    && alert.sev_deg != *sev
                {
                    problems.push(format!(
                        "alert on {ids:?}: sev_deg {} ≠ expected {sev}",
                        alert.sev_deg
                    ));
                }
                if let Some(fragment) = &exp.contains
                    && !alert.vola_cont.contains(fragment.as_str())
                {
                    problems.push(format!(
                        "alert on {ids:?}: vola_cont \"{}\" lacks \"{fragment}\"",
                        alert.vola_cont
                    ));
                }
            }
        }
    }
    for (ids, alert) in actual {
        problems.push(format!("unexpected alert on {ids:?}: {}", alert.vola_cont));
    }
    (problems.is_empty(), problems.join("; "))
}
