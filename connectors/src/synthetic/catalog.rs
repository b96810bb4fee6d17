//! The generator's reading of the knowledge base: for every national code the KB
//! knows, the rule classes it is in (through the KB's own lookup, so 12-character
//! prefix matches count), the contexts in which using it is compliant, and the
//! structural limits (per-day count, payment course, period, surgical group,
//! duplicate-charge partners) a compliant encounter must respect.
//!
//! This is an independent statement of what each national class forbids, written
//! from the classes' published detection logic (DOMAIN.md §1.5, Appendix A) — it
//! shares no code with the rule SQL, which is what makes the labels worth checking
//! the rules against.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use fundwatch_kb::{KnowledgeBase, KnowledgePoint};
use fundwatch_rules::Parameters;

use super::context::{
    Band, Context, Insutype, Need, Setting, Sex, YEAR_DAYS, bands_outside, bands_within,
};
use super::world::AREAS;

/// The national rule classes the generator has recipes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Class {
    DrugSex,
    ItemSex,
    DrugChildOnly,
    DrugChildLimited,
    ItemChildOnly,
    ItemAge,
    DrugWorkInjury,
    DrugMaternity,
    DrugSetting,
    DrugLevel,
    ItemDuplicate,
    ItemFrequency,
    SurgeryDiscount,
    HerbSingle,
    HerbAll,
    InternetDrug,
    DrugCourse,
    ItemCourse,
    ItemPeriodic,
    DrugIndication,
    DrugSecondLine,
    // Behaviour classes: no knowledge points, decided from the person's history.
    Readmission,
    FrequentOutpatient,
    FrequentPurchase,
    FrequentAdmission,
    RepeatPrescription,
    BedBlocking,
    TraceReuse,
    /// 死亡后就医: decided from the person-status table, not from history.
    DeathService,
}

impl Class {
    /// Every class with its national name (the KB's `rule_class`, the rule's `class`).
    pub const ALL: [(Class, &'static str); 29] = [
        (Class::DrugSex, "药品区分性别使用"),
        (Class::ItemSex, "医疗服务项目区分性别使用"),
        (Class::DrugChildOnly, "药品儿童专用"),
        (Class::DrugChildLimited, "药品限儿童使用"),
        (Class::ItemChildOnly, "医疗服务项目儿童专用"),
        (Class::ItemAge, "医疗服务项目限年龄"),
        (Class::DrugWorkInjury, "药品限工伤保险"),
        (Class::DrugMaternity, "药品限生育保险"),
        (Class::DrugSetting, "药品限就医方式"),
        (Class::DrugLevel, "药品限医疗机构级别"),
        (Class::ItemDuplicate, "医疗服务项目重复收费"),
        (Class::ItemFrequency, "医疗服务项目限定频次"),
        (Class::SurgeryDiscount, "手术项目未按规定折价收费"),
        (Class::HerbSingle, "中药饮片单方使用不予支付"),
        (Class::HerbAll, "中药饮片单复方均不予支付"),
        (Class::InternetDrug, "超互联网医院药品支付范围"),
        (Class::DrugCourse, "药品限支付疗程"),
        (Class::ItemCourse, "医疗服务项目限支付疗程"),
        (Class::ItemPeriodic, "医疗服务项目周期超频次"),
        (Class::DrugIndication, "药品限适应症"),
        (Class::DrugSecondLine, "药品限二线使用"),
        (Class::Readmission, "分解住院"),
        (Class::FrequentOutpatient, "频繁门诊"),
        (Class::FrequentPurchase, "频繁购药"),
        (Class::FrequentAdmission, "频繁住院"),
        (Class::RepeatPrescription, "重复开药"),
        (Class::BedBlocking, "挂床住院"),
        (Class::TraceReuse, "药品追溯码重复"),
        (Class::DeathService, "死亡后就医"),
    ];

    /// The class of a national class name.
    pub fn from_name(name: &str) -> Option<Class> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// The national class name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, n)| n)
    }
}

/// What a national code is, by its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 西药/中成药: `X…` (23) or `Z…` (20).
    Drug,
    /// 中药饮片: `T…`.
    Herb,
    /// 医疗服务项目: 15 digits.
    Item,
    /// 医用耗材: `C…`.
    Consumable,
}

