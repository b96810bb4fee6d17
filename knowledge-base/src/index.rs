//! [`KnowledgeBase`]: one loaded KB version with the indexes the engine uses
//! on every fee line. Indexes are built once per version; lookups borrow the
//! input `&str` and allocate nothing.

use std::fmt;

use crate::error::KbError;
use crate::format::date_to_days;
use crate::model::{IcdCode, KnowledgePoint};
use crate::store::{Manifest, VersionMeta};

/// The index maps are probed for every fee line of every rule that reads the KB:
/// foldhash (seeded per process) instead of the standard SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Length of the drug-code prefix national lists match on (generic + dosage
/// form + specification of the 23-char `X…` and 20-char `Z…` codes).
pub const DRUG_PREFIX_LEN: usize = 12;

/// A rule class of a loaded version, as a small copyable number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(u16);

impl ClassId {
    /// The number (index into [`KnowledgeBase::rule_classes`]).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The lookup structures of one rule class. Every row list is ordered by
/// `effective_from` descending, then row ascending, so the first row in force
/// is the deterministic answer.
#[derive(Debug, Default)]
struct ClassIndex {
    rows: Vec<u32>,
    exact: HashMap<String, Vec<u32>>,
    prefix: HashMap<String, Vec<u32>>,
    pairs: HashMap<String, HashMap<String, Vec<u32>>>,
    pair_codes: HashSet<String>,
}

/// A loaded KB version: manifest, points, ICD lists and per-class indexes.
pub struct KnowledgeBase {
    manifest: Manifest,
    points: Vec<KnowledgePoint>,
    icd10: Vec<IcdCode>,
    icd9: Vec<IcdCode>,
    icd10_names: HashMap<String, u32>,
    /// Per point: [effective_from, effective_to) as Date32 days.
    spans: Vec<(i32, i32)>,
    class_names: Vec<String>,
    class_ids: HashMap<String, ClassId>,
    classes: Vec<ClassIndex>,
    /// Code → the classes listing it exactly or as a pair code (any date).
    code_classes: HashMap<String, Vec<ClassId>>,
    /// 12-character drug prefix → the classes listing a code with it.
    prefix_classes: HashMap<String, Vec<ClassId>>,
}

impl fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("id", &self.manifest.id)
            .field("points", &self.points.len())
            .field("rule_classes", &self.class_names.len())
            .field("icd10", &self.icd10.len())
            .field("icd9", &self.icd9.len())
            .finish()
    }
}

/// Code with surrounding whitespace removed (national codes are upper case;
/// case is not folded).
fn clean(code: &str) -> &str {
    code.trim()
}

/// The 12-char prefix of a national drug code (`X…`/`Z…`), if it has one.
fn drug_prefix(code: &str) -> Option<&str> {
    let first = code.as_bytes().first()?;
    if matches!(first, b'X' | b'Z')
        && code.len() >= DRUG_PREFIX_LEN
        && code.is_char_boundary(DRUG_PREFIX_LEN)
    {
        Some(&code[..DRUG_PREFIX_LEN])
    } else {
        None
    }
}

impl KnowledgeBase {
    /// Builds a version from its content: sorts the points into version order,
    /// computes the manifest (hash, id, counts) and the indexes.
    pub(crate) fn assemble(
        mut points: Vec<KnowledgePoint>,
        icd10: Vec<IcdCode>,
        icd9: Vec<IcdCode>,
        meta: VersionMeta,
    ) -> Result<KnowledgeBase, KbError> {
        points.sort_by(|a, b| {
            (&a.batch, &a.source_file, a.source_row, &a.kp_id).cmp(&(
                &b.batch,
                &b.source_file,
                b.source_row,
                &b.kp_id,
            ))
        });
        let manifest = Manifest::build(&points, &icd10, &icd9, meta);
        KnowledgeBase::from_manifest(manifest, points, icd10, icd9)
    }

