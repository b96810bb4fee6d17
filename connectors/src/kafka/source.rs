//! The Kafka source: an rdkafka `StreamConsumer` in a consumer group, on a thread
//! of its own, feeding a bounded queue.
//!
//! Why a thread of its own: librdkafka runs the rebalance callback inside the
//! consumer's poll, and on a revoke this source blocks there until the alerts of
//! the revoked partitions' messages in flight are acknowledged (bounded by
//! `drain_timeout_ms`). Blocking a thread that serves nothing else keeps the
//! evaluation and the acknowledgements — which the drain waits for — running.
//!
//! Offsets: every message is registered in the [`OffsetTracker`] before it goes
//! downstream; [`Committer::complete`] stores the low-water mark once its alerts
//! are acknowledged, and librdkafka's auto-commit sends stored offsets to the
//! group coordinator (`enable.auto.commit=true`, `enable.auto.offset.store=false`).
//!
//! librdkafka's "max poll interval exceeded" (the consumer left the group because
//! it did not poll in time) is recognised in its log line, its error callback and
//! the consumer's error, logged once per episode and counted
//! (`fundwatch_kafka_max_poll_exceeded_total`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, watch};

use super::metrics::KafkaMetrics;
use super::offsets::{OffsetTracker, Ticket, TopicPartition};
use super::state::{PartitionHistories, Resume};

/// One consumed message, detached from librdkafka.
#[derive(Debug)]
pub(crate) struct Record {
    /// Where it came from; completes its offset.
    pub ticket: Ticket,
    /// Message key (`patn_id`).
    pub key: Option<Vec<u8>>,
    /// Message value (the 3101/3102 JSON).
    pub payload: Option<Vec<u8>>,
    /// Message timestamp (ms since the epoch), when the producer or broker set one.
    pub timestamp_ms: Option<i64>,
    /// When this consumer read it.
    pub received: Instant,
    /// The value decoded by the consumer thread, and how long that took (`None`:
    /// not decoded yet).
    pub decoded: Option<(
        Result<fundwatch_engine::Event, fundwatch_engine::DecodeError>,
        Duration,
    )>,
}

/// State shared by the consumer thread, its rebalance callback and the
/// acknowledgement task.
#[derive(Debug)]
pub(crate) struct Shared {
    tracker: Mutex<OffsetTracker>,
    /// Signalled whenever messages complete (the revoke drain waits on it).
    completed: Condvar,
    pub metrics: KafkaMetrics,
    input_topic: String,
    drain_timeout: Duration,
    /// Set while a max-poll episode is under way (counted once).
    poll_exceeded: AtomicBool,
    /// Set at shutdown: the final revoke does not wait for messages abandoned.
    closing: AtomicBool,
    /// History state of the owned partitions (`None`: the raw pipe keeps none).
    pub histories: Option<Arc<PartitionHistories>>,
}

impl Shared {
    pub fn new(
        metrics: KafkaMetrics,
        input_topic: &str,
        drain_timeout: Duration,
        histories: Option<Arc<PartitionHistories>>,
    ) -> Self {
        Self {
            histories,
            tracker: Mutex::new(OffsetTracker::new()),
            completed: Condvar::new(),
            metrics,
            input_topic: input_topic.to_string(),
            drain_timeout,
            poll_exceeded: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        // The tracker stays consistent across a panic elsewhere (each method
        // leaves it valid), so a poisoned lock is still usable.
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages still in flight on every partition.
    pub fn in_flight(&self) -> usize {
        self.tracker().in_flight(None)
    }

    /// Marks the pipeline as shutting down.
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    fn note_max_poll_exceeded(&self, detail: &str) {
        if !self.poll_exceeded.swap(true, Ordering::SeqCst) {
            self.metrics.max_poll_exceeded.inc();
            tracing::error!(
                detail,
                "Kafka consumer exceeded max.poll.interval.ms and left its group: its partitions go to other members and it rejoins; raise kafka.consumer.\"max.poll.interval.ms\" or lower kafka.batch.max_events if evaluation is this slow"
            );
        }
    }

    fn note_polled(&self) {
        self.poll_exceeded.store(false, Ordering::SeqCst);
    }
}

/// Whether a librdkafka log line reports the max-poll-interval violation.
fn is_max_poll_log(facility: &str, message: &str) -> bool {
    facility == "MAXPOLL"
        || (message.contains("max.poll.interval.ms") && message.contains("exceeded"))
}

fn is_max_poll_error(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::PollExceeded)
}

/// Forwards librdkafka's log lines to `tracing` (target `librdkafka`).
pub(crate) fn forward_log(client: &'static str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", client, facility = fac, "{message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", client, facility = fac, "{message}")
        }
    }
}

