//! Where alerts, 3103 feedback and the admin audit log are kept.
//!
//! [`AlertStore`] is the seam: the HTTP service only calls the trait. Two
//! implementations ship:
//! - [`NdjsonStore`] (default): one append-only NDJSON log per institution
//!   (`<dir>/alerts/<fixmedins_code>.ndjson`, alert and feedback records
//!   interleaved in arrival order) and `<dir>/audit.ndjson`, replayed into memory
//!   at start. Nothing is rewritten in place, so a crash can at worst tear the last
//!   line, which the replay skips and the next append cuts off.
//! - [`MemoryStore`]: the same in-memory index without files.
//!
//! A real database plugs in by implementing [`AlertStore`] (docs/http.md shows
//! the mapping to two tables) and passing it to
//! [`Service::new`](super::Service::new).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::NaiveDateTime;
use fundwatch_engine::Alert;
use serde::{Deserialize, Serialize};

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a log file failed.
    #[error("alert store: {action} {path}: {source}")]
    Io {
        /// What was being done ("appending to", "reading", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A log line that is not a record (not the torn last line of a crash).
    #[error(
        "alert store: {path}:{line} is not a valid record ({reason}); move the file aside or repair the line, then restart"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parse error.
        reason: String,
    },
    /// Feedback for an alert the institution was never sent.
    #[error("no alert with jr_id {jr_id} was issued to institution {fixmedins_code}")]
    UnknownAlert {
        /// The institution.
        fixmedins_code: String,
        /// The `warn_rslt_id` given.
        jr_id: String,
    },
}

/// One 3103 `warns[]` entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `warn_rslt_id`: the alert's `jr_id`.
    pub warn_rslt_id: String,
    /// `warn_type`: `1` 事前, `2` 事中.
    pub warn_type: String,
    /// `dspo_way`: `1` 继续执行, `2` 返回修改.
    pub dspo_way: String,
    /// `dspo_way_rea`: the doctor's reason (required for `dspo_way = 1`).
    pub dspo_way_rea: String,
    /// The request's `msgid` (empty for a bare request).
    pub msgid: String,
    /// When FundWatch received it (yyyy-MM-dd HH:mm:ss.SSS).
    pub received_at: String,
}

/// An alert with the feedback given on it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The alert as sent to the HIS.
    #[serde(flatten)]
    pub alert: Alert,
    /// 3103 feedback on it.
    pub feedback: Vec<Feedback>,
}

/// Which alert time a range applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    /// When FundWatch emitted the alert.
    #[default]
    EmittedAt,
    /// When the event happened.
    EventTime,
}

/// A filter over one institution's alerts; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertQuery {
    /// Only this encounter.
    pub mdtrt_id: Option<String>,
    /// Only this patient.
    pub patn_id: Option<String>,
    /// Inclusive lower bound on `time_field`.
    pub from: Option<NaiveDateTime>,
    /// Inclusive upper bound on `time_field`.
    pub to: Option<NaiveDateTime>,
    /// Which time `from`/`to` apply to.
    pub time_field: TimeField,
    /// Most records returned (in arrival order).
    pub limit: usize,
}

/// One admin action (or a refused attempt at one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// yyyy-MM-dd HH:mm:ss.SSS.
    pub time: String,
    /// Key name, or `-` when no valid key was presented.
    pub actor: String,
    /// `admin`, `institution` or `-`.
    pub role: String,
    /// `METHOD /path?query`.
    pub action: String,
    /// HTTP status answered.
    pub status: u16,
}

/// Keeps alerts, feedback and the audit log. Implementations must be safe to call
/// from many threads; every method returns quickly (the evaluation path calls
/// [`put_alerts`](Self::put_alerts) before answering the HIS).
pub trait AlertStore: Send + Sync + std::fmt::Debug {
    /// Records alerts sent to `fixmedins_code`; an alert whose `jr_id` is already
    /// known (a re-sent request) is not recorded again.
    fn put_alerts(&self, fixmedins_code: &str, alerts: &[Alert]) -> Result<(), StoreError>;
    /// One alert of `fixmedins_code`, with its feedback.
    fn get(&self, fixmedins_code: &str, jr_id: &str) -> Option<AlertRecord>;
    /// Records feedback, all or nothing: [`StoreError::UnknownAlert`] names the
    /// first `warn_rslt_id` that is not an alert of `fixmedins_code`.
    fn put_feedback(&self, fixmedins_code: &str, feedback: &[Feedback]) -> Result<(), StoreError>;
    /// Alerts of `fixmedins_code` matching `query`, in arrival order.
    fn query(&self, fixmedins_code: &str, query: &AlertQuery) -> Vec<AlertRecord>;
    /// Appends to the audit log.
    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The latest `limit` audit entries, oldest first.
    fn audit(&self, limit: usize) -> Vec<AuditEntry>;
}

