//! Input dictionaries applied to one encounter (SPEC §2 defaults, pack overrides).

use chrono::{Datelike, NaiveDate};
use fundwatch_rules::Dictionaries;

use crate::event::{Encounter, Patient};

/// Canonical facts of one encounter, shared by all its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// `1` 男, `2` 女; `None` when unknown (`0`, `9`, unmapped).
    pub gend: Option<&'static str>,
    /// Institution level 1–3, 0 = 未定级; `None` when unmapped.
    pub medins_lv: Option<i32>,
    /// Setting: 1 门诊, 2 住院, 3 购药, 4 其他; `None` when unmapped.
    pub setting: Option<i32>,
    /// Whether the encounter is an internet-hospital (互联网诊疗) encounter.
    pub internet: bool,
    /// `medins_id`.
    pub medins_id: String,
    /// `med_type` as sent.
    pub med_type: String,
    /// `insutype` as sent.
    pub insutype: String,
    /// `poolarea` of the patient.
    pub poolarea: String,
    /// Admission time, epoch milliseconds.
    pub adm_millis: Option<i64>,
    /// Discharge time, epoch milliseconds.
    pub dscg_millis: Option<i64>,
}

/// Applies the pack's input dictionaries to `enc` of `patient`.
///
/// - `gend`: dictionary `gend` (raw → `1`/`2`; anything else is unknown).
/// - `medins_lv`: dictionary `medins_lv` (raw → `0`–`3`), e.g. `三级甲等` → `3`.
/// - setting: dictionary `med_mdtrt_type`, else `med_type` through `med_type_setting`.
/// - internet: `med_type` in dictionary `internet_med_type` or `medins_type` in
///   `internet_medins_type` (no national field marks it; see docs/rule-pack.md).
pub fn normalize_encounter(patient: &Patient, enc: &Encounter, dicts: &Dictionaries) -> Normalized {
    let area = patient.poolarea.as_str();
    let gend = match dicts.lookup("gend", area, &patient.gend) {
        Some("1") => Some("1"),
        Some("2") => Some("2"),
        _ => None,
    };
    let medins_lv = dicts
        .lookup("medins_lv", area, &enc.medins_lv)
        .and_then(|v| v.parse().ok());
    let setting = dicts
        .lookup("med_mdtrt_type", area, &enc.med_mdtrt_type)
        .or_else(|| dicts.lookup("med_type_setting", area, &enc.med_type))
        .and_then(|v| v.parse().ok());
    let internet = dicts
        .lookup("internet_med_type", area, &enc.med_type)
        .is_some()
        || dicts
            .lookup("internet_medins_type", area, &enc.medins_type)
            .is_some();
    Normalized {
        gend,
        medins_lv,
        setting,
        internet,
        medins_id: enc.medins_id.clone(),
        med_type: enc.med_type.clone(),
        insutype: enc.insutype.clone(),
        poolarea: patient.poolarea.clone(),
        adm_millis: enc.adm_date.map(|t| t.and_utc().timestamp_millis()),
        dscg_millis: enc.dscg_date.map(|t| t.and_utc().timestamp_millis()),
    }
}

/// Age on `on` of a person born `brdy`: (completed years, days). `None` when `on`
/// is before birth (a data error the rules treat as unknown age).
pub fn age_on(brdy: NaiveDate, on: NaiveDate) -> Option<(i32, i64)> {
    if on < brdy {
        return None;
    }
    let mut years = on.year() - brdy.year();
    if (on.month(), on.day()) < (brdy.month(), brdy.day()) {
        years -= 1;
    }
    Some((years, (on - brdy).num_days()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_completed_years_and_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(age_on(d("2000-06-15"), d("2018-06-14")), Some((17, 6573)));
        assert_eq!(
            age_on(d("2000-06-15"), d("2018-06-15")).map(|a| a.0),
            Some(18)
        );
        assert_eq!(age_on(d("2026-03-01"), d("2026-03-01")), Some((0, 0)));
        assert_eq!(age_on(d("2026-03-02"), d("2026-03-01")), None);
    }
}
