//! Encounter contexts and what knowledge needs of them.
//!
//! A [`Context`] is the handful of facts the context rule classes read: the patient's
//! sex and age, the 险种, the setting (门诊 / 互联网门诊 / 住院 / 药店) and the institution
//! level. A [`Need`] is a set of contexts, kept as bit masks: what a code's knowledge
//! allows (for compliant use) or what breaks one class's limit (for an injected
//! violation). Intersecting needs and picking a context inside the result is how the
//! generator makes every line of an event compliant with every class its code is in.

use rand::Rng;
use rand::rngs::SmallRng;

/// Patient sex (`gend` 1 男, 2 女).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Sex {
    /// 男.
    Male = 0,
    /// 女.
    Female = 1,
}

impl Sex {
    pub const ALL: [Sex; 2] = [Sex::Male, Sex::Female];

    /// `gend` as sent.
    pub fn gend(self) -> &'static str {
        match self {
            Sex::Male => "1",
            Sex::Female => "2",
        }
    }
}

/// Age bands patients are drawn from. Every band lies well inside or well outside
/// each age limit of the national lists and the pack's parameters (新生儿 28 days,
/// 婴幼儿 3 years, 儿童 14/18 years, working age 16–55/60), so a rule's choice of `<`
/// or `<=` at a threshold never decides a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Band {
    /// 3–25 days.
    Newborn = 0,
    /// 3 months – 1 year 11 months.
    Infant = 1,
    /// 4–11 years.
    Child = 2,
    /// 20–54 years.
    Adult = 3,
    /// 66–88 years.
    Senior = 4,
}

/// Days per year used to turn year limits into day ranges (bands keep months of
/// margin, so leap-day precision does not matter).
pub(crate) const YEAR_DAYS: f64 = 365.25;

impl Band {
    pub const ALL: [Band; 5] = [
        Band::Newborn,
        Band::Infant,
        Band::Child,
        Band::Adult,
        Band::Senior,
    ];

    /// Inclusive age range in days.
    pub fn days(self) -> (i64, i64) {
        let y = |years: f64| (years * YEAR_DAYS) as i64;
        match self {
            Band::Newborn => (3, 25),
            Band::Infant => (90, y(2.0) - 30),
            Band::Child => (y(4.0), y(11.9)),
            Band::Adult => (y(20.0), y(54.5)),
            Band::Senior => (y(66.0), y(88.0)),
        }
    }

    fn weight(self) -> u32 {
        match self {
            Band::Newborn => 2,
            Band::Infant => 5,
            Band::Child => 13,
            Band::Adult => 50,
            Band::Senior => 30,
        }
    }
}

/// 险种.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Insutype {
    /// 310 职工基本医疗保险.
    Employee = 0,
    /// 390 城乡居民基本医疗保险.
    Resident = 1,
    /// 410 工伤保险.
    WorkInjury = 2,
    /// 510 生育保险.
    Maternity = 3,
}

impl Insutype {
    pub const ALL: [Insutype; 4] = [
        Insutype::Employee,
        Insutype::Resident,
        Insutype::WorkInjury,
        Insutype::Maternity,
    ];

    /// `insutype` as sent.
    pub fn code(self) -> &'static str {
        match self {
            Insutype::Employee => "310",
            Insutype::Resident => "390",
            Insutype::WorkInjury => "410",
            Insutype::Maternity => "510",
        }
    }

    fn weight(self) -> u32 {
        match self {
            Insutype::Employee => 55,
            Insutype::Resident => 35,
            Insutype::WorkInjury => 5,
            Insutype::Maternity => 5,
        }
    }
}

/// Where the care happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Setting {
    /// 门诊 (`med_mdtrt_type` 1, `med_type` 11).
    Outpatient = 0,
    /// 互联网门诊 (`med_mdtrt_type` 1, `med_type` 1102: the pack's `internet_med_type`).
    Internet = 1,
    /// 住院 (`med_mdtrt_type` 2, `med_type` 21).
    Inpatient = 2,
    /// 定点药店购药 (`med_mdtrt_type` 3, `med_type` 41).
    Pharmacy = 3,
}

