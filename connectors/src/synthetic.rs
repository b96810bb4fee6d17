//! Synthetic settlement stream with labelled injected violations (`fundwatch demo`).
//!
//! [`Generator`] produces national 3101/3102 requests (envelope JSON, one patient per
//! message, the Kafka norm) for plausible patients, institutions and encounters,
//! using real national codes from the knowledge base and real ICD-10 医保版
//! diagnoses. A configurable share of events carries exactly one injected violation
//! of one rule class, rotating over every class the rule pack implements; each
//! injection comes with a [`Label`] — (rule_id, mdtrt_id, the violating `rx_id`s).
//! Every other line is compliant with every class its code is in.
//!
//! The generator's reading of the classes (`catalog`, `recipe`) is written from the
//! national detection logic, independently of the rule SQL: when the engine's alerts
//! and the labels disagree ([`Scorecard`]), either a recipe or a rule is wrong, and
//! the disagreement says which line to look at.
//!
//! Recipes cover the knowledge classes (sex, age, 险种, setting, level, internet,
//! indication, second line, herbs, duplicate pairs, frequency, period, payment course,
//! surgery discount) and the behaviour classes decided from a person's history (分解住院,
//! 频繁门诊/购药/住院, 重复开药, 挂床住院): history travels inside the request as earlier
//! encounters, shaped to cross the pack's thresholds in every 统筹区 (and compliant
//! events stay clear of them in every 统筹区). A pack rule whose class has no recipe
//! shows in [`Generator::coverage`].
//!
//! Determinism: everything is drawn from one seeded RNG and the KB's content; the same
//! seed, KB and pack give the same events byte for byte. Service dates start after the
//! last change of knowledge, so every point relied on is in force. Each event is a
//! new patient, so rules that keep history across events never link two events — with
//! one deliberate exception: a 药品追溯码重复 injection sells again a box (trace code) an
//! earlier event sold, so its label holds when events are evaluated in the order
//! generated (as the demo and the tests do). A 死亡后就医 injection registers its
//! patient's death ([`SyntheticEvent::person_status`]): the consumer puts it into the
//! engine's person-status table before evaluating ([`Generator::register_status`]).
//!
//! Not generated: herbal prescriptions in compliant traffic (the KB lists only herbs
//! that are not paid, so a compliant prescription would need a herb it does not know),
//! consumables (`C…`), operations (`fsi_operation_dtos`), 急诊 visits.

mod catalog;
mod context;
mod plan;
mod recipe;
mod score;
mod world;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use fundwatch_engine::Engine;
use fundwatch_engine::history::PersonStatus;
use fundwatch_kb::KnowledgeBase;
use fundwatch_rules::RulePack;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use score::{Label, RuleScore, Scorecard};

use catalog::{Catalog, Class, Kind};
use context::{Band, Context, Need, Setting};
use plan::{EncounterPlan, EventPlan, OrderPlan, PatientPlan};
use recipe::Recipes;
use world::{AREAS, COMMON_DIAGNOSES, Institution, Institutions};

/// Settings of the generator.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// RNG seed: the same seed gives the same stream.
    pub seed: u64,
    /// Share of events (0–1) that carry one injected violation.
    pub violation_share: f64,
    /// First service date (moved past the last knowledge change if earlier).
    pub start_date: NaiveDate,
    /// Service dates spread over this many days from the start.
    pub span_days: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            violation_share: 0.2,
            start_date: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default(),
            span_days: 60,
        }
    }
}

/// Why a generator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// The violation share is not a probability.
    #[error("the violation share ({0}) must be between 0 and 1")]
    BadShare(f64),
    /// The KB holds no knowledge the generator can use.
    #[error("the knowledge base {0} holds no national codes the generator can use")]
    EmptyKb(String),
}