/// The consumer's callbacks: rebalance drain, max-poll detection, lag, logs.
pub(crate) struct SourceContext {
    shared: Arc<Shared>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if is_max_poll_log(fac, log_message) {
            self.shared.note_max_poll_exceeded(log_message);
        }
        forward_log("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_max_poll_error(&error) {
            self.shared.note_max_poll_exceeded(reason);
        }
        self.shared
            .metrics
            .client_errors
            .with_label_values(&["consumer"])
            .inc();
        tracing::warn!(target: "librdkafka", client = "consumer", %error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.input_topic) else {
            return;
        };
        for (partition, stats) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; -1 lag is unknown.
            if *partition >= 0 && stats.consumer_lag >= 0 {
                self.shared
                    .metrics
                    .consumer_lag
                    .with_label_values(&[topic.topic.as_str(), &partition.to_string()])
                    .set(stats.consumer_lag);
            }
        }
    }
}

impl SourceContext {
    /// Partitions assigned: counted, registered with the offset tracker, their
    /// history opened; where a history records a position, reading resumes after it.
    fn assigned(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let tps = partitions(tpl);
        self.shared
            .metrics
            .rebalances
            .with_label_values(&["assign"])
            .inc();
        tracing::info!(partitions = ?tps.iter().map(|t| t.partition).collect::<Vec<_>>(), "partitions assigned");
        self.shared
            .metrics
            .assigned_partitions
            .add(tps.len() as i64);
        let mut tracker = self.shared.tracker();
        for tp in &tps {
            tracker.assign(tp.clone());
        }
        drop(tracker);
        if let Some(histories) = &self.shared.histories {
            for tp in &tps {
                let partition = tp.partition;
                match histories.open(partition) {
                    Ok(Resume::Empty) if histories.rebuilds() => {
                        let Some(committed) = committed_offset(consumer, tp) else {
                            continue;
                        };
                        tracing::info!(
                            partition,
                            until = committed,
                            "rebuilding the partition's history: reading it from its beginning, recording without evaluating up to the group's commit"
                        );
                        histories.rebuild_until(partition, committed);
                        if let Err(err) =
                            tpl.set_partition_offset(&tp.topic, partition, Offset::Beginning)
                        {
                            tracing::error!(partition, error = %err, "cannot read the partition from its beginning");
                        }
                    }
                    Ok(Resume::After(resume)) => {
                        tracing::info!(
                            partition,
                            offset = resume,
                            "reading resumes after the partition history's position"
                        );
                        if let Err(err) =
                            tpl.set_partition_offset(&tp.topic, partition, Offset::Offset(resume))
                        {
                            tracing::error!(partition, error = %err, "cannot resume the partition after its history's position");
                        }
                    }
                    Ok(Resume::Empty | Resume::Kept) => {}
                    Err(err) => tracing::error!(
                        partition,
                        error = %err,
                        "cannot open the partition's history state; its events are evaluated without stored history (history rules see less) until the state is repaired"
                    ),
                }
            }
        }
    }

    /// Partitions revoked: drained (unless lost), committed, their history
    /// snapshotted and closed.
    fn revoked(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let tps = partitions(tpl);
        self.shared
            .metrics
            .rebalances
            .with_label_values(&["revoke"])
            .inc();
        // A lost assignment (the coordinator no longer knows this member:
        // session timeout, max.poll.interval.ms exceeded, a coordinator
        // that lost its state) may already belong to another member:
        // nothing is committed for it, so there is nothing to drain for.
        let lost = consumer.assignment_lost();
        let abandoned = self.drain(&tps, !lost);
        if lost {
            self.forget_stored_offsets(consumer, &tps);
            tracing::warn!(
                partitions = ?tps.iter().map(|t| t.partition).collect::<Vec<_>>(),
                in_flight = abandoned,
                "partition assignment lost (the group coordinator dropped this member: session timeout, max.poll.interval.ms exceeded, or a broker that lost its group state); nothing is committed for these partitions, their next owner reads again from the last commit"
            );
        } else if abandoned > 0 {
            self.shared.metrics.drain_timeouts.inc();
            tracing::warn!(
                abandoned,
                drain_timeout_ms = self.shared.drain_timeout.as_millis() as u64,
                "revoked partitions still had messages in flight after kafka.drain_timeout_ms; the next owner reads them again (their alerts may be duplicated, same jr_id)"
            );
        }
        // Hand over exactly: commit what is stored before the partitions
        // go (auto-commit would do it on unassign too, asynchronously).
        if !lost
            && let Err(err) = consumer.commit_consumer_state(CommitMode::Sync)
            && err.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset)
        {
            tracing::warn!(error = %err, "committing stored offsets on revoke failed; the next owner may read some messages again");
        }
        if let Some(histories) = &self.shared.histories {
            // A lost partition may already have another owner writing its state.
            for tp in &tps {
                histories.close(tp.partition, !lost);
            }
        }
        let metrics = &self.shared.metrics;
        metrics.assigned_partitions.sub(tps.len() as i64);
        for tp in &tps {
            // Lag of a partition this instance no longer reads is not its lag.
            let _ = metrics
                .consumer_lag
                .remove_label_values(&[tp.topic.as_str(), &tp.partition.to_string()]);
        }
        tracing::info!(partitions = ?tps.iter().map(|t| t.partition).collect::<Vec<_>>(), "partitions revoked");
    }
}

