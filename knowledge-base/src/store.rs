//! KB versions on disk: `<root>/<version_id>/` with `manifest.json` and three
//! Parquet files (see [`crate::format`]). Versions are immutable: saving a
//! different content under an existing id is refused, saving the same content
//! again is a no-op.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::diff::{KbDiff, diff};
use crate::error::KbError;
use crate::format::{self, FORMAT};
use crate::import::SourceSummary;
use crate::index::KnowledgeBase;
use crate::model::{IcdCode, KnowledgePoint};
use crate::national::{NATIONAL, national};

/// File names inside a version directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Knowledge points, one row per point.
pub const POINTS_FILE: &str = "knowledge_points.parquet";
/// ICD-10 医保版 2.0 diagnoses.
pub const ICD10_FILE: &str = "icd10.parquet";
/// ICD-9-CM-3 医保版 procedures.
pub const ICD9_FILE: &str = "icd9.parquet";

/// Environment variable that overrides the default store root.
pub const ROOT_ENV: &str = "FUNDWATCH_KB_ROOT";

/// The store root: `$FUNDWATCH_KB_ROOT`, else `var/kb`.
pub fn default_root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("var/kb"))
}

/// Who made a version and from what; the part of the manifest that is not
/// derived from the content.
#[derive(Debug, Clone)]
pub struct VersionMeta {
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Author.
    pub author: String,
    /// Notes.
    pub notes: String,
    /// Id of the version this one was built from.
    pub base: Option<String>,
    /// Source files (of the base, then of this import).
    pub sources: Vec<SourceSummary>,
}

/// Counts of one rule class in a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// Knowledge points.
    pub points: u64,
    /// Distinct codes (partner codes included).
    pub codes: u64,
    /// Points with an `effective_to` (superseded).
    pub superseded: u64,
    /// Points with a condition.
    pub with_condition: u64,
    /// Conditions whose diagnosis part is fully mapped to ICD-10 prefixes.
    pub dx_decidable: u64,
    /// Conditions that need evidence settlement data cannot carry.
    pub needs_evidence: u64,
    /// Conditions decidable from settlement data alone (dx mapped, no evidence).
    pub fully_decidable: u64,
}

/// Content counts of a version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Knowledge points.
    pub points: u64,
    /// Code entries over all points (item→code links, partner codes included).
    pub code_links: u64,
    /// ICD-10 codes.
    pub icd10: u64,
    /// ICD-9-CM-3 codes.
    pub icd9: u64,
    /// Supersede links that name a kp_id this version does not hold.
    pub unresolved_supersedes: u64,
    /// Per rule class.
    pub by_rule_class: BTreeMap<String, ClassSummary>,
}

/// `manifest.json` of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format tag (`fundwatch-kb/1`).
    pub format: String,
    /// Version id, `kb-YYYYMMDD-<first 8 hex of content_hash>` with the date of
    /// `effective_from`; the same content always gets the same id.
    pub id: String,
    /// SHA-256 (hex) over the canonical row content (see [`crate::format`]).
    pub content_hash: String,
    /// When it was made (not part of the hash).
    pub created_at: DateTime<Utc>,
    /// Latest publication date among its points: the version applies to
    /// services from this date.
    pub effective_from: NaiveDate,
    /// Author.
    pub author: String,
    /// Notes.
    pub notes: String,
    /// Version it was built from.
    pub base: Option<String>,
    /// Source files with their rule classes and row counts.
    pub sources: Vec<SourceSummary>,
    /// Counts per rule class.
    pub counts: Counts,
}

