//! [`Engine`]: events in, alerts out — the one call every mode (inline, stream,
//! batch) goes through, so the three give the same alerts for the same input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::NaiveDateTime;
use fundwatch_kb::KnowledgePoint;
use fundwatch_rules::Rule;

use crate::alert::{Alert, AlertDetail, batch_label, fill_template, jr_id, money};
use crate::batch::{EventBatch, LineRef};
use crate::deploy::{Deployment, DeploymentCell, service_day};
use crate::eval::{EvalError, Finding, Program};
use crate::event::{Event, Order};
use crate::history::{DurableHistory, HistoryView};
use crate::observe::{Stage, StageObserver};

/// How `emitted_at` is stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock (streaming and inline modes).
    Wall,
    /// The event's own time: replays (`fundwatch check`) give byte-identical output.
    EventTime,
}

/// Evaluates events against the current [`Deployment`]: the active pack over the
/// KB version in force on each event's service date, and, when one runs, a shadow
/// candidate beside it.
///
/// Clones share the deployment and the history: an activation through
/// [`Engine::swap`] (or a [`crate::VersionManager`]) reaches every front end that
/// holds a clone, while each micro-batch finishes on the deployment it started with.
#[derive(Debug, Clone)]
pub struct Engine {
    deployment: Arc<DeploymentCell>,
    clock: Clock,
    history: Arc<Mutex<DurableHistory>>,
    /// Where stage durations go (metrics); `None` measures nothing.
    observer: Option<Arc<dyn StageObserver>>,
    /// Where evaluations read history when it is not (only) this engine's own
    /// store: the Kafka pipeline attaches its partitions' histories, so that the
    /// HTTP service beside it (`fundwatch serve` with `[kafka]`) sees the streamed
    /// settlements. Shared by clones.
    view: Arc<RwLock<Option<Arc<dyn HistoryView>>>>,
}

/// One micro-batch's findings grouped into alerts: (event, rule, alert_key) → rows.
type Groups = BTreeMap<(u32, usize, String), Vec<Finding>>;

impl Engine {
    /// An engine over `program`, stamping `emitted_at` with `clock`, with an
    /// in-memory history of the retention the program's rules need.
    pub fn new(program: Arc<Program>, clock: Clock) -> Self {
        let history = DurableHistory::in_memory(program.history_days());
        Self::with_history(program, clock, history)
    }

    /// An engine with the given (e.g. durable, per-partition) history.
    pub fn with_history(program: Arc<Program>, clock: Clock, history: DurableHistory) -> Self {
        Self::with_deployment(Deployment::single(program), clock, history)
    }

    /// An engine over a deployment (a KB timeline, maybe a shadow candidate).
    pub fn with_deployment(deployment: Deployment, clock: Clock, history: DurableHistory) -> Self {
        Self {
            deployment: Arc::new(DeploymentCell::new(deployment)),
            clock,
            history: Arc::new(Mutex::new(history)),
            observer: None,
            view: Arc::default(),
        }
    }

    /// This engine (sharing its deployment and history) reporting stage
    /// durations to `observer`; each source (HTTP, Kafka, demo) uses a clone with
    /// its own observer, so stages are labelled by source.
    pub fn with_observer(mut self, observer: Arc<dyn StageObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, stage: Stage, since: std::time::Instant, events: usize) {
        if let Some(observer) = &self.observer {
            observer.observe(stage, since.elapsed(), events);
        }
    }

    /// The same deployment (and its future swaps) with another history: e.g. a
    /// durable one opened after the deployment was built.
    pub fn rebind_history(&self, history: DurableHistory) -> Self {
        Self {
            deployment: Arc::clone(&self.deployment),
            clock: self.clock,
            history: Arc::new(Mutex::new(history)),
            observer: self.observer.clone(),
            view: Arc::default(),
        }
    }

    /// The history shared by this engine's clones.
    pub fn history(&self) -> &Arc<Mutex<DurableHistory>> {
        &self.history
    }

