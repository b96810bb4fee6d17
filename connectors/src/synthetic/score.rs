//! Scoring alerts against labels: recall and false alerts per rule.
//!
//! An alert matches a label when (rule_id, mdtrt_id, the sorted `rx_id`s of its
//! 违规项 details — `vola_item_type` 1) are equal. Recall = matched labels / labels;
//! a false alert is an alert that matches no label (or a label already matched).

use std::collections::{BTreeMap, HashMap};

use fundwatch_engine::Alert;

/// What the engine must find for one injected violation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The rule that must fire.
    pub rule_id: String,
    /// The encounter it must name.
    pub mdtrt_id: String,
    /// The violating lines, sorted.
    pub rx_ids: Vec<String>,
}

impl Label {
    /// The match key of an alert: rule, encounter and its 违规项 `rx_id`s, sorted.
    pub fn of_alert(alert: &Alert) -> Label {
        let mut rx_ids: Vec<String> = alert
            .judge_result_detail_dtos
            .iter()
            .filter(|d| d.vola_item_type == "1")
            .map(|d| d.rx_id.clone())
            .collect();
        rx_ids.sort();
        Label {
            rule_id: alert.rule_id.clone(),
            mdtrt_id: alert.mdtrt_id.clone(),
            rx_ids,
        }
    }
}

/// Per-rule counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleScore {
    /// Labels of the rule (injected violations).
    pub labels: u64,
    /// Labels matched by an alert.
    pub matched: u64,
    /// Alerts of the rule.
    pub alerts: u64,
    /// Alerts of the rule that match no label.
    pub false_alerts: u64,
}

/// Running score of a labelled stream.
#[derive(Debug, Default)]
pub struct Scorecard {
    open: HashMap<Label, bool>,
    per_rule: BTreeMap<String, RuleScore>,
    /// First few false alerts, for diagnosis.
    false_examples: Vec<Alert>,
    /// How many false alerts to keep.
    max_examples: usize,
}

impl Scorecard {
    /// An empty scorecard keeping up to `max_examples` false alerts for display.
    pub fn new(max_examples: usize) -> Self {
        Self {
            max_examples,
            ..Self::default()
        }
    }

    /// Registers the labels of one event (before its alerts arrive).
    pub fn add_labels(&mut self, labels: &[Label]) {
        for label in labels {
            self.per_rule
                .entry(label.rule_id.clone())
                .or_default()
                .labels += 1;
            self.open.insert(label.clone(), false);
        }
    }

    /// Scores one alert; returns whether it matched a label.
    pub fn add_alert(&mut self, alert: &Alert) -> bool {
        let key = Label::of_alert(alert);
        let score = self.per_rule.entry(alert.rule_id.clone()).or_default();
        score.alerts += 1;
        match self.open.get_mut(&key) {
            Some(matched) if !*matched => {
                *matched = true;
                score.matched += 1;
                true
            }
            _ => {
                score.false_alerts += 1;
                if self.false_examples.len() < self.max_examples {
                    self.false_examples.push(alert.clone());
                }
                false
            }
        }
    }

    /// Counts per rule.
    pub fn per_rule(&self) -> &BTreeMap<String, RuleScore> {
        &self.per_rule
    }

    /// Labels registered.
    pub fn labels(&self) -> u64 {
        self.per_rule.values().map(|s| s.labels).sum()
    }

    /// Labels matched.
    pub fn matched(&self) -> u64 {
        self.per_rule.values().map(|s| s.matched).sum()
    }

    /// Alerts scored.
    pub fn alerts(&self) -> u64 {
        self.per_rule.values().map(|s| s.alerts).sum()
    }

    /// Alerts that matched no label.
    pub fn false_alerts(&self) -> u64 {
        self.per_rule.values().map(|s| s.false_alerts).sum()
    }

    /// Matched labels / labels (1 when there are no labels).
    pub fn recall(&self) -> f64 {
        let labels = self.labels();
        if labels == 0 {
            1.0
        } else {
            self.matched() as f64 / labels as f64
        }
    }

    /// Whether every label was matched and no alert was false.
    pub fn perfect(&self) -> bool {
        self.matched() == self.labels() && self.false_alerts() == 0
    }

    /// Up to `n` labels no alert matched, sorted.
    pub fn missed(&self, n: usize) -> Vec<Label> {
        let mut missed: Vec<Label> = self
            .open
            .iter()
            .filter(|(_, matched)| !**matched)
            .map(|(l, _)| l.clone())
            .collect();
        missed.sort();
        missed.truncate(n);
        missed
    }

    /// The first false alerts seen.
    pub fn false_examples(&self) -> &[Alert] {
        &self.false_examples
    }

    /// Forgets matched labels (keeps memory flat on long runs); counts stay.
    pub fn compact(&mut self) {
        self.open.retain(|_, matched| !*matched);
    }
}

#[cfg(test)]
mod tests {
    use fundwatch_engine::AlertDetail;

    use super::*;

    fn alert(rule_id: &str, mdtrt_id: &str, lines: &[(&str, &str)]) -> Alert {
        Alert {
            jr_id: String::new(),
            rule_id: rule_id.into(),
            rule_name: String::new(),
            vola_cont: String::new(),
            patn_id: "P".into(),
            mdtrt_id: mdtrt_id.into(),
            judge_result_detail_dtos: lines
                .iter()
                .map(|(rx, kind)| AlertDetail {
                    jrd_id: String::new(),
                    patn_id: "P".into(),
                    mdtrt_id: mdtrt_id.into(),
                    rx_id: (*rx).into(),
                    vola_item_type: (*kind).into(),
                    vola_amt: 0.0,
                })
                .collect(),
            vola_amt: 0.0,
            vola_amt_stas: "1".into(),
            sev_deg: "1".into(),
            vola_evid: String::new(),
            vola_bhvr_type: String::new(),
            task_id: String::new(),
            fixmedins_code: String::new(),
            trig_scen: String::new(),
            rule_pack_version: String::new(),
            kb_version: String::new(),
            event_time: String::new(),
            emitted_at: String::new(),
        }
    }

    #[test]
    fn alerts_match_labels_by_rule_encounter_and_violating_lines() {
        let mut score = Scorecard::new(5);
        score.add_labels(&[
            Label {
                rule_id: "R1".into(),
                mdtrt_id: "M1".into(),
                rx_ids: vec!["a".into(), "b".into()],
            },
            Label {
                rule_id: "R2".into(),
                mdtrt_id: "M2".into(),
                rx_ids: vec![],
            },
        ]);
        // 涉及项 (type 2) lines do not take part in the match; order does not matter.
        assert!(score.add_alert(&alert("R1", "M1", &[("b", "1"), ("c", "2"), ("a", "1")])));
        // The same finding twice: the second is false.
        assert!(!score.add_alert(&alert("R1", "M1", &[("a", "1"), ("b", "1")])));
        // Wrong lines: false, and the label stays unmatched.
        assert!(!score.add_alert(&alert("R2", "M2", &[("x", "1")])));
        assert_eq!(
            (score.labels(), score.matched(), score.false_alerts()),
            (2, 1, 2)
        );
        assert_eq!(score.missed(5)[0].rule_id, "R2");
        assert!((score.recall() - 0.5).abs() < 1e-9);
        assert!(!score.perfect());
        // An encounter-level alert (no detail lines) matches an empty label.
        assert!(score.add_alert(&alert("R2", "M2", &[])));
        score.compact();
        assert_eq!(score.missed(5), Vec::<Label>::new());
        assert_eq!(score.false_examples().len(), 2);
    }
}
