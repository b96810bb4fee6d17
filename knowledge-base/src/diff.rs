//! Differences between two KB versions, by `kp_id`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::index::KnowledgeBase;
use crate::model::KnowledgePoint;

/// One point that differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointChange {
    /// The point's id.
    pub kp_id: String,
    /// Its rule class (in the newer version when it exists there).
    pub rule_class: String,
    /// Its item name.
    pub item_name: String,
    /// Names of the fields that differ (`condition.dx_prefixes` for condition
    /// parts); empty for added and removed points.
    pub fields: Vec<String>,
}

/// What changed from version `a` to version `b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KbDiff {
    /// Id of the older version.
    pub a: String,
    /// Id of the newer version.
    pub b: String,
    /// Points only in `b`.
    pub added: Vec<PointChange>,
    /// Points only in `a`.
    pub removed: Vec<PointChange>,
    /// Points in both whose fields differ.
    pub changed: Vec<PointChange>,
    /// ICD-10 codes only in `b` / only in `a`.
    pub icd10_added: usize,
    /// ICD-10 codes only in `a`.
    pub icd10_removed: usize,
    /// ICD-9 codes only in `b`.
    pub icd9_added: usize,
    /// ICD-9 codes only in `a`.
    pub icd9_removed: usize,
}

impl KbDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.icd10_added + self.icd10_removed + self.icd9_added + self.icd9_removed == 0
    }

    /// (added, removed, changed) per rule class.
    pub fn by_rule_class(&self) -> BTreeMap<String, (usize, usize, usize)> {
        let mut out: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for c in &self.added {
            out.entry(c.rule_class.clone()).or_default().0 += 1;
        }
        for c in &self.removed {
            out.entry(c.rule_class.clone()).or_default().1 += 1;
        }
        for c in &self.changed {
            out.entry(c.rule_class.clone()).or_default().2 += 1;
        }
        out
    }
}

/// The names of the fields of `a` and `b` that differ.
pub fn changed_fields(a: &KnowledgePoint, b: &KnowledgePoint) -> Vec<String> {
    let mut f: Vec<String> = Vec::new();
    macro_rules! cmp {
        ($($field:ident),*) => {$(
            if a.$field != b.$field { f.push(stringify!($field).to_string()); }
        )*};
    }
    cmp!(
        rule_class,
        batch,
        item_name,
        codes,
        partner_name,
        partner_codes,
        limit_value,
        limit_num,
        period_days,
        constraint_text,
        detect_logic,
        effective_from,
        effective_to,
        supersedes,
        source_file,
        source_row
    );
    match (&a.condition, &b.condition) {
        (Some(x), Some(y)) => {
            macro_rules! cond {
                ($($field:ident),*) => {$(
                    if x.$field != y.$field { f.push(format!("condition.{}", stringify!($field))); }
                )*};
            }
            cond!(
                age_min_years,
                age_max_years,
                sex,
                settings,
                dx_prefixes,
                dx_decidable,
                needs_evidence,
                evidence_kind
            );
        }
        (None, None) => {}
        _ => f.push("condition".into()),
    }
    f
}

fn entry(p: &KnowledgePoint, fields: Vec<String>) -> PointChange {
    PointChange {
        kp_id: p.kp_id.clone(),
        rule_class: p.rule_class.clone(),
        item_name: p.item_name.clone(),
        fields,
    }
}

/// Compares version `a` (older) with version `b` (newer).
pub fn diff(a: &KnowledgeBase, b: &KnowledgeBase) -> KbDiff {
    let in_a: HashMap<&str, &KnowledgePoint> =
        a.points().iter().map(|p| (p.kp_id.as_str(), p)).collect();
    let in_b: HashMap<&str, &KnowledgePoint> =
        b.points().iter().map(|p| (p.kp_id.as_str(), p)).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for p in b.points() {
        match in_a.get(p.kp_id.as_str()) {
            None => added.push(entry(p, Vec::new())),
            Some(old) => {
                let fields = changed_fields(old, p);
                if !fields.is_empty() {
                    changed.push(entry(p, fields));
                }
            }
        }
    }
    let removed = a
        .points()
        .iter()
        .filter(|p| !in_b.contains_key(p.kp_id.as_str()))
        .map(|p| entry(p, Vec::new()))
        .collect();
    let codes = |kb: &KnowledgeBase, ten: bool| -> HashSet<String> {
        let list = if ten {
            kb.icd10_codes()
        } else {
            kb.icd9_codes()
        };
        list.iter()
            .map(|c| format!("{}\t{}", c.code, c.name))
            .collect()
    };
    let (a10, b10, a9, b9) = (
        codes(a, true),
        codes(b, true),
        codes(a, false),
        codes(b, false),
    );
    KbDiff {
        a: a.manifest().id.clone(),
        b: b.manifest().id.clone(),
        added,
        removed,
        changed,
        icd10_added: b10.difference(&a10).count(),
        icd10_removed: a10.difference(&b10).count(),
        icd9_added: b9.difference(&a9).count(),
        icd9_removed: a9.difference(&b9).count(),
    }
}
