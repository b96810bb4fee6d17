//! Durability for a [`HistoryStore`]: a write-ahead log plus snapshots, each
//! stamped with the input position it covers.
//!
//! Layout of a partition's directory:
//! - `snapshot.json` — `{position, store}`: the store after applying every input up to
//!   and including `position`; written to a temporary file, synced, then renamed, so
//!   a crash leaves either the old or the new snapshot.
//! - `wal.ndjson` — one line per applied batch after the snapshot:
//!   `{position, records:[PersonRecord…]}`. A torn last line (crash mid-write) is
//!   ignored: its batch was not acknowledged, so its input is replayed.
//!
//! Recovery: load the snapshot, replay the log, report [`DurableHistory::position`]; the
//! caller resumes its input after that position (the input topic is the changelog).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{HistoryStore, PersonRecord};
use crate::event::Event;

/// Errors of the history's files.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file could not be read or written.
    #[error("history state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The snapshot is not valid (not a truncated write: those never get renamed).
    #[error(
        "history snapshot {path} is corrupt: {message}; move it away to rebuild from the input"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct Snapshot {
    position: Option<u64>,
    store: HistoryStore,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    position: Option<u64>,
    store: &'a HistoryStore,
}

#[derive(Serialize, Deserialize)]
struct WalEntry {
    position: Option<u64>,
    records: Vec<PersonRecord>,
}

/// A history store, optionally persisted in a directory.
#[derive(Debug)]
pub struct DurableHistory {
    store: HistoryStore,
    dir: Option<PathBuf>,
    wal: Option<BufWriter<File>>,
    position: Option<u64>,
    since_snapshot: u64,
    snapshot_every: u64,
}

impl DurableHistory {
    /// An in-memory history (nothing survives the process).
    pub fn in_memory(retention_days: u32) -> Self {
        Self {
            store: HistoryStore::new(retention_days),
            dir: None,
            wal: None,
            position: None,
            since_snapshot: 0,
            // In memory a "snapshot" only prunes: keeps memory bounded by retention.
            snapshot_every: 10_000,
        }
    }

    /// Opens (or creates) the history persisted in `dir`, recovering snapshot + log.
    /// `snapshot_every`: events between snapshots.
    pub fn open(
        dir: &Path,
        retention_days: u32,
        snapshot_every: u64,
    ) -> Result<Self, HistoryError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snap_path = dir.join("snapshot.json");
        let (mut store, mut position) = match File::open(&snap_path) {
            Ok(file) => {
                let snap: Snapshot =
                    serde_json::from_reader(BufReader::new(file)).map_err(|err| {
                        HistoryError::Corrupt {
                            path: snap_path.clone(),
                            message: err.to_string(),
                        }
                    })?;
                (snap.store, snap.position)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                (HistoryStore::new(retention_days), None)
            }
            Err(err) => return Err(io_err(&snap_path)(err)),
        };
        store.retention_days = retention_days;