/// One generated event.
#[derive(Debug, Clone)]
pub struct SyntheticEvent {
    /// The request as national envelope JSON (3101 or 3102).
    pub json: Vec<u8>,
    /// The message key: `patn_id`.
    pub patn_id: String,
    /// The current encounter's `mdtrt_id`.
    pub mdtrt_id: String,
    /// The injected violation's class, if any.
    pub injected_class: Option<String>,
    /// What the engine must find: one label per rule the injection violates.
    pub labels: Vec<Label>,
    /// The patient's registered death (死亡后就医 injections): the row the
    /// person-status table must hold before the event is evaluated
    /// ([`Generator::register_status`]).
    pub person_status: Option<PersonStatus>,
}

/// Whether the generator can inject violations of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule.
    pub rule_id: String,
    /// Its knowledge class.
    pub class: String,
    /// `None` when covered, else why not.
    pub missing: Option<String>,
}

/// An enabled rule of the pack the generator can target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub rule_id: String,
    pub class: Class,
    pub scens: Vec<u8>,
}

impl Target {
    /// The settings with at least one scenario the rule runs in.
    pub fn settings(&self) -> Need {
        let settings: Vec<Setting> = Setting::ALL
            .into_iter()
            .filter(|s| s.scenarios().iter().any(|sc| self.scens.contains(sc)))
            .collect();
        Need::settings(&settings)
    }
}

/// The labelled synthetic event generator.
#[derive(Debug)]
pub struct Generator {
    catalog: Arc<Catalog>,
    institutions: Institutions,
    rng: SmallRng,
    config: GeneratorConfig,
    start: NaiveDate,
    tag: String,
    seq: u64,
    targets: Vec<Target>,
    /// Enabled rules per class (several rules may read one class).
    rules_by_class: BTreeMap<Class, Vec<Target>>,
    coverage: Vec<RuleCoverage>,
    recipes: Arc<Recipes>,
    next_target: usize,
    /// Fraction accumulator for the violation share (exact, not random).
    share_acc: f64,
    /// Trace codes (and their drug) sold on compliant lines of earlier events: what a
    /// 追溯码重复 injection sells again.
    trace_pool: VecDeque<(String, u32)>,
}

/// How many earlier trace codes the generator remembers.
const TRACE_POOL: usize = 4096;

/// A draft event the recipes and the filler write into.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub ctx: Context,
    pub scen: u8,
    pub service: NaiveDateTime,
    pub patient: PatientPlan,
    pub current: EncounterPlan,
    pub history: Vec<EncounterPlan>,
    /// Codes used anywhere in the event.
    pub used: Vec<u32>,
    pub surgery_groups: Vec<String>,
    /// Counted knowledge rows used anywhere in the event.
    pub rows_used: Vec<u32>,
    /// Diagnosis prefixes no diagnosis may match (an indication being violated).
    pub forbidden_dx: Vec<String>,
    /// No filler line may need a diagnosis.
    pub no_dx_filler: bool,
    /// Drug prefixes (12 characters) filler lines must not share.
    pub forbidden_prefixes: Vec<String>,
    /// The patient's registered date of death (死亡后就医 injections).
    pub death: Option<NaiveDate>,
    /// Index of the current institution's area in [`world::AREAS`].
    pub area: usize,
    line_seq: u32,
    rx_seq: u32,
}