    /// Builds the indexes of a version whose manifest is known.
    pub(crate) fn from_manifest(
        manifest: Manifest,
        points: Vec<KnowledgePoint>,
        icd10: Vec<IcdCode>,
        icd9: Vec<IcdCode>,
    ) -> Result<KnowledgeBase, KbError> {
        if points.len() > u32::MAX as usize {
            return Err(KbError::format("knowledge_points", "more than 2^32 points"));
        }
        let spans: Vec<(i32, i32)> = points
            .iter()
            .map(|p| {
                (
                    date_to_days(p.effective_from),
                    p.effective_to.map(date_to_days).unwrap_or(i32::MAX),
                )
            })
            .collect();
        let mut class_names: Vec<String> = points.iter().map(|p| p.rule_class.clone()).collect();
        class_names.sort();
        class_names.dedup();
        if class_names.len() > u16::MAX as usize {
            return Err(KbError::format(
                "knowledge_points",
                "more than 65535 rule classes",
            ));
        }
        let class_ids: HashMap<String, ClassId> = class_names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), ClassId(i as u16)))
            .collect();
        let mut classes: Vec<ClassIndex> = (0..class_names.len())
            .map(|_| ClassIndex::default())
            .collect();
        for (row, p) in points.iter().enumerate() {
            let row = row as u32;
            let Some(ci) = class_ids
                .get(&p.rule_class)
                .and_then(|id| classes.get_mut(id.index()))
            else {
                continue;
            };
            ci.rows.push(row);
            for code in &p.codes {
                let code = clean(code);
                ci.exact.entry(code.to_string()).or_default().push(row);
                if let Some(prefix) = drug_prefix(code) {
                    let rows = ci.prefix.entry(prefix.to_string()).or_default();
                    if rows.last() != Some(&row) {
                        rows.push(row);
                    }
                }
                for partner in &p.partner_codes {
                    let partner = clean(partner);
                    ci.pairs
                        .entry(code.to_string())
                        .or_default()
                        .entry(partner.to_string())
                        .or_default()
                        .push(row);
                    ci.pair_codes.insert(code.to_string());
                    ci.pair_codes.insert(partner.to_string());
                }
            }
        }
        let order = |rows: &mut Vec<u32>| {
            rows.sort_by_key(|&r| (std::cmp::Reverse(spans[r as usize].0), r));
            rows.dedup();
        };
        for ci in &mut classes {
            ci.exact.values_mut().for_each(order);
            ci.prefix.values_mut().for_each(order);
            ci.pairs
                .values_mut()
                .flat_map(|m| m.values_mut())
                .for_each(order);
        }
        let mut code_classes: HashMap<String, Vec<ClassId>> = HashMap::default();
        let mut prefix_classes: HashMap<String, Vec<ClassId>> = HashMap::default();
        for (i, ci) in classes.iter().enumerate() {
            let id = ClassId(i as u16);
            for code in ci.exact.keys().chain(ci.pair_codes.iter()) {
                let ids = code_classes.entry(code.clone()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            for prefix in ci.prefix.keys() {
                prefix_classes.entry(prefix.clone()).or_default().push(id);
            }
        }
        let icd10_names = icd10
            .iter()
            .enumerate()
            .map(|(i, c)| (c.code.clone(), i as u32))
            .collect();
        Ok(KnowledgeBase {
            manifest,
            points,
            icd10,
            icd9,
            icd10_names,
            spans,
            class_names,
            class_ids,
            classes,
            code_classes,
            prefix_classes,
        })
    }

    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The version id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// All points, in version order (row numbers index this slice).
    pub fn points(&self) -> &[KnowledgePoint] {
        &self.points
    }

    /// ICD-10 医保版 2.0 diagnoses.
    pub fn icd10_codes(&self) -> &[IcdCode] {
        &self.icd10
    }

    /// ICD-9-CM-3 医保版 procedures.
    pub fn icd9_codes(&self) -> &[IcdCode] {
        &self.icd9
    }

    /// The id of `rule_class` in this version.
    pub fn class_id(&self, rule_class: &str) -> Option<ClassId> {
        self.class_ids.get(rule_class).copied()
    }

    /// Rule classes of this version, sorted (index = [`ClassId::index`]).
    pub fn rule_classes(&self) -> Vec<String> {
        self.class_names.clone()
    }

    /// The point at `row`. Rows come from the lookups of this version; a row out
    /// of range is a caller bug and panics like slice indexing.
    pub fn point(&self, row: u32) -> &KnowledgePoint {
        &self.points[row as usize]
    }

    /// True when the point at `row` applies to services on `day` (Date32).
    pub fn in_force(&self, row: u32, day: i32) -> bool {
        self.spans
            .get(row as usize)
            .is_some_and(|&(from, to)| from <= day && day < to)
    }

    fn first_in_force(&self, rows: &[u32], day: i32) -> Option<u32> {
        rows.iter().copied().find(|&r| self.in_force(r, day))
    }

    /// The point of `class` listing `code` in force on `day` (days since
    /// 1970-01-01, Arrow Date32). An exact code match wins over the 12-char drug
    /// prefix; among several in force the latest `effective_from` wins, then
    /// the lower row.
    pub fn lookup(&self, class: ClassId, code: &str, day: i32) -> Option<u32> {
        let ci = self.classes.get(class.index())?;
        let code = clean(code);
        if let Some(row) = ci
            .exact
            .get(code)
            .and_then(|rows| self.first_in_force(rows, day))
        {
            return Some(row);
        }
        let prefix = drug_prefix(code)?;
        ci.prefix
            .get(prefix)
            .and_then(|rows| self.first_in_force(rows, day))
    }

    /// Every point of `class` listing `code` in force on `day`, in the order of
    /// [`KnowledgeBase::lookup`] (whose answer is the first): the exact-code rows
    /// when any is in force, else the 12-char-prefix rows. For classes that list
    /// one code in several points (batch 2 lists 阑尾切除术 in two surgical groups).
    pub fn lookup_all<'a>(
        &'a self,
        class: ClassId,
        code: &'a str,
        day: i32,
    ) -> impl Iterator<Item = u32> + 'a {
        let ci = self.classes.get(class.index());
        let code = clean(code);
        let exact: &[u32] = ci
            .and_then(|ci| ci.exact.get(code))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let use_exact = exact.iter().any(|&r| self.in_force(r, day));
        let rows: &[u32] = if use_exact {
            exact
        } else {
            ci.zip(drug_prefix(code))
                .and_then(|(ci, p)| ci.prefix.get(p))
                .map(Vec::as_slice)
                .unwrap_or(&[])
        };
        rows.iter().copied().filter(move |&r| self.in_force(r, day))
    }

    /// The classes that list `code` on some date — exactly, by its 12-character
    /// drug prefix, or as a 重复收费 pair code: a superset of the classes in which
    /// [`KnowledgeBase::lookup`], [`KnowledgeBase::lookup_pair`] or
    /// [`KnowledgeBase::in_any_pair`] can find it on any day. The engine uses it to
    /// skip rules whose classes no line of a batch names. A class may come twice.
    pub fn classes_listing<'a>(&'a self, code: &str) -> impl Iterator<Item = ClassId> + 'a {
        let code = clean(code);
        let exact = self.code_classes.get(code).map(Vec::as_slice);
        let prefix = drug_prefix(code)
            .and_then(|p| self.prefix_classes.get(p))
            .map(Vec::as_slice);
        exact
            .unwrap_or(&[])
            .iter()
            .chain(prefix.unwrap_or(&[]))
            .copied()
    }

    /// The number of rule classes (class ids are `0..class_count()`).
    pub fn class_count(&self) -> usize {
        self.class_names.len()
    }

    /// The pair point of `class` (重复收费) with `main` among its codes and `sub`
    /// among its partner codes, in force on `day`.
    pub fn lookup_pair(&self, class: ClassId, main: &str, sub: &str, day: i32) -> Option<u32> {
        let ci = self.classes.get(class.index())?;
        let rows = ci.pairs.get(clean(main))?.get(clean(sub))?;
        self.first_in_force(rows, day)
    }

    /// True when `code` is a main or partner code of any pair of `class`
    /// (a cheap prefilter before [`KnowledgeBase::lookup_pair`]).
    pub fn in_any_pair(&self, class: ClassId, code: &str) -> bool {
        self.classes
            .get(class.index())
            .is_some_and(|ci| ci.pair_codes.contains(clean(code)))
    }

    /// The points of `rule_class` with their rows, in version order.
    pub fn points_of_class(
        &self,
        rule_class: &str,
    ) -> impl Iterator<Item = (u32, &KnowledgePoint)> {
        let rows: &[u32] = self
            .class_id(rule_class)
            .and_then(|id| self.classes.get(id.index()))
            .map(|ci| ci.rows.as_slice())
            .unwrap_or(&[]);
        rows.iter().map(move |&r| (r, &self.points[r as usize]))
    }

    /// The name of an ICD-10 医保版 code.
    pub fn icd10(&self, code: &str) -> Option<&str> {
        let i = *self.icd10_names.get(clean(code))?;
        self.icd10.get(i as usize).map(|c| c.name.as_str())
    }

    /// ICD-10 codes starting with `prefix` (a category such as `M81` or a
    /// subcategory such as `C91.1`).
    pub fn icd10_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a IcdCode> + 'a {
        self.icd10
            .iter()
            .filter(move |c| c.code.starts_with(prefix))
    }
}
