//! One recipe per rule class: how to make an event that breaks exactly that class's
//! limit once, with every other line compliant, and which lines are the violation.
//!
//! Candidates (code, knowledge point, the contexts that break the limit while keeping
//! the code's other classes) are prepared once per rule; an injection draws one,
//! picks a context, writes the violating line(s) and fills the rest of the encounter
//! with compliant lines.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use fundwatch_rules::Parameters;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::catalog::{self, Catalog, Class, Kind};
use super::context::{Band, Need, Setting};
use super::world::AREAS;
use super::{Draft, Generator, Target};

/// An injected violation: the event draft and the `rx_id`s of its violating lines.
#[derive(Debug)]
pub(crate) struct Injection {
    pub draft: Draft,
    pub violating: Vec<String>,
}

/// One way to break a class: the code(s) and the contexts that do it.
#[derive(Debug, Clone)]
struct Candidate {
    code: u32,
    /// Second code (the 从项 of a duplicate-charge pair).
    partner: Option<u32>,
    need: Need,
    /// Diagnosis prefixes to keep out (indication being violated).
    forbidden_dx: Vec<String>,
    /// Value the recipe needs (count to bill, course days, period …).
    n: u32,
}

/// The pack's thresholds of the behaviour classes, read so that an injection
/// crosses them in every 统筹区 and a compliant event stays clear of them in every
/// 统筹区.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// 分解住院: readmission window (smallest).
    readmission_days: i64,
    /// 频繁门诊: window (smallest), visits allowed (largest).
    outpatient_days: i64,
    outpatient_max: i64,
    /// 频繁购药: window (smallest), purchases allowed (largest).
    purchase_days: i64,
    purchase_max: i64,
    /// 频繁住院: window (smallest), admissions allowed (largest).
    admission_days: i64,
    admission_max: i64,
    /// 重复开药: default supply (smallest, largest), tolerance (smallest, largest).
    supply_days: (i64, i64),
    tolerance_days: (i64, i64),
    /// 死亡后就医: days after a death still allowed (largest).
    death_grace_days: i64,
}

impl Behaviour {
    fn read(params: &Parameters) -> Self {
        let range = |name: &str, default: f64| {
            let (lo, hi) = catalog::param_range(params, name, default);
            (lo.round() as i64, hi.round() as i64)
        };
        Self {
            readmission_days: range("readmission_days", 15.0).0,
            outpatient_days: range("frequent_outpatient_days", 30.0).0,
            outpatient_max: range("frequent_outpatient_max", 10.0).1,
            purchase_days: range("frequent_purchase_days", 30.0).0,
            purchase_max: range("frequent_purchase_max", 4.0).1,
            admission_days: range("frequent_admission_days", 365.0).0,
            admission_max: range("frequent_admission_max", 4.0).1,
            supply_days: range("default_supply_days", 7.0),
            tolerance_days: range("overlap_tolerance_days", 3.0),
            death_grace_days: range("death_grace_days", 0.0).1,
        }
    }

    /// Days between purchases of one drug that never overlap the previous supply by
    /// more than the tolerance.
    fn refill_spacing(&self) -> i64 {
        (self.supply_days.1 - self.tolerance_days.0 + 1).max(1)
    }

    /// Days back of a refill that overlaps the previous supply by more than the
    /// tolerance: 1 ..= this.
    fn early_refill_max(&self) -> i64 {
        self.supply_days.0 - self.tolerance_days.1 - 1
    }
}

/// Prepared candidates of every targeted rule.
#[derive(Debug)]
pub(crate) struct Recipes {
    by_rule: HashMap<String, Vec<Candidate>>,
    why_not: HashMap<String, String>,
    behaviour: Behaviour,
    /// 统筹区 that report findings needing evidence the data cannot carry
    /// (`report_evidence_required` ≥ 1): where an undecided 限二线 use is an alert.
    evidence_areas: Vec<&'static str>,
}

/// `Candidate::code` of recipes that need no particular code.
const NO_CODE: u32 = u32::MAX;

/// Ages whose history (weeks back) stays inside the same band.
const HISTORY_BANDS: [Band; 3] = [Band::Child, Band::Adult, Band::Senior];