impl ConsumerContext for SourceContext {
    /// rdkafka's default rebalance with one addition: an assigned partition whose
    /// history state records a position is read from just after it (the offsets
    /// in `tpl`), not from the group's commit (see [`super::state`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assigned(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoked(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error; the assignment is dropped");
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(err) = done {
            tracing::error!(error = %err, "applying the group's new assignment failed");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result
            && err.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset)
        {
            tracing::warn!(error = %err, "offset commit failed; it is retried with the next auto-commit");
        }
    }
}

impl SourceContext {
    /// Waits (bounded; only when `wait`) until no message of `tps` is in flight,
    /// then forgets the partitions; returns how many were abandoned.
    fn drain(&self, tps: &[TopicPartition], wait: bool) -> usize {
        let deadline = Instant::now() + self.shared.drain_timeout;
        let mut tracker = self.shared.tracker();
        if wait && !self.shared.closing.load(Ordering::SeqCst) {
            while tracker.in_flight(Some(tps)) > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                tracker = self
                    .shared
                    .completed
                    .wait_timeout(tracker, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        tps.iter().map(|tp| tracker.revoke(tp)).sum()
    }
}

impl SourceContext {
    /// Un-stores the offsets of `tps` so that librdkafka's unassign does not
    /// commit them. It commits stored offsets of removed partitions when auto-commit
    /// is on, and `unassign()` clears its own "lost" flag first; a coordinator that
    /// has forgotten the group (tansu after a restart on memory storage) then
    /// accepts positions of a log that no longer exists, and the next owner would
    /// start beyond its end.
    fn forget_stored_offsets(&self, consumer: &BaseConsumer<Self>, tps: &[TopicPartition]) {
        let mut tpl = TopicPartitionList::with_capacity(tps.len());
        for tp in tps {
            if let Err(err) = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Invalid) {
                tracing::warn!(error = %err, partition = tp.partition, "cannot clear a stored offset");
            }
        }
        if let Err(err) = consumer.store_offsets(&tpl) {
            tracing::warn!(error = %err, "clearing the stored offsets of a lost assignment failed; librdkafka may commit them on unassign");
        }
    }
}

/// The group's committed offset of `tp` (`None`: nothing committed yet, or the
/// coordinator did not answer).
fn committed_offset(consumer: &BaseConsumer<SourceContext>, tp: &TopicPartition) -> Option<i64> {
    let mut tpl = TopicPartitionList::with_capacity(1);
    tpl.add_partition(&tp.topic, tp.partition);
    match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
        Ok(committed) => committed.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o > 0 => Some(o),
            _ => None,
        }),
        Err(err) => {
            tracing::warn!(partition = tp.partition, error = %err, "cannot read the group's committed offset; the partition's history is not rebuilt");
            None
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// librdkafka's log level: its debug lines when a `debug` context list is set
/// (`[kafka.consumer] debug = "cgrp,fetch"`), else informational and above.
pub(crate) fn log_level(settings: &std::collections::BTreeMap<String, String>) -> RDKafkaLogLevel {
    if settings.get("debug").is_some_and(|d| !d.trim().is_empty()) {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Info
    }
}

/// The consumer as the pipeline shares it.
pub(crate) type KafkaConsumer = StreamConsumer<SourceContext>;

/// Creates the consumer (in the caller's tokio context) and subscribes it.
pub(crate) fn create_consumer(
    settings: &std::collections::BTreeMap<String, String>,
    shared: Arc<Shared>,
) -> KafkaResult<KafkaConsumer> {
    let mut config = ClientConfig::new();
    for (key, value) in settings {
        config.set(key, value);
    }
    config.set_log_level(log_level(settings));
    let consumer: KafkaConsumer = config.create_with_context(SourceContext {
        shared: Arc::clone(&shared),
    })?;
    consumer.subscribe(&[shared.input_topic.as_str()])?;
    Ok(consumer)
}

/// Stores offsets of completed messages.
#[derive(Clone)]
pub(crate) struct Committer {
    consumer: Arc<KafkaConsumer>,
    shared: Arc<Shared>,
}

impl Committer {
    pub fn new(consumer: Arc<KafkaConsumer>, shared: Arc<Shared>) -> Self {
        Self { consumer, shared }
    }

    /// Marks `tickets` done; stores each partition's new low-water mark.
    ///
    /// The store happens under the tracker's lock, so a revoke drain that sees
    /// nothing in flight also sees its offsets stored.
    pub fn complete(&self, tickets: &[Ticket]) {
        if tickets.is_empty() {
            return;
        }
        let mut tracker = self.shared.tracker();
        let mut positions: Vec<(TopicPartition, i64)> = Vec::new();
        for ticket in tickets {
            if let Some(position) = tracker.complete(ticket) {
                match positions.iter_mut().find(|(tp, _)| *tp == ticket.tp) {
                    Some(entry) => entry.1 = position,
                    None => positions.push((ticket.tp.clone(), position)),
                }
            }
        }
        if let Some(histories) = &self.shared.histories {
            // The history's log first: an offset is stored only once the state
            // covers it (else a restart would resume past events it lacks).
            positions.retain(|(tp, position)| {
                match histories.acknowledged(tp.partition, *position) {
                    Ok(()) => true,
                    Err(err) => {
                        self.shared.metrics.source.error("history");
                        tracing::error!(partition = tp.partition, error = %err, "cannot log the partition's history; its offset is not stored, so the events are read again after a restart");
                        false
                    }
                }
            });
        }
        if !positions.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(positions.len());
            for (tp, position) in &positions {
                if let Err(err) =
                    tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*position))
                {
                    tracing::warn!(error = %err, partition = tp.partition, "cannot record an offset to store");
                }
            }
            match self.consumer.store_offsets(&tpl) {
                Ok(()) => self
                    .shared
                    .metrics
                    .offsets_stored
                    .inc_by(positions.len() as u64),
                // A partition revoked in the meantime cannot be stored: its next
                // owner reads from the last commit (at-least-once).
                Err(err) => tracing::warn!(error = %err, "offset store refused"),
            }
        }
        drop(tracker);
        self.shared.completed.notify_all();
        let done = tickets.len() as u64;
        self.shared.metrics.messages_done.inc_by(done);
        self.shared.metrics.in_flight.sub(done as i64);
    }

    /// Commits stored offsets now (shutdown).
    pub fn commit_now(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(err) if err.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
            Err(err) => {
                tracing::warn!(error = %err, "final offset commit failed; some messages will be read again")
            }
        }
    }
}