impl Manifest {
    /// Builds the manifest of a content.
    pub(crate) fn build(
        points: &[KnowledgePoint],
        icd10: &[IcdCode],
        icd9: &[IcdCode],
        meta: VersionMeta,
    ) -> Manifest {
        let content_hash = format::content_hash(points, icd10, icd9);
        let effective_from = points
            .iter()
            .map(|p| p.effective_from)
            .max()
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default());
        let id = format!(
            "kb-{}-{}",
            effective_from.format("%Y%m%d"),
            &content_hash[..8]
        );
        let ids: std::collections::HashSet<&str> =
            points.iter().map(|p| p.kp_id.as_str()).collect();
        let mut counts = Counts {
            points: points.len() as u64,
            icd10: icd10.len() as u64,
            icd9: icd9.len() as u64,
            ..Counts::default()
        };
        let mut codes: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for p in points {
            counts.code_links += (p.codes.len() + p.partner_codes.len()) as u64;
            if p.supersedes.as_deref().is_some_and(|s| !ids.contains(s)) {
                counts.unresolved_supersedes += 1;
            }
            let c = counts
                .by_rule_class
                .entry(p.rule_class.clone())
                .or_default();
            c.points += 1;
            c.superseded += u64::from(p.effective_to.is_some());
            if let Some(cond) = &p.condition {
                c.with_condition += 1;
                c.dx_decidable += u64::from(cond.dx_decidable);
                c.needs_evidence += u64::from(cond.needs_evidence);
                c.fully_decidable += u64::from(cond.dx_decidable && !cond.needs_evidence);
            }
            let set = codes.entry(p.rule_class.as_str()).or_default();
            set.extend(p.codes.iter().map(String::as_str));
            set.extend(p.partner_codes.iter().map(String::as_str));
        }
        for (class, set) in codes {
            if let Some(c) = counts.by_rule_class.get_mut(class) {
                c.codes = set.len() as u64;
            }
        }
        Manifest {
            format: FORMAT.to_string(),
            id,
            content_hash,
            created_at: meta.created_at,
            effective_from,
            author: meta.author,
            notes: meta.notes,
            base: meta.base,
            sources: meta.sources,
            counts,
        }
    }
}

/// A directory of KB versions.
#[derive(Debug, Clone)]
pub struct KbStore {
    /// The directory holding one sub-directory per version.
    pub root: PathBuf,
}

impl KbStore {
    /// A store at `root` (created on first save).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        KbStore { root: root.into() }
    }

    /// The directory of version `id`.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// A version id names one directory under the root, never a path.
    fn is_plain_id(id: &str) -> bool {
        !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\\'])
    }

    /// Saves `kb` as `<root>/<id>/`. Returns the directory. Saving the same
    /// content again returns the existing directory; a different content under
    /// the same id is refused.
    pub fn save(&self, kb: &KnowledgeBase) -> Result<PathBuf, KbError> {
        let m = kb.manifest();
        let dir = self.path_of(&m.id);
        if dir.exists() {
            let existing = read_manifest(&dir)?;
            if existing.content_hash == m.content_hash {
                return Ok(dir);
            }
            return Err(KbError::VersionConflict {
                id: m.id.clone(),
                path: dir,
                existing: existing.content_hash,
                new: m.content_hash.clone(),
            });
        }
        std::fs::create_dir_all(&self.root).map_err(|e| KbError::io(&self.root, e))?;
        let tmp = self
            .root
            .join(format!(".tmp-{}-{}", m.id, std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| KbError::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| KbError::io(&tmp, e))?;
        write_version(&tmp, kb)?;
        std::fs::rename(&tmp, &dir).map_err(|e| KbError::io(&dir, e))?;
        Ok(dir)
    }

    /// Loads version `id` (`national` is the version embedded in the binary).
    pub fn load(&self, id: &str) -> Result<KnowledgeBase, KbError> {
        if id == NATIONAL {
            return national();
        }
        let dir = self.path_of(id);
        if !Self::is_plain_id(id) || !dir.join(MANIFEST_FILE).is_file() {
            return Err(self.not_found(id));
        }
        let read = |name: &str| -> Result<Bytes, KbError> {
            let p = dir.join(name);
            std::fs::read(&p)
                .map(Bytes::from)
                .map_err(|e| KbError::io(&p, e))
        };
        let manifest = std::fs::read(dir.join(MANIFEST_FILE))
            .map_err(|e| KbError::io(dir.join(MANIFEST_FILE), e))?;
        load_version(
            &dir,
            &manifest,
            read(POINTS_FILE)?,
            read(ICD10_FILE)?,
            read(ICD9_FILE)?,
        )
    }

    /// Manifests of the versions on disk, oldest `effective_from` first.
    pub fn list(&self) -> Result<Vec<Manifest>, KbError> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(|e| KbError::io(&self.root, e))? {
            let entry = entry.map_err(|e| KbError::io(&self.root, e))?;
            let dir = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if dir.is_dir() && !hidden && dir.join(MANIFEST_FILE).is_file() {
                out.push(read_manifest(&dir)?);
            }
        }
        out.sort_by(|a, b| {
            (a.effective_from, a.created_at, &a.id).cmp(&(b.effective_from, b.created_at, &b.id))
        });
        Ok(out)
    }

    /// The manifest of version `id` (`national` included).
    pub fn show(&self, id: &str) -> Result<Manifest, KbError> {
        if id == NATIONAL {
            return Ok(national()?.manifest().clone());
        }
        let dir = self.path_of(id);
        if !Self::is_plain_id(id) || !dir.join(MANIFEST_FILE).is_file() {
            return Err(self.not_found(id));
        }
        read_manifest(&dir)
    }

    /// Added, removed and changed points from version `a` to version `b`.
    pub fn diff(&self, a: &str, b: &str) -> Result<KbDiff, KbError> {
        Ok(diff(&self.load(a)?, &self.load(b)?))
    }

    /// The stored version for services on `day`: the latest `effective_from`
    /// not after `day` (ties: the newest `created_at`).
    pub fn version_for(&self, day: NaiveDate) -> Result<Option<Manifest>, KbError> {
        Ok(self.list()?.into_iter().rfind(|m| m.effective_from <= day))
    }

    fn not_found(&self, id: &str) -> KbError {
        let mut available: Vec<String> = self
            .list()
            .map(|l| l.into_iter().map(|m| m.id).collect())
            .unwrap_or_default();
        available.insert(0, NATIONAL.to_string());
        KbError::VersionNotFound {
            id: id.to_string(),
            root: self.root.clone(),
            available: available.join(", "),
        }
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, KbError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read(&path).map_err(|e| KbError::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|e| KbError::Json {
        path,
        message: format!("not a KB manifest: {e}"),
    })
}