impl Setting {
    pub const ALL: [Setting; 4] = [
        Setting::Outpatient,
        Setting::Internet,
        Setting::Inpatient,
        Setting::Pharmacy,
    ];

    /// `med_mdtrt_type` as sent.
    pub fn med_mdtrt_type(self) -> &'static str {
        match self {
            Setting::Outpatient | Setting::Internet => "1",
            Setting::Inpatient => "2",
            Setting::Pharmacy => "3",
        }
    }

    /// `med_type` as sent.
    pub fn med_type(self) -> &'static str {
        match self {
            Setting::Outpatient => "11",
            Setting::Internet => "1102",
            Setting::Inpatient => "21",
            Setting::Pharmacy => "41",
        }
    }

    /// The `trig_scen` values that fit the setting: 门诊 2 (收费登记), 6 (结算),
    /// 7 (预结算); 住院 4 (收费登记), 5 (执行医嘱), 8 (结算), 9 (预结算); 购药 10.
    pub fn scenarios(self) -> &'static [u8] {
        match self {
            Setting::Outpatient | Setting::Internet => &[2, 6, 7],
            Setting::Inpatient => &[4, 5, 8, 9],
            Setting::Pharmacy => &[10],
        }
    }

    fn weight(self) -> u32 {
        match self {
            Setting::Outpatient => 50,
            Setting::Internet => 5,
            Setting::Inpatient => 30,
            Setting::Pharmacy => 15,
        }
    }
}

/// The facts of one encounter that context rule classes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Context {
    pub sex: Sex,
    pub band: Band,
    pub insutype: Insutype,
    pub setting: Setting,
    /// Institution level: 1–3 hospitals, 0 pharmacies.
    pub level: u8,
}

impl Context {
    /// Whether the combination is one the generator would produce at all (people
    /// insured by 生育 are adult women, children are resident-insured, pharmacies have
    /// no level, hospitals do).
    fn plausible(&self) -> bool {
        let adult = matches!(self.band, Band::Adult);
        let minor = matches!(self.band, Band::Newborn | Band::Infant | Band::Child);
        match self.insutype {
            Insutype::Maternity if !(adult && self.sex == Sex::Female) => return false,
            Insutype::WorkInjury if !adult => return false,
            Insutype::Employee if minor => return false,
            _ => {}
        }
        match self.setting {
            Setting::Pharmacy => self.level == 0,
            _ => (1..=3).contains(&self.level),
        }
    }

    fn weight(&self) -> u32 {
        let level = match self.level {
            1 => 25,
            2 => 35,
            3 => 40,
            _ => 100,
        };
        self.band.weight() * self.insutype.weight() * self.setting.weight() * level
    }
}

/// A set of contexts (bit masks per fact) plus diagnosis requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub sexes: u8,
    pub bands: u8,
    pub insutypes: u8,
    pub settings: u8,
    /// Bit `l` set: institution level `l` (0–3) allowed.
    pub levels: u8,
    /// Diagnosis lists (ids into the catalogue's lists); each needs one diagnosis.
    pub dx: Vec<u32>,
    /// No context makes the use compliant (or the generator cannot tell which does).
    pub never: bool,
}

impl Default for Need {
    fn default() -> Self {
        Self::any()
    }
}

impl Need {
    /// Every context.
    pub fn any() -> Self {
        Self {
            sexes: 0b11,
            bands: 0b1_1111,
            insutypes: 0b1111,
            settings: 0b1111,
            levels: 0b1111,
            dx: Vec::new(),
            never: false,
        }
    }

    /// No context.
    pub fn never() -> Self {
        Self {
            never: true,
            ..Self::any()
        }
    }

    /// Only sex `sex`.
    pub fn sex(sex: Sex) -> Self {
        Self {
            sexes: 1 << sex as u8,
            ..Self::any()
        }
    }

    /// Only the bands in `bands`.
    pub fn bands(bands: &[Band]) -> Self {
        Self {
            bands: bands.iter().fold(0, |m, b| m | 1 << *b as u8),
            ..Self::any()
        }
    }

    /// Only the 险种 in `insutypes`.
    pub fn insutypes(insutypes: &[Insutype]) -> Self {
        Self {
            insutypes: insutypes.iter().fold(0, |m, i| m | 1 << *i as u8),
            ..Self::any()
        }
    }

