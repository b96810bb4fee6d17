//! History state per owned input partition (docs/history.md § 6.1).
//!
//! The input key is `patn_id`, so a person's history belongs to one input
//! partition, and the instance that owns the partition owns that history. With
//! `kafka.state_dir` set, each owned partition `p` has a [`DurableHistory`] in
//! `state_dir/partition-<p>/` (snapshot + log); without it, each lives in memory
//! and is lost with the process or the partition.
//!
//! The position a partition's state covers moves with the offsets, never ahead
//! of them:
//!
//! - **Evaluated → memory.** The batch task applies a batch's events to their
//!   partitions' stores at once (the next batch must see them as history) and
//!   keeps each event's records as *pending*.
//! - **Acknowledged → log.** When a partition's low-water mark passes a pending
//!   event (all alerts of it and of everything before it are acknowledged), its
//!   records are appended to the partition's log with that position, and only then
//!   is the offset stored for the group commit. The log never holds an event whose
//!   alerts could still be lost.
//! - **Snapshot** when one is due and nothing is pending (the store is then exactly
//!   the logged state), on revoke after the drain, and at shutdown.
//! - **Assign**: open the directory (snapshot + log) and start reading at the first
//!   offset it does not cover. Every event after that position is evaluated again
//!   against exactly the history it saw the first time, so a restarted or new owner
//!   sends the same alerts (same `jr_id`) and builds the same history. Without a
//!   recorded position the group's committed offset applies and history starts
//!   empty for that partition (logged).
//!
//! - **Rebuild** (`kafka.rebuild_history`): a partition assigned with no
//!   history is read from its beginning; events before the group's commit are
//!   only recorded (an earlier owner sent their alerts), then evaluation goes on.
//!
//! A state directory must be opened by one instance at a time: give each
//! instance the same volume only when the group hands partitions over (a
//! rebalance drains, snapshots and closes before the next owner opens).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use fundwatch_engine::Event;
use fundwatch_engine::batch::EventBatch;
use fundwatch_engine::history::{
    DurableHistory, HistoryError, HistoryStore, HistoryView, PersonRecord,
};
use fundwatch_rules::Dictionaries;

use super::metrics::KafkaMetrics;

/// The histories of the partitions this instance owns.
#[derive(Debug)]
pub(crate) struct PartitionHistories {
    /// `kafka.state_dir`; `None`: in memory.
    root: Option<PathBuf>,
    retention_days: u32,
    snapshot_every: u64,
    /// The engine's own history, read beside the partitions' (what the HTTP
    /// service records when `fundwatch serve` runs the pipeline too) and holder of
    /// the person-status table (registered deaths) every partition uses. Locked
    /// before `parts`, always.
    shared: Arc<Mutex<DurableHistory>>,
    parts: Mutex<BTreeMap<i32, PartitionState>>,
    metrics: KafkaMetrics,
    /// `kafka.rebuild_history`.
    rebuild: bool,
    /// Threads a large batch's recording may use (the cores).
    threads: usize,
}

#[derive(Debug)]
struct PartitionState {
    history: DurableHistory,
    /// Records of evaluated events not yet logged, in offset order.
    pending: VecDeque<(i64, Vec<PersonRecord>)>,
    /// Rebuilding: events before this offset were evaluated by an earlier owner
    /// (their alerts are out); they are only recorded.
    replay_until: Option<i64>,
}

/// One partition's events of a batch, to record into its store.
struct Recording<'a> {
    partition: i32,
    state: &'a mut PartitionState,
    /// In offset order.
    events: Vec<(i64, &'a Event)>,
}

impl Recording<'_> {
    /// Applies the events to the partition's store; keeps their records until
    /// they are logged.
    fn apply(&mut self) {
        let state = &mut *self.state;
        for &(offset, event) in &self.events {
            if state.history.is_durable() {
                let records = HistoryStore::record_of(event);
                state.history.apply_records(&records);
                state.pending.push_back((offset, records));
            } else if let Err(err) = state.history.apply(&[event], None) {
                // In memory nothing can fail; a message rather than a panic all the same.
                tracing::warn!(partition = self.partition, error = %err, "recording history failed");
            }
        }
    }
}