/// Reads messages until `stop` turns true; registers each in the tracker and
/// sends it down `tx` (waiting when the queue is full: backpressure).
pub(crate) async fn consume(
    consumer: Arc<KafkaConsumer>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Record>,
    mut stop: watch::Receiver<bool>,
    decode: bool,
) {
    let mut last_error: Option<(String, Instant)> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let message = tokio::select! {
            biased;
            _ = stop.changed() => break,
            message = consumer.recv() => message,
        };
        let record = match message {
            Ok(message) => {
                shared.note_polled();
                let tp = TopicPartition::new(message.topic(), message.partition());
                let ticket = shared.tracker().begin(tp, message.offset());
                shared.metrics.messages_in.inc();
                shared.metrics.in_flight.inc();
                let received = Instant::now();
                // Decoding here, while the batch task evaluates the previous
                // batch, takes it off the evaluation's path.
                let decoded = decode.then(|| {
                    (
                        super::pipeline::decode_payload(message.payload()),
                        received.elapsed(),
                    )
                });
                Record {
                    ticket,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    timestamp_ms: message.timestamp().to_millis(),
                    received,
                    decoded,
                }
            }
            Err(err) => {
                if is_max_poll_error(&err) {
                    shared.note_max_poll_exceeded(&err.to_string());
                    continue;
                }
                shared
                    .metrics
                    .client_errors
                    .with_label_values(&["consumer"])
                    .inc();
                // The same error repeats while a broker is away: say it once a
                // minute.
                let text = err.to_string();
                let repeat = last_error.as_ref().is_some_and(|(last, at)| {
                    *last == text && at.elapsed() < Duration::from_secs(60)
                });
                if !repeat {
                    tracing::warn!(error = %text, topic = %shared.input_topic, "Kafka consumer error (librdkafka retries by itself; if the topic is missing, create it)");
                    last_error = Some((text, Instant::now()));
                }
                continue;
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            sent = tx.send(record) => if sent.is_err() {
                tracing::debug!("consumer: the batch task is gone");
                break;
            },
        }
    }
    tracing::debug!(stopping = *stop.borrow(), "consumer loop ended");
}
