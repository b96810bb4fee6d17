//! The version registry: published rule packs, KB versions, what is active and
//! the log of every activation (docs/registry.md).
//!
//! ```text
//! <registry>/
//!   kb/<kb id>/            immutable KB versions (fundwatch_kb::KbStore)
//!   packs/<name@version>/  immutable published packs (pack.toml, rules/, published.json)
//!   active.json            the ActiveState in force
//!   activations.jsonl      append-only: who, when, what, from → to
//! ```
//!
//! The registry only records; it does not compile or test. Activation is two
//! steps so the engine can do that in between, off the hot path: `plan_*`
//! computes the new state from the current one, the engine compiles and runs the
//! pack's cases against it, then [`Registry::commit`] logs it — refusing when
//! another activation committed meanwhile, so two operators never silently
//! overwrite each other.

mod active;
mod packs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use fundwatch_kb::{KbError, KbStore, NATIONAL};

pub use active::{Action, Activation, ActiveState, Kind};
pub use packs::{PUBLISHED_FILE, PackDiff, PackRecord, PackStore, diff_packs};

use crate::error::RulesError;

/// Environment variable naming the registry directory.
pub const REGISTRY_ENV: &str = "FUNDWATCH_REGISTRY";
/// The state file.
pub const ACTIVE_FILE: &str = "active.json";
/// The activation log.
pub const LOG_FILE: &str = "activations.jsonl";
const LOCK_FILE: &str = ".lock";

/// The registry directory: `$FUNDWATCH_REGISTRY`, else `var/registry`.
pub fn default_registry_dir() -> PathBuf {
    std::env::var_os(REGISTRY_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("var/registry"))
}

/// What went wrong in the registry; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A registry file is not what it should be.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A pack could not be read.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A KB version could not be read (boxed: the error is large and rare).
    #[error(transparent)]
    Kb(Box<KbError>),
    /// No such version.
    #[error("{0}")]
    NotFound(String),
    /// A version already exists with other content, or the state changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// Stored files no longer match their hash.
    #[error("{0}")]
    Corrupt(String),
    /// The action makes no sense in the current state (nothing to roll back …).
    #[error("{0}")]
    Refused(String),
}

impl From<KbError> for RegistryError {
    fn from(err: KbError) -> Self {
        RegistryError::Kb(Box::new(err))
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader
/// never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    file.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// A state change computed by a `plan_*` method, not yet committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What.
    pub action: Action,
    /// The version named (see [`Activation::target`]).
    pub target: String,
    /// The state it starts from (must still be in force at commit).
    pub from: ActiveState,
    /// The state it makes (`seq` and the entry of an activation are filled in at commit).
    pub to: ActiveState,
    /// For an activation: the entry rollback returns to.
    pub undo: Option<u64>,
}

/// A registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The directory.
    pub root: PathBuf,
}