    /// From now on this engine and its clones read history through `view` (which
    /// should include [`Engine::history`]'s store); recording still goes to
    /// [`Engine::history`].
    pub fn attach_history_view(&self, view: Arc<dyn HistoryView>) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Some(view);
    }

    /// The program of the newest KB version of the current deployment (pack
    /// metadata, versions, history retention).
    pub fn program(&self) -> Arc<Program> {
        Arc::clone(self.deployment.load().latest())
    }

    /// The current deployment.
    pub fn deployment(&self) -> Arc<Deployment> {
        self.deployment.load()
    }

    /// Makes `deployment` current for this engine and all its clones; batches
    /// already under way finish on the previous one, which is returned.
    pub fn swap(&self, deployment: Arc<Deployment>) -> Arc<Deployment> {
        self.deployment.swap(deployment)
    }

    /// How `emitted_at` is stamped.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Evaluates one micro-batch; returns the alerts of each event, in input order,
    /// each event's alerts ordered by rule id, then by line.
    pub async fn evaluate(&self, events: &[&Event]) -> Result<Vec<Vec<Alert>>, EvalError> {
        self.evaluate_at(events, None).await
    }

    /// [`Engine::evaluate`], then records the events into history as covering input
    /// `position` (an offset or line number) so a restart resumes after it.
    pub async fn evaluate_at(
        &self,
        events: &[&Event],
        position: Option<u64>,
    ) -> Result<Vec<Vec<Alert>>, EvalError> {
        let alerts = self.evaluate_only(events).await?;
        self.record(events, position)?;
        Ok(alerts)
    }

    /// Records evaluated `events` into history as covering input `position`. Sinks
    /// that must persist alerts before the position advances call
    /// [`Engine::evaluate_only`], persist, then this.
    pub fn record(&self, events: &[&Event], position: Option<u64>) -> Result<(), EvalError> {
        let started = std::time::Instant::now();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let applied = history
            .apply(events, position)
            .map_err(|err| EvalError::History(err.to_string()));
        drop(history);
        self.observe(Stage::History, started, events.len());
        applied
    }

    /// Evaluates without recording into history (see [`Engine::record`]).
    ///
    /// The events are grouped by the KB version in force on their service date;
    /// each group is one engine call on that version's program, and the alerts
    /// come back in input order.
    pub async fn evaluate_only(&self, events: &[&Event]) -> Result<Vec<Vec<Alert>>, EvalError> {
        let view = self
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match view {
            Some(view) => self.evaluate_only_with(events, &*view).await,
            None => self.evaluate_only_with(events, &*self.history).await,
        }
    }

    /// [`Engine::evaluate_only`] against another history than this engine's: the
    /// Kafka pipeline's, one store per owned input partition, recorded by the
    /// pipeline itself once alerts are acknowledged (docs/history.md § 6.1).
    pub async fn evaluate_only_with(
        &self,
        events: &[&Event],
        history: &dyn HistoryView,
    ) -> Result<Vec<Vec<Alert>>, EvalError> {
        let deployment = self.deployment.load();
        let slots = deployment.slots();
        if slots.len() == 1 {
            return self.evaluate_group(&deployment, 0, events, history).await;
        }
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
        for (i, event) in events.iter().enumerate() {
            groups[deployment.slot_for(service_day(event))].push(i);
        }
        let mut out = vec![Vec::new(); events.len()];
        for (slot, idxs) in groups.iter().enumerate() {
            if idxs.is_empty() {
                continue;
            }
            let sub: Vec<&Event> = idxs.iter().map(|&i| events[i]).collect();
            let alerts = self
                .evaluate_group(&deployment, slot, &sub, history)
                .await?;
            for (&i, a) in idxs.iter().zip(alerts) {
                out[i] = a;
            }
        }
        Ok(out)
    }

    /// One engine call: `events` (all of one slot) against that slot's program,
    /// and the shadow candidate's program beside it.
    async fn evaluate_group(
        &self,
        deployment: &Deployment,
        slot: usize,
        events: &[&Event],
        history: &dyn HistoryView,
    ) -> Result<Vec<Vec<Alert>>, EvalError> {
        let program = &deployment.slots()[slot].program;
        let mut out = vec![Vec::new(); events.len()];
        let (selections, wanted) = select(program, events);
        let shadow = deployment.shadow();
        if !wanted.iter().any(|w| *w) && shadow.is_none() {
            return Ok(out);
        }
        let started = std::time::Instant::now();
        let batch = Arc::new(history.build(events, &program.pack().manifest.dictionaries));
        self.observe(Stage::BatchBuild, started, events.len());
        let started = std::time::Instant::now();
        let groups = if wanted.iter().any(|w| *w) {
            let findings = program.evaluate(Arc::clone(&batch), Some(&wanted)).await?;
            group_findings(findings, events, &batch, &selections)
        } else {
            Groups::new()
        };
        self.observe(Stage::Evaluate, started, events.len());
        if let Some(shadow) = shadow {
            let active: Vec<(u32, String, String)> = groups
                .keys()
                .map(|(e, r, k)| (*e, program.rules()[*r].rule.rule_id.clone(), k.clone()))
                .collect();
            // A candidate with other input dictionaries needs its own tables; built
            // now, while the history is what the active program saw.
            let candidate = &shadow.programs()[slot];
            let shadow_batch =
                if candidate.pack().manifest.dictionaries == program.pack().manifest.dictionaries {
                    Arc::clone(&batch)
                } else {
                    Arc::new(history.build(events, &candidate.pack().manifest.dictionaries))
                };
            shadow.submit(
                slot,
                events,
                shadow_batch,
                active,
                program.pack().version_label(),
            );
        }
        let started = std::time::Instant::now();
        let emitted_now = chrono::Local::now().naive_local();
        let rules = program.rules();
        for ((event_idx, rule_idx, key), group) in groups {
            let event = events[event_idx as usize];
            let alert = self.build_alert(
                program,
                event,
                &batch,
                &rules[rule_idx].rule,
                &key,
                group,
                emitted_now,
            );
            out[event_idx as usize].push(alert);
        }
        self.observe(Stage::AlertBuild, started, events.len());
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)] // one alert needs all of these; a struct would only rename them
    fn build_alert(
        &self,
        program: &Program,
        event: &Event,
        batch: &EventBatch,
        rule: &Rule,
        key: &str,
        mut group: Vec<Finding>,
        now: NaiveDateTime,
    ) -> Alert {
        let kb = program.kb();
        let pack = program.pack();
        // 违规项 before 涉及项, then by line; a line appears once.
        group.sort_by_key(|f| (f.item_type, f.line_id));
        group.dedup_by_key(|f| f.line_id.map_or(u64::MAX - f.item_type as u64, |l| l));

        let line = |f: &Finding| f.line_id.and_then(|l| batch.lines.get(l as usize).copied());
        let order_of = |r: LineRef| -> Option<&Order> {
            event
                .patients
                .get(r.patient as usize)?
                .encounters
                .get(r.encounter as usize)?
                .orders
                .get(r.order as usize)
        };
        let primary = group.iter().find(|f| f.item_type == 1).unwrap_or(&group[0]);
        let primary_line = line(primary);
        let (patient, encounter) = match primary_line {
            Some(r) => (
                event.patients.get(r.patient as usize),
                event
                    .patients
                    .get(r.patient as usize)
                    .and_then(|p| p.encounters.get(r.encounter as usize)),
            ),
            None => (
                event.patients.first(),
                event.patients.first().and_then(|p| p.current_encounter()),
            ),
        };
        let patn_id = patient.map(|p| p.patn_id.clone()).unwrap_or_default();
        let mdtrt_id = encounter.map(|e| e.mdtrt_id.clone()).unwrap_or_default();
        let point: Option<&KnowledgePoint> = primary.kp.map(|kp| kb.point(kp));
        let primary_order = primary_line.and_then(order_of);

        let sev_deg = primary
            .sev_deg
            .clone()
            .unwrap_or_else(|| rule.sev_deg.clone());
        let event_time = event
            .event_time()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let kb_version = kb.id().to_string();
        let pack_version = pack.version_label();

        let rx_ids: Vec<&str> = group
            .iter()
            .filter_map(|f| line(f).and_then(order_of))
            .map(|o| o.rx_id.as_str())
            .collect();
        let kp_id = point.map(|p| p.kp_id.as_str()).unwrap_or("");
        let jr = jr_id(&[
            &rule.rule_id,
            &pack_version,
            &kb_version,
            &patn_id,
            &mdtrt_id,
            key,
            &rx_ids.join(","),
            kp_id,
        ]);

        let mut amount_known = true;
        let mut total = 0.0;
        let details: Vec<AlertDetail> = group
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let r = line(f)?;
                let order = order_of(r)?;
                let enc = event
                    .patients
                    .get(r.patient as usize)
                    .and_then(|p| p.encounters.get(r.encounter as usize));
                let amount = if f.item_type == 1 {
                    match f.vola_amt {
                        Some(a) => {
                            total += a;
                            money(a)
                        }
                        None => {
                            amount_known = false;
                            0.0
                        }
                    }
                } else {
                    0.0
                };
                Some(AlertDetail {
                    jrd_id: format!("{jr}-{}", i + 1),
                    patn_id: patn_id.clone(),
                    mdtrt_id: enc.map(|e| e.mdtrt_id.clone()).unwrap_or_default(),
                    rx_id: order.rx_id.clone(),
                    vola_item_type: f.item_type.to_string(),
                    vola_amt: amount,
                })
            })
            .collect();
        if details.is_empty() {
            // Encounter-level finding: the rule's amount stands alone.
            match primary.vola_amt {
                Some(a) => total = a,
                None => amount_known = false,
            }
        }

        let related: Vec<String> = group
            .iter()
            .filter(|f| f.item_type == 2)
            .filter_map(|f| line(f).and_then(order_of))
            .map(|o| display_name(o, None))
            .collect();
        let vola_cont = fill_template(&rule.message, |name| match name {
            "item" => Some(
                point
                    .map(|p| p.item_name.clone())
                    .or_else(|| primary_order.map(|o| display_name(o, None)))
                    .unwrap_or_default(),
            ),
            "hilist_name" => primary_order.map(|o| display_name(o, point)),
            "code" => primary_order.map(|o| o.hilist_code.clone()),
            "limit" => Some(
                point
                    .and_then(|p| p.limit_value.clone())
                    .unwrap_or_default(),
            ),
            "partner" => Some(
                point
                    .and_then(|p| p.partner_name.clone())
                    .or_else(|| related.first().cloned())
                    .unwrap_or_default(),
            ),
            "related" => Some(related.join("、")),
            "limit_num" => point.and_then(|p| p.limit_num).map(number),
            "period_days" => point.and_then(|p| p.period_days).map(number),
            "constraint" => point.map(|p| p.constraint_text.clone()),
            "fact" => Some(primary.fact.clone().unwrap_or_default()),
            "extra" => Some(primary.extra.clone().unwrap_or_default()),
            "amount" => Some(format!("{:.2}", money(total))),
            _ => None,
        });
        let vola_evid = match point {
            Some(p) => {
                let limit = p
                    .limit_value
                    .as_deref()
                    .map(|l| format!("，限定：{l}"))
                    .unwrap_or_default();
                format!(
                    "国家医保局两库{}《{}》知识点{}（{} 第{}行）：{}{}；判断逻辑：{}",
                    batch_label(&p.batch),
                    p.rule_class,
                    p.kp_id,
                    p.source_file,
                    p.source_row,
                    p.item_name,
                    limit,
                    p.detect_logic
                )
            }
            None => rule.legal_basis.clone(),
        };
        let emitted_at = match self.clock {
            Clock::Wall => now.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            Clock::EventTime => event
                .event_time()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_default(),
        };
        Alert {
            jr_id: jr,
            rule_id: rule.rule_id.clone(),
            rule_name: rule.name.clone(),
            vola_cont,
            patn_id,
            mdtrt_id,
            judge_result_detail_dtos: details,
            vola_amt: money(total),
            vola_amt_stas: if amount_known { "1" } else { "0" }.to_string(),
            sev_deg,
            vola_evid,
            vola_bhvr_type: rule.vola_bhvr_type.clone(),
            task_id: event.task_id.clone(),
            fixmedins_code: event.fixmedins_code().to_string(),
            trig_scen: event
                .trig_scen
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(","),
            rule_pack_version: pack_version,
            kb_version,
            event_time,
            emitted_at,
        }
    }
}