    /// Only the settings in `settings`.
    pub fn settings(settings: &[Setting]) -> Self {
        Self {
            settings: settings.iter().fold(0, |m, s| m | 1 << *s as u8),
            ..Self::any()
        }
    }

    /// Only institution levels in `levels` (0 = pharmacy).
    pub fn levels(levels: &[u8]) -> Self {
        Self {
            levels: levels.iter().fold(0, |m, l| m | 1 << l),
            ..Self::any()
        }
    }

    /// Both needs at once.
    pub fn and(&self, other: &Need) -> Need {
        let mut dx = self.dx.clone();
        for d in &other.dx {
            if !dx.contains(d) {
                dx.push(*d);
            }
        }
        Need {
            sexes: self.sexes & other.sexes,
            bands: self.bands & other.bands,
            insutypes: self.insutypes & other.insutypes,
            settings: self.settings & other.settings,
            levels: self.levels & other.levels,
            dx,
            never: self.never || other.never,
        }
    }

    /// Whether `ctx` is in the set (diagnosis requirements aside: the generator adds
    /// the diagnoses a line needs).
    pub fn allows(&self, ctx: &Context) -> bool {
        !self.never
            && self.sexes & (1 << ctx.sex as u8) != 0
            && self.bands & (1 << ctx.band as u8) != 0
            && self.insutypes & (1 << ctx.insutype as u8) != 0
            && self.settings & (1 << ctx.setting as u8) != 0
            && self.levels & (1 << ctx.level) != 0
    }

    /// A plausible context in the set, weighted like the background population;
    /// `None` when the set holds none.
    pub fn pick(&self, rng: &mut SmallRng) -> Option<Context> {
        if self.never {
            return None;
        }
        let mut options: Vec<(Context, u32)> = Vec::new();
        for sex in Sex::ALL {
            for band in Band::ALL {
                for insutype in Insutype::ALL {
                    for setting in Setting::ALL {
                        for level in 0..=3u8 {
                            let ctx = Context {
                                sex,
                                band,
                                insutype,
                                setting,
                                level,
                            };
                            if ctx.plausible() && self.allows(&ctx) {
                                options.push((ctx, ctx.weight()));
                            }
                        }
                    }
                }
            }
        }
        let total: u64 = options.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut ticket = rng.random_range(0..total);
        for (ctx, weight) in options {
            let weight = u64::from(weight);
            if ticket < weight {
                return Some(ctx);
            }
            ticket -= weight;
        }
        None
    }
}

/// The bands lying entirely inside `[min_days, max_days]`.
pub(crate) fn bands_within(min_days: f64, max_days: f64) -> Vec<Band> {
    Band::ALL
        .into_iter()
        .filter(|b| {
            let (lo, hi) = b.days();
            lo as f64 >= min_days && hi as f64 <= max_days
        })
        .collect()
}

/// The bands lying entirely outside `[min_days, max_days]`.
pub(crate) fn bands_outside(min_days: f64, max_days: f64) -> Vec<Band> {
    Band::ALL
        .into_iter()
        .filter(|b| {
            let (lo, hi) = b.days();
            (hi as f64) < min_days || lo as f64 > max_days
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn needs_intersect_and_pick_inside() {
        let need = Need::sex(Sex::Female).and(&Need::insutypes(&[Insutype::Maternity]));
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..50 {
            let ctx = need.pick(&mut rng).expect("a maternity context exists");
            assert_eq!(ctx.sex, Sex::Female);
            assert_eq!(ctx.band, Band::Adult);
            assert!(need.allows(&ctx));
        }
        let impossible = Need::sex(Sex::Male).and(&Need::insutypes(&[Insutype::Maternity]));
        assert!(impossible.pick(&mut rng).is_none());
    }

    #[test]
    fn bands_keep_clear_of_child_thresholds() {
        let child_14 = bands_within(0.0, 14.0 * YEAR_DAYS - 2.0);
        assert_eq!(child_14, vec![Band::Newborn, Band::Infant, Band::Child]);
        let adult_18 = bands_outside(0.0, 18.0 * YEAR_DAYS);
        assert_eq!(adult_18, vec![Band::Adult, Band::Senior]);
    }
}