impl Registry {
    /// The registry at `root` (directories are created on first write).
    pub fn open(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The KB versions.
    pub fn kb(&self) -> KbStore {
        KbStore::new(self.root.join("kb"))
    }

    /// The published packs.
    pub fn packs(&self) -> PackStore {
        PackStore::new(self.root.join("packs"))
    }

    /// The state in force (the default state when nothing was ever activated).
    pub fn state(&self) -> Result<ActiveState, RegistryError> {
        let path = self.root.join(ACTIVE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::Json {
                path,
                message: format!("not a registry state: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ActiveState::default()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Every activation, oldest first.
    pub fn log(&self) -> Result<Vec<Activation>, RegistryError> {
        let path = self.root.join(LOG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| RegistryError::Json {
                    path: path.clone(),
                    message: format!("line {}: not an activation: {e}", i + 1),
                })
            })
            .collect()
    }

    /// The entry with sequence number `seq`.
    fn entry(&self, seq: u64) -> Result<Activation, RegistryError> {
        self.log()?
            .into_iter()
            .find(|a| a.seq == seq)
            .ok_or_else(|| {
                RegistryError::Corrupt(format!(
                    "{} names activation {seq}, which {} does not hold",
                    self.root.join(ACTIVE_FILE).display(),
                    self.root.join(LOG_FILE).display()
                ))
            })
    }

    /// Makes pack `id` (published) the active pack.
    pub fn plan_activate_pack(&self, id: &str) -> Result<Planned, RegistryError> {
        self.packs().record(id)?;
        let from = self.state()?;
        let mut to = from.clone();
        to.pack = Some(id.to_string());
        Ok(Planned {
            action: Action::ActivatePack,
            target: id.to_string(),
            undo: from.pack_entry,
            from,
            to,
        })
    }

    /// Puts KB version `id` into the timeline from its `effective_from` on: the
    /// versions in force from an earlier date stay (back-dated events still use
    /// them), versions from the same or a later date leave the timeline.
    pub fn plan_activate_kb(&self, id: &str) -> Result<Planned, RegistryError> {
        let store = self.kb();
        let new = store.show(id)?;
        let from = self.state()?;
        let mut timeline = Vec::new();
        for old in &from.kb {
            let m = store.show(old)?;
            if m.effective_from < new.effective_from && m.id != new.id {
                timeline.push(old.clone());
            }
        }
        timeline.push(id.to_string());
        let mut to = from.clone();
        to.kb = timeline;
        Ok(Planned {
            action: Action::ActivateKb,
            target: id.to_string(),
            undo: from.kb_entry,
            from,
            to,
        })
    }

    /// Returns the pack or the KB timeline to what it was before the activation
    /// that set it.
    pub fn plan_rollback(&self, kind: Kind) -> Result<Planned, RegistryError> {
        let from = self.state()?;
        let (head, what) = match kind {
            Kind::Pack => (from.pack_entry, "pack"),
            Kind::Kb => (from.kb_entry, "KB"),
            Kind::Shadow => {
                return Err(RegistryError::Refused(
                    "a shadow candidate is not rolled back: discard it".into(),
                ));
            }
        };
        let Some(head) = head else {
            return Err(RegistryError::Refused(format!(
                "nothing to roll back: the {what} in force is the shipped default, no activation set it"
            )));
        };
        let undo = self.entry(head)?.undo;
        let before = match undo {
            Some(seq) => Some(self.entry(seq)?.to),
            None => None,
        };
        let mut to = from.clone();
        let (action, target) = match kind {
            Kind::Pack => {
                to.pack = before.and_then(|s| s.pack);
                to.pack_entry = undo;
                (
                    Action::RollbackPack,
                    to.pack.clone().unwrap_or_else(|| "default".into()),
                )
            }
            _ => {
                to.kb = before.map(|s| s.kb).unwrap_or_default();
                to.kb_entry = undo;
                (
                    Action::RollbackKb,
                    to.kb.last().cloned().unwrap_or_else(|| NATIONAL.into()),
                )
            }
        };
        Ok(Planned {
            action,
            target,
            from,
            to,
            undo: None,
        })
    }

    /// Runs published pack `id` in shadow mode beside the active pack.
    pub fn plan_shadow(&self, id: &str) -> Result<Planned, RegistryError> {
        self.packs().record(id)?;
        let from = self.state()?;
        let mut to = from.clone();
        to.shadow = Some(id.to_string());
        Ok(Planned {
            action: Action::Shadow,
            target: id.to_string(),
            undo: None,
            from,
            to,
        })
    }

    /// Makes the shadow candidate the active pack.
    pub fn plan_promote(&self) -> Result<Planned, RegistryError> {
        let from = self.state()?;
        let Some(id) = from.shadow.clone() else {
            return Err(RegistryError::Refused(
                "no shadow candidate to promote: start one with `rules shadow <pack>`".into(),
            ));
        };
        let mut to = from.clone();
        to.pack = Some(id.clone());
        to.shadow = None;
        Ok(Planned {
            action: Action::Promote,
            target: id,
            undo: from.pack_entry,
            from,
            to,
        })
    }

    /// Drops the shadow candidate.
    pub fn plan_discard(&self) -> Result<Planned, RegistryError> {
        let from = self.state()?;
        let Some(id) = from.shadow.clone() else {
            return Err(RegistryError::Refused(
                "no shadow candidate to discard".into(),
            ));
        };
        let mut to = from.clone();
        to.shadow = None;
        Ok(Planned {
            action: Action::Discard,
            target: id,
            undo: None,
            from,
            to,
        })
    }

    /// Logs `planned` and makes its state the one in force. Refused when the
    /// state changed since it was planned.
    pub fn commit(
        &self,
        planned: Planned,
        actor: &str,
        notes: &str,
    ) -> Result<Activation, RegistryError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let _lock = DirLock::acquire(&self.root.join(LOCK_FILE))?;
        let current = self.state()?;
        if current != planned.from {
            return Err(RegistryError::Conflict(format!(
                "the registry changed while this activation was prepared (now at activation {}, \
                 it was planned at {}); look at `rules list` and try again",
                current.seq, planned.from.seq
            )));
        }
        let seq = self.log()?.last().map_or(0, |a| a.seq) + 1;
        let mut to = planned.to;
        to.seq = seq;
        match planned.action {
            Action::ActivatePack | Action::Promote => to.pack_entry = Some(seq),
            Action::ActivateKb => to.kb_entry = Some(seq),
            _ => {}
        }
        let entry = Activation {
            seq,
            time: Utc::now(),
            actor: actor.to_string(),
            action: planned.action,
            target: planned.target,
            from: planned.from,
            to: to.clone(),
            undo: planned.undo,
            notes: notes.to_string(),
        };
        let path = self.root.join(LOG_FILE);
        let mut line = serde_json::to_string(&entry).map_err(|e| RegistryError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        log.write_all(line.as_bytes())
            .map_err(|e| io_err(&path, e))?;
        log.sync_all().map_err(|e| io_err(&path, e))?;
        packs::write_json(&self.root.join(ACTIVE_FILE), &to)?;
        Ok(entry)
    }
}

/// A lock file held while the log and state are written: another process
/// committing at the same time waits. A lock older than a minute is taken over
/// (its holder died).
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<Self, RegistryError> {
        let started = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Ok(Self(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(60));
                    if stale {
                        let _ = std::fs::remove_file(path);
                    } else if started.elapsed() > Duration::from_secs(10) {
                        return Err(RegistryError::Conflict(format!(
                            "{} is held by another activation; remove it if no fundwatch process is activating",
                            path.display()
                        )));
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Err(e) => return Err(io_err(path, e)),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn national_pack() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packs/national")
    }

    /// A copy of the national pack with another version (and optionally a changed rule).
    fn variant(dir: &Path, version: &str, tweak_message: bool) -> PathBuf {
        let out = dir.join(format!("pack-{version}"));
        std::fs::create_dir_all(out.join("rules")).expect("mkdir");
        let manifest = std::fs::read_to_string(national_pack().join("pack.toml")).expect("read");
        let manifest = manifest.replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        );
        std::fs::write(out.join("pack.toml"), manifest).expect("write");
        for entry in std::fs::read_dir(national_pack().join("rules")).expect("rules") {
            let path = entry.expect("entry").path();
            let mut text = std::fs::read_to_string(&path).expect("read rule");
            if tweak_message && path.ends_with("GZ10000301004000.toml") {
                text = text.replacen("message = \"", "message = \"[v2] ", 1);
            }
            std::fs::write(
                out.join("rules").join(path.file_name().expect("name")),
                text,
            )
            .expect("write rule");
        }
        out
    }

    #[test]
    fn publish_is_immutable_and_idempotent() {
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(tmp.path().join("reg"));
        let v1 = variant(tmp.path(), "1.0.0", false);
        let (record, new) = reg.packs().publish(&v1, "alice", "first").expect("publish");
        assert!(new);
        assert_eq!(record.id, "national@1.0.0");
        let (again, new) = reg.packs().publish(&v1, "bob", "again").expect("republish");
        assert!(!new, "same content is a no-op");
        assert_eq!(again.author, "alice");
        // Same id, other content: refused.
        let changed = variant(tmp.path(), "1.0.0-x", true);
        std::fs::write(
            changed.join("pack.toml"),
            std::fs::read_to_string(v1.join("pack.toml")).expect("read"),
        )
        .expect("write");
        let err = reg
            .packs()
            .publish(&changed, "mallory", "")
            .expect_err("conflict");
        assert!(err.to_string().contains("immutable"), "{err}");
        // Tampering with a published file is detected on load.
        let rule = reg
            .packs()
            .path_of("national@1.0.0")
            .join("rules/GZ10000301004000.toml");
        let text = std::fs::read_to_string(&rule).expect("read");
        std::fs::write(&rule, text.replacen("message = \"", "message = \"!", 1)).expect("write");
        let err = reg.packs().load("national@1.0.0").expect_err("corrupt");
        assert!(
            err.to_string().contains("changed after publishing"),
            "{err}"
        );
    }

    #[test]
    fn diff_names_changed_rule_fields() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = crate::RulePack::load(variant(tmp.path(), "1.0.0", false)).expect("a");
        let b = crate::RulePack::load(variant(tmp.path(), "1.1.0", true)).expect("b");
        let d = diff_packs(&a, &b);
        assert_eq!(
            d.changed,
            vec![("GZ10000301004000".to_string(), vec!["message".to_string()])]
        );
        assert!(d.added.is_empty() && d.removed.is_empty() && d.manifest.is_empty());
    }

    #[test]
    fn activate_rollback_walks_back_and_logs() {
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(tmp.path().join("reg"));
        for (v, tweak) in [("1.0.0", false), ("1.1.0", true), ("1.2.0", false)] {
            reg.packs()
                .publish(&variant(tmp.path(), v, tweak), "alice", v)
                .expect("publish");
        }
        let err = reg.plan_rollback(Kind::Pack).expect_err("nothing yet");
        assert!(err.to_string().contains("nothing to roll back"), "{err}");
        for id in ["national@1.0.0", "national@1.1.0", "national@1.2.0"] {
            let planned = reg.plan_activate_pack(id).expect("plan");
            reg.commit(planned, "ops", "").expect("commit");
        }
        assert_eq!(
            reg.state().expect("state").pack.as_deref(),
            Some("national@1.2.0")
        );
        let back = reg.plan_rollback(Kind::Pack).expect("plan rollback");
        assert_eq!(back.target, "national@1.1.0");
        reg.commit(back, "ops", "").expect("rollback");
        let back = reg.plan_rollback(Kind::Pack).expect("plan rollback 2");
        assert_eq!(back.target, "national@1.0.0");
        reg.commit(back, "ops", "").expect("rollback 2");
        let back = reg.plan_rollback(Kind::Pack).expect("plan rollback 3");
        assert_eq!(back.target, "default");
        let entry = reg.commit(back, "ops", "").expect("rollback 3");
        assert_eq!(entry.to.pack, None);
        let log = reg.log().expect("log");
        assert_eq!(log.len(), 6);
        assert_eq!(log[3].from.pack.as_deref(), Some("national@1.2.0"));
        assert_eq!(log[3].to.pack.as_deref(), Some("national@1.1.0"));
        assert!(log.iter().all(|a| a.actor == "ops"));
    }

    #[test]
    fn stale_plan_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(tmp.path().join("reg"));
        reg.packs()
            .publish(&variant(tmp.path(), "1.0.0", false), "a", "")
            .expect("publish");
        let first = reg.plan_activate_pack("national@1.0.0").expect("plan");
        let second = reg.plan_activate_pack("national@1.0.0").expect("plan");
        reg.commit(first, "a", "").expect("commit");
        let err = reg.commit(second, "b", "").expect_err("stale");
        assert!(err.to_string().contains("changed while"), "{err}");
    }

    #[test]
    fn shadow_promote_discard() {
        let tmp = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(tmp.path().join("reg"));
        reg.packs()
            .publish(&variant(tmp.path(), "2.0.0", true), "a", "")
            .expect("publish");
        assert!(reg.plan_promote().is_err());
        reg.commit(reg.plan_shadow("national@2.0.0").expect("plan"), "a", "")
            .expect("shadow");
        reg.commit(reg.plan_promote().expect("plan"), "a", "")
            .expect("promote");
        let state = reg.state().expect("state");
        assert_eq!(state.pack.as_deref(), Some("national@2.0.0"));
        assert_eq!(state.shadow, None);
        // Promote is a pack activation: rollback returns to the default.
        assert_eq!(
            reg.plan_rollback(Kind::Pack).expect("rollback").target,
            "default"
        );
    }
}