impl Recipes {
    /// Candidates for each target.
    pub fn prepare(catalog: &Catalog, params: &Parameters, targets: &[Target]) -> Self {
        let behaviour = Behaviour::read(params);
        let mut recipes = Recipes {
            by_rule: HashMap::new(),
            why_not: HashMap::new(),
            behaviour,
            evidence_areas: AREAS
                .iter()
                .map(|a| a.poolarea)
                .filter(|area| params.get("report_evidence_required", area).unwrap_or(1.0) >= 1.0)
                .collect(),
        };
        let mut probe = SmallRng::seed_from_u64(0);
        for target in targets {
            let settings = target.settings();
            let list = candidates(catalog, params, &behaviour, target.class, &settings);
            let mut list: Vec<Candidate> = list
                .into_iter()
                .filter(|c| c.need.pick(&mut probe).is_some())
                .collect();
            if target.class == Class::DrugSecondLine && recipes.evidence_areas.is_empty() {
                list.clear();
            }
            if list.is_empty() {
                let why = format!(
                    "no knowledge point of `{}` can be violated alone in the scenarios {:?}",
                    target.class.name(),
                    target.scens
                );
                recipes.why_not.insert(target.rule_id.clone(), why);
            } else {
                recipes.by_rule.insert(target.rule_id.clone(), list);
            }
        }
        recipes
    }

    /// Why `target` cannot be injected, or `None` when it can.
    pub fn missing(&self, target: &Target) -> Option<String> {
        if self.by_rule.contains_key(&target.rule_id) {
            None
        } else {
            Some(
                self.why_not
                    .get(&target.rule_id)
                    .cloned()
                    .unwrap_or_else(|| "no candidates".to_string()),
            )
        }
    }