/// Which rules run for which event, and which rules run at all in the batch.
pub(crate) fn select(program: &Program, events: &[&Event]) -> (Vec<Vec<bool>>, Vec<bool>) {
    let rules = program.rules();
    let selections: Vec<Vec<bool>> = events
        .iter()
        .map(|event| rules.iter().map(|r| selects(event, &r.rule)).collect())
        .collect();
    let wanted: Vec<bool> = (0..rules.len())
        .map(|i| selections.iter().any(|sel| sel[i]))
        .collect();
    (selections, wanted)
}

/// Groups a program's findings into alerts: rows of the same (event, rule,
/// alert_key) form one alert; an empty key becomes the line's `mdtrt_id/rx_id`
/// (which, unlike `line_id`, does not depend on the batch); rules not selected for
/// an event are dropped.
pub(crate) fn group_findings(
    findings: Vec<Finding>,
    events: &[&Event],
    batch: &EventBatch,
    selections: &[Vec<bool>],
) -> Groups {
    let mut groups = Groups::new();
    for mut finding in findings {
        let event = finding.event_idx as usize;
        if finding.alert_key.is_empty()
            && let Some(r) = finding.line_id.and_then(|l| batch.lines.get(l as usize))
            && let Some(order) = events
                .get(event)
                .and_then(|e| e.patients.get(r.patient as usize))
                .and_then(|p| p.encounters.get(r.encounter as usize))
                .and_then(|e| e.orders.get(r.order as usize).map(|o| (e, o)))
        {
            finding.alert_key = format!("{}/{}", order.0.mdtrt_id, order.1.rx_id);
        }
        if selections
            .get(event)
            .is_some_and(|sel| sel.get(finding.rule).copied().unwrap_or(false))
        {
            groups
                .entry((finding.event_idx, finding.rule, finding.alert_key.clone()))
                .or_default()
                .push(finding);
        }
    }
    groups
}

/// Whether `rule` runs for `event`: scenarios first (the interface says prefer
/// `trig_scen`), then `rule_ids` narrows; neither given → every rule.
pub fn selects(event: &Event, rule: &Rule) -> bool {
    let by_scen = event.trig_scen.is_empty() || event.trig_scen.iter().any(|s| rule.runs_in(*s));
    let by_id = event.rule_ids.is_empty() || event.rule_ids.contains(&rule.rule_id);
    by_scen && by_id
}

fn display_name(order: &Order, point: Option<&KnowledgePoint>) -> String {
    if !order.hilist_name.is_empty() {
        order.hilist_name.clone()
    } else if let Some(p) = point {
        p.item_name.clone()
    } else {
        order.hilist_code.clone()
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