/// Batches from this size record their partitions' histories in parallel: a
/// thread's spawn (tens of µs) is then small against the recording (~5 µs per
/// event).
const PARALLEL_RECORD_MIN_EVENTS: usize = 256;

/// Where reading a newly assigned partition starts, as its history says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Just after the position the restored state covers.
    After(i64),
    /// At the group's commit: the history in memory is still this instance's.
    Kept,
    /// At the group's commit, with an empty history (or rebuilt first, see
    /// [`PartitionHistories::rebuild_until`]).
    Empty,
}

impl PartitionHistories {
    pub fn new(
        root: Option<PathBuf>,
        retention_days: u32,
        snapshot_every: u64,
        shared: Arc<Mutex<DurableHistory>>,
        metrics: KafkaMetrics,
    ) -> Self {
        Self {
            root,
            retention_days,
            snapshot_every,
            shared,
            parts: Mutex::new(BTreeMap::new()),
            metrics,
            rebuild: false,
            // Asked once: on Linux the answer reads the cgroup files.
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Rebuilds an empty partition history from the input topic on assign.
    pub fn rebuilding(mut self, rebuild: bool) -> Self {
        self.rebuild = rebuild;
        self
    }

    fn observe(&self, op: &str, started: Instant) {
        self.metrics
            .history_seconds
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
    }

    fn count_persons(&self, partition: i32, persons: usize) {
        self.metrics
            .history_persons
            .with_label_values(&[&partition.to_string()])
            .set(persons as i64);
    }

    fn parts(&self) -> MutexGuard<'_, BTreeMap<i32, PartitionState>> {
        // Every method leaves the map consistent; a panic elsewhere does not
        // make it unusable.
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens partition `partition`'s history (restoring snapshot + log when it is
    /// durable); says where reading should resume.
    pub fn open(&self, partition: i32) -> Result<Resume, HistoryError> {
        let started = Instant::now();
        let history = match &self.root {
            Some(root) => DurableHistory::open_partition(
                root,
                partition,
                self.retention_days,
                self.snapshot_every,
            )?,
            // In memory, a partition that comes back keeps what it had: this
            // instance's own history is all there is.
            None if self.parts().contains_key(&partition) => return Ok(Resume::Kept),
            None => DurableHistory::in_memory(self.retention_days),
        };
        let resume = history.position().map(|p| p as i64 + 1);
        self.count_persons(partition, history.store().persons());
        if history.is_durable() {
            self.observe("restore", started);
            tracing::info!(
                partition,
                persons = history.store().persons(),
                resume_from = resume,
                took_ms = started.elapsed().as_millis() as u64,
                "partition history restored"
            );
        }
        self.parts().insert(
            partition,
            PartitionState {
                history,
                pending: VecDeque::new(),
                replay_until: None,
            },
        );
        Ok(resume.map_or(Resume::Empty, Resume::After))
    }

    /// Whether an empty partition history is rebuilt from the input topic
    /// (`kafka.rebuild_history`).
    pub fn rebuilds(&self) -> bool {
        self.rebuild
    }

    /// Partition `partition` is read from its beginning to rebuild its history:
    /// events before `committed` (the group's commit) were evaluated by an
    /// earlier owner and are only recorded.
    pub fn rebuild_until(&self, partition: i32, committed: i64) {
        if let Some(state) = self.parts().get_mut(&partition) {
            state.replay_until = Some(committed);
        }
    }

    /// For each `(partition, offset)`, whether that event is replayed to rebuild
    /// history rather than evaluated.
    pub fn replayed(&self, positions: impl Iterator<Item = (i32, i64)>) -> Vec<bool> {
        if !self.rebuild {
            return positions.map(|_| false).collect();
        }
        let parts = self.parts();
        positions
            .map(|(partition, offset)| {
                parts
                    .get(&partition)
                    .and_then(|state| state.replay_until)
                    .is_some_and(|until| offset < until)
            })
            .collect()
    }

    /// Lets partition `partition` go. `snapshot`: write a snapshot first (a
    /// revoke whose messages all finished, or shutdown); without it, or with
    /// events still pending, the next owner replays the log and the input after it.
    /// A history in memory is kept (it is lost only with the process): when the
    /// partition comes back, as after a broker outage, it is still there.
    pub fn close(&self, partition: i32, snapshot: bool) {
        let mut parts = self.parts();
        if parts
            .get(&partition)
            .is_none_or(|state| !state.history.is_durable())
        {
            return;
        }
        let Some(mut state) = parts.remove(&partition) else {
            return;
        };
        drop(parts);
        let _ = self
            .metrics
            .history_persons
            .remove_label_values(&[&partition.to_string()]);
        if !(snapshot && state.pending.is_empty()) {
            return;
        }
        let started = Instant::now();
        let written = state.history.snapshot();
        self.observe("snapshot", started);
        match written {
            Ok(()) => tracing::info!(
                partition,
                took_ms = started.elapsed().as_millis() as u64,
                "partition history snapshot written"
            ),
            Err(err) => tracing::warn!(
                partition,
                error = %err,
                "cannot write the partition's history snapshot; its next owner replays the log instead"
            ),
        }
    }

    /// Partitions whose history is held.
    pub fn partitions(&self) -> Vec<i32> {
        self.parts().keys().copied().collect()
    }

    /// Applies evaluated events — `(partition, offset, event)` in consumption
    /// order — to their partitions' stores; keeps their records until
    /// [`Self::acknowledged`] logs them. Events of a partition no longer owned are
    /// skipped (its next owner reads them again).
    pub fn record(&self, events: &[(i32, i64, &Event)]) {
        if self.retention_days == 0 {
            return;
        }
        let mut parts = self.parts();
        // Each owned partition's events, in consumption order.
        let mut by_partition: BTreeMap<i32, Vec<(i64, &Event)>> = BTreeMap::new();
        for &(partition, offset, event) in events {
            by_partition
                .entry(partition)
                .or_default()
                .push((offset, event));
        }
        let mut work: Vec<Recording<'_>> = parts
            .iter_mut()
            .filter_map(|(partition, state)| {
                let events = by_partition.remove(partition)?;
                Some(Recording {
                    partition: *partition,
                    state,
                    events,
                })
            })
            .collect();
        // Partitions' stores are independent: a large batch records them on as
        // many threads as there are cores (history is on the stream's serial path).
        let threads = self.threads.min(work.len());
        if threads > 1 && events.len() >= PARALLEL_RECORD_MIN_EVENTS {
            // Largest partitions first, each to the least loaded thread.
            work.sort_by_key(|r| std::cmp::Reverse(r.events.len()));
            let mut shares: Vec<(usize, Vec<Recording<'_>>)> =
                (0..threads).map(|_| (0, Vec::new())).collect();
            for recording in work.drain(..) {
                if let Some((load, share)) = shares.iter_mut().min_by_key(|(load, _)| *load) {
                    *load += recording.events.len();
                    share.push(recording);
                }
            }
            std::thread::scope(|scope| {
                for (_, share) in &mut shares {
                    scope.spawn(move || share.iter_mut().for_each(Recording::apply));
                }
            });
            work = shares.into_iter().flat_map(|(_, share)| share).collect();
        } else {
            work.iter_mut().for_each(Recording::apply);
        }
        for r in &work {
            self.count_persons(r.partition, r.state.history.store().persons());
        }
    }

    /// Partition `partition`'s low-water mark reached `next_offset`: every event
    /// before it has its alerts acknowledged. Logs their records with that
    /// position (then the offset may be stored) and snapshots when due.
    pub fn acknowledged(&self, partition: i32, next_offset: i64) -> Result<(), HistoryError> {
        let mut parts = self.parts();
        let Some(state) = parts.get_mut(&partition) else {
            return Ok(());
        };
        if !state.history.is_durable() || next_offset <= 0 {
            return Ok(());
        }
        let position = (next_offset - 1) as u64;
        if state.history.position() >= Some(position) {
            return Ok(());
        }
        let mut records = Vec::new();
        let mut events = 0;
        while let Some((offset, _)) = state.pending.front()
            && *offset < next_offset
        {
            if let Some((_, r)) = state.pending.pop_front() {
                records.extend(r);
                events += 1;
            }
        }
        state.history.log(&records, events, position)?;
        if state.pending.is_empty() && state.history.snapshot_due() {
            let started = Instant::now();
            state.history.snapshot()?;
            self.observe("snapshot", started);
            tracing::info!(
                partition,
                took_ms = started.elapsed().as_millis() as u64,
                "partition history snapshot written"
            );
        }
        Ok(())
    }
}

impl HistoryView for PartitionHistories {
    fn build(&self, events: &[&Event], dicts: &Dictionaries) -> EventBatch {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let parts = self.parts();
        let mut stores: Vec<&HistoryStore> = parts.values().map(|s| s.history.store()).collect();
        stores.push(shared.store());
        let statuses = &shared.store().statuses;
        EventBatch::build_full(events, dicts, &stores, Some(statuses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fundwatch_engine::decode_value;

    fn event(patn: &str, day: u32) -> Event {
        decode_value(&serde_json::json!({
            "patient_dtos": [{
                "patn_id": patn, "curr_mdtrt_id": format!("M-{patn}-{day}"),
                "fsi_encounter_dtos": [{
                    "mdtrt_id": format!("M-{patn}-{day}"),
                    "adm_date": format!("2026-03-{day:02} 08:00:00"),
                    "fsi_order_dtos": [{"rx_id": format!("R-{patn}-{day}"), "hilist_code": "X1",
                        "cnt": 1, "drord_begn_date": format!("2026-03-{day:02} 09:00:00")}]
                }]
            }]
        }))
        .expect("event")
    }

    fn engine_history() -> Arc<Mutex<DurableHistory>> {
        Arc::new(Mutex::new(DurableHistory::in_memory(400)))
    }

    fn histories(root: &std::path::Path, snapshot_every: u64) -> PartitionHistories {
        PartitionHistories::new(
            Some(root.to_path_buf()),
            400,
            snapshot_every,
            engine_history(),
            KafkaMetrics::new(),
        )
    }

    fn lines_of(h: &PartitionHistories, partition: i32, patn: &str) -> usize {
        h.parts()
            .get(&partition)
            .and_then(|s| s.history.store().person(patn).map(|p| p.line_count()))
            .unwrap_or(0)
    }

    #[test]
    fn a_large_batch_records_each_partition_as_event_by_event_recording_does() {
        // 600 events over three owned partitions (uneven) and one not owned: one
        // call (partitions on parallel threads) and 600 calls of one event must
        // leave the same stores and the same records pending, in offset order.
        let events: Vec<(i32, Event)> = (0..600)
            .map(|i: usize| {
                let partition = [0, 0, 1, 2, 3][i % 5];
                (
                    partition,
                    event(&format!("P{}", i % 97), 1 + (i % 28) as u32),
                )
            })
            .collect();
        let located: Vec<(i32, i64, &Event)> = events
            .iter()
            .zip(0..)
            .map(|((partition, event), offset)| (*partition, offset, event))
            .collect();
        for durable in [true, false] {
            let (dir_one, dir_each) = (
                tempfile::tempdir().expect("dir"),
                tempfile::tempdir().expect("dir"),
            );
            let open = |dir: &std::path::Path| {
                let root = durable.then(|| dir.to_path_buf());
                let h = PartitionHistories::new(
                    root,
                    400,
                    100_000,
                    engine_history(),
                    KafkaMetrics::new(),
                );
                for partition in 0..3 {
                    h.open(partition).expect("opens");
                }
                h
            };
            let (one, each) = (open(dir_one.path()), open(dir_each.path()));
            one.record(&located);
            for single in &located {
                each.record(std::slice::from_ref(single));
            }
            let (one_parts, each_parts) = (one.parts(), each.parts());
            assert_eq!(
                one_parts.keys().collect::<Vec<_>>(),
                vec![&0, &1, &2],
                "the partition not owned is not recorded"
            );
            let mut lines_recorded = 0;
            for (partition, state) in one_parts.iter() {
                let other = &each_parts[partition];
                let pending =
                    |s: &PartitionState| s.pending.iter().map(|(o, _)| *o).collect::<Vec<_>>();
                let offsets = pending(state);
                assert!(
                    offsets.windows(2).all(|w| w[0] < w[1]),
                    "partition {partition}: offset order"
                );
                assert_eq!(
                    offsets,
                    pending(other),
                    "partition {partition}: pending records"
                );
                assert_eq!(
                    state.history.store().persons(),
                    other.history.store().persons()
                );
                for p in 0..97 {
                    let lines = |s: &PartitionState| {
                        s.history
                            .store()
                            .person(&format!("P{p}"))
                            .map(|p| p.line_count())
                    };
                    assert_eq!(
                        lines(state),
                        lines(other),
                        "partition {partition}, person P{p}"
                    );
                    lines_recorded += lines(state).unwrap_or(0);
                }
            }
            // One line per event: every owned event is in a store once.
            assert_eq!(lines_recorded, 600 - 120, "durable: {durable}");
            let pending = if durable { 600 - 120 } else { 0 };
            assert_eq!(pending_total(&one_parts), pending, "durable: {durable}");
        }
    }

    fn pending_total(parts: &BTreeMap<i32, PartitionState>) -> usize {
        parts.values().map(|s| s.pending.len()).sum()
    }

    #[test]
    fn only_acknowledged_events_are_logged_and_a_reopen_resumes_after_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = histories(dir.path(), 1_000);
        assert_eq!(
            h.open(2).expect("opens"),
            Resume::Empty,
            "a new partition has no position"
        );
        let (e10, e11, e12) = (event("A", 1), event("A", 2), event("B", 3));
        h.record(&[(2, 10, &e10), (2, 11, &e11), (2, 12, &e12)]);
        // Evaluated events are history for the next batch at once.
        assert_eq!(lines_of(&h, 2, "A"), 2);
        // Offsets 10 and 11 acknowledged, 12 not.
        h.acknowledged(2, 12).expect("logs");
        drop(h); // a crash: no snapshot, no close

        let h = histories(dir.path(), 1_000);
        assert_eq!(
            h.open(2).expect("reopens"),
            Resume::After(12),
            "reading resumes at the first event the log does not cover"
        );
        assert_eq!(lines_of(&h, 2, "A"), 2, "A's two logged events are back");
        assert_eq!(lines_of(&h, 2, "B"), 0, "B's unacknowledged event is not");
    }

    #[test]
    fn a_snapshot_waits_until_nothing_is_pending_and_close_keeps_memory_histories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = histories(dir.path(), 2);
        h.open(0).expect("opens");
        let snapshot = dir.path().join("partition-0").join("snapshot.bin");
        let written = || std::fs::metadata(&snapshot).and_then(|m| m.modified()).ok();
        let at_open = written();
        let events: Vec<Event> = (1..=4).map(|d| event("A", d)).collect();
        let located: Vec<(i32, i64, &Event)> =
            events.iter().zip(0..).map(|(e, o)| (0, o, e)).collect();
        h.record(&located);
        std::thread::sleep(std::time::Duration::from_millis(20));
        h.acknowledged(0, 2).expect("logs");
        assert_eq!(written(), at_open, "due, but two events are still pending");
        h.acknowledged(0, 4).expect("logs");
        assert_ne!(written(), at_open, "due and nothing pending: snapshot");

        h.close(0, true);
        assert!(h.partitions().is_empty(), "a durable partition is let go");
        let memory = PartitionHistories::new(None, 400, 2, engine_history(), KafkaMetrics::new());
        memory.open(1).expect("opens");
        memory.record(&[(1, 0, &events[0])]);
        memory.close(1, true);
        assert_eq!(memory.open(1).expect("reopens"), Resume::Kept);
        assert_eq!(
            lines_of(&memory, 1, "A"),
            1,
            "in memory a partition that comes back keeps its history"
        );
    }
}