    /// An event violating `target`'s class once; `None` if this draw failed.
    pub fn inject(&self, generator: &mut Generator, target: &Target) -> Option<Injection> {
        let list = self.by_rule.get(&target.rule_id)?;
        let mut cand = list[generator.rng().random_range(0..list.len())].clone();
        let b = self.behaviour;
        // 追溯码重复 sells again a box an earlier event sold: its drug decides the context.
        let mut trace_code = None;
        if target.class == Class::TraceReuse {
            let (code, drug) = generator.take_trace_code()?;
            cand.need = cand.need.and(&generator.catalog().code(drug).need);
            cand.code = drug;
            trace_code = Some(code);
        }
        let ctx = cand.need.pick(generator.rng())?;
        let scens: Vec<u8> = ctx
            .setting
            .scenarios()
            .iter()
            .copied()
            .filter(|s| target.scens.contains(s))
            .collect();
        if scens.is_empty() {
            return None;
        }
        let scen = scens[generator.rng().random_range(0..scens.len())];
        let mut draft = generator.draft(ctx, scen);
        if target.class == Class::DrugSecondLine
            && !self.evidence_areas.contains(&draft.patient.poolarea)
        {
            // Without evidence in the data a 限二线 use is reported only where the
            // 统筹区 asks for evidence-type findings.
            let i = generator.rng().random_range(0..self.evidence_areas.len());
            draft.patient.poolarea = self.evidence_areas[i];
        }
        let service = draft.service;
        let catalog = std::sync::Arc::clone(generator.catalog());
        let violating = match target.class {
            Class::DrugIndication => {
                draft.forbidden_dx = cand.forbidden_dx.clone();
                draft.no_dx_filler = true;
                generator.enforce_forbidden_dx(&mut draft);
                let cnt = generator.clean_count(cand.code);
                vec![generator.add_line(&mut draft, None, cand.code, cnt, service, None, true)]
            }
            Class::ItemFrequency => {
                vec![generator.add_line(
                    &mut draft,
                    None,
                    cand.code,
                    f64::from(cand.n),
                    service,
                    None,
                    true,
                )]
            }
            Class::ItemPeriodic => {
                // `n` earlier uses on distinct days inside the period, one visit each,
                // all before today's admission (a visit during a stay is 挂床住院).
                if ctx.setting == Setting::Inpatient {
                    draft.current.adm = draft
                        .current
                        .adm
                        .max(service.date().and_hms_opt(7, 0, 0)?)
                        .min(service);
                }
                let period = i64::from(catalog.code(cand.code).periodic.map_or(2, |p| p.1));
                let mut back: Vec<i64> = (1..period).collect();
                for i in 0..cand.n as usize {
                    let j = generator.rng().random_range(i..back.len());
                    back.swap(i, j);
                }
                for k in back.iter().take(cand.n as usize) {
                    let when = service - Duration::days(*k);
                    let h = generator.add_history_encounter(
                        &mut draft,
                        Setting::Outpatient,
                        when - Duration::minutes(20),
                        when + Duration::minutes(30),
                    );
                    generator.add_line(&mut draft, Some(h), cand.code, 1.0, when, None, false);
                }
                vec![generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true)]
            }
            Class::DrugCourse | Class::ItemCourse if catalog.code(cand.code).course_per_stay => {
                // "单次住院…": the stay itself used the code on the `n` days before
                // today (earlier orders of the stay, context lines); today is day n + 1.
                let first = service - Duration::days(i64::from(cand.n));
                draft.current.adm = first - Duration::hours(2);
                for day in 0..i64::from(cand.n) {
                    let when = first + Duration::days(day);
                    generator.add_line(&mut draft, None, cand.code, 1.0, when, None, false);
                }
                vec![generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true)]
            }
            Class::DrugCourse | Class::ItemCourse => {
                // A finished stay that used the code on `n` consecutive days, ending a
                // few days ago; today's use is day n + 1.
                let gap = generator.rng().random_range(2..=4);
                let last = service - Duration::days(gap);
                let first = last - Duration::days(i64::from(cand.n) - 1);
                let h = generator.add_history_encounter(
                    &mut draft,
                    Setting::Inpatient,
                    first - Duration::hours(2),
                    last + Duration::hours(6),
                );
                draft.history[h].institution = draft.current.institution.clone();
                if draft.history[h].institution.level == 0 {
                    return None;
                }
                for day in 0..i64::from(cand.n) {
                    let when = first + Duration::days(day);
                    generator.add_line(&mut draft, Some(h), cand.code, 1.0, when, None, false);
                }
                vec![generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true)]
            }
            Class::SurgeryDiscount => {
                // Two operations of one surgical group on the same day, the second
                // (cheaper) one billed at its full price instead of the discount.
                let second = cand.partner?;
                let main_price =
                    f64::from(generator.rng().random_range(200_000..800_000u32)) / 100.0;
                let second_price = f64::from(
                    generator
                        .rng()
                        .random_range(50_000..(main_price * 80.0) as u32),
                ) / 100.0;
                let main =
                    generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true);
                let sec = generator.add_line(&mut draft, None, second, 1.0, service, None, true);
                set_price(&mut draft, &main, main_price);
                set_price(&mut draft, &sec, second_price);
                vec![sec]
            }
            Class::ItemDuplicate => {
                let sub = cand.partner?;
                generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true);
                vec![generator.add_line(&mut draft, None, sub, 1.0, service, None, true)]
            }
            Class::HerbAll | Class::HerbSingle => {
                let rxno = format!("{}-TCM", draft.current.mdtrt_id);
                let mut herbs = vec![cand.code];
                if target.class == Class::HerbSingle {
                    // A prescription made only of herbs from the 单方 list.
                    let members = catalog.members(Class::HerbSingle);
                    let extra = generator.rng().random_range(1..=3);
                    for _ in 0..extra * 3 {
                        if herbs.len() > extra {
                            break;
                        }
                        let (idx, _) = members[generator.rng().random_range(0..members.len())];
                        if !herbs.contains(&idx) && !catalog.code(idx).is_in(Class::HerbAll) {
                            herbs.push(idx);
                        }
                    }
                }
                let mut ids = Vec::new();
                for idx in herbs {
                    let grams = f64::from(generator.rng().random_range(6..=30u32));
                    ids.push(generator.add_line(
                        &mut draft,
                        None,
                        idx,
                        grams,
                        service,
                        Some(rxno.clone()),
                        true,
                    ));
                }
                ids
            }
            Class::Readmission => {
                // Discharged from this hospital a few days before today's admission,
                // with the same main diagnosis.
                let gap = generator
                    .rng()
                    .random_range(1..=(b.readmission_days - 1).clamp(1, 5));
                let dscg =
                    (draft.current.adm.date() - Duration::days(gap)).and_hms_opt(10, 0, 0)?;
                let h = generator.add_history_encounter(
                    &mut draft,
                    Setting::Inpatient,
                    dscg - Duration::days(3),
                    dscg,
                );
                draft.history[h].diagnoses =
                    draft.current.diagnoses.iter().take(1).cloned().collect();
                generator.fill_history(&mut draft, h, ctx, Kind::Drug, 1);
                Vec::new()
            }
            Class::FrequentAdmission => {
                // One admission more than allowed in the window, each for another
                // disease and weeks apart (no split stays), all at this hospital.
                let mut seen: Vec<String> = draft
                    .current
                    .diagnoses
                    .iter()
                    .map(|(c, _)| c.clone())
                    .collect();
                let step = (b.admission_days / (b.admission_max + 2)).clamp(20, 60);
                for k in 1..=b.admission_max {
                    let dscg = (draft.current.adm.date() - Duration::days(k * step))
                        .and_hms_opt(10, 0, 0)?;
                    let h = generator.add_history_encounter(
                        &mut draft,
                        Setting::Inpatient,
                        dscg - Duration::days(3),
                        dscg,
                    );
                    let dx = generator.other_diagnosis(&seen);
                    seen.push(dx.0.clone());
                    draft.history[h].diagnoses = vec![dx];
                    generator.fill_history(&mut draft, h, ctx, Kind::Drug, 1);
                }
                Vec::new()
            }
            Class::BedBlocking => {
                // Admitted three days ago; the day after admission the patient bought
                // drugs at a pharmacy or saw a doctor elsewhere.
                draft.current.adm = (service.date() - Duration::days(3)).and_hms_opt(9, 0, 0)?;
                let visit = draft.current.adm + Duration::hours(26);
                let setting = if generator.rng().random_bool(0.5) {
                    Setting::Pharmacy
                } else {
                    Setting::Outpatient
                };
                let institution = generator.other_institution(&draft, setting);
                let h = generator.add_history_encounter(
                    &mut draft,
                    setting,
                    visit,
                    visit + Duration::minutes(20),
                );
                let mut there = ctx;
                there.setting = setting;
                there.level = institution.level;
                draft.history[h].institution = institution;
                generator.fill_history(&mut draft, h, there, Kind::Drug, 1);
                Vec::new()
            }
            Class::FrequentOutpatient => {
                // One visit more than allowed in the window, on earlier days, at
                // hospitals of the area.
                for k in 1..=b.outpatient_max {
                    let when = service
                        - Duration::days(k.min(b.outpatient_days - 1))
                        - Duration::minutes(k);
                    let institution = generator.other_institution(&draft, Setting::Outpatient);
                    let h = generator.add_history_encounter(
                        &mut draft,
                        Setting::Outpatient,
                        when,
                        when + Duration::minutes(20),
                    );
                    let mut there = ctx;
                    there.level = institution.level;
                    draft.history[h].institution = institution;
                    generator.fill_history(&mut draft, h, there, Kind::Item, 1);
                }
                Vec::new()
            }
            Class::FrequentPurchase | Class::RepeatPrescription => {
                // Earlier purchases of the same drug here: one more than allowed in the
                // window, spaced so no supply overlaps (频繁购药); or one purchase whose
                // supply still covers today (重复开药).
                let days: Vec<i64> = if target.class == Class::FrequentPurchase {
                    (1..=b.purchase_max)
                        .map(|k| k * b.refill_spacing())
                        .collect()
                } else {
                    vec![
                        generator
                            .rng()
                            .random_range(1..=b.early_refill_max().max(1)),
                    ]
                };
                for back in days {
                    let when = service - Duration::days(back);
                    let h = generator.add_history_encounter(
                        &mut draft,
                        ctx.setting,
                        when - Duration::minutes(10),
                        when + Duration::minutes(10),
                    );
                    generator.add_line(&mut draft, Some(h), cand.code, 1.0, when, None, false);
                }
                let code = &catalog.code(cand.code).code;
                draft
                    .forbidden_prefixes
                    .push(code.chars().take(12).collect());
                vec![generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true)]
            }
            Class::DeathService => {
                // Registered dead 2–29 days past the largest `death_grace_days` of the
                // demo's 统筹区 before the admission: every line checked now (the filler
                // below writes them) is after the death and past the grace.
                let margin = b.death_grace_days.max(0) + 2;
                let days = generator.rng().random_range(margin..=margin + 27);
                draft.death = Some(draft.current.adm.date() - Duration::days(days));
                Vec::new()
            }
            Class::TraceReuse => {
                let rx = generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true);
                if let Some(order) = draft.current.orders.iter_mut().find(|o| o.rx_id == rx) {
                    order.trace_codes = trace_code.into_iter().collect();
                }
                vec![rx]
            }
            _ => {
                let cnt = generator.clean_count(cand.code);
                vec![generator.add_line(&mut draft, None, cand.code, cnt, service, None, true)]
            }
        };
        generator.fill(&mut draft);
        let violating = if target.class == Class::DeathService {
            // The lines under check: those flagged, or all of the encounter's when
            // none is (as the engine reads `curr_drord_flag`).
            let flagged = draft.current.orders.iter().any(|o| o.curr);
            draft
                .current
                .orders
                .iter()
                .filter(|o| o.curr || !flagged)
                .map(|o| o.rx_id.clone())
                .collect()
        } else {
            violating
        };
        Some(Injection { draft, violating })
    }
}

