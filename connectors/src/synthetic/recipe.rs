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

/// Prepared candidates of every targeted rule.
#[derive(Debug, Default)]
pub(crate) struct Recipes {
    by_rule: HashMap<String, Vec<Candidate>>,
    why_not: HashMap<String, String>,
}

/// Ages whose history (weeks back) stays inside the same band.
const HISTORY_BANDS: [Band; 3] = [Band::Child, Band::Adult, Band::Senior];

impl Recipes {
    /// Candidates for each target.
    pub fn prepare(catalog: &Catalog, params: &Parameters, targets: &[Target]) -> Self {
        let mut recipes = Recipes::default();
        let mut probe = SmallRng::seed_from_u64(0);
        for target in targets {
            let settings = target.settings();
            let list = candidates(catalog, params, target.class, &settings);
            let list: Vec<Candidate> = list
                .into_iter()
                .filter(|c| c.need.pick(&mut probe).is_some())
                .collect();
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
        let cand = list[generator.rng().random_range(0..list.len())].clone();
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
                vec![generator.add_line(&mut draft, None, cand.code, f64::from(cand.n), service, None, true)]
            }
            Class::ItemPeriodic => {
                // `n` earlier uses on distinct days inside the period, one visit each.
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
                let main_price = f64::from(generator.rng().random_range(200_000..800_000u32)) / 100.0;
                let second_price =
                    f64::from(generator.rng().random_range(50_000..(main_price * 80.0) as u32)) / 100.0;
                let main = generator.add_line(&mut draft, None, cand.code, 1.0, service, None, true);
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
                    ids.push(generator.add_line(&mut draft, None, idx, grams, service, Some(rxno.clone()), true));
                }
                ids
            }
            _ => {
                let cnt = generator.clean_count(cand.code);
                vec![generator.add_line(&mut draft, None, cand.code, cnt, service, None, true)]
            }
        };
        generator.fill(&mut draft);
        Some(Injection { draft, violating })
    }
}

/// Every way to break `class` alone in `settings`.
fn candidates(catalog: &Catalog, params: &Parameters, class: Class, settings: &Need) -> Vec<Candidate> {
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
                let Some(breaks) = catalog::violation_need(class, catalog.point(point), params) else {
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
                let Some(cond) = p.condition.as_ref() else { continue };
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
                let cnt = if info.hourly { limit + 6.0 } else { limit + 1.0 };
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
                let Some((limit, period)) = info.periodic else { continue };
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
                let Some(days) = info.course_days else { continue };
                if !(1..=31).contains(&days) {
                    continue;
                }
                // n days of a stay, then today after a gap of up to 4 days.
                let mut uses: Vec<(NaiveDate, f64)> = (0..i64::from(days))
                    .map(|k| (today - Duration::days(2 + k), 1.0))
                    .collect();
                uses.push((today, 1.0));
                let mut spread = uses.clone();
                spread.iter_mut().take(days as usize).for_each(|u| u.0 -= Duration::days(2));
                if !info.timeline_ok(&uses, Some(class)) || !info.timeline_ok(&spread, Some(class)) {
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
            let mut groups: std::collections::BTreeMap<&str, Vec<u32>> = std::collections::BTreeMap::new();
            for (code, _) in &members {
                let info = catalog.code(*code);
                if let (Some(group), Kind::Item) = (info.surgery_group.as_deref(), info.kind) {
                    groups.entry(group).or_default().push(*code);
                }
            }
            for codes in groups.values() {
                for (i, &a) in codes.iter().enumerate() {
                    for &b in &codes[i + 1..] {
                        if catalog.conflicts(a, b) || !single(a, class, 1.0) || !single(b, class, 1.0) {
                            continue;
                        }
                        let need = catalog
                            .code(a)
                            .need
                            .and(&catalog.code(b).need)
                            .and(settings)
                            .and(&Need::settings(&[Setting::Outpatient, Setting::Inpatient]));
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
