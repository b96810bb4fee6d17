//! Durability for a [`HistoryStore`]: a write-ahead log plus snapshots, each
//! stamped with the input position it covers.
//!
//! Layout of a partition's directory:
//! - `snapshot.bin` — the store after applying every input up to and including the
//!   snapshot's position; written to a temporary file, synced, then renamed, so a crash
//!   leaves either the old or the new snapshot. Format: the magic `FWHIST01`, then
//!   frames `[u32 little-endian length][postcard bytes]`: a header (position,
//!   retention anchor, counts, interned strings), person chunks, trace-code chunks and an
//!   end frame repeating the counts (a truncated file is rejected, never half-loaded).
//!   postcard (serde, varint integers) was chosen over JSON because the JSON snapshot of
//!   the same history was 3.3× larger, 2× slower to write and 6× slower to parse
//!   (benches/RESULTS.md § History); its wire format is specified and stable across
//!   1.x. Frames keep memory bounded: writing and restoring never hold the whole file.
//! - `wal.ndjson` — one line per applied batch after the snapshot:
//!   `{position, records:[PersonRecord…]}`. A torn last line (crash mid-write) is
//!   ignored: its batch was not acknowledged, so its input is replayed. (JSON here: a
//!   batch's records are small, and a torn line is unambiguous.)
//!
//! Recovery: load the snapshot, replay the log, report [`DurableHistory::position`]; the
//! caller resumes its input after that position (the input topic is the changelog).
//! With a partitioned input there is one directory per input partition
//! ([`DurableHistory::open_partition`]); see docs/history.md § 6.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::status::PersonStatuses;
use super::store::{HistoryStore, PersonHistory, PersonRecord, Symbols, TraceUse};
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

const SNAPSHOT: &str = "snapshot.bin";
const OLD_SNAPSHOT: &str = "snapshot.json";
const WAL: &str = "wal.ndjson";
const MAGIC: &[u8; 8] = b"FWHIST01";
/// Persons (or trace codes) per frame: frames of a few hundred KB.
const CHUNK: usize = 2048;

/// One frame of the snapshot, as written (borrowing the store).
#[derive(Serialize)]
enum FrameOut<'a> {
    Header {
        position: Option<u64>,
        newest_millis: i64,
        persons: u64,
        traces: u64,
        symbols: &'a Symbols,
    },
    Persons(Vec<(&'a str, &'a PersonHistory)>),
    Traces(Vec<(&'a str, &'a TraceUse)>),
    End {
        persons: u64,
        traces: u64,
    },
}

/// One frame of the snapshot, as read (same variants, same order).
#[derive(Deserialize)]
enum FrameIn {
    Header {
        position: Option<u64>,
        newest_millis: i64,
        persons: u64,
        traces: u64,
        symbols: Symbols,
    },
    Persons(Vec<(Box<str>, PersonHistory)>),
    Traces(Vec<(Box<str>, TraceUse)>),
    End {
        persons: u64,
        traces: u64,
    },
}

/// A log line as read back ([`WalEntryRef`] writes it).
#[derive(Deserialize)]
struct WalEntry {
    position: Option<u64>,
    records: Vec<PersonRecord>,
}

/// [`WalEntry`] as written (borrowing the records).
#[derive(Serialize)]
struct WalEntryRef<'a> {
    position: Option<u64>,
    records: &'a [PersonRecord],
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HistoryError + use<> {
    let path = path.to_path_buf();
    move |source| HistoryError::Io { path, source }
}

/// Writes `store` as of `position` to `writer` in the snapshot format; returns the
/// bytes written.
pub fn write_snapshot<W: Write>(
    store: &HistoryStore,
    position: Option<u64>,
    mut writer: W,
) -> io::Result<u64> {
    let mut buf = Vec::new();
    let mut written = MAGIC.len() as u64;
    writer.write_all(MAGIC)?;
    let mut frame = |writer: &mut W, frame: &FrameOut<'_>| -> io::Result<()> {
        buf.clear();
        buf = postcard::to_extend(frame, std::mem::take(&mut buf)).map_err(io::Error::other)?;
        let len = u32::try_from(buf.len()).map_err(io::Error::other)?;
        writer.write_all(&len.to_le_bytes())?;
        writer.write_all(&buf)?;
        written += 4 + buf.len() as u64;
        Ok(())
    };
    let (persons, traces) = (store.persons.len() as u64, store.trace_codes.len() as u64);
    frame(
        &mut writer,
        &FrameOut::Header {
            position,
            newest_millis: store.newest_millis,
            persons,
            traces,
            symbols: &store.symbols,
        },
    )?;
    let mut chunk = Vec::with_capacity(CHUNK);
    for (patn_id, person) in &store.persons {
        chunk.push((&**patn_id, person));
        if chunk.len() == CHUNK {
            frame(&mut writer, &FrameOut::Persons(std::mem::take(&mut chunk)))?;
        }
    }
    if !chunk.is_empty() {
        frame(&mut writer, &FrameOut::Persons(chunk))?;
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    for (code, used) in &store.trace_codes {
        chunk.push((&**code, used));
        if chunk.len() == CHUNK {
            frame(&mut writer, &FrameOut::Traces(std::mem::take(&mut chunk)))?;
        }
    }
    if !chunk.is_empty() {
        frame(&mut writer, &FrameOut::Traces(chunk))?;
    }
    frame(&mut writer, &FrameOut::End { persons, traces })?;
    writer.flush()?;
    Ok(written)
}