impl Kind {
    fn of(code: &str) -> Kind {
        match code.chars().next() {
            Some('X') | Some('Z') => Kind::Drug,
            Some('T') => Kind::Herb,
            Some('C') => Kind::Consumable,
            _ => Kind::Item,
        }
    }

    /// `hilist_type` as sent.
    pub fn hilist_type(self) -> &'static str {
        match self {
            Kind::Drug => "101",
            Kind::Herb => "102",
            Kind::Item => "201",
            Kind::Consumable => "301",
        }
    }
}

/// A code's membership in one class: the knowledge point in force and what it needs.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    /// The class (`None`: a class the generator has no reading of).
    pub class: Option<Class>,
    /// The point in force on the reference day.
    pub point: u32,
    /// Contexts in which the use is compliant with this class.
    pub need: Need,
}

/// One national code and everything the generator knows about it.
#[derive(Debug, Clone)]
pub(crate) struct CodeInfo {
    pub code: String,
    pub name: String,
    pub kind: Kind,
    pub memberships: Vec<Membership>,
    /// All memberships' needs at once.
    pub need: Need,
    /// 限定频次: at most this many units per day.
    pub per_day: Option<f64>,
    /// 限定频次 counted in hours (units per day up to the pack's hourly cap).
    pub hourly: bool,
    /// 手术折价: the surgical group.
    pub surgery_group: Option<String>,
    /// 支付疗程: at most this many days of use.
    pub course_days: Option<u32>,
    /// 周期超频次: at most `.0` uses in any `.1` days.
    pub periodic: Option<(u32, u32)>,
    /// 支付疗程 counted per stay ("单次住院…").
    pub course_per_stay: bool,
    /// Knowledge rows whose uses are counted together across codes (周期超频次,
    /// 支付疗程): two codes of one row in an event are two uses.
    pub counted_rows: Vec<u32>,
    /// A drug for children: on a 儿童 list, or with an indication that names a
    /// child's age ("2月龄及以上", "1岁至14岁").
    pub pediatric: bool,
}

impl CodeInfo {
    /// The memberships' needs except those of `skip`.
    pub fn need_without(&self, skip: Class) -> Need {
        self.memberships
            .iter()
            .filter(|m| m.class != Some(skip))
            .fold(Need::any(), |acc, m| acc.and(&m.need))
    }

    /// Whether the code is in `class`.
    pub fn is_in(&self, class: Class) -> bool {
        self.memberships.iter().any(|m| m.class == Some(class))
    }

    /// The point of `class` the code is under, if any.
    pub fn point_of(&self, class: Class) -> Option<u32> {
        self.memberships
            .iter()
            .find(|m| m.class == Some(class))
            .map(|m| m.point)
    }

    /// Whether using the code on the days of `uses` (date, count) keeps every
    /// structural limit except those of `skip`.
    pub fn timeline_ok(&self, uses: &[(NaiveDate, f64)], skip: Option<Class>) -> bool {
        let mut per_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        for (day, cnt) in uses {
            *per_day.entry(*day).or_default() += cnt;
        }
        if skip != Some(Class::ItemFrequency)
            && let Some(limit) = self.per_day
            && per_day.values().any(|c| *c > limit)
        {
            return false;
        }
        let days: Vec<NaiveDate> = per_day.keys().copied().collect();
        if skip != Some(Class::DrugCourse)
            && skip != Some(Class::ItemCourse)
            && let Some(limit) = self.course_days
            && let (Some(first), Some(last)) = (days.first(), days.last())
        {
            // Both readings of "使用…的日期总计超过限制天数": distinct days, and the span
            // from the first use.
            let span = (*last - *first).num_days() + 1;
            if days.len() as u32 > limit || span > i64::from(limit) {
                return false;
            }
        }
        if skip != Some(Class::ItemPeriodic)
            && let Some((limit, period)) = self.periodic
        {
            for (i, start) in days.iter().enumerate() {
                let in_window: f64 = days[i..]
                    .iter()
                    .take_while(|d| (**d - *start).num_days() < i64::from(period))
                    .map(|d| per_day[d])
                    .sum();
                if in_window > f64::from(limit) {
                    return false;
                }
            }
        }
        true
    }
}