/// One candidate that needs no particular code, in `need`.
fn encounter_level(need: Need) -> Vec<Candidate> {
    vec![Candidate {
        code: NO_CODE,
        partner: None,
        need,
        forbidden_dx: Vec::new(),
        n: 1,
    }]
}

/// Every way to break `class` alone in `settings`.
fn candidates(
    catalog: &Catalog,
    params: &Parameters,
    behaviour: &Behaviour,
    class: Class,
    settings: &Need,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    let members = catalog.members(class);
    let today = catalog.reference_day;
    let single = |code: u32, skip: Class, cnt: f64| -> bool {
        catalog.code(code).timeline_ok(&[(today, cnt)], Some(skip))
    };
    match class {
        Class::DrugSex
        | Class::ItemSex
        | Class::DrugChildOnly
        | Class::DrugChildLimited
        | Class::ItemChildOnly
        | Class::ItemAge
        | Class::DrugWorkInjury
        | Class::DrugMaternity
        | Class::DrugSetting
        | Class::DrugLevel
        | Class::InternetDrug => {
            for (code, point) in members {
                let info = catalog.code(code);
                if !matches!(info.kind, Kind::Drug | Kind::Item) {
                    continue;
                }
                let Some(breaks) = catalog::violation_need(class, catalog.point(point), params)
                else {
                    continue;
                };
                let need = info.need_without(class).and(&breaks).and(settings);
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: 1,
                });
            }
        }
        Class::DrugIndication => {
            for (code, point) in members {
                let info = catalog.code(code);
                let p = catalog.point(point);
                let Some(cond) = p.condition.as_ref() else {
                    continue;
                };
                if !cond.dx_decidable || cond.needs_evidence || cond.dx_prefixes.is_empty() {
                    continue;
                }
                let need = info
                    .need_without(class)
                    .and(&catalog::indication_context(p))
                    .and(settings);
                if !need.dx.is_empty() {
                    continue; // another class of the code needs a diagnosis too
                }
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: cond.dx_prefixes.clone(),
                    n: 1,
                });
            }
        }
        Class::ItemFrequency => {
            for (code, _) in members {
                let info = catalog.code(code);
                let Some(limit) = info.per_day else { continue };
                let cnt = if info.hourly {
                    limit + 6.0
                } else {
                    limit + 1.0
                };
                if !single(code, class, cnt) {
                    continue;
                }
                let need = info
                    .need
                    .and(settings)
                    .and(&Need::settings(&[Setting::Outpatient, Setting::Inpatient]));
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: cnt as u32,
                });
            }
        }
        Class::ItemPeriodic => {
            for (code, _) in members {
                let info = catalog.code(code);
                let Some((limit, period)) = info.periodic else {
                    continue;
                };
                if limit == 0 || period < limit + 1 {
                    continue;
                }
                let uses: Vec<(NaiveDate, f64)> = (0..=i64::from(limit))
                    .map(|k| (today - Duration::days(k), 1.0))
                    .collect();
                if !info.timeline_ok(&uses, Some(class)) {
                    continue;
                }
                let need = info
                    .need
                    .and(settings)
                    .and(&Need::bands(&HISTORY_BANDS))
                    .and(&Need::settings(&[Setting::Outpatient, Setting::Inpatient]));
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: limit,
                });
            }
        }
        Class::DrugCourse | Class::ItemCourse => {
            for (code, _) in members {
                let info = catalog.code(code);
                let Some(days) = info.course_days else {
                    continue;
                };
                if !(1..=31).contains(&days) {
                    continue;
                }
                // n days of a stay, then today after a gap of up to 4 days.
                let mut uses: Vec<(NaiveDate, f64)> = (0..i64::from(days))
                    .map(|k| (today - Duration::days(2 + k), 1.0))
                    .collect();
                uses.push((today, 1.0));
                let mut spread = uses.clone();
                spread
                    .iter_mut()
                    .take(days as usize)
                    .for_each(|u| u.0 -= Duration::days(2));
                if !info.timeline_ok(&uses, Some(class)) || !info.timeline_ok(&spread, Some(class))
                {
                    continue;
                }
                // The earlier days are a stay (住院) at the current hospital: the code
                // must be compliant there too. A per-stay limit needs today in that stay.
                let here: &[Setting] = if info.course_per_stay {
                    &[Setting::Inpatient]
                } else {
                    &[Setting::Outpatient, Setting::Inpatient]
                };
                let need = info
                    .need
                    .and(settings)
                    .and(&Need::bands(&HISTORY_BANDS))
                    .and(&Need::settings(here))
                    .and(&info.need_inpatient_compatible());
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: days,
                });
            }
        }
        Class::ItemDuplicate => {
            let mut pairs: Vec<(&(u32, u32), &u32)> = catalog.pair_points.iter().collect();
            pairs.sort();
            for (&(main, sub), &count) in pairs {
                if count != 1 || main == sub || catalog.pair_points.contains_key(&(sub, main)) {
                    continue;
                }
                let (m, s) = (catalog.code(main), catalog.code(sub));
                if m.kind != Kind::Item || s.kind != Kind::Item {
                    continue;
                }
                if m.surgery_group.is_some() && m.surgery_group == s.surgery_group {
                    continue;
                }
                if !single(main, class, 1.0) || !single(sub, class, 1.0) {
                    continue;
                }
                let need = m
                    .need_without(class)
                    .and(&s.need_without(class))
                    .and(settings)
                    .and(&Need::settings(&[Setting::Outpatient, Setting::Inpatient]));
                out.push(Candidate {
                    code: main,
                    partner: Some(sub),
                    need,
                    forbidden_dx: Vec::new(),
                    n: 1,
                });
            }
        }
        Class::HerbAll | Class::HerbSingle => {
            let other = if class == Class::HerbAll {
                Class::HerbSingle
            } else {
                Class::HerbAll
            };
            for (code, _) in members {
                let info = catalog.code(code);
                if info.kind != Kind::Herb || info.is_in(other) {
                    continue;
                }
                let need = settings.and(&Need::settings(&[
                    Setting::Outpatient,
                    Setting::Inpatient,
                    Setting::Pharmacy,
                ]));
                out.push(Candidate {
                    code,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: 1,
                });
            }
        }
        Class::SurgeryDiscount => {
            let mut groups: std::collections::BTreeMap<&str, Vec<u32>> =
                std::collections::BTreeMap::new();
            for (code, _) in &members {
                let info = catalog.code(*code);
                if let (Some(group), Kind::Item) = (info.surgery_group.as_deref(), info.kind) {
                    groups.entry(group).or_default().push(*code);
                }
            }
            for codes in groups.values() {
                for (i, &a) in codes.iter().enumerate() {
                    for &b in &codes[i + 1..] {
                        if catalog.conflicts(a, b)
                            || !single(a, class, 1.0)
                            || !single(b, class, 1.0)
                        {
                            continue;
                        }
                        let need = catalog
                            .code(a)
                            .need
                            .and(&catalog.code(b).need)
                            .and(settings)
                            .and(&Need::settings(&[Setting::Inpatient]));
                        if need.never || need.sexes == 0 || need.bands == 0 {
                            continue;
                        }
                        out.push(Candidate {
                            code: a,
                            partner: Some(b),
                            need,
                            forbidden_dx: Vec::new(),
                            n: 1,
                        });
                    }
                }
            }
        }
        Class::Readmission | Class::FrequentAdmission | Class::BedBlocking => {
            out = encounter_level(
                settings
                    .and(&Need::settings(&[Setting::Inpatient]))
                    .and(&Need::bands(&HISTORY_BANDS)),
            );
        }
        Class::FrequentOutpatient => {
            out = encounter_level(
                settings
                    .and(&Need::settings(&[Setting::Outpatient]))
                    .and(&Need::bands(&HISTORY_BANDS)),
            );
        }
        Class::TraceReuse => {
            // The drug comes from the trace code taken at injection time.
            out = encounter_level(settings.and(&Need::bands(&HISTORY_BANDS)));
        }
        Class::DeathService => {
            // Any compliant encounter of a person registered dead before it.
            out = encounter_level(settings.and(&Need::any()));
        }
        Class::FrequentPurchase | Class::RepeatPrescription => {
            let back: Vec<i64> = if class == Class::FrequentPurchase {
                if behaviour.purchase_max * behaviour.refill_spacing() >= behaviour.purchase_days {
                    return out; // the window cannot hold that many non-overlapping refills
                }
                (0..=behaviour.purchase_max)
                    .map(|k| k * behaviour.refill_spacing())
                    .collect()
            } else {
                if behaviour.early_refill_max() < 1 {
                    return out;
                }
                vec![0, behaviour.early_refill_max()]
            };
            let uses: Vec<(NaiveDate, f64)> = back
                .iter()
                .map(|k| (today - Duration::days(*k), 1.0))
                .collect();
            for (idx, info) in catalog.codes.iter().enumerate() {
                if info.kind != Kind::Drug
                    || !info.need.dx.is_empty()
                    || !info.timeline_ok(&uses, None)
                {
                    continue;
                }
                let need = info
                    .need
                    .and(settings)
                    .and(&Need::settings(&[Setting::Outpatient, Setting::Pharmacy]))
                    .and(&Need::bands(&HISTORY_BANDS));
                if need.never {
                    continue;
                }
                out.push(Candidate {
                    code: idx as u32,
                    partner: None,
                    need,
                    forbidden_dx: Vec::new(),
                    n: 1,
                });
            }
        }
        // No settlement request carries the evidence of first-line failure: any use
        // of a listed drug is the finding (可疑 at least).
        Class::DrugSecondLine => {
            for (code, _) in members {
                let info = catalog.code(code);
                if info.kind != Kind::Drug {
                    continue;
                }
                out.push(Candidate {
                    code,
                    partner: None,
                    need: info.need_without(class).and(settings),
                    forbidden_dx: Vec::new(),
                    n: 1,
                });
            }
        }
    }
    out
}

impl catalog::CodeInfo {
    /// Contexts whose 住院 variant (same patient, a hospital of the same level) is
    /// also compliant: what a course recipe's history stay needs.
    fn need_inpatient_compatible(&self) -> Need {
        if self.need.settings & (1 << Setting::Inpatient as u8) != 0 {
            Need::any()
        } else {
            Need::never()
        }
    }
}

/// Sets the unit price of line `rx_id` of the current encounter.
fn set_price(draft: &mut Draft, rx_id: &str, pric: f64) {
    if let Some(order) = draft.current.orders.iter_mut().find(|o| o.rx_id == rx_id) {
        order.pric = pric;
    }
}
