//! Published rule packs: `<registry>/packs/<name>@<version>/`, immutable.
//!
//! Publishing copies exactly what [`RulePack::load`] reads and hashes (`pack.toml`
//! and `rules/*.toml`) plus `published.json` (who, when, notes, content hash). The
//! id is the label alerts carry (`rule_pack_version`), so an alert always names a
//! pack that can be found again; a second publish of the same id with other
//! content is refused — the author bumps `version` in `pack.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RegistryError, io_err, write_atomically};
use crate::pack::RulePack;
use crate::rule::Rule;

/// Metadata file of a published pack.
pub const PUBLISHED_FILE: &str = "published.json";

/// `published.json`: what was published, by whom and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackRecord {
    /// `name@version`.
    pub id: String,
    /// Pack name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// SHA-256 over `pack.toml` and the rule files ([`RulePack::content_hash`]).
    pub content_hash: String,
    /// Who published it.
    pub author: String,
    /// When.
    pub published_at: DateTime<Utc>,
    /// Why (release notes).
    pub notes: String,
    /// The directory it was published from.
    pub source: String,
    /// Rules (enabled ones).
    pub rules: usize,
    /// Test cases over all rules.
    pub cases: usize,
}

/// The published packs of a registry.
#[derive(Debug, Clone)]
pub struct PackStore {
    /// `<registry>/packs`.
    pub root: PathBuf,
}