/// Reads a snapshot written by [`write_snapshot`]: the store (with `retention_days`)
/// and the position it covers. Errors are messages for [`HistoryError::Corrupt`].
pub fn read_snapshot<R: Read>(
    mut reader: R,
    retention_days: u32,
) -> Result<(HistoryStore, Option<u64>), String> {
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|err| format!("no header: {err}"))?;
    if &magic != MAGIC {
        return Err(format!(
            "not a FundWatch history snapshot (magic {magic:?}, expected {MAGIC:?})"
        ));
    }
    let mut buf = Vec::new();
    let mut next = |reader: &mut R| -> Result<FrameIn, String> {
        let mut len = [0u8; 4];
        reader
            .read_exact(&mut len)
            .map_err(|err| format!("truncated (no end frame): {err}"))?;
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        reader
            .read_exact(&mut buf)
            .map_err(|err| format!("truncated frame: {err}"))?;
        postcard::from_bytes(&buf).map_err(|err| format!("bad frame: {err}"))
    };
    let FrameIn::Header {
        position,
        newest_millis,
        persons,
        traces,
        symbols,
    } = next(&mut reader)?
    else {
        return Err("first frame is not the header".into());
    };
    let mut store = HistoryStore::new(retention_days);
    store.symbols = symbols;
    store.newest_millis = newest_millis;
    store.persons.reserve(persons as usize);
    store.trace_codes.reserve(traces as usize);
    loop {
        match next(&mut reader)? {
            FrameIn::Persons(chunk) => store.persons.extend(chunk),
            FrameIn::Traces(chunk) => store.trace_codes.extend(chunk),
            FrameIn::Header { .. } => return Err("second header frame".into()),
            FrameIn::End {
                persons: p,
                traces: t,
            } => {
                let got = (store.persons.len() as u64, store.trace_codes.len() as u64);
                if got != (p, t) || got != (persons, traces) {
                    return Err(format!(
                        "counts differ: header {persons} persons / {traces} codes, end {p} / {t}, read {} / {}",
                        got.0, got.1
                    ));
                }
                return Ok((store, position));
            }
        }
    }
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

    /// The history of input partition `partition`, kept in `root/partition-<n>`: what a
    /// consumer calls when it is assigned the partition (see docs/history.md § 6).
    pub fn open_partition(
        root: &Path,
        partition: i32,
        retention_days: u32,
        snapshot_every: u64,
    ) -> Result<Self, HistoryError> {
        Self::open(
            &root.join(format!("partition-{partition}")),
            retention_days,
            snapshot_every,
        )
    }

    /// Opens (or creates) the history persisted in `dir`, recovering snapshot + log.
    /// `snapshot_every`: events between snapshots.
    pub fn open(
        dir: &Path,
        retention_days: u32,
        snapshot_every: u64,
    ) -> Result<Self, HistoryError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snap_path = dir.join(SNAPSHOT);
        let old_path = dir.join(OLD_SNAPSHOT);
        let (mut store, mut position) = match File::open(&snap_path) {
            Ok(file) => read_snapshot(BufReader::with_capacity(1 << 20, file), retention_days)
                .map_err(|message| HistoryError::Corrupt {
                    path: snap_path.clone(),
                    message,
                })?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if old_path.exists() {
                    return Err(HistoryError::Corrupt {
                        path: old_path,
                        message: "JSON snapshot of an earlier FundWatch version (now snapshot.bin)"
                            .into(),
                    });
                }
                (HistoryStore::new(retention_days), None)
            }
            Err(err) => return Err(io_err(&snap_path)(err)),
        };
        store.retention_days = retention_days;

        let wal_path = dir.join(WAL);
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

    /// Replaces the person-status table rules see as `person_status` (a deployment's
    /// file, refreshed daily).
    pub fn set_person_statuses(&mut self, statuses: PersonStatuses) {
        self.store.statuses = Arc::new(statuses);
    }

    /// The person-status table (to share it with another partition's history).
    pub fn person_statuses(&self) -> Arc<PersonStatuses> {
        Arc::clone(&self.store.statuses)
    }

    /// Shares an already loaded person-status table (one table for every partition
    /// an instance owns).
    pub fn share_person_statuses(&mut self, statuses: Arc<PersonStatuses>) {
        self.store.statuses = statuses;
    }

    /// Changes the person-status table in place (copy on write): the rows a rule case
    /// or the demo generator provides.
    pub fn update_person_statuses(&mut self, change: impl FnOnce(&mut PersonStatuses)) {
        change(Arc::make_mut(&mut self.store.statuses));
    }

    /// Input position covered by the state (`None`: nothing applied yet).
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// The first input position not covered: where a consumer resumes (a Kafka offset
    /// to seek to; 0 when nothing was applied).
    pub fn resume_from(&self) -> u64 {
        self.position.map_or(0, |p| p + 1)
    }

    /// Applies evaluated `events` that end at input `position`: log first, then
    /// memory; snapshots every `snapshot_every` applied events.
    pub fn apply(&mut self, events: &[&Event], position: Option<u64>) -> Result<(), HistoryError> {
        if self.store.retention_days == 0 {
            self.position = position.or(self.position);
            return Ok(());
        }
        if self.is_durable() {
            let records: Vec<PersonRecord> = events
                .iter()
                .flat_map(|e| HistoryStore::record_of(e))
                .collect();
            self.write_log(&records, position)?;
            self.apply_records(&records);
        } else {
            // Nothing to log: the store reads the events' strings in place.
            for event in events {
                self.store.apply(event);
            }
        }
        self.position = position.or(self.position);
        self.since_snapshot += events.len() as u64;
        if self.snapshot_due() {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Applies `records` to memory only, before they are durable: the Kafka
    /// pipeline records an evaluated batch at once (the next batch must see it)
    /// and logs it with [`Self::log`] once its alerts are acknowledged.
    pub fn apply_records(&mut self, records: &[PersonRecord]) {
        if self.store.retention_days == 0 {
            return;
        }
        for record in records {
            self.store.apply_record(record);
        }
    }

    /// Logs `records` of `events` events, already applied by
    /// [`Self::apply_records`], as covering input `position`. The caller takes a
    /// snapshot when [`Self::snapshot_due`] and nothing unlogged is in memory.
    pub fn log(
        &mut self,
        records: &[PersonRecord],
        events: u64,
        position: u64,
    ) -> Result<(), HistoryError> {
        if self.store.retention_days > 0 {
            self.write_log(records, Some(position))?;
        }
        self.position = Some(position);
        self.since_snapshot += events;
        Ok(())
    }

    /// Whether `snapshot_every` events were applied since the last snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.since_snapshot >= self.snapshot_every
    }

    /// Whether this history is kept in a directory (else it lives in memory only).
    pub fn is_durable(&self) -> bool {
        self.dir.is_some()
    }

    fn write_log(
        &mut self,
        records: &[PersonRecord],
        position: Option<u64>,
    ) -> Result<(), HistoryError> {
        let (Some(wal), Some(dir)) = (self.wal.as_mut(), self.dir.as_ref()) else {
            return Ok(());
        };
        let entry = WalEntryRef { position, records };
        let write = serde_json::to_writer(&mut *wal, &entry)
            .map_err(io::Error::other)
            .and_then(|()| wal.write_all(b"\n"))
            .and_then(|()| wal.flush());
        write.map_err(|source| HistoryError::Io {
            path: dir.join(WAL),
            source,
        })
    }

    /// Prunes by retention, writes a snapshot and starts an empty log. A consumer also
    /// calls this when a partition is revoked, so the next owner replays little.
    pub fn snapshot(&mut self) -> Result<(), HistoryError> {
        self.store.prune();
        self.since_snapshot = 0;
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let tmp = dir.join("snapshot.bin.tmp");
        let snap_path = dir.join(SNAPSHOT);
        {
            let file = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut writer = BufWriter::with_capacity(1 << 20, file);
            write_snapshot(&self.store, self.position, &mut writer).map_err(io_err(&tmp))?;
            let file = writer
                .into_inner()
                .map_err(|e| io_err(&tmp)(e.into_error()))?;
            file.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &snap_path).map_err(io_err(&snap_path))?;
        let wal_path = dir.join(WAL);
        let wal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&wal_path)
            .map_err(io_err(&wal_path))?;
        self.wal = Some(BufWriter::new(wal));
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
        assert_eq!(p1.line_count(), 2, "upsert, not duplicate: {p1:?}");
        assert_eq!(p1.encounter_count(), 2);
        assert!(h.store().person("P2").is_some());
        assert_eq!(h.store().trace("TC-R1").map(|u| u.rx_id()), Some("R1"));
    }

    #[test]
    fn snapshot_round_trips_and_rejects_truncation() {
        let mut store = HistoryStore::new(30);
        for i in 0..5000u32 {
            let day = 1 + i % 28;
            store.apply(&event(
                &format!("P{}", i % 3000),
                &format!("M{i}"),
                &format!("R{i}"),
                day,
            ));
        }
        let mut bytes = Vec::new();
        let written = write_snapshot(&store, Some(41), &mut bytes).expect("write");
        assert_eq!(written, bytes.len() as u64);
        let (back, position) = read_snapshot(bytes.as_slice(), 30).expect("read");
        assert_eq!(position, Some(41));
        assert_eq!(back, store);
        let err = read_snapshot(&bytes[..bytes.len() - 3], 30).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
        let err = read_snapshot(&b"{\"position\": 1}"[..], 30).expect_err("json");
        assert!(err.contains("not a FundWatch history snapshot"), "{err}");
    }

    #[test]
    fn a_new_owner_of_a_partition_resumes_after_the_snapshot_offset() {
        let root = tempfile::tempdir().expect("tempdir");
        {
            // The first owner of partition 3 applies offsets 0..=6 and snapshots at
            // revocation (snapshot_every is large: only the revocation snapshots).
            let mut owner =
                DurableHistory::open_partition(root.path(), 3, 30, 1_000_000).expect("open");
            assert_eq!(
                owner.resume_from(),
                0,
                "nothing applied: read from the start"
            );
            owner
                .apply(&[&event("P1", "M1", "R1", 1)], Some(4))
                .expect("apply");
            owner
                .apply(&[&event("P1", "M2", "R2", 2)], Some(6))
                .expect("apply");
            owner.snapshot().expect("revoked: snapshot");
        }
        assert!(root.path().join("partition-3/snapshot.bin").exists());
        let next = DurableHistory::open_partition(root.path(), 3, 30, 1_000_000).expect("reopen");
        assert_eq!(next.position(), Some(6));
        assert_eq!(
            next.resume_from(),
            7,
            "seek to the offset after the snapshot's"
        );
        assert_eq!(next.store().person("P1").map(|p| p.line_count()), Some(2));
        let other = DurableHistory::open_partition(root.path(), 4, 30, 1_000_000).expect("p4");
        assert_eq!(other.position(), None, "partitions keep separate state");
    }

    #[test]
    fn line_ids_survive_upserts_and_pruning_inside_an_encounter() {
        let mut store = HistoryStore::new(10);
        let mut ev = event("P1", "M1", "R1", 1);
        let order = ev.patients[0].encounters[0].orders[0].clone();
        for (rx, day) in [("R2-long-id", 20u32), ("R3", 25)] {
            let mut o = order.clone();
            o.rx_id = rx.to_string();
            o.drord_begn_date =
                chrono::NaiveDate::from_ymd_opt(2026, 3, day).and_then(|d| d.and_hms_opt(9, 0, 0));
            o.cnt = f64::from(day);
            ev.patients[0].encounters[0].orders.push(o);
        }
        store.apply(&ev);
        store.apply(&ev); // redelivered: upsert
        store.prune_at(store.newest_millis);
        let enc = &store.person("P1").expect("P1").encounters[0];
        let ids: Vec<(&str, f64)> = enc.lines.iter().map(|l| (enc.rx_id(l), l.cnt)).collect();
        assert_eq!(
            ids,
            vec![("R2-long-id", 20.0), ("R3", 25.0)],
            "R1 is 24 days old"
        );
        let mut bytes = Vec::new();
        write_snapshot(&store, None, &mut bytes).expect("write");
        let (back, _) = read_snapshot(bytes.as_slice(), 10).expect("read");
        let enc = &back.person("P1").expect("P1").encounters[0];
        assert_eq!(enc.rx_id(&enc.lines[1]), "R3");
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
        // A wrongly dated event (2099) does not move the anchor past the wall clock.
        let now = store.newest_millis;
        let mut future = event("P3", "M3", "R3", 25);
        if let Some(enc) = future.patients[0].encounters.first_mut() {
            enc.adm_date =
                chrono::NaiveDate::from_ymd_opt(2099, 1, 1).and_then(|d| d.and_hms_opt(8, 0, 0));
            enc.orders[0].drord_begn_date = enc.adm_date;
        }
        store.apply(&future);
        store.prune_at(now);
        assert!(
            store.person("P2").is_some(),
            "anchor capped at the wall clock"
        );
        let mut none = HistoryStore::new(0);
        none.apply(&event("P1", "M1", "R1", 1));
        assert_eq!(none.persons(), 0, "no history rule: nothing kept");
    }
}