// ---------------------------------------------------------------- memory index

#[derive(Debug, Default)]
struct Institution {
    records: Vec<Indexed>,
    by_jr: HashMap<String, usize>,
    by_mdtrt: HashMap<String, Vec<usize>>,
}

#[derive(Debug)]
struct Indexed {
    record: AlertRecord,
    emitted_at: Option<NaiveDateTime>,
    event_time: Option<NaiveDateTime>,
}

#[derive(Debug, Default)]
struct Index {
    institutions: HashMap<String, Institution>,
    audit: Vec<AuditEntry>,
}

impl Index {
    /// Inserts the alerts not yet known; returns them.
    fn insert_alerts<'a>(&mut self, fixmedins_code: &str, alerts: &'a [Alert]) -> Vec<&'a Alert> {
        let inst = self
            .institutions
            .entry(fixmedins_code.to_string())
            .or_default();
        let mut new = Vec::new();
        for alert in alerts {
            if inst.by_jr.contains_key(&alert.jr_id) {
                continue;
            }
            let idx = inst.records.len();
            inst.by_jr.insert(alert.jr_id.clone(), idx);
            inst.by_mdtrt
                .entry(alert.mdtrt_id.clone())
                .or_default()
                .push(idx);
            inst.records.push(Indexed {
                emitted_at: parse_time(&alert.emitted_at),
                event_time: parse_time(&alert.event_time),
                record: AlertRecord {
                    alert: alert.clone(),
                    feedback: Vec::new(),
                },
            });
            new.push(alert);
        }
        new
    }

    fn check_feedback(
        &self,
        fixmedins_code: &str,
        feedback: &[Feedback],
    ) -> Result<(), StoreError> {
        let inst = self.institutions.get(fixmedins_code);
        for fb in feedback {
            if !inst.is_some_and(|i| i.by_jr.contains_key(&fb.warn_rslt_id)) {
                return Err(StoreError::UnknownAlert {
                    fixmedins_code: fixmedins_code.to_string(),
                    jr_id: fb.warn_rslt_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Attaches feedback to known alerts (call [`Self::check_feedback`] first).
    fn attach_feedback(&mut self, fixmedins_code: &str, feedback: &[Feedback]) {
        if let Some(inst) = self.institutions.get_mut(fixmedins_code) {
            for fb in feedback {
                if let Some(&idx) = inst.by_jr.get(&fb.warn_rslt_id) {
                    inst.records[idx].record.feedback.push(fb.clone());
                }
            }
        }
    }

    fn get(&self, fixmedins_code: &str, jr_id: &str) -> Option<AlertRecord> {
        let inst = self.institutions.get(fixmedins_code)?;
        let idx = *inst.by_jr.get(jr_id)?;
        Some(inst.records[idx].record.clone())
    }

    fn query(&self, fixmedins_code: &str, query: &AlertQuery) -> Vec<AlertRecord> {
        let Some(inst) = self.institutions.get(fixmedins_code) else {
            return Vec::new();
        };
        let candidates: Box<dyn Iterator<Item = &Indexed>> = match &query.mdtrt_id {
            Some(mdtrt) => Box::new(
                inst.by_mdtrt
                    .get(mdtrt)
                    .into_iter()
                    .flatten()
                    .map(|&i| &inst.records[i]),
            ),
            None => Box::new(inst.records.iter()),
        };
        candidates
            .filter(|r| {
                query
                    .patn_id
                    .as_ref()
                    .is_none_or(|p| *p == r.record.alert.patn_id)
            })
            .filter(|r| {
                if query.from.is_none() && query.to.is_none() {
                    return true;
                }
                let time = match query.time_field {
                    TimeField::EmittedAt => r.emitted_at,
                    TimeField::EventTime => r.event_time,
                };
                time.is_some_and(|t| {
                    query.from.is_none_or(|from| t >= from) && query.to.is_none_or(|to| t <= to)
                })
            })
            .take(query.limit)
            .map(|r| r.record.clone())
            .collect()
    }

    fn audit(&self, limit: usize) -> Vec<AuditEntry> {
        let start = self.audit.len().saturating_sub(limit);
        self.audit[start..].to_vec()
    }
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()
}

fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    // A panic while holding the lock leaves a consistent index (every mutation is
    // a push or an insert), so a poisoned lock is safe to keep using.
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Alerts and feedback in memory only.
#[derive(Debug, Default)]
pub struct MemoryStore {
    index: Mutex<Index>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl AlertStore for MemoryStore {
    fn put_alerts(&self, fixmedins_code: &str, alerts: &[Alert]) -> Result<(), StoreError> {
        lock(&self.index).insert_alerts(fixmedins_code, alerts);
        Ok(())
    }

    fn get(&self, fixmedins_code: &str, jr_id: &str) -> Option<AlertRecord> {
        lock(&self.index).get(fixmedins_code, jr_id)
    }

    fn put_feedback(&self, fixmedins_code: &str, feedback: &[Feedback]) -> Result<(), StoreError> {
        let mut index = lock(&self.index);
        index.check_feedback(fixmedins_code, feedback)?;
        index.attach_feedback(fixmedins_code, feedback);
        Ok(())
    }

    fn query(&self, fixmedins_code: &str, query: &AlertQuery) -> Vec<AlertRecord> {
        lock(&self.index).query(fixmedins_code, query)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        lock(&self.index).audit.push(entry.clone());
        Ok(())
    }

    fn audit(&self, limit: usize) -> Vec<AuditEntry> {
        lock(&self.index).audit(limit)
    }
}

// ---------------------------------------------------------------- NDJSON logs

/// One line of an institution's log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum LogLine<A, F> {
    Alert { fixmedins_code: String, alert: A },
    Feedback { fixmedins_code: String, feedback: F },
}

/// Append-only NDJSON logs replayed into memory at start.
#[derive(Debug)]
pub struct NdjsonStore {
    dir: PathBuf,
    sync: bool,
    index: Mutex<Index>,
    files: Mutex<HashMap<String, File>>,
    audit_file: Mutex<File>,
}

impl NdjsonStore {
    /// Opens (creating) the logs under `dir` and replays them. `sync` makes every
    /// append `fsync` before returning.
    pub fn open(dir: &Path, sync: bool) -> Result<Self, StoreError> {
        let alerts_dir = dir.join("alerts");
        std::fs::create_dir_all(&alerts_dir).map_err(|source| StoreError::Io {
            action: "creating",
            path: alerts_dir.clone(),
            source,
        })?;
        let mut index = Index::default();
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&alerts_dir)
            .map_err(|source| StoreError::Io {
                action: "listing",
                path: alerts_dir.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect();
        logs.sort();
        for path in &logs {
            replay(path, |line| {
                match serde_json::from_str::<LogLine<Alert, Feedback>>(line)? {
                    LogLine::Alert {
                        fixmedins_code,
                        alert,
                    } => {
                        index.insert_alerts(&fixmedins_code, std::slice::from_ref(&alert));
                    }
                    LogLine::Feedback {
                        fixmedins_code,
                        feedback,
                    } => index.attach_feedback(&fixmedins_code, std::slice::from_ref(&feedback)),
                }
                Ok(())
            })?;
        }
        let audit_path = dir.join("audit.ndjson");
        if audit_path.exists() {
            replay(&audit_path, |line| {
                index.audit.push(serde_json::from_str(line)?);
                Ok(())
            })?;
        }
        let audit_file = open_append(&audit_path)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            sync,
            index: Mutex::new(index),
            files: Mutex::new(HashMap::new()),
            audit_file: Mutex::new(audit_file),
        })
    }

    fn log_path(&self, fixmedins_code: &str) -> PathBuf {
        self.dir
            .join("alerts")
            .join(format!("{}.ndjson", file_stem(fixmedins_code)))
    }

    fn append(&self, fixmedins_code: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.log_path(fixmedins_code);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let file = match files.entry(fixmedins_code.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(open_append(&path)?),
        };
        write_all(file, bytes, &path, self.sync)
    }
}

impl AlertStore for NdjsonStore {
    fn put_alerts(&self, fixmedins_code: &str, alerts: &[Alert]) -> Result<(), StoreError> {
        // The index lock is held across the append so the log's order is the
        // index's order: feedback can never be logged before its alert.
        let mut index = lock(&self.index);
        let mut bytes = Vec::new();
        for alert in index.insert_alerts(fixmedins_code, alerts) {
            let line: LogLine<&Alert, ()> = LogLine::Alert {
                fixmedins_code: fixmedins_code.to_string(),
                alert,
            };
            // Serialising a struct of strings and numbers cannot fail.
            if serde_json::to_writer(&mut bytes, &line).is_ok() {
                bytes.push(b'\n');
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let result = self.append(fixmedins_code, &bytes);
        drop(index);
        result
    }

    fn get(&self, fixmedins_code: &str, jr_id: &str) -> Option<AlertRecord> {
        lock(&self.index).get(fixmedins_code, jr_id)
    }

    fn put_feedback(&self, fixmedins_code: &str, feedback: &[Feedback]) -> Result<(), StoreError> {
        let mut index = lock(&self.index);
        index.check_feedback(fixmedins_code, feedback)?;
        index.attach_feedback(fixmedins_code, feedback);
        let mut bytes = Vec::new();
        for fb in feedback {
            let line: LogLine<(), &Feedback> = LogLine::Feedback {
                fixmedins_code: fixmedins_code.to_string(),
                feedback: fb,
            };
            if serde_json::to_writer(&mut bytes, &line).is_ok() {
                bytes.push(b'\n');
            }
        }
        let result = self.append(fixmedins_code, &bytes);
        drop(index);
        result
    }

    fn query(&self, fixmedins_code: &str, query: &AlertQuery) -> Vec<AlertRecord> {
        lock(&self.index).query(fixmedins_code, query)
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec(entry).unwrap_or_default();
        bytes.push(b'\n');
        let mut index = lock(&self.index);
        index.audit.push(entry.clone());
        let mut file = self.audit_file.lock().unwrap_or_else(|p| p.into_inner());
        let result = write_all(&mut file, &bytes, &self.dir.join("audit.ndjson"), self.sync);
        drop(index);
        result
    }

    fn audit(&self, limit: usize) -> Vec<AuditEntry> {
        lock(&self.index).audit(limit)
    }
}

/// A file name for an institution code: the code itself when it is plain
/// (`[A-Za-z0-9_-]`), else `x-` + its hex, so no code can name a path.
fn file_stem(fixmedins_code: &str) -> String {
    let plain = !fixmedins_code.is_empty()
        && fixmedins_code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !fixmedins_code.starts_with("x-");
    if plain {
        fixmedins_code.to_string()
    } else {
        format!("x-{}", hex::encode(fixmedins_code.as_bytes()))
    }
}

/// Opens `path` for appending. When a crash tore its last line (no newline at
/// the end), that partial record is cut off, so the next append starts clean and
/// the replay never meets it in the middle of the file.
fn open_append(path: &Path) -> Result<File, StoreError> {
    let io = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io("opening"))?;
    let len = file.metadata().map_err(io("reading"))?.len();
    let keep = complete_length(&mut file, len).map_err(io("reading"))?;
    if keep < len {
        tracing::warn!(
            path = %path.display(),
            bytes = len - keep,
            "cutting off the torn last line of the log (a crash during a write)"
        );
        file.set_len(keep).map_err(io("repairing"))?;
    }
    Ok(file)
}

/// Length of `file` up to and including its last newline (0 when it has none).
fn complete_length(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 4096;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn write_all(file: &mut File, bytes: &[u8], path: &Path, sync: bool) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        action: "appending to",
        path: path.to_path_buf(),
        source,
    };
    file.write_all(bytes).map_err(io)?;
    if sync {
        file.sync_data().map_err(io)?;
    }
    Ok(())
}

/// Feeds each line of `path` to `apply`; a bad last line without a newline is the
/// torn write of a crash and is dropped with a warning, any other bad line is an
/// error.
fn replay(
    path: &Path,
    mut apply: impl FnMut(&str) -> Result<(), serde_json::Error>,
) -> Result<(), StoreError> {
    let file = File::open(path).map_err(|source| StoreError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|source| StoreError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Err(err) = apply(text) {
            if !line.ends_with('\n') {
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    "dropping the torn last line of the log (a crash during a write)"
                );
                return Ok(());
            }
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                line: number,
                reason: err.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn alert(jr_id: &str, mdtrt_id: &str, emitted_at: &str) -> Alert {
        Alert {
            jr_id: jr_id.into(),
            rule_id: "GZ10000301004000".into(),
            rule_name: "药品区分性别使用".into(),
            vola_cont: String::new(),
            patn_id: "P1".into(),
            mdtrt_id: mdtrt_id.into(),
            judge_result_detail_dtos: Vec::new(),
            vola_amt: 1.0,
            vola_amt_stas: "1".into(),
            sev_deg: "1".into(),
            vola_evid: String::new(),
            vola_bhvr_type: "3".into(),
            task_id: "T".into(),
            fixmedins_code: "H1".into(),
            trig_scen: "4".into(),
            rule_pack_version: "national@1.0.0".into(),
            kb_version: "kb".into(),
            event_time: "2025-06-14 14:27:24".into(),
            emitted_at: emitted_at.into(),
        }
    }

    fn feedback(jr_id: &str) -> Feedback {
        Feedback {
            warn_rslt_id: jr_id.into(),
            warn_type: "1".into(),
            dspo_way: "1".into(),
            dspo_way_rea: "已核实".into(),
            msgid: String::new(),
            received_at: "2025-06-14 14:30:00.000".into(),
        }
    }

    #[test]
    fn ndjson_store_survives_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = NdjsonStore::open(dir.path(), false).expect("opens");
            store
                .put_alerts(
                    "H1",
                    &[
                        alert("JR1", "M1", "2025-06-14 14:27:24.100"),
                        alert("JR2", "M2", "2025-06-15 09:00:00.000"),
                    ],
                )
                .expect("put");
            // A re-sent request: not recorded twice.
            store
                .put_alerts("H1", &[alert("JR1", "M1", "2025-06-14 14:27:25.000")])
                .expect("put again");
            store
                .put_feedback("H1", &[feedback("JR1")])
                .expect("feedback");
            let err = store
                .put_feedback("H2", &[feedback("JR1")])
                .expect_err("another institution");
            assert!(matches!(err, StoreError::UnknownAlert { .. }), "{err}");
            store
                .append_audit(&AuditEntry {
                    time: "t".into(),
                    actor: "ops".into(),
                    role: "admin".into(),
                    action: "GET /api/v1/admin/audit".into(),
                    status: 200,
                })
                .expect("audit");
        }
        // A crash in the middle of a write.
        let log = dir.path().join("alerts/H1.ndjson");
        let mut file = OpenOptions::new().append(true).open(&log).expect("log");
        file.write_all(b"{\"type\":\"alert\",\"fixm").expect("torn");
        drop(file);

        let store = NdjsonStore::open(dir.path(), false).expect("reopens");
        let query = AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        };
        let all = store.query("H1", &query);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].feedback, vec![feedback("JR1")]);
        assert_eq!(all[0].alert.emitted_at, "2025-06-14 14:27:24.100");
        assert!(store.query("H2", &query).is_empty());
        assert_eq!(store.audit(10).len(), 1);

        // Appends after the torn line land on their own line and replay.
        store
            .put_alerts("H1", &[alert("JR3", "M1", "2025-06-16 10:00:00.000")])
            .expect("put after repair");
        drop(store);
        let store = NdjsonStore::open(dir.path(), false).expect("reopens again");
        let by_mdtrt = store.query(
            "H1",
            &AlertQuery {
                mdtrt_id: Some("M1".into()),
                limit: 10,
                ..AlertQuery::default()
            },
        );
        let ids: Vec<&str> = by_mdtrt.iter().map(|r| r.alert.jr_id.as_str()).collect();
        assert_eq!(ids, ["JR1", "JR3"]);
    }

    #[test]
    fn a_corrupt_line_in_the_middle_stops_the_replay_with_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("alerts")).expect("mkdir");
        std::fs::write(dir.path().join("alerts/H1.ndjson"), "garbage\n{}\n").expect("write");
        let err = NdjsonStore::open(dir.path(), false).expect_err("corrupt");
        assert!(err.to_string().contains("H1.ndjson:1"), "{err}");
    }

    #[test]
    fn time_ranges_apply_to_the_chosen_field() {
        let store = MemoryStore::new();
        store
            .put_alerts(
                "H1",
                &[
                    alert("JR1", "M1", "2025-06-14 14:27:24.100"),
                    alert("JR2", "M2", "2025-06-15 09:00:00.000"),
                ],
            )
            .expect("put");
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
        let hits = store.query(
            "H1",
            &AlertQuery {
                from: at("2025-06-15 00:00:00"),
                limit: 10,
                ..AlertQuery::default()
            },
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].alert.jr_id, "JR2");
        let by_event = store.query(
            "H1",
            &AlertQuery {
                from: at("2025-06-15 00:00:00"),
                time_field: TimeField::EventTime,
                limit: 10,
                ..AlertQuery::default()
            },
        );
        assert!(by_event.is_empty(), "both events happened on the 14th");
    }

    #[test]
    fn institution_codes_never_name_a_path() {
        assert_eq!(file_stem("H43079600001"), "H43079600001");
        assert_eq!(file_stem("../etc"), format!("x-{}", hex::encode("../etc")));
        assert!(file_stem("").starts_with("x-"));
    }
}