/// A diagnosis requirement: any ICD code starting with one of `prefixes`.
#[derive(Debug, Clone)]
pub(crate) struct DxList {
    pub prefixes: Vec<String>,
    /// Indexes into [`Catalog::icd`] of the codes that satisfy it.
    pub codes: Vec<u32>,
}

impl DxList {
    /// Whether `code` satisfies the requirement (case-insensitively, so a violation
    /// never depends on how a rule compares case).
    pub fn matches(&self, code: &str) -> bool {
        let code = code.to_ascii_uppercase();
        self.prefixes
            .iter()
            .any(|p| code.starts_with(&p.to_ascii_uppercase()))
    }
}

/// Compliant candidates for one context.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    pub drugs: Vec<u32>,
    pub items: Vec<u32>,
}

/// Everything the generator knows about the knowledge base.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub kb: Arc<KnowledgeBase>,
    /// The day knowledge is read on; every service date is on or after it.
    pub reference_day: NaiveDate,
    pub codes: Vec<CodeInfo>,
    /// Duplicate-charge partners of each code (both directions).
    pub partners: HashMap<u32, Vec<u32>>,
    /// (main, sub) → number of in-force pair points for it.
    pub pair_points: HashMap<(u32, u32), u32>,
    pub dx_lists: Vec<DxList>,
    /// ICD-10 codes and names, sorted by code.
    pub icd: Vec<(String, String)>,
    pools: std::sync::Mutex<HashMap<Context, Arc<Pool>>>,
}

/// Whether `point` is in force on `day`.
pub(crate) fn in_force(point: &KnowledgePoint, day: NaiveDate) -> bool {
    point.effective_from <= day && point.effective_to.is_none_or(|to| day < to)
}

/// Days since 1970-01-01, as the KB's lookups take them.
pub(crate) fn epoch_day(day: NaiveDate) -> i32 {
    (day - NaiveDate::default()).num_days() as i32
}

/// The last day any knowledge point starts or stops applying.
pub(crate) fn last_knowledge_change(kb: &KnowledgeBase) -> Option<NaiveDate> {
    let mut last: Option<NaiveDate> = None;
    for class in kb.rule_classes() {
        for (_, point) in kb.points_of_class(&class) {
            for day in std::iter::once(point.effective_from).chain(point.effective_to) {
                last = Some(last.map_or(day, |l| l.max(day)));
            }
        }
    }
    last
}