/// Writes the four files of a version into `dir`.
pub(crate) fn write_version(dir: &Path, kb: &KnowledgeBase) -> Result<(), KbError> {
    format::write_parquet(&dir.join(POINTS_FILE), &format::points_batch(kb.points())?)?;
    format::write_parquet(&dir.join(ICD10_FILE), &format::icd_batch(kb.icd10_codes())?)?;
    format::write_parquet(&dir.join(ICD9_FILE), &format::icd_batch(kb.icd9_codes())?)?;
    let path = dir.join(MANIFEST_FILE);
    let mut json =
        serde_json::to_string_pretty(kb.manifest()).map_err(|e| KbError::format(&path, e))?;
    json.push('\n');
    std::fs::write(&path, json).map_err(|e| KbError::io(&path, e))
}

/// Reads a version from its four files' bytes and checks the content hash.
pub(crate) fn load_version(
    dir: &Path,
    manifest: &[u8],
    points: Bytes,
    icd10: Bytes,
    icd9: Bytes,
) -> Result<KnowledgeBase, KbError> {
    let manifest: Manifest = serde_json::from_slice(manifest).map_err(|e| KbError::Json {
        path: dir.join(MANIFEST_FILE),
        message: format!("not a KB manifest: {e}"),
    })?;
    if manifest.format != FORMAT {
        return Err(KbError::format(
            dir.join(MANIFEST_FILE),
            format!(
                "format {:?} is not {FORMAT:?}; this build cannot read it",
                manifest.format
            ),
        ));
    }
    let points = format::points_from_batches(
        &format::read_parquet(points, &dir.join(POINTS_FILE))?,
        &dir.join(POINTS_FILE),
    )?;
    let icd10 = format::icd_from_batches(
        &format::read_parquet(icd10, &dir.join(ICD10_FILE))?,
        &dir.join(ICD10_FILE),
    )?;
    let icd9 = format::icd_from_batches(
        &format::read_parquet(icd9, &dir.join(ICD9_FILE))?,
        &dir.join(ICD9_FILE),
    )?;
    let hash = format::content_hash(&points, &icd10, &icd9);
    if hash != manifest.content_hash {
        return Err(KbError::Corrupt {
            id: manifest.id.clone(),
            path: dir.to_path_buf(),
            problem: format!(
                "the files hash to {hash}, the manifest says {}",
                manifest.content_hash
            ),
        });
    }
    KnowledgeBase::from_manifest(manifest, points, icd10, icd9)
}