impl PackStore {
    /// A store at `root` (created on first publish).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of pack `id`.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Publishes the pack in `dir`. Returns its record and whether it was new
    /// (publishing the same content again is a no-op; other content under an
    /// existing id is refused).
    pub fn publish(
        &self,
        dir: &Path,
        author: &str,
        notes: &str,
    ) -> Result<(PackRecord, bool), RegistryError> {
        let pack = RulePack::load(dir)?;
        let id = pack.version_label();
        let target = self.path_of(&id);
        if target.join(PUBLISHED_FILE).is_file() {
            let existing = self.record(&id)?;
            if existing.content_hash == pack.content_hash {
                return Ok((existing, false));
            }
            return Err(RegistryError::Conflict(format!(
                "pack {id} is already published with content {} and {} holds {}: published \
                 packs are immutable; raise `version` in {}",
                short(&existing.content_hash),
                dir.display(),
                short(&pack.content_hash),
                dir.join("pack.toml").display()
            )));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let tmp = self
            .root
            .join(format!(".tmp-{}-{}", id, std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        }
        std::fs::create_dir_all(tmp.join("rules")).map_err(|e| io_err(&tmp, e))?;
        copy(&dir.join("pack.toml"), &tmp.join("pack.toml"))?;
        for rule in &pack.rules {
            let Some(name) = rule.source.file_name() else {
                continue;
            };
            copy(&rule.source, &tmp.join("rules").join(name))?;
        }
        // The copy must hash like the original: nothing was lost or added.
        let copied = RulePack::load(&tmp)?;
        if copied.content_hash != pack.content_hash {
            return Err(RegistryError::Conflict(format!(
                "the copy of {} hashes differently from the original ({} vs {}); \
                 was the pack edited while publishing?",
                dir.display(),
                short(&copied.content_hash),
                short(&pack.content_hash)
            )));
        }
        let record = PackRecord {
            id: id.clone(),
            name: pack.manifest.name.clone(),
            version: pack.manifest.version.clone(),
            content_hash: pack.content_hash.clone(),
            author: author.to_string(),
            published_at: Utc::now(),
            notes: notes.to_string(),
            source: dir.display().to_string(),
            rules: pack.rules.iter().filter(|r| r.enabled).count(),
            cases: pack.rules.iter().map(|r| r.cases.len()).sum(),
        };
        write_json(&tmp.join(PUBLISHED_FILE), &record)?;
        match std::fs::rename(&tmp, &target) {
            Ok(()) => Ok((record, true)),
            // Another publisher won the race with the same id: theirs stands.
            Err(_) if target.join(PUBLISHED_FILE).is_file() => {
                let _ = std::fs::remove_dir_all(&tmp);
                self.publish(dir, author, notes)
            }
            Err(e) => Err(io_err(&target, e)),
        }
    }

    /// The record of pack `id`.
    pub fn record(&self, id: &str) -> Result<PackRecord, RegistryError> {
        if !is_plain_id(id) {
            return Err(self.not_found(id));
        }
        let path = self.path_of(id).join(PUBLISHED_FILE);
        if !path.is_file() {
            return Err(self.not_found(id));
        }
        let text = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        serde_json::from_slice(&text).map_err(|e| RegistryError::Json {
            path,
            message: e.to_string(),
        })
    }

    /// Loads pack `id`, refusing one whose files no longer match the hash it was
    /// published with.
    pub fn load(&self, id: &str) -> Result<RulePack, RegistryError> {
        let record = self.record(id)?;
        let pack = RulePack::load(self.path_of(id))?;
        if pack.content_hash != record.content_hash {
            return Err(RegistryError::Corrupt(format!(
                "pack {id} in {} hashes to {}, but was published as {}: its files were \
                 changed after publishing",
                self.path_of(id).display(),
                short(&pack.content_hash),
                short(&record.content_hash)
            )));
        }
        Ok(pack)
    }

    /// Records of every published pack, oldest first.
    pub fn list(&self) -> Result<Vec<PackRecord>, RegistryError> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let entry = entry.map_err(|e| io_err(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !entry.path().join(PUBLISHED_FILE).is_file() {
                continue;
            }
            out.push(self.record(&name)?);
        }
        out.sort_by(|a, b| (a.published_at, &a.id).cmp(&(b.published_at, &b.id)));
        Ok(out)
    }

    fn not_found(&self, id: &str) -> RegistryError {
        let available: Vec<String> = self
            .list()
            .map(|l| l.into_iter().map(|r| r.id).collect())
            .unwrap_or_default();
        RegistryError::NotFound(format!(
            "no published pack {id:?} in {}; published: {}",
            self.root.display(),
            if available.is_empty() {
                "none (`fundwatch rules publish <dir>` publishes one)".to_string()
            } else {
                available.join(", ")
            }
        ))
    }
}

/// What differs between two packs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackDiff {
    /// Label of the older pack.
    pub a: String,
    /// Label of the newer pack.
    pub b: String,
    /// Manifest parts that differ (`description`, `requires_classes`,
    /// `dictionaries`, `parameters`).
    pub manifest: Vec<String>,
    /// Parameters whose value differs: name → (a, b).
    pub parameters: BTreeMap<String, (Option<f64>, Option<f64>)>,
    /// Rules only in `b`.
    pub added: Vec<String>,
    /// Rules only in `a`.
    pub removed: Vec<String>,
    /// Rules in both that differ, with the fields that differ.
    pub changed: Vec<(String, Vec<String>)>,
}

impl PackDiff {
    /// True when the packs have the same rules and manifest.
    pub fn is_empty(&self) -> bool {
        self.manifest.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// Compares pack `a` (older) with pack `b` (newer), by `rule_id`.
pub fn diff_packs(a: &RulePack, b: &RulePack) -> PackDiff {
    let (ma, mb) = (&a.manifest, &b.manifest);
    let mut manifest = Vec::new();
    if ma.description != mb.description {
        manifest.push("description".to_string());
    }
    if ma.requires_classes != mb.requires_classes {
        manifest.push("requires_classes".to_string());
    }
    if ma.dictionaries != mb.dictionaries {
        manifest.push("dictionaries".to_string());
    }
    if ma.parameters != mb.parameters {
        manifest.push("parameters".to_string());
    }
    let mut parameters = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> = ma
        .parameters
        .defaults
        .keys()
        .chain(mb.parameters.defaults.keys())
        .collect();
    for name in names {
        let (x, y) = (
            ma.parameters.defaults.get(name).copied(),
            mb.parameters.defaults.get(name).copied(),
        );
        if x != y {
            parameters.insert(name.clone(), (x, y));
        }
    }
    let in_a: BTreeMap<&str, &Rule> = a.rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
    let in_b: BTreeMap<&str, &Rule> = b.rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
    let added = in_b
        .keys()
        .filter(|id| !in_a.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    let removed = in_a
        .keys()
        .filter(|id| !in_b.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    let mut changed = Vec::new();
    for (id, ra) in &in_a {
        if let Some(rb) = in_b.get(id) {
            let fields = rule_fields(ra, rb);
            if !fields.is_empty() {
                changed.push((id.to_string(), fields));
            }
        }
    }
    PackDiff {
        a: a.version_label(),
        b: b.version_label(),
        manifest,
        parameters,
        added,
        removed,
        changed,
    }
}

fn rule_fields(a: &Rule, b: &Rule) -> Vec<String> {
    let mut f = Vec::new();
    macro_rules! cmp {
        ($($field:ident),*) => {$(
            if a.$field != b.$field { f.push(stringify!($field).to_string()); }
        )*};
    }
    cmp!(
        name,
        class,
        tier,
        sev_deg,
        vola_bhvr_type,
        trig_scen,
        message,
        legal_basis,
        penalty_class,
        description,
        sql,
        history_days,
        enabled,
        cases
    );
    f
}

fn copy(from: &Path, to: &Path) -> Result<(), RegistryError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io_err(from, e))
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RegistryError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| RegistryError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\\'])
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