impl Catalog {
    /// Reads the KB as it stands on `reference_day`.
    pub fn build(
        kb: Arc<KnowledgeBase>,
        params: &Parameters,
        reference_day: NaiveDate,
        icd: Vec<(String, String)>,
    ) -> Self {
        let mut icd = icd;
        icd.sort();
        icd.dedup_by(|a, b| a.0 == b.0);
        let kb_classes = kb.rule_classes();

        // Every code the KB names, with a display name.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut pair_codes: Vec<(u32, Vec<String>, Vec<String>)> = Vec::new();
        for class_name in &kb_classes {
            let class = Class::from_name(class_name);
            for (idx, point) in kb.points_of_class(class_name) {
                if !in_force(point, reference_day) {
                    continue;
                }
                let (main_name, sub_name) = split_pair_name(point);
                for code in &point.codes {
                    names
                        .entry(code.clone())
                        .or_insert_with(|| main_name.clone());
                }
                for code in &point.partner_codes {
                    names
                        .entry(code.clone())
                        .or_insert_with(|| sub_name.clone());
                }
                if class == Some(Class::ItemDuplicate) {
                    pair_codes.push((idx, point.codes.clone(), point.partner_codes.clone()));
                }
            }
        }

        let day = epoch_day(reference_day);
        let class_ids: Vec<(Option<Class>, String, _)> = kb_classes
            .iter()
            .filter_map(|name| {
                kb.class_id(name)
                    .map(|id| (Class::from_name(name), name.clone(), id))
            })
            .collect();

        let mut dx_lists: Vec<DxList> = Vec::new();
        let mut dx_ids: HashMap<Vec<String>, u32> = HashMap::new();
        let mut codes = Vec::with_capacity(names.len());
        let mut index = HashMap::with_capacity(names.len());
        for (code, name) in names {
            let kind = Kind::of(&code);
            let mut info = CodeInfo {
                code: code.clone(),
                name,
                kind,
                memberships: Vec::new(),
                need: Need::any(),
                per_day: None,
                hourly: false,
                surgery_group: None,
                course_days: None,
                periodic: None,
                course_per_stay: false,
                counted_rows: Vec::new(),
                pediatric: false,
            };
            for (class, _, id) in &class_ids {
                if *class == Some(Class::ItemDuplicate) {
                    continue; // pairs: below
                }
                let Some(point_idx) = kb.lookup(*id, &code, day) else {
                    continue;
                };
                let point = kb.point(point_idx);
                let need = match class {
                    Some(class) => {
                        let mut need = compliance_need(*class, point, params);
                        if let Some(prefixes) = dx_prefixes(*class, point) {
                            let id = *dx_ids.entry(prefixes.clone()).or_insert_with(|| {
                                dx_lists.push(resolve_dx(&prefixes, &icd));
                                (dx_lists.len() - 1) as u32
                            });
                            if dx_lists[id as usize].codes.is_empty() {
                                need.never = true;
                            } else {
                                need.dx.push(id);
                            }
                        }
                        structural_facts(*class, point, &mut info);
                        if matches!(
                            class,
                            Class::ItemPeriodic | Class::DrugCourse | Class::ItemCourse
                        ) {
                            info.counted_rows.push(point_idx);
                        }
                        info.pediatric |= match class {
                            Class::DrugChildOnly | Class::DrugChildLimited => true,
                            Class::DrugIndication => point.condition.as_ref().is_some_and(|c| {
                                c.age_max_years.is_some_and(|a| a <= 18.0)
                                    || c.age_min_years.is_some_and(|a| a < 1.0)
                            }),
                            _ => false,
                        };
                        need
                    }
                    // A class the generator cannot read: keep its codes out of
                    // compliant traffic.
                    None => Need::never(),
                };
                info.memberships.push(Membership {
                    class: *class,
                    point: point_idx,
                    need,
                });
            }
            if kind == Kind::Herb {
                // The KB lists only herbs that are not paid (alone or at all); a
                // compliant herbal prescription needs a herb the KB does not know.
                info.memberships.push(Membership {
                    class: None,
                    point: u32::MAX,
                    need: Need::never(),
                });
            }
            info.need = info
                .memberships
                .iter()
                .fold(Need::any(), |acc, m| acc.and(&m.need));
            index.insert(code, codes.len() as u32);
            codes.push(info);
        }

        let mut partners: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut pair_points: HashMap<(u32, u32), u32> = HashMap::new();
        for (point_idx, mains, subs) in pair_codes {
            for main in &mains {
                for sub in &subs {
                    let (Some(&m), Some(&s)) = (index.get(main), index.get(sub)) else {
                        continue;
                    };
                    partners.entry(m).or_default().push(s);
                    partners.entry(s).or_default().push(m);
                    *pair_points.entry((m, s)).or_default() += 1;
                    let membership = Membership {
                        class: Some(Class::ItemDuplicate),
                        point: point_idx,
                        need: Need::any(),
                    };
                    for c in [m, s] {
                        let info = &mut codes[c as usize];
                        if !info.is_in(Class::ItemDuplicate) {
                            info.memberships.push(membership.clone());
                        }
                    }
                }
            }
        }
        for list in partners.values_mut() {
            list.sort_unstable();
            list.dedup();
        }

        Self {
            kb,
            reference_day,
            codes,
            partners,
            pair_points,
            dx_lists,
            icd,
            pools: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The code's entry.
    pub fn code(&self, idx: u32) -> &CodeInfo {
        &self.codes[idx as usize]
    }

    /// The knowledge point `idx`.
    pub fn point(&self, idx: u32) -> &KnowledgePoint {
        self.kb.point(idx)
    }

    /// Whether `a` and `b` form a duplicate-charge pair (either way round).
    pub fn conflicts(&self, a: u32, b: u32) -> bool {
        self.partners
            .get(&a)
            .is_some_and(|list| list.binary_search(&b).is_ok())
    }

    /// Codes (drugs and service items) whose use is compliant in `ctx`.
    pub fn pool(&self, ctx: &Context) -> Arc<Pool> {
        let mut pools = match self.pools.lock() {
            Ok(guard) => guard,
            // A panic elsewhere while holding the lock leaves a valid cache.
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(pools.entry(*ctx).or_insert_with(|| {
            let mut pool = Pool::default();
            // Children get children's drugs (the lists' 儿童 classes) and no
            // sex-specific items: compliant is not enough to be plausible.
            let minor = matches!(ctx.band, Band::Newborn | Band::Infant | Band::Child);
            for (i, info) in self.codes.iter().enumerate() {
                if !info.need.allows(ctx) {
                    continue;
                }
                if minor
                    && match info.kind {
                        Kind::Drug => !info.pediatric,
                        _ => info.is_in(Class::ItemSex),
                    }
                {
                    continue;
                }
                match info.kind {
                    Kind::Drug => pool.drugs.push(i as u32),
                    Kind::Item => pool.items.push(i as u32),
                    Kind::Herb | Kind::Consumable => {}
                }
            }
            Arc::new(pool)
        }))
    }

    /// Codes of `class` on the reference day, with the point each is under.
    pub fn members(&self, class: Class) -> Vec<(u32, u32)> {
        self.codes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.point_of(class).map(|p| (i as u32, p)))
            .collect()
    }
}

/// Item names of a pair point (`A×B` in the national JSON).
fn split_pair_name(point: &KnowledgePoint) -> (String, String) {
    if let Some(partner) = &point.partner_name {
        let main = point
            .item_name
            .split('×')
            .next()
            .unwrap_or(&point.item_name)
            .to_string();
        return (main, partner.clone());
    }
    match point.item_name.split_once('×') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (point.item_name.clone(), point.item_name.clone()),
    }
}

fn resolve_dx(prefixes: &[String], icd: &[(String, String)]) -> DxList {
    let mut found = BTreeSet::new();
    for prefix in prefixes {
        if prefix.is_empty() {
            continue;
        }
        let start = icd.partition_point(|(code, _)| code.as_str() < prefix.as_str());
        for (i, (code, _)) in icd.iter().enumerate().skip(start) {
            if !code.starts_with(prefix.as_str()) {
                break;
            }
            found.insert(i as u32);
        }
    }
    DxList {
        prefixes: prefixes.to_vec(),
        codes: found.into_iter().collect(),
    }
}

/// The diagnosis prefixes a compliant use of an indication-limited drug needs.
fn dx_prefixes(class: Class, point: &KnowledgePoint) -> Option<Vec<String>> {
    if class != Class::DrugIndication {
        return None;
    }
    let cond = point.condition.as_ref()?;
    if cond.dx_prefixes.is_empty() {
        return None;
    }
    let mut prefixes = cond.dx_prefixes.clone();
    prefixes.sort();
    prefixes.dedup();
    Some(prefixes)
}

/// The largest and smallest value of parameter `name` over the demo's 统筹区.
pub(crate) fn param_range(params: &Parameters, name: &str, default: f64) -> (f64, f64) {
    let values: Vec<f64> = AREAS
        .iter()
        .map(|a| params.get(name, a.poolarea).unwrap_or(default))
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// The age object of a child-limited point: the largest age in days it allows, as
/// (strictest over 统筹区, most lenient over 统筹区).
pub(crate) fn child_max_days(point: &KnowledgePoint, params: &Parameters) -> (f64, f64) {
    let text = format!(
        "{} {}",
        point.limit_value.as_deref().unwrap_or(""),
        point.item_name
    );
    if text.contains("新生儿") {
        param_range(params, "newborn_max_age_days", 28.0)
    } else if text.contains('婴') {
        let (lo, hi) = param_range(params, "infant_max_age_years", 3.0);
        (lo * YEAR_DAYS, hi * YEAR_DAYS)
    } else {
        let (lo, hi) = param_range(params, "child_max_age_years", 18.0);
        (lo * YEAR_DAYS, hi * YEAR_DAYS)
    }
}

/// Condition age range in days (inclusive completed years), shrunk by a margin.
fn condition_days(point: &KnowledgePoint) -> Option<(f64, f64)> {
    let cond = point.condition.as_ref()?;
    if cond.age_min_years.is_none() && cond.age_max_years.is_none() {
        return None;
    }
    let min = cond.age_min_years.map_or(0.0, |y| y * YEAR_DAYS);
    let max = cond
        .age_max_years
        .map_or(f64::INFINITY, |y| (y + 1.0) * YEAR_DAYS);
    Some((min, max))
}

fn condition_sex(point: &KnowledgePoint) -> Option<Sex> {
    match point.condition.as_ref()?.sex.as_deref()? {
        "1" | "男" => Some(Sex::Male),
        "2" | "女" => Some(Sex::Female),
        _ => None,
    }
}

fn condition_settings(point: &KnowledgePoint) -> Option<Vec<Setting>> {
    let cond = point.condition.as_ref()?;
    if cond.settings.is_empty() {
        return None;
    }
    let mut settings = Vec::new();
    for s in &cond.settings {
        if s.contains("住院") {
            settings.push(Setting::Inpatient);
        }
        if s.contains("门诊") {
            settings.push(Setting::Outpatient);
        }
    }
    Some(settings)
}

/// The sex a sex-limited point allows.
pub(crate) fn limit_sex(point: &KnowledgePoint) -> Option<Sex> {
    let value = point.limit_value.as_deref().unwrap_or("");
    if value.contains('女') {
        Some(Sex::Female)
    } else if value.contains('男') {
        Some(Sex::Male)
    } else {
        condition_sex(point)
    }
}

/// The minimum institution level of a level-limited point.
pub(crate) fn limit_level(point: &KnowledgePoint) -> Option<u8> {
    let value = point.limit_value.as_deref().unwrap_or("");
    if value.contains('三') || value.contains('3') {
        Some(3)
    } else if value.contains('二') || value.contains('2') {
        Some(2)
    } else if value.contains('一') || value.contains('1') {
        Some(1)
    } else {
        None
    }
}

/// The working-age range in days: (latest lower bound, earliest upper bound) — the
/// strict reading — and (earliest lower, latest upper) — the lenient one.
fn working_age_days(params: &Parameters) -> ((f64, f64), (f64, f64)) {
    let (min_lo, min_hi) = param_range(params, "working_age_min_years", 16.0);
    let (male_lo, male_hi) = param_range(params, "working_age_max_years_male", 60.0);
    let (fem_lo, fem_hi) = param_range(params, "working_age_max_years_female", 55.0);
    (
        (min_hi * YEAR_DAYS, male_lo.min(fem_lo) * YEAR_DAYS),
        // The retirement reform raises the bounds stepwise (DOMAIN.md A.15): leave
        // five years of room above the pack's values.
        (min_lo * YEAR_DAYS, (male_hi.max(fem_hi) + 5.0) * YEAR_DAYS),
    )
}

/// The contexts in which using a code of `class` under `point` is compliant.
fn compliance_need(class: Class, point: &KnowledgePoint, params: &Parameters) -> Need {
    match class {
        Class::DrugSex | Class::ItemSex => match limit_sex(point) {
            Some(sex) => Need::sex(sex),
            None => Need::never(),
        },
        Class::DrugChildOnly | Class::DrugChildLimited | Class::ItemChildOnly => {
            let (strict_max, _) = child_max_days(point, params);
            let (min, max) = match condition_days(point) {
                Some((lo, hi)) => (lo, hi.min(strict_max)),
                None => (0.0, strict_max),
            };
            let mut need = Need::bands(&bands_within(min, max));
            if let Some(sex) = condition_sex(point) {
                need = need.and(&Need::sex(sex));
            }
            need
        }
        Class::ItemAge => {
            let ((lo, hi), _) = working_age_days(params);
            Need::bands(&bands_within(lo, hi))
        }
        Class::DrugWorkInjury => Need::insutypes(&[Insutype::WorkInjury]),
        Class::DrugMaternity => Need::insutypes(&[Insutype::Maternity]),
        Class::DrugSetting => {
            let value = format!(
                "{}{}",
                point.limit_value.as_deref().unwrap_or(""),
                point.constraint_text
            );
            if value.contains("住院") {
                Need::settings(&[Setting::Inpatient])
            } else {
                Need::never()
            }
        }
        Class::DrugLevel => match limit_level(point) {
            Some(level) => Need::levels(&(level..=3).collect::<Vec<_>>()),
            None => Need::never(),
        },
        Class::InternetDrug => {
            Need::settings(&[Setting::Outpatient, Setting::Inpatient, Setting::Pharmacy])
        }
        Class::DrugIndication => {
            let Some(cond) = point.condition.as_ref() else {
                return Need::never();
            };
            if !cond.dx_decidable || cond.needs_evidence || cond.dx_prefixes.is_empty() {
                return Need::never();
            }
            indication_context(point)
        }
        // No national evidence of first-line failure travels in a settlement request.
        Class::DrugSecondLine => Need::never(),
        Class::HerbSingle | Class::HerbAll => Need::never(),
        Class::ItemDuplicate
        | Class::ItemFrequency
        | Class::SurgeryDiscount
        | Class::DrugCourse
        | Class::ItemCourse
        | Class::ItemPeriodic => Need::any(),
        // Behaviour classes have no knowledge points; a KB that had some would be
        // a new reading the generator does not have.
        Class::Readmission
        | Class::FrequentOutpatient
        | Class::FrequentPurchase
        | Class::FrequentAdmission
        | Class::RepeatPrescription
        | Class::BedBlocking
        | Class::TraceReuse
        | Class::DeathService => Need::never(),
    }
}

/// The non-diagnosis parts of an indication (sex, age, setting).
pub(crate) fn indication_context(point: &KnowledgePoint) -> Need {
    let mut need = Need::any();
    if let Some(sex) = condition_sex(point) {
        need = need.and(&Need::sex(sex));
    }
    if let Some((lo, hi)) = condition_days(point) {
        need = need.and(&Need::bands(&bands_within(lo, hi)));
    }
    if let Some(settings) = condition_settings(point) {
        need = need.and(&Need::settings(&settings));
    }
    need
}

/// The contexts that break `class`'s limit under `point` (context classes only).
pub(crate) fn violation_need(
    class: Class,
    point: &KnowledgePoint,
    params: &Parameters,
) -> Option<Need> {
    Some(match class {
        Class::DrugSex | Class::ItemSex => match limit_sex(point)? {
            Sex::Male => Need::sex(Sex::Female),
            Sex::Female => Need::sex(Sex::Male),
        },
        Class::DrugChildOnly | Class::DrugChildLimited | Class::ItemChildOnly => {
            let (_, lenient_max) = child_max_days(point, params);
            let mut bands = bands_outside(0.0, lenient_max);
            if let Some((lo, hi)) = condition_days(point) {
                let outside = bands_outside(lo, hi);
                bands.retain(|b| outside.contains(b));
            }
            bands.retain(|b| matches!(b, Band::Adult | Band::Senior));
            Need::bands(&bands)
        }
        Class::ItemAge => {
            let (_, (lo, hi)) = working_age_days(params);
            let mut bands = bands_outside(lo, hi);
            bands.retain(|b| *b == Band::Senior);
            Need::bands(&bands)
        }
        Class::DrugWorkInjury | Class::DrugMaternity => {
            Need::insutypes(&[Insutype::Employee, Insutype::Resident])
        }
        // Only where the published limit itself names 住院 (the text alone may add
        // conditions no setting decides).
        Class::DrugSetting
            if point
                .limit_value
                .as_deref()
                .is_some_and(|v| v.contains("住院")) =>
        {
            Need::settings(&[Setting::Outpatient, Setting::Pharmacy])
        }
        Class::DrugLevel => {
            let level = limit_level(point)?;
            if level <= 1 {
                return None;
            }
            Need::levels(&(1..level).collect::<Vec<_>>())
        }
        Class::InternetDrug => Need::settings(&[Setting::Internet]),
        _ => return None,
    })
}

/// Structural limits of a code read from its point of `class`.
fn structural_facts(class: Class, point: &KnowledgePoint, info: &mut CodeInfo) {
    match class {
        Class::ItemFrequency => {
            let unit = point.limit_value.as_deref().unwrap_or("");
            let limit = point.limit_num.unwrap_or(1.0);
            info.hourly = unit.contains('时');
            info.per_day = Some(if info.hourly { limit.min(24.0) } else { limit });
        }
        Class::SurgeryDiscount => {
            info.surgery_group = Some(
                point
                    .limit_value
                    .clone()
                    .unwrap_or_else(|| point.kp_id.clone()),
            );
        }
        Class::DrugCourse | Class::ItemCourse => {
            info.course_days = course_days(point);
            info.course_per_stay = point.constraint_text.contains("单次");
        }
        Class::ItemPeriodic => {
            if let (Some(limit), Some(period)) = (point.limit_num, point.period_days) {
                info.periodic = Some((limit as u32, period as u32));
            }
        }
        _ => {}
    }
}

/// The payment course of a point in days: its number, else read from the text
/// ("支付不超过14天", "一年").
pub(crate) fn course_days(point: &KnowledgePoint) -> Option<u32> {
    if let Some(days) = point.limit_num.filter(|d| *d > 0.0) {
        return Some(days as u32);
    }
    let text = format!(
        "{} {}",
        point.limit_value.as_deref().unwrap_or(""),
        point.constraint_text
    );
    if let Some(pos) = text.find('天') {
        let digits: String = text[..pos]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if let Ok(days) = digits.parse() {
            return Some(days);
        }
    }
    if text.contains("一年") {
        return Some(365);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> CodeInfo {
        CodeInfo {
            code: "003402000050000".into(),
            name: "手功能评定".into(),
            kind: Kind::Item,
            memberships: Vec::new(),
            need: Need::any(),
            per_day: Some(1.0),
            hourly: false,
            surgery_group: None,
            course_days: Some(90),
            periodic: Some((1, 14)),
            course_per_stay: false,
            counted_rows: Vec::new(),
            pediatric: false,
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 9, d).unwrap_or_default()
    }

    #[test]
    fn timelines_respect_every_structural_limit_but_the_skipped_one() {
        let code = info();
        // Two uses 14 days apart: a new period (1 per 14 days).
        assert!(code.timeline_ok(&[(day(1), 1.0), (day(15), 1.0)], None));
        // 13 days apart: the second use is in the same period.
        assert!(!code.timeline_ok(&[(day(1), 1.0), (day(14), 1.0)], None));
        assert!(code.timeline_ok(&[(day(1), 1.0), (day(14), 1.0)], Some(Class::ItemPeriodic)));
        // Two units a day: over the daily limit (and a second use in the period).
        assert!(!code.timeline_ok(&[(day(3), 2.0)], Some(Class::ItemPeriodic)));
        assert!(!code.timeline_ok(&[(day(3), 2.0)], Some(Class::ItemFrequency)));
    }

    #[test]
    fn course_days_come_from_the_number_or_the_text() {
        let mut point = KnowledgePoint {
            kp_id: "k".into(),
            rule_class: "医疗服务项目限支付疗程".into(),
            batch: "batch_08".into(),
            item_name: "手功能评定".into(),
            codes: vec![],
            partner_name: None,
            partner_codes: vec![],
            limit_value: None,
            limit_num: None,
            period_days: None,
            constraint_text: "总时间不超过90天，评定间隔时间不短于14天。".into(),
            detect_logic: String::new(),
            condition: None,
            effective_from: day(1),
            effective_to: None,
            supersedes: None,
            source_file: String::new(),
            source_row: 1,
        };
        assert_eq!(course_days(&point), Some(90));
        point.constraint_text = "支付不超过一年，每周最多支付一次。".into();
        assert_eq!(course_days(&point), Some(365));
        point.limit_num = Some(30.0);
        assert_eq!(course_days(&point), Some(30));
    }
}