impl Generator {
    /// A generator over `kb` targeting the enabled rules of `pack`.
    pub fn new(
        kb: Arc<KnowledgeBase>,
        pack: &RulePack,
        config: GeneratorConfig,
    ) -> Result<Self, SyntheticError> {
        if !(0.0..=1.0).contains(&config.violation_share) {
            return Err(SyntheticError::BadShare(config.violation_share));
        }
        let start = match catalog::last_knowledge_change(&kb) {
            Some(last) if last >= config.start_date => last + Duration::days(1),
            _ => config.start_date,
        };
        let icd = icd_list(&kb);
        let catalog = Catalog::build(Arc::clone(&kb), &pack.manifest.parameters, start, icd);
        if catalog.codes.is_empty() {
            return Err(SyntheticError::EmptyKb(kb.id().to_string()));
        }
        let catalog = Arc::new(catalog);

        let mut targets = Vec::new();
        let mut coverage = Vec::new();
        for rule in pack.rules.iter().filter(|r| r.enabled) {
            match Class::from_name(&rule.class) {
                Some(class) => targets.push(Target {
                    rule_id: rule.rule_id.clone(),
                    class,
                    scens: rule.trig_scen.clone(),
                }),
                None => coverage.push(RuleCoverage {
                    rule_id: rule.rule_id.clone(),
                    class: rule.class.clone(),
                    missing: Some(format!("no recipe for rule class `{}`", rule.class)),
                }),
            }
        }
        let mut rules_by_class: BTreeMap<Class, Vec<Target>> = BTreeMap::new();
        for t in &targets {
            rules_by_class.entry(t.class).or_default().push(t.clone());
        }
        let recipes = Recipes::prepare(&catalog, &pack.manifest.parameters, &targets);
        let mut covered = Vec::new();
        for t in targets {
            let missing = recipes.missing(&t);
            coverage.push(RuleCoverage {
                rule_id: t.rule_id.clone(),
                class: t.class.name().to_string(),
                missing: missing.clone(),
            });
            if missing.is_none() {
                covered.push(t);
            }
        }
        coverage.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));

        Ok(Self {
            catalog,
            institutions: Institutions::build(),
            rng: SmallRng::seed_from_u64(config.seed),
            tag: format!("{:04X}", config.seed & 0xFFFF),
            config,
            start,
            seq: 0,
            targets: covered,
            rules_by_class,
            coverage,
            recipes: Arc::new(recipes),
            next_target: 0,
            share_acc: 0.0,
            trace_pool: VecDeque::new(),
        })
    }

    /// Per enabled rule: whether violations of it can be injected.
    pub fn coverage(&self) -> &[RuleCoverage] {
        &self.coverage
    }

    /// Puts `event`'s person status (a registered death) into `engine`'s
    /// person-status table: call it before the event is evaluated. The demo's table is
    /// built this way, as the stream goes (a deployment loads a file instead).
    pub fn register_status(engine: &Engine, event: &SyntheticEvent) {
        if let Some(status) = &event.person_status {
            let mut history = engine
                .history()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            history.update_person_statuses(|s| s.insert(&event.patn_id, status.clone()));
        }
    }

    /// The first service date of the stream.
    pub fn start_date(&self) -> NaiveDate {
        self.start
    }

    /// The next event.
    pub fn next_event(&mut self) -> SyntheticEvent {
        self.seq += 1;
        self.share_acc += self.config.violation_share;
        let inject = self.share_acc >= 1.0 && !self.targets.is_empty();
        if inject {
            self.share_acc -= 1.0;
            // Rotate over rules; a recipe that fails this once (unlucky draw) is
            // retried on the next rule so the share stays exact.
            for _ in 0..self.targets.len() * 3 {
                let target = self.targets[self.next_target % self.targets.len()].clone();
                self.next_target += 1;
                let recipes = Arc::clone(&self.recipes);
                if let Some(injection) = recipes.inject(self, &target) {
                    let labels = self.labels_for(&target, &injection.draft, &injection.violating);
                    return self.finish(injection.draft, Some(target.class), labels);
                }
            }
        }
        let draft = self.clean_draft();
        self.finish(draft, None, Vec::new())
    }

    fn labels_for(&self, target: &Target, draft: &Draft, violating: &[String]) -> Vec<Label> {
        let mut rx_ids = violating.to_vec();
        rx_ids.sort();
        self.rules_by_class
            .get(&target.class)
            .into_iter()
            .flatten()
            .filter(|t| t.scens.contains(&draft.scen))
            .map(|t| Label {
                rule_id: t.rule_id.clone(),
                mdtrt_id: draft.current.mdtrt_id.clone(),
                rx_ids: rx_ids.clone(),
            })
            .collect()
    }

    fn finish(&mut self, draft: Draft, class: Option<Class>, labels: Vec<Label>) -> SyntheticEvent {
        let inf_time = match draft.scen {
            8 | 9 => draft.service + Duration::minutes(15),
            _ => draft.service + Duration::seconds(self.rng.random_range(1..120)),
        };
        let person_status = draft.death.map(|die_date| PersonStatus {
            die_date,
            source: "公安户籍注销".to_string(),
        });
        let plan = EventPlan {
            task_id: format!("T{}{:010}", self.tag, self.seq),
            msgid_seq: self.seq,
            trig_scen: draft.scen,
            inf_time,
            patient: draft.patient,
            current: draft.current,
            history: draft.history,
        };
        // Serialising a `Value` built here cannot fail (string keys only).
        let json = serde_json::to_vec(&plan.to_json()).unwrap_or_default();
        SyntheticEvent {
            json,
            patn_id: plan.patient.patn_id,
            mdtrt_id: plan.current.mdtrt_id,
            injected_class: class.map(|c| c.name().to_string()),
            labels,
            person_status,
        }
    }

    /// A compliant event.
    fn clean_draft(&mut self) -> Draft {
        let ctx = Need::any().pick(&mut self.rng).unwrap_or(Context {
            sex: context::Sex::Female,
            band: Band::Adult,
            insutype: context::Insutype::Employee,
            setting: Setting::Outpatient,
            level: 2,
        });
        let scens = ctx.setting.scenarios();
        let scen = scens[self.rng.random_range(0..scens.len())];
        let mut draft = self.draft(ctx, scen);
        self.fill(&mut draft);
        if self.rng.random_bool(0.15) {
            self.add_clean_history(&mut draft);
        }
        draft
    }

    /// A new patient and encounter in `ctx` for scenario `scen`, with background
    /// diagnoses and no lines yet.
    pub(crate) fn draft(&mut self, ctx: Context, scen: u8) -> Draft {
        let rng = &mut self.rng;
        let day = self.start
            + Duration::days(rng.random_range(0..i64::from(self.config.span_days.max(1))));
        let time = NaiveTime::from_hms_opt(
            rng.random_range(8..18),
            rng.random_range(0..60),
            rng.random_range(0..60),
        )
        .unwrap_or_default();
        let service = day.and_time(time);
        let area = rng.random_range(0..AREAS.len());
        let institution: Institution = match ctx.setting {
            Setting::Pharmacy => self.institutions.pharmacy(rng, area).clone(),
            _ => self.institutions.hospital(rng, area, ctx.level).clone(),
        };
        // One in ten patients is insured elsewhere (异地就医).
        let poolarea = if rng.random_bool(0.1) {
            AREAS[rng.random_range(0..AREAS.len())].poolarea
        } else {
            AREAS[area].poolarea
        };
        let (lo, hi) = ctx.band.days();
        let age_days = rng.random_range(lo..=hi);
        let patient = PatientPlan {
            patn_id: format!("P{}{:010}", self.tag, self.seq),
            name: world::person_name(rng, ctx.sex == context::Sex::Male),
            gend: ctx.sex.gend(),
            brdy: day - Duration::days(age_days),
            poolarea,
        };
        let (adm, dscg) = match ctx.setting {
            Setting::Inpatient => {
                let stay = rng.random_range(0..=6);
                let adm = (day - Duration::days(stay)).and_time(
                    NaiveTime::from_hms_opt(rng.random_range(7..12), rng.random_range(0..60), 0)
                        .unwrap_or_default(),
                );
                let adm = adm.min(service);
                let dscg = matches!(scen, 8 | 9).then(|| service + Duration::minutes(10));
                (adm, dscg)
            }
            _ => {
                let adm = service - Duration::minutes(rng.random_range(5..90));
                let dscg = (scen >= 6).then(|| service + Duration::minutes(5));
                (adm, dscg)
            }
        };
        let doctor = format!("D{}{:06}", institution.admdvs, rng.random_range(1..999_999));
        let mut draft = Draft {
            ctx,
            scen,
            service,
            patient,
            current: EncounterPlan {
                mdtrt_id: format!("M{}{:010}", self.tag, self.seq),
                institution,
                setting: ctx.setting,
                insutype: ctx.insutype.code(),
                adm,
                dscg,
                diagnoses: Vec::new(),
                orders: Vec::new(),
                doctor,
            },
            history: Vec::new(),
            used: Vec::new(),
            surgery_groups: Vec::new(),
            rows_used: Vec::new(),
            forbidden_dx: Vec::new(),
            no_dx_filler: false,
            forbidden_prefixes: Vec::new(),
            death: None,
            area,
            line_seq: 0,
            rx_seq: 0,
        };
        let n = self.rng.random_range(1..=2);
        for _ in 0..n {
            self.add_background_diagnosis(&mut draft);
        }
        draft
    }

    fn add_background_diagnosis(&mut self, draft: &mut Draft) {
        let minor = matches!(draft.ctx.band, Band::Newborn | Band::Infant | Band::Child);
        for _ in 0..8 {
            let i = if minor {
                world::PEDIATRIC_DIAGNOSES
                    [self.rng.random_range(0..world::PEDIATRIC_DIAGNOSES.len())]
            } else {
                self.rng.random_range(0..COMMON_DIAGNOSES.len())
            };
            let (code, name) = COMMON_DIAGNOSES[i];
            if draft.current.diagnoses.iter().any(|(c, _)| c == code) {
                continue;
            }
            if forbidden(&draft.forbidden_dx, code) {
                continue;
            }
            draft
                .current
                .diagnoses
                .push((code.to_string(), name.to_string()));
            return;
        }
    }

    /// Re-checks background diagnoses against the draft's forbidden prefixes.
    pub(crate) fn enforce_forbidden_dx(&mut self, draft: &mut Draft) {
        let forbidden_list = draft.forbidden_dx.clone();
        draft
            .current
            .diagnoses
            .retain(|(c, _)| !forbidden(&forbidden_list, c));
        if draft.current.diagnoses.is_empty() {
            self.add_background_diagnosis(draft);
        }
    }

    /// A new line of code `idx` in the current encounter (or in `history[h]`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_line(
        &mut self,
        draft: &mut Draft,
        history: Option<usize>,
        idx: u32,
        cnt: f64,
        begn: NaiveDateTime,
        rxno: Option<String>,
        curr: bool,
    ) -> String {
        let catalog = Arc::clone(&self.catalog);
        let info = catalog.code(idx);
        draft.rx_seq += 1;
        let rx_id = format!("RX{}{:010}{:03}", self.tag, self.seq, draft.rx_seq);
        let rxno = rxno.unwrap_or_else(|| {
            draft.line_seq += 1;
            format!("RN{}{:010}{:02}", self.tag, self.seq, draft.line_seq)
        });
        let pric = self.price(info.kind);
        let order = OrderPlan {
            rx_id: rx_id.clone(),
            rxno,
            code: info.code.clone(),
            name: info.name.clone(),
            hilist_type: info.kind.hilist_type(),
            cnt,
            pric,
            begn,
            curr,
            trace_codes: Vec::new(),
        };
        let dx_needs = info.need.dx.clone();
        match history {
            Some(h) => draft.history[h].orders.push(order),
            None => {
                draft.current.orders.push(order);
                for id in dx_needs {
                    self.satisfy_dx(draft, id);
                }
            }
        }
        if !draft.used.contains(&idx) {
            draft.used.push(idx);
        }
        if let Some(group) = &info.surgery_group
            && !draft.surgery_groups.contains(group)
        {
            draft.surgery_groups.push(group.clone());
        }
        for row in &info.counted_rows {
            if !draft.rows_used.contains(row) {
                draft.rows_used.push(*row);
            }
        }
        rx_id
    }

    fn satisfy_dx(&mut self, draft: &mut Draft, id: u32) {
        let list = &self.catalog.dx_lists[id as usize];
        if draft.current.diagnoses.iter().any(|(c, _)| list.matches(c)) {
            return;
        }
        let options: Vec<u32> = list
            .codes
            .iter()
            .copied()
            .filter(|i| !forbidden(&draft.forbidden_dx, &self.catalog.icd[*i as usize].0))
            .collect();
        if options.is_empty() {
            return;
        }
        let pick = options[self.rng.random_range(0..options.len())];
        let (code, name) = self.catalog.icd[pick as usize].clone();
        draft.current.diagnoses.push((code, name));
    }

    fn price(&mut self, kind: Kind) -> f64 {
        let cents: u32 = match kind {
            Kind::Drug => self.rng.random_range(300..30_000),
            Kind::Item => self.rng.random_range(500..50_000),
            Kind::Herb => self.rng.random_range(5..300),
            Kind::Consumable => self.rng.random_range(1_000..100_000),
        };
        f64::from(cents) / 100.0
    }

    /// Whether `idx` can join the draft as a compliant filler line.
    fn fits(&self, draft: &Draft, idx: u32) -> bool {
        let info = self.catalog.code(idx);
        // Operations belong to stays.
        if info.surgery_group.is_some() && draft.ctx.setting != Setting::Inpatient {
            return false;
        }
        if draft.used.contains(&idx) || draft.used.iter().any(|u| self.catalog.conflicts(*u, idx)) {
            return false;
        }
        if let Some(group) = &info.surgery_group
            && draft.surgery_groups.contains(group)
        {
            return false;
        }
        if info
            .counted_rows
            .iter()
            .any(|r| draft.rows_used.contains(r))
        {
            return false;
        }
        if info.kind == Kind::Drug
            && draft
                .forbidden_prefixes
                .iter()
                .any(|p| info.code.starts_with(p.as_str()))
        {
            return false;
        }
        if !info.need.dx.is_empty() {
            if draft.no_dx_filler || draft.current.diagnoses.len() + info.need.dx.len() > 6 {
                return false;
            }
            if !draft.forbidden_dx.is_empty() {
                return false;
            }
        }
        true
    }

    /// Adds compliant lines to the current encounter: drugs and service items drawn
    /// from the codes compliant in the draft's context.
    pub(crate) fn fill(&mut self, draft: &mut Draft) {
        let pool = self.catalog.pool(&draft.ctx);
        let (drugs, items) = match draft.ctx.setting {
            Setting::Outpatient => (self.rng.random_range(1..=3), self.rng.random_range(0..=2)),
            Setting::Internet => (self.rng.random_range(1..=3), 0),
            Setting::Inpatient => (self.rng.random_range(2..=5), self.rng.random_range(2..=6)),
            Setting::Pharmacy => (self.rng.random_range(1..=3), 0),
        };
        // 事前 inpatient requests carry earlier orders of the stay as context lines.
        let context_lines = if matches!(draft.scen, 4 | 5) {
            self.rng.random_range(0..=2)
        } else {
            0
        };
        // At least one line is today's: a stay's requests always carry the orders
        // being entered (the stay "as the request sees it" ends at its last line).
        let today_lines = |d: &Draft| d.current.orders.iter().filter(|o| o.curr).count();
        let mut context_added = 0;
        for (list, n) in [(&pool.drugs, drugs), (&pool.items, items)] {
            let mut added = 0;
            for _ in 0..n * 4 {
                if added >= n || list.is_empty() {
                    break;
                }
                let idx = list[self.rng.random_range(0..list.len())];
                if !self.fits(draft, idx) {
                    continue;
                }
                let as_context = context_added < context_lines
                    && draft.current.adm.date() < draft.service.date()
                    && (today_lines(draft) > 0 || context_added + 1 < drugs + items);
                let (time, curr) = if as_context {
                    context_added += 1;
                    let earlier =
                        draft.current.adm + Duration::minutes(self.rng.random_range(30..240));
                    (earlier.min(draft.service - Duration::days(1)), false)
                } else {
                    (
                        draft.service + Duration::minutes(self.rng.random_range(0..10)),
                        true,
                    )
                };
                let cnt = self.clean_count(idx);
                let rx = self.add_line(draft, None, idx, cnt, time, None, curr);
                // Boxes are scanned (药品追溯码) when they are dispensed and settled.
                if curr
                    && matches!(draft.scen, 6 | 7 | 10)
                    && self.catalog.code(idx).kind == Kind::Drug
                {
                    self.attach_trace_codes(draft, &rx, idx, cnt);
                }
                added += 1;
            }
        }
    }

    /// Gives line `rx_id` one new trace code per box and remembers them.
    fn attach_trace_codes(&mut self, draft: &mut Draft, rx_id: &str, idx: u32, cnt: f64) {
        let Some(order) = draft.current.orders.iter_mut().find(|o| o.rx_id == rx_id) else {
            return;
        };
        let boxes = (cnt.ceil() as u32).max(1);
        for b in 0..boxes {
            // 20 digits, unique per (seed, event, line, box).
            let code = format!(
                "8{:04}{:010}{:03}{:02}",
                self.config.seed % 10_000,
                self.seq % 10_000_000_000,
                draft.rx_seq % 1000,
                b % 100
            );
            order.trace_codes.push(code.clone());
            if self.trace_pool.len() >= TRACE_POOL {
                self.trace_pool.pop_front();
            }
            self.trace_pool.push_back((code, idx));
        }
    }

    /// A trace code sold by an earlier event, with its drug, taken out of the pool.
    pub(crate) fn take_trace_code(&mut self) -> Option<(String, u32)> {
        if self.trace_pool.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.trace_pool.len());
        self.trace_pool.remove(i)
    }

    /// Adds up to `n` compliant lines of `kind` (no diagnosis needed) to history
    /// encounter `h`, compliant in `ctx`.
    pub(crate) fn fill_history(
        &mut self,
        draft: &mut Draft,
        h: usize,
        ctx: Context,
        kind: Kind,
        n: usize,
    ) {
        let pool = self.catalog.pool(&ctx);
        let list = match kind {
            Kind::Drug => &pool.drugs,
            _ => &pool.items,
        };
        let mut added = 0;
        for _ in 0..n * 4 {
            if added >= n || list.is_empty() {
                break;
            }
            let idx = list[self.rng.random_range(0..list.len())];
            if !self.fits(draft, idx) || !self.catalog.code(idx).need.dx.is_empty() {
                continue;
            }
            let when = draft.history[h].adm + Duration::minutes(self.rng.random_range(10..120));
            let cnt = self.clean_count(idx);
            self.add_line(draft, Some(h), idx, cnt, when, None, false);
            added += 1;
        }
    }

    /// A background diagnosis whose ICD-10 category (3 characters) is none of
    /// `exclude`'s.
    pub(crate) fn other_diagnosis(&mut self, exclude: &[String]) -> (String, String) {
        let cat = |c: &str| c.chars().take(3).collect::<String>();
        let excluded: Vec<String> = exclude.iter().map(|c| cat(c)).collect();
        let options: Vec<&(&str, &str)> = COMMON_DIAGNOSES
            .iter()
            .filter(|(c, _)| !excluded.contains(&cat(c)))
            .collect();
        let (code, name) = options
            .get(self.rng.random_range(0..options.len().max(1)))
            .copied()
            .copied()
            .unwrap_or(COMMON_DIAGNOSES[0]);
        (code.to_string(), name.to_string())
    }

    /// Another institution of the draft's area: a hospital (of a random level) or,
    /// for `Setting::Pharmacy`, a pharmacy.
    pub(crate) fn other_institution(&mut self, draft: &Draft, setting: Setting) -> Institution {
        match setting {
            Setting::Pharmacy => self
                .institutions
                .pharmacy(&mut self.rng, draft.area)
                .clone(),
            _ => {
                let level = self.rng.random_range(1..=3);
                self.institutions
                    .hospital(&mut self.rng, draft.area, level)
                    .clone()
            }
        }
    }

    /// A count that keeps every per-day limit of the code.
    pub(crate) fn clean_count(&mut self, idx: u32) -> f64 {
        let info = self.catalog.code(idx);
        match (info.kind, info.per_day, info.hourly) {
            (_, Some(limit), true) => {
                f64::from(self.rng.random_range(1..=(limit.min(12.0) as u32).max(1)))
            }
            (_, Some(_), false) => 1.0,
            (Kind::Drug, None, _) if info.periodic.is_none() => {
                f64::from(self.rng.random_range(1..=3u32))
            }
            _ => 1.0,
        }
    }

    /// A past outpatient visit with a few compliant lines, none sharing a code (or a
    /// duplicate-charge pair) with the current encounter.
    fn add_clean_history(&mut self, draft: &mut Draft) {
        let days_back = self.rng.random_range(20..40);
        let day = draft.service - Duration::days(days_back);
        if day.date() <= draft.patient.brdy + Duration::days(60) {
            return;
        }
        let mut hist_ctx = draft.ctx;
        if hist_ctx.setting == Setting::Pharmacy {
            return;
        }
        hist_ctx.setting = Setting::Outpatient;
        let pool = self.catalog.pool(&hist_ctx);
        let mut enc = draft.current.clone();
        enc.mdtrt_id = format!("{}-H1", draft.current.mdtrt_id);
        enc.setting = Setting::Outpatient;
        enc.adm = day;
        enc.dscg = Some(day + Duration::minutes(20));
        enc.orders = Vec::new();
        enc.diagnoses = draft.current.diagnoses.iter().take(1).cloned().collect();
        draft.history.push(enc);
        let h = draft.history.len() - 1;
        let n = self.rng.random_range(1..=3);
        let mut added = 0;
        for _ in 0..n * 4 {
            if added >= n || pool.drugs.is_empty() {
                break;
            }
            let idx = pool.drugs[self.rng.random_range(0..pool.drugs.len())];
            // History lines add no diagnoses: keep to codes that need none.
            if !self.fits(draft, idx) || !self.catalog.code(idx).need.dx.is_empty() {
                continue;
            }
            let cnt = self.clean_count(idx);
            self.add_line(
                draft,
                Some(h),
                idx,
                cnt,
                day + Duration::minutes(5),
                None,
                false,
            );
            added += 1;
        }
        if added == 0 {
            draft.history.pop();
        }
    }

    /// The catalogue (for recipes).
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The RNG (for recipes).
    pub(crate) fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// A history encounter of the draft's patient: `setting` at the current
    /// institution (or, for a pharmacy, a hospital of `level`), admitted at `adm`.
    pub(crate) fn add_history_encounter(
        &mut self,
        draft: &mut Draft,
        setting: Setting,
        adm: NaiveDateTime,
        dscg: NaiveDateTime,
    ) -> usize {
        let n = draft.history.len() + 1;
        let mut enc = draft.current.clone();
        enc.mdtrt_id = format!("{}-H{n}", draft.current.mdtrt_id);
        enc.setting = setting;
        enc.adm = adm;
        enc.dscg = Some(dscg);
        enc.orders = Vec::new();
        enc.diagnoses = if setting == Setting::Inpatient {
            // An earlier stay for another disease: the same disease shortly before
            // would be a split stay (分解住院), which only its own recipe makes.
            let current: Vec<String> = draft
                .current
                .diagnoses
                .iter()
                .map(|(c, _)| c.clone())
                .collect();
            vec![self.other_diagnosis(&current)]
        } else {
            draft.current.diagnoses.iter().take(1).cloned().collect()
        };
        draft.history.push(enc);
        draft.history.len() - 1
    }
}

impl Iterator for Generator {
    type Item = SyntheticEvent;

    fn next(&mut self) -> Option<SyntheticEvent> {
        Some(self.next_event())
    }
}

fn forbidden(prefixes: &[String], code: &str) -> bool {
    let code = code.to_ascii_uppercase();
    prefixes
        .iter()
        .any(|p| code.starts_with(&p.to_ascii_uppercase()))
}

/// The ICD-10 医保版 list of the KB, as (code, name).
fn icd_list(kb: &KnowledgeBase) -> Vec<(String, String)> {
    kb.icd10_codes()
        .iter()
        .map(|c| (c.code.clone(), c.name.clone()))
        .collect()
}
