//! Shadow mode: a candidate pack evaluated beside the active one on live traffic,
//! measured, never answered.
//!
//! The candidate runs on the very tables the active program read (same events,
//! same history snapshot), in a task of its own after the active alerts are
//! built, so live requests never wait for it. At most [`SHADOW_CONCURRENCY`]
//! batches are in shadow evaluation at once; a batch that finds no free slot is
//! skipped and counted, so a slow candidate costs coverage, never latency. The
//! comparison is per alert identity — (event, rule_id, alert_key), which does not
//! depend on the pack version — so a rule that changed neither logic nor keys
//! shows no difference.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::batch::EventBatch;
use crate::engine::{group_findings, select};
use crate::eval::Program;
use crate::event::Event;

/// Shadow batches evaluated at once; more are skipped (and counted).
pub const SHADOW_CONCURRENCY: u32 = 2;
/// Differences kept for the API.
const RECENT_DIFFS: usize = 100;

/// Hit counts and differences of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleShadowStats {
    /// Alerts of the active pack (on the batches the candidate saw).
    pub active: u64,
    /// Alerts of the candidate.
    pub candidate: u64,
    /// Alerts only the active pack raised.
    pub only_active: u64,
    /// Alerts only the candidate raised.
    pub only_candidate: u64,
}

/// One alert only one side raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffSample {
    /// When it was seen.
    pub time: DateTime<Utc>,
    /// `only_candidate` or `only_active`.
    pub side: &'static str,
    /// The rule.
    pub rule_id: String,
    /// The alert's key (`mdtrt_id/rx_id` or the rule's own key).
    pub alert_key: String,
    /// KB version the event was evaluated with.
    pub kb_version: String,
}

/// What the shadow run measured so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowReport {
    /// The candidate, `name@version`.
    pub candidate: String,
    /// The active pack it was compared with (the latest batch's).
    pub active: String,
    /// When the shadow run started.
    pub since: DateTime<Utc>,
    /// Batches evaluated by both.
    pub batches: u64,
    /// Events in them.
    pub events: u64,
    /// Batches skipped because the shadow slots were busy.
    pub skipped_batches: u64,
    /// Batches the candidate failed on (the error is logged).
    pub errors: u64,
    /// Alerts only the candidate raised, over all rules.
    pub only_candidate: u64,
    /// Alerts only the active pack raised, over all rules.
    pub only_active: u64,
    /// Per rule.
    pub rules: BTreeMap<String, RuleShadowStats>,
    /// The latest differences, oldest first.
    pub recent: VecDeque<DiffSample>,
}

/// A running shadow candidate: its programs (one per slot of the deployment)
/// and what it measured.
#[derive(Debug)]
pub struct Shadow {
    programs: Vec<Arc<Program>>,
    report: Arc<Mutex<ShadowReport>>,
    permits: Arc<Semaphore>,
}

impl Shadow {
    /// A candidate with one program per slot (same order as the deployment's
    /// slots); `report` carries the measurements over when the same candidate is
    /// redeployed (e.g. after a KB activation), `None` starts afresh.
    pub fn new(
        programs: Vec<Arc<Program>>,
        active_label: &str,
        report: Option<Arc<Mutex<ShadowReport>>>,
    ) -> Self {
        let candidate = programs
            .first()
            .map(|p| p.pack().version_label())
            .unwrap_or_default();
        let report = report.unwrap_or_else(|| {
            Arc::new(Mutex::new(ShadowReport {
                candidate,
                active: active_label.to_string(),
                since: Utc::now(),
                batches: 0,
                events: 0,
                skipped_batches: 0,
                errors: 0,
                only_candidate: 0,
                only_active: 0,
                rules: BTreeMap::new(),
                recent: VecDeque::new(),
            }))
        });
        Self {
            programs,
            report,
            permits: Arc::new(Semaphore::new(SHADOW_CONCURRENCY as usize)),
        }
    }

    /// The candidate's programs, one per slot.
    pub fn programs(&self) -> &[Arc<Program>] {
        &self.programs
    }

    /// `name@version` of the candidate.
    pub fn label(&self) -> String {
        self.report().candidate
    }

    /// A copy of the measurements.
    pub fn report(&self) -> ShadowReport {
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The shared measurements (to carry over to a redeployed candidate).
    pub fn report_handle(&self) -> Arc<Mutex<ShadowReport>> {
        Arc::clone(&self.report)
    }

    /// Waits until no shadow evaluation is under way (tests, promote).
    pub async fn settle(&self) {
        if let Ok(all) = self.permits.acquire_many(SHADOW_CONCURRENCY).await {
            drop(all);
        }
    }

    /// Evaluates `batch` with the candidate of `slot` in a task of its own and
    /// compares with `active` — the active program's alert identities
    /// (event index, rule_id, alert_key) on the same batch.
    pub(crate) fn submit(
        &self,
        slot: usize,
        events: &[&Event],
        batch: Arc<EventBatch>,
        active: Vec<(u32, String, String)>,
        active_label: String,
    ) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.lock().skipped_batches += 1;
            return;
        };
        let Some(program) = self.programs.get(slot).cloned() else {
            return;
        };
        let owned: Vec<Event> = events.iter().map(|e| (*e).clone()).collect();
        let report = Arc::clone(&self.report);
        tokio::spawn(async move {
            let refs: Vec<&Event> = owned.iter().collect();
            let (selections, wanted) = select(&program, &refs);
            let result = if wanted.iter().any(|w| *w) {
                program
                    .evaluate(Arc::clone(&batch), Some(&wanted))
                    .await
                    .map(|f| group_findings(f, &refs, &batch, &selections))
            } else {
                Ok(BTreeMap::new())
            };
            let mut r = report.lock().unwrap_or_else(PoisonError::into_inner);
            r.active = active_label;
            match result {
                Err(err) => {
                    r.errors += 1;
                    tracing::warn!(candidate = %r.candidate, error = %err, "shadow evaluation failed");
                }
                Ok(groups) => {
                    let candidate: BTreeSet<(u32, String, String)> = groups
                        .keys()
                        .map(|(e, rule, k)| {
                            (*e, program.rules()[*rule].rule.rule_id.clone(), k.clone())
                        })
                        .collect();
                    let active: BTreeSet<(u32, String, String)> = active.into_iter().collect();
                    r.batches += 1;
                    r.events += refs.len() as u64;
                    let kb = program.kb().id().to_string();
                    let now = Utc::now();
                    for id in &active {
                        r.rules.entry(id.1.clone()).or_default().active += 1;
                    }
                    for id in &candidate {
                        r.rules.entry(id.1.clone()).or_default().candidate += 1;
                    }
                    let note =
                        |r: &mut ShadowReport, side: &'static str, id: &(u32, String, String)| {
                            let stats = r.rules.entry(id.1.clone()).or_default();
                            if side == "only_candidate" {
                                stats.only_candidate += 1;
                                r.only_candidate += 1;
                            } else {
                                stats.only_active += 1;
                                r.only_active += 1;
                            }
                            if r.recent.len() == RECENT_DIFFS {
                                r.recent.pop_front();
                            }
                            r.recent.push_back(DiffSample {
                                time: now,
                                side,
                                rule_id: id.1.clone(),
                                alert_key: id.2.clone(),
                                kb_version: kb.clone(),
                            });
                        };
                    for id in candidate.difference(&active) {
                        note(&mut r, "only_candidate", id);
                    }
                    for id in active.difference(&candidate) {
                        note(&mut r, "only_active", id);
                    }
                }
            }
            drop(permit);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShadowReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
