//! Dictionaries (字典) and parameters: data in the pack, never hard-coded.
//!
//! National dictionaries differ by 统筹区 (DOMAIN.md §2.2): `medins_lv` is `3` in one
//! province and `01`/`三级甲等` in another. A pack declares defaults and overrides per
//! 统筹区 (`poolarea`); the engine resolves a value with [`Dictionaries::lookup`] and a
//! parameter with [`Parameters::get`], most specific first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One dictionary: raw code → canonical code (for normalising input) or code → label
/// (for output dictionaries such as `sev_deg`).
pub type Dictionary = BTreeMap<String, String>;

/// Named dictionaries with per-统筹区 overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dictionaries {
    /// Defaults by dictionary name (`gend`, `medins_lv`, `med_mdtrt_type`, `insutype`,
    /// `sev_deg`, `vola_bhvr_type`, …).
    #[serde(default)]
    pub defaults: BTreeMap<String, Dictionary>,
    /// Overrides: 统筹区 code → dictionary name → entries that replace the defaults'.
    #[serde(default)]
    pub overrides: BTreeMap<String, BTreeMap<String, Dictionary>>,
}

impl Dictionaries {
    /// Looks `raw` up in dictionary `name` for 统筹区 `poolarea`: the override entry if
    /// there is one, else the default entry. `None` when neither knows the code.
    pub fn lookup<'a>(&'a self, name: &str, poolarea: &str, raw: &str) -> Option<&'a str> {
        self.overrides
            .get(poolarea)
            .and_then(|dicts| dicts.get(name))
            .and_then(|dict| dict.get(raw))
            .or_else(|| self.defaults.get(name).and_then(|dict| dict.get(raw)))
            .map(String::as_str)
    }

    /// The default dictionary `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&Dictionary> {
        self.defaults.get(name)
    }
}

/// Numeric rule parameters (thresholds the national lists do not fix) with
/// per-统筹区 overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Defaults by parameter name.
    #[serde(default)]
    pub defaults: BTreeMap<String, f64>,
    /// 统筹区 → parameter name → value.
    #[serde(default)]
    pub overrides: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Parameters {
    /// The value of `name` for `poolarea`, the override first.
    pub fn get(&self, name: &str, poolarea: &str) -> Option<f64> {
        self.overrides
            .get(poolarea)
            .and_then(|params| params.get(name))
            .or_else(|| self.defaults.get(name))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_wins_over_default_and_falls_back() {
        let mut dicts = Dictionaries::default();
        dicts
            .defaults
            .entry("medins_lv".into())
            .or_default()
            .insert("3".into(), "3".into());
        dicts
            .overrides
            .entry("430796".into())
            .or_default()
            .entry("medins_lv".into())
            .or_default()
            .insert("01".into(), "3".into());
        assert_eq!(dicts.lookup("medins_lv", "430796", "01"), Some("3"));
        assert_eq!(dicts.lookup("medins_lv", "430796", "3"), Some("3"));
        assert_eq!(dicts.lookup("medins_lv", "110000", "01"), None);

        let mut params = Parameters::default();
        params.defaults.insert("child_max_age_years".into(), 18.0);
        params
            .overrides
            .entry("430796".into())
            .or_default()
            .insert("child_max_age_years".into(), 14.0);
        assert_eq!(params.get("child_max_age_years", "430796"), Some(14.0));
        assert_eq!(params.get("child_max_age_years", "110000"), Some(18.0));
        assert_eq!(params.get("missing", "110000"), None);
    }
}