        let wal_path = dir.join("wal.ndjson");
        let mut replayed = 0;
        if let Ok(file) = File::open(&wal_path) {
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io_err(&wal_path))?;
                // A torn last line was never acknowledged: stop there.
                let Ok(entry) = serde_json::from_str::<WalEntry>(&line) else {
                    break;
                };
                for record in &entry.records {
                    store.apply_record(record);
                }
                position = entry.position.or(position);
                replayed += 1;
            }
        }
        // Rewrite the log without a torn tail, then append to it.
        let mut history = Self {
            store,
            dir: Some(dir.to_path_buf()),
            wal: None,
            position,
            since_snapshot: replayed,
            snapshot_every: snapshot_every.max(1),
        };
        history.snapshot()?;
        Ok(history)
    }

    /// The store.
    pub fn store(&self) -> &HistoryStore {
        &self.store
    }

    /// Input position covered by the state (`None`: nothing applied yet).
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// Applies evaluated `events` that end at input `position`: log first, then
    /// memory; snapshots every `snapshot_every` applied batches.
    pub fn apply(&mut self, events: &[&Event], position: Option<u64>) -> Result<(), HistoryError> {
        if self.store.retention_days == 0 {
            self.position = position.or(self.position);
            return Ok(());
        }
        let records: Vec<PersonRecord> = events
            .iter()
            .flat_map(|e| HistoryStore::record_of(e))
            .collect();
        if let (Some(wal), Some(dir)) = (self.wal.as_mut(), self.dir.as_ref()) {
            let path = dir.join("wal.ndjson");
            let entry = WalEntry { position, records };
            let write = serde_json::to_writer(&mut *wal, &entry)
                .map_err(io::Error::other)
                .and_then(|()| wal.write_all(b"\n"))
                .and_then(|()| wal.flush());
            write.map_err(|source| HistoryError::Io { path, source })?;
            for record in &entry.records {
                self.store.apply_record(record);
            }
        } else {
            for record in &records {
                self.store.apply_record(record);
            }
        }
        self.position = position.or(self.position);
        self.since_snapshot += events.len() as u64;
        if self.since_snapshot >= self.snapshot_every {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Prunes by retention, writes a snapshot and starts an empty log.
    pub fn snapshot(&mut self) -> Result<(), HistoryError> {
        self.store.prune();
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Io { path, source }
        };
        let tmp = dir.join("snapshot.json.tmp");
        let snap_path = dir.join("snapshot.json");
        {
            let file = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut writer = BufWriter::new(file);
            let snap = SnapshotRef {
                position: self.position,
                store: &self.store,
            };
            serde_json::to_writer(&mut writer, &snap)
                .map_err(io::Error::other)
                .map_err(io_err(&tmp))?;
            let file = writer
                .into_inner()
                .map_err(|e| io_err(&tmp)(e.into_error()))?;
            file.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &snap_path).map_err(io_err(&snap_path))?;
        let wal_path = dir.join("wal.ndjson");
        let wal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&wal_path)
            .map_err(io_err(&wal_path))?;
        self.wal = Some(BufWriter::new(wal));
        self.since_snapshot = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_value;

    fn event(patn: &str, mdtrt: &str, rx: &str, day: u32) -> Event {
        decode_value(&serde_json::json!({
            "patient_dtos": [{
                "patn_id": patn, "curr_mdtrt_id": mdtrt,
                "fsi_encounter_dtos": [{
                    "mdtrt_id": mdtrt, "adm_date": format!("2026-03-{day:02} 08:00:00"),
                    "fsi_order_dtos": [{"rx_id": rx, "hilist_code": "X1", "cnt": 1,
                        "drord_begn_date": format!("2026-03-{day:02} 09:00:00"),
                        "drug_trac_codg": format!("TC-{rx}")}]
                }]
            }]
        }))
        .expect("event")
    }

    #[test]
    fn log_and_snapshot_survive_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            event("P1", "M1", "R1", 1),
            event("P1", "M2", "R2", 2),
            event("P2", "M3", "R3", 3),
        );
        {
            let mut h = DurableHistory::open(dir.path(), 30, 2).expect("open");
            h.apply(&[&a], Some(1)).expect("apply");
            h.apply(&[&b, &c], Some(3)).expect("apply"); // snapshot after 2 events
            h.apply(&[&a], Some(4)).expect("redelivered: upsert");
        }
        // A crash mid-write leaves a torn line at the end of the log.
        let wal = dir.path().join("wal.ndjson");
        let mut text = std::fs::read_to_string(&wal).expect("wal");
        text.push_str("{\"position\": 9, \"records\": [");
        std::fs::write(&wal, text).expect("write");

        let h = DurableHistory::open(dir.path(), 30, 2).expect("reopen");
        assert_eq!(h.position(), Some(4));
        let p1 = h.store().person("P1").expect("P1 kept");
        assert_eq!(p1.lines.len(), 2, "upsert, not duplicate: {:?}", p1.lines);
        assert_eq!(p1.encounters.len(), 2);
        assert!(h.store().person("P2").is_some());
        assert_eq!(
            h.store().trace_codes.get("TC-R1").map(|u| u.rx_id.as_str()),
            Some("R1")
        );
    }

    #[test]
    fn retention_drops_what_no_rule_needs() {
        let mut store = HistoryStore::new(10);
        store.apply(&event("P1", "M1", "R1", 1));
        store.apply(&event("P2", "M2", "R2", 25));
        store.prune();
        assert!(
            store.person("P1").is_none(),
            "24 days old with 10 days retention"
        );
        assert!(store.person("P2").is_some());
        let mut none = HistoryStore::new(0);
        none.apply(&event("P1", "M1", "R1", 1));
        assert_eq!(none.persons(), 0, "no history rule: nothing kept");
    }
}
