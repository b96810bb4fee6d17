//! The pipeline: input topic → micro-batches → one engine call per batch
//! ([`Engine::evaluate_only_with`], against the owned partitions' histories) →
//! alerts topic, at least once.
//!
//! ```text
//!  consumer thread ──queue (kafka.queue)──▶ batch task ──▶ send task ──▶ ack task
//!  (source.rs)                              evaluate,      alert JSON,   awaits delivery
//!   decodes, registers each offset          record         dead letters, reports, stores
//!   in the tracker                          history        producer      low-water marks
//!                                   (at most kafka.max_in_flight_batches past the batch task)
//! ```
//!
//! - **Batches** close at `kafka.batch.max_events` events or `max_wait_ms` after
//!   their first event. One batch is evaluated at a time, in consumption order, so
//!   a person's events (one partition, key `patn_id`) are evaluated in order.
//! - **Sends start at once**, in the send task while the batch task evaluates the
//!   next batch (librdkafka batches them); the ack task follows the
//!   delivery reports of up to `max_in_flight_batches` batches concurrently and,
//!   when every alert of a message (or its dead letter) is acknowledged, completes
//!   its offset. Both queues are bounded: a slow broker slows evaluation, which
//!   slows consumption (backpressure), never memory growth.
//! - **History**: a batch's events are recorded into their partitions'
//!   histories right after it is evaluated (the next batch sees them) and logged
//!   once acknowledged ([`super::state`]).
//! - **Dead letters**: a message that cannot be decoded (or evaluated even on its
//!   own, or whose alert the broker refuses for good) goes to `kafka.dlq_topic`
//!   unchanged, with the reason and its source in headers ([`DLQ_HEADERS`]).
//! - **Shutdown** stops reading, finishes what was read (bounded by
//!   `drain_timeout_ms`), commits, and leaves the group.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fundwatch_engine::{Alert, DecodeError, Engine, Event, Stage, decode_event};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::KafkaError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::config::{KafkaConfig, KafkaConfigError};
use super::metrics::KafkaMetrics;
use super::offsets::Ticket;
use super::sink::{DeliveryError, OutMessage, Queued, Sink};
use super::source::{self, Committer, Record, Shared};
use super::state::PartitionHistories;

/// Header names of a dead letter (values are UTF-8 text).
pub const DLQ_HEADERS: DlqHeaders = DlqHeaders {
    source_topic: "fundwatch.source.topic",
    source_partition: "fundwatch.source.partition",
    source_offset: "fundwatch.source.offset",
    source_timestamp: "fundwatch.source.timestamp",
    stage: "fundwatch.error.stage",
    path: "fundwatch.error.path",
    reason: "fundwatch.error.reason",
    value: "fundwatch.error.value",
    message: "fundwatch.error.message",
};

/// Header carrying an alert's `jr_id` (consumers can de-duplicate redeliveries
/// without parsing the value).
pub const JR_ID_HEADER: &str = "fundwatch.jr_id";

/// The header names of a dead-letter record.
#[derive(Debug, Clone, Copy)]
pub struct DlqHeaders {
    /// Input topic of the message.
    pub source_topic: &'static str,
    /// Its partition.
    pub source_partition: &'static str,
    /// Its offset.
    pub source_offset: &'static str,
    /// Its timestamp (ms since the epoch), when it had one.
    pub source_timestamp: &'static str,
    /// Where it failed: `decode`, `evaluate` or `produce`.
    pub stage: &'static str,
    /// Field path of the problem (`$` for the whole message), e.g.
    /// `input.data.patient_dtos[0].brdy`.
    pub path: &'static str,
    /// What is wrong and what is expected.
    pub reason: &'static str,
    /// The offending value (JSON text, shortened), when there is one.
    pub value: &'static str,
    /// The whole error as one sentence.
    pub message: &'static str,
}

/// What the pipeline does with each batch.
#[derive(Debug, Clone)]
pub enum Processor {
    /// Decode and evaluate with the engine; alerts to the alerts topic.
    Evaluate(Engine),
    /// Forward each message unchanged to the alerts topic, without decoding or
    /// evaluating: the raw pipe the benchmark compares the engine with.
    Forward,
}

/// A pipeline that cannot start or that failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] KafkaConfigError),
    /// librdkafka refused to create a client.
    #[error(
        "cannot create the Kafka {client}: {source}; check kafka.brokers and the keys in [kafka.{client}]"
    )]
    Client {
        /// `consumer` or `producer`.
        client: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The consumer thread could not be started.
    #[error("cannot start the Kafka consumer thread: {0}")]
    Thread(std::io::Error),
    /// A pipeline task panicked (a bug: please report it with the log).
    #[error("the Kafka pipeline's {task} task failed: {message}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The panic or join error.
        message: String,
    },
}

/// Counts at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// Messages read.
    pub messages: u64,
    /// Messages whose alerts or dead letter were acknowledged.
    pub messages_done: u64,
    /// Alerts acknowledged.
    pub alerts: u64,
    /// Dead letters acknowledged.
    pub dead_letters: u64,
    /// Messages read but abandoned at shutdown (they are read again next time).
    pub abandoned: u64,
}

/// A running pipeline.
pub struct PipelineHandle {
    metrics: KafkaMetrics,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<PipelineReport, PipelineError>>,
}

impl PipelineHandle {
    /// The pipeline's metrics (live).
    pub fn metrics(&self) -> &KafkaMetrics {
        &self.metrics
    }

    /// Whether the pipeline stopped by itself (an error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops reading, finishes what was read (bounded by `drain_timeout_ms`),
    /// commits and leaves the group.
    pub async fn stop(self) -> Result<PipelineReport, PipelineError> {
        let _ = self.stop.send(true);
        join(self.task, "pipeline").await?
    }

    /// Runs until `shutdown` completes (then stops as [`Self::stop`] does) or the
    /// pipeline fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<PipelineReport, PipelineError> {
        let PipelineHandle { stop, mut task, .. } = self;
        let ended = tokio::select! {
            () = shutdown => None,
            result = &mut task => Some(result),
        };
        match ended {
            Some(result) => result.map_err(|err| task_error("pipeline", err))?,
            None => {
                let _ = stop.send(true);
                join(task, "pipeline").await?
            }
        }
    }
}

/// Runs the Kafka pipeline with `engine` until `shutdown` completes: the entry
/// point of `fundwatch stream` (and of `fundwatch serve` when it has a `[kafka]`
/// table).
pub async fn run_pipeline(
    engine: Engine,
    config: KafkaConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<PipelineReport, PipelineError> {
    run_pipeline_with_metrics(engine, config, KafkaMetrics::new(), shutdown).await
}

/// [`run_pipeline`] reporting to `metrics` (from the process-wide
/// [`crate::metrics::Metrics::kafka`], so `/metrics` shows them).
pub async fn run_pipeline_with_metrics(
    engine: Engine,
    config: KafkaConfig,
    metrics: KafkaMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<PipelineReport, PipelineError> {
    start(Processor::Evaluate(engine), config, metrics)?
        .run_until(shutdown)
        .await
}

/// Starts a pipeline; it runs until [`PipelineHandle::stop`]. Must be called
/// within a multi-threaded tokio runtime.
pub fn start(
    processor: Processor,
    config: KafkaConfig,
    metrics: KafkaMetrics,
) -> Result<PipelineHandle, PipelineError> {
    config.validate()?;
    // The engine reports its stages (batch build, evaluate, …) with source="kafka".
    let processor = match processor {
        Processor::Evaluate(engine) => {
            Processor::Evaluate(engine.with_observer(Arc::new(metrics.source.clone())))
        }
        Processor::Forward => Processor::Forward,
    };
    // History per owned partition, opened as partitions are assigned.
    let histories = match &processor {
        Processor::Evaluate(engine) => {
            let histories = PartitionHistories::new(
                config.state_dir.clone(),
                engine.program().history_days(),
                config.snapshot_every,
                Arc::clone(engine.history()),
                metrics.clone(),
            )
            .rebuilding(config.rebuild_history);
            let histories = Arc::new(histories);
            // Other users of the engine (the HTTP service of `fundwatch serve`)
            // see the streamed settlements as history too.
            engine.attach_history_view(histories.clone());
            Some(histories)
        }
        Processor::Forward => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let shared = Arc::new(Shared::new(
        metrics.clone(),
        &config.input_topic,
        config.drain_timeout(),
        histories.clone(),
    ));
    let sink = Sink::new(config.producer_settings(), metrics.clone(), stop_rx.clone()).map_err(
        |source| PipelineError::Client {
            client: "producer",
            source,
        },
    )?;
    let consumer = source::create_consumer(&config.consumer_settings(), Arc::clone(&shared))
        .map_err(|source| PipelineError::Client {
            client: "consumer",
            source,
        })?;
    let consumer = Arc::new(consumer);
    let committer = Committer::new(Arc::clone(&consumer), Arc::clone(&shared));

    let (record_tx, record_rx) = mpsc::channel::<Record>(config.queue);
    let consumer_thread = {
        let consumer = Arc::clone(&consumer);
        let shared = Arc::clone(&shared);
        let stop = stop_rx.clone();
        let decode = matches!(processor, Processor::Evaluate(_));
        std::thread::Builder::new()
            .name("fundwatch-kafka-consumer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        runtime.block_on(source::consume(consumer, shared, record_tx, stop, decode))
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot start the consumer's runtime")
                    }
                }
            })
            .map_err(PipelineError::Thread)?
    };

    let sink = Arc::new(sink);
    let (evaluated_tx, evaluated_rx) = mpsc::unbounded_channel::<Evaluated>();
    let (batch_tx, batch_rx) = mpsc::unbounded_channel::<InFlightBatch>();
    // Both channels are bounded by the permits: a batch holds one from the batch
    // task until all its records are acknowledged.
    let permits = Arc::new(Semaphore::new(config.max_in_flight_batches));
    let batcher = Batcher {
        processor,
        histories: histories.clone(),
        metrics: metrics.clone(),
        max_events: config.batch.max_events,
        max_wait: config.max_wait(),
    };
    let sender = Sender {
        sink: Arc::clone(&sink),
        metrics: metrics.clone(),
        alerts_topic: Arc::from(config.alerts_topic.as_str()),
        dlq_topic: Arc::from(config.dlq_topic.as_str()),
    };
    // In pipeline order: each ends once the one before it has ended and it has
    // passed on what it held.
    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = vec![
        (
            "batch",
            tokio::spawn(batcher.run(record_rx, evaluated_tx, permits)),
        ),
        ("send", tokio::spawn(sender.run(evaluated_rx, batch_tx))),
        (
            "ack",
            tokio::spawn(acknowledge(
                batch_rx,
                Arc::clone(&sink),
                committer.clone(),
                metrics.clone(),
                Arc::from(config.dlq_topic.as_str()),
            )),
        ),
    ];

    let drain_timeout = config.drain_timeout();
    let task_metrics = metrics.clone();
    let stop_on_failure = Arc::clone(&stop_tx);
    let mut stopped = stop_rx;
    let task = tokio::spawn(async move {
        // Until asked to stop, or until a task ends by itself (a failure).
        let early = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => None,
            (result, index, _) = futures::future::select_all(tasks.iter_mut().map(|(_, t)| t)) => {
                Some((tasks.remove(index).0, result))
            }
        };
        // Once a stop is requested the tasks end by themselves: not a failure.
        // (The stop may land between the checks of one poll of the select on a
        // multi-threaded runtime, so the flag is read again.)
        let early = early.filter(|(_, result)| !(result.is_ok() && *stopped.borrow()));
        if let Some((task, result)) = early {
            let message = match result {
                Ok(()) => "ended unexpectedly".to_string(),
                Err(err) => err.to_string(),
            };
            let _ = stop_on_failure.send(true);
            shared.set_closing();
            for (_, other) in &tasks {
                other.abort();
            }
            close(consumer, committer, consumer_thread, &sink, histories).await;
            return Err(PipelineError::Task { task, message });
        }

        // Stopping: the consumer thread has seen the flag; what was read drains
        // through the batch, send and ack tasks, bounded.
        let drained = tokio::time::timeout(drain_timeout, async {
            for (_, task) in &mut tasks {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            for (_, task) in &tasks {
                task.abort();
            }
        }
        shared.set_closing();
        let abandoned = shared.in_flight() as u64;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "stopping with messages whose alerts are not acknowledged; their offsets are not committed, so they are read again"
            );
        }
        close(consumer, committer, consumer_thread, &sink, histories).await;
        Ok(PipelineReport {
            messages: task_metrics.messages_in.get(),
            messages_done: task_metrics.messages_done.get(),
            alerts: task_metrics.alerts_total(),
            dead_letters: task_metrics.dead_letters_total(),
            abandoned,
        })
    });
    Ok(PipelineHandle {
        metrics,
        stop: stop_tx,
        task,
    })
}

/// Final commit, leave the group (the revoke snapshots the partitions'
/// histories), flush the producer. Blocking calls run off the async threads.
async fn close(
    consumer: Arc<source::KafkaConsumer>,
    committer: Committer,
    consumer_thread: std::thread::JoinHandle<()>,
    sink: &Sink,
    histories: Option<Arc<PartitionHistories>>,
) {
    let closing = tokio::task::spawn_blocking(move || {
        if consumer_thread.join().is_err() {
            tracing::error!("the Kafka consumer thread panicked");
        }
        committer.commit_now();
        drop(committer);
        // Dropping the last handle closes the consumer: it leaves the group so
        // its partitions are reassigned at once rather than after the session
        // timeout.
        drop(consumer);
        // Partitions the close did not revoke through the callback.
        if let Some(histories) = histories {
            for partition in histories.partitions() {
                histories.close(partition, true);
            }
        }
    });
    if let Err(err) = closing.await {
        tracing::error!(error = %err, "closing the Kafka consumer failed");
    }
    sink.flush(Duration::from_secs(5));
}

async fn join<T>(task: JoinHandle<T>, name: &'static str) -> Result<T, PipelineError> {
    task.await.map_err(|err| task_error(name, err))
}

fn task_error(task: &'static str, err: tokio::task::JoinError) -> PipelineError {
    PipelineError::Task {
        task,
        message: err.to_string(),
    }
}

/// A batch whose sends are under way.
struct InFlightBatch {
    records: Vec<PendingRecord>,
    /// Released when every record of the batch is done.
    permit: OwnedSemaphorePermit,
}

/// One input message whose alerts (or dead letter) are being delivered.
struct PendingRecord {
    record: Record,
    sends: Vec<PendingSend>,
}

struct PendingSend {
    message: OutMessage,
    queued: Option<Queued>,
    kind: SendKind,
}

#[derive(Debug, Clone)]
enum SendKind {
    Alert {
        rule_id: String,
        sev_deg: String,
        fixmedins_code: String,
    },
    DeadLetter {
        stage: &'static str,
    },
    Forward,
}

/// A batch evaluated (or, in the raw pipe, only batched) whose sends are not
/// started yet: what the batch task hands the send task.
struct Evaluated {
    records: Vec<Record>,
    /// One per record, in order.
    outcomes: Vec<Outcome>,
    /// The batch's decoded events: the alerts are built, so they are only
    /// dropped — by the send task, off the evaluation path.
    events: Vec<Event>,
    permit: OwnedSemaphorePermit,
    /// The batch's `kafka_batch` span.
    span: tracing::Span,
}

/// What goes out for one input message.
enum Outcome {
    /// Its alerts (none: nothing to send, the offset completes at once).
    Alerts(Vec<Alert>),
    /// It goes to the dead-letter topic: it failed at `stage`.
    DeadLetter {
        stage: &'static str,
        error: DecodeError,
    },
    /// Raw pipe: its value, unchanged, to the alerts topic.
    Forward,
}

/// The batch task: forms micro-batches, decodes what the consumer thread did not,
/// evaluates, and records history. One batch at a time, in consumption order.
struct Batcher {
    processor: Processor,
    /// The owned partitions' histories (with [`Processor::Evaluate`]).
    histories: Option<Arc<PartitionHistories>>,
    metrics: KafkaMetrics,
    max_events: usize,
    max_wait: Duration,
}

impl Batcher {
    async fn run(
        self,
        mut records: mpsc::Receiver<Record>,
        evaluated: mpsc::UnboundedSender<Evaluated>,
        permits: Arc<Semaphore>,
    ) {
        let mut seq: u64 = 0;
        let mut open = true;
        while open {
            // Wait for room in flight before taking more work (backpressure).
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let Some(first) = records.recv().await else {
                tracing::debug!("batch task: the consumer closed its queue");
                break;
            };
            let mut batch = Vec::with_capacity(self.max_events.min(1024));
            batch.push(first);
            let deadline = tokio::time::Instant::now() + self.max_wait;
            while batch.len() < self.max_events {
                // Take what is queued without waiting, then wait until the deadline.
                match records.try_recv() {
                    Ok(record) => {
                        batch.push(record);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
                tokio::select! {
                    biased;
                    record = records.recv() => match record {
                        Some(record) => batch.push(record),
                        None => {
                            open = false;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            seq += 1;
            let span = tracing::debug_span!(
                "kafka_batch",
                batch = seq,
                events = batch.len(),
                alerts = tracing::field::Empty,
                dead_letters = tracing::field::Empty,
            );
            let (outcomes, events) = self.process(&mut batch).instrument(span.clone()).await;
            let done = Evaluated {
                records: batch,
                outcomes,
                events,
                permit,
                span,
            };
            if evaluated.send(done).is_err() {
                tracing::debug!("batch task: the send task is gone");
                break;
            }
        }
    }

    /// Decodes and evaluates one batch and records it into history; returns each
    /// record's outcome and the decoded events.
    async fn process(&self, batch: &mut [Record]) -> (Vec<Outcome>, Vec<Event>) {
        self.metrics.batch_events.observe(batch.len() as f64);
        let engine = match &self.processor {
            Processor::Forward => {
                let outcomes = batch.iter().map(|_| Outcome::Forward).collect();
                return (outcomes, Vec::new());
            }
            Processor::Evaluate(engine) => engine,
        };
        // The consumer thread decoded each message as it arrived (overlapping
        // the evaluation of the batch before); decode here what it did not.
        let mut decode_time = Duration::ZERO;
        let decoded: Vec<Result<Event, DecodeError>> = batch
            .iter_mut()
            .map(|record| {
                let (event, took) = record.decoded.take().unwrap_or_else(|| {
                    let started = Instant::now();
                    let event = decode_payload(record.payload.as_deref());
                    (event, started.elapsed())
                });
                decode_time += took;
                event
            })
            .collect();
        // The batch's decode time, wherever it was spent.
        self.metrics
            .source
            .stage(Stage::Decode)
            .observe(decode_time.as_secs_f64());
        // Events an earlier owner evaluated, read again to rebuild history, are
        // recorded without alerts.
        let replayed = match &self.histories {
            Some(histories) => histories.replayed(
                batch
                    .iter()
                    .map(|r| (r.ticket.tp.partition, r.ticket.offset)),
            ),
            None => vec![false; batch.len()],
        };
        let located = |replay: bool| -> Vec<(i32, i64, &Event)> {
            batch
                .iter()
                .zip(&decoded)
                .zip(&replayed)
                .filter(|(_, replayed)| **replayed == replay)
                .filter_map(|((record, decoded), _)| {
                    let event = decoded.as_ref().ok()?;
                    Some((record.ticket.tp.partition, record.ticket.offset, event))
                })
                .collect()
        };
        // Replayed events come before the evaluated ones of their partition: they
        // are history for this very batch.
        self.record_history(&located(true));
        let evaluated = located(false);
        let events: Vec<&Event> = evaluated.iter().map(|(_, _, event)| *event).collect();
        let mut alerts = self.evaluate(engine, &events).await.into_iter();
        // The batch becomes history for the next one at once; it is logged once
        // its alerts are acknowledged (state.rs).
        self.record_history(&evaluated);
        // Both borrow `decoded`, whose events move into the outcomes below.
        drop((evaluated, events));

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut kept = Vec::with_capacity(batch.len());
        for (decoded, replayed) in decoded.into_iter().zip(replayed) {
            outcomes.push(match decoded {
                Err(error) => Outcome::DeadLetter {
                    stage: "decode",
                    error,
                },
                Ok(event) => {
                    kept.push(event);
                    // Its alerts or dead letter went out under the earlier owner.
                    if replayed {
                        Outcome::Alerts(Vec::new())
                    } else {
                        // One result per evaluated event, in order.
                        match alerts.next() {
                            Some(Ok(alerts)) => Outcome::Alerts(alerts),
                            Some(Err((stage, error))) => Outcome::DeadLetter { stage, error },
                            None => Outcome::DeadLetter {
                                stage: "evaluate",
                                error: DecodeError {
                                    path: "$".into(),
                                    value: None,
                                    reason: "the engine returned no result for this event".into(),
                                },
                            },
                        }
                    }
                }
            });
        }
        (outcomes, kept)
    }

    /// The engine's alerts per event; when the batch fails, each event is tried
    /// on its own so one bad event cannot hold the others back.
    async fn evaluate(
        &self,
        engine: &Engine,
        events: &[&Event],
    ) -> Vec<Result<Vec<Alert>, (&'static str, DecodeError)>> {
        if events.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        let result = self.evaluate_only(engine, events).await;
        self.metrics
            .evaluate_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(alerts) => alerts.into_iter().map(Ok).collect(),
            Err(err) => {
                tracing::warn!(error = %err, events = events.len(), "batch evaluation failed; evaluating its events one by one");
                let mut out = Vec::with_capacity(events.len());
                for event in events {
                    out.push(match self.evaluate_only(engine, &[event]).await {
                        Ok(mut alerts) => Ok(alerts.pop().unwrap_or_default()),
                        Err(err) => Err((
                            "evaluate",
                            DecodeError {
                                path: "$".into(),
                                value: None,
                                reason: format!("the engine cannot evaluate this event: {err}"),
                            },
                        )),
                    });
                }
                out
            }
        }
    }

    /// Records `events` into their partitions' histories.
    fn record_history(&self, events: &[(i32, i64, &Event)]) {
        let Some(histories) = &self.histories else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let started = Instant::now();
        histories.record(events);
        self.metrics
            .source
            .stage(Stage::History)
            .observe(started.elapsed().as_secs_f64());
    }

    /// One engine call against the partitions' histories (recorded by the caller).
    async fn evaluate_only(
        &self,
        engine: &Engine,
        events: &[&Event],
    ) -> Result<Vec<Vec<Alert>>, fundwatch_engine::EvalError> {
        match &self.histories {
            Some(histories) => engine.evaluate_only_with(events, &**histories).await,
            None => engine.evaluate_only(events).await,
        }
    }
}

/// The send task: turns each evaluated batch into messages, hands them to the
/// producer in batch order, and passes the batch on to the acknowledgement task.
/// Its own task, so that serialising alerts and dropping a batch's events overlap
/// the evaluation of the next batch instead of delaying it.
struct Sender {
    sink: Arc<Sink>,
    metrics: KafkaMetrics,
    alerts_topic: Arc<str>,
    dlq_topic: Arc<str>,
}

impl Sender {
    async fn run(
        self,
        mut evaluated: mpsc::UnboundedReceiver<Evaluated>,
        batches: mpsc::UnboundedSender<InFlightBatch>,
    ) {
        while let Some(batch) = evaluated.recv().await {
            let Evaluated {
                records,
                outcomes,
                events,
                permit,
                span,
            } = batch;
            let records = self.start(records, outcomes).instrument(span).await;
            if batches.send(InFlightBatch { records, permit }).is_err() {
                tracing::debug!("send task: the acknowledgement task is gone");
                break;
            }
            drop(events);
        }
    }

    /// Starts the sends of one batch's records.
    async fn start(&self, records: Vec<Record>, outcomes: Vec<Outcome>) -> Vec<PendingRecord> {
        let started = Instant::now();
        let (mut n_alerts, mut n_dead) = (0usize, 0usize);
        let mut pending = Vec::with_capacity(records.len());
        for (record, outcome) in records.into_iter().zip(outcomes) {
            let sends = match outcome {
                Outcome::Alerts(alerts) => {
                    n_alerts += alerts.len();
                    alerts.iter().map(|a| self.alert_message(a)).collect()
                }
                Outcome::Forward => vec![(
                    OutMessage {
                        topic: Arc::clone(&self.alerts_topic),
                        key: record.key.clone(),
                        payload: record.payload.clone().unwrap_or_default(),
                        headers: Vec::new(),
                    },
                    SendKind::Forward,
                )],
                Outcome::DeadLetter { stage, error } => {
                    n_dead += 1;
                    self.metrics.source.error(stage);
                    tracing::warn!(
                        stage,
                        partition = record.ticket.tp.partition,
                        offset = record.ticket.offset,
                        path = %error.path,
                        reason = %error.reason,
                        "message sent to the dead-letter topic"
                    );
                    vec![dead_letter_message(&self.dlq_topic, &record, stage, &error)]
                }
            };
            pending.push(self.start_sends(record, sends).await);
        }
        // Handing the batch's alerts to the producer; the wait for the broker's
        // acknowledgement shows in fundwatch_event_to_alert_seconds.
        self.metrics
            .source
            .stage(Stage::Sink)
            .observe(started.elapsed().as_secs_f64());
        let span = tracing::Span::current();
        span.record("alerts", n_alerts);
        span.record("dead_letters", n_dead);
        pending
    }

    async fn start_sends(
        &self,
        record: Record,
        messages: Vec<(OutMessage, SendKind)>,
    ) -> PendingRecord {
        let mut sends = Vec::with_capacity(messages.len());
        for (message, kind) in messages {
            let queued = self.sink.send(&message).await;
            sends.push(PendingSend {
                message,
                queued: Some(queued),
                kind,
            });
        }
        PendingRecord { record, sends }
    }

    fn alert_message(&self, alert: &Alert) -> (OutMessage, SendKind) {
        // An `Alert` is plain strings and numbers: serialising cannot fail.
        let payload = serde_json::to_vec(alert).unwrap_or_default();
        let key =
            (!alert.fixmedins_code.is_empty()).then(|| alert.fixmedins_code.as_bytes().to_vec());
        (
            OutMessage {
                topic: Arc::clone(&self.alerts_topic),
                key,
                payload,
                headers: vec![(JR_ID_HEADER, alert.jr_id.clone())],
            },
            SendKind::Alert {
                rule_id: alert.rule_id.clone(),
                sev_deg: alert.sev_deg.clone(),
                fixmedins_code: alert.fixmedins_code.clone(),
            },
        )
    }
}

/// A message's value as an event, or why it is not one.
pub(crate) fn decode_payload(payload: Option<&[u8]>) -> Result<Event, DecodeError> {
    match payload {
        Some(payload) => decode_event(payload),
        None => Err(DecodeError {
            path: "$".into(),
            value: None,
            reason: "the message has no value (a tombstone?); expected a 3101/3102 JSON request"
                .into(),
        }),
    }
}

/// The dead letter of `record`: its key and value unchanged, the reason and the
/// source in headers.
fn dead_letter_message(
    dlq_topic: &Arc<str>,
    record: &Record,
    stage: &'static str,
    err: &DecodeError,
) -> (OutMessage, SendKind) {
    let h = DLQ_HEADERS;
    let mut headers = vec![
        (h.source_topic, record.ticket.tp.topic.clone()),
        (h.source_partition, record.ticket.tp.partition.to_string()),
        (h.source_offset, record.ticket.offset.to_string()),
        (h.stage, stage.to_string()),
        (h.path, err.path.clone()),
        (h.reason, err.reason.clone()),
        (h.message, err.to_string()),
    ];
    if let Some(ts) = record.timestamp_ms {
        headers.push((h.source_timestamp, ts.to_string()));
    }
    if let Some(value) = &err.value {
        headers.push((h.value, value.clone()));
    }
    (
        OutMessage {
            topic: Arc::clone(dlq_topic),
            key: record.key.clone(),
            payload: record.payload.clone().unwrap_or_default(),
            headers,
        },
        SendKind::DeadLetter { stage },
    )
}

/// Follows delivery reports; completes offsets as messages finish, in any order.
async fn acknowledge(
    mut batches: mpsc::UnboundedReceiver<InFlightBatch>,
    sink: Arc<Sink>,
    committer: Committer,
    metrics: KafkaMetrics,
    dlq_topic: Arc<str>,
) {
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            batch = batches.recv(), if open => match batch {
                Some(batch) => {
                    let permit = Arc::new(batch.permit);
                    for record in batch.records {
                        pending.push(finish(
                            record,
                            Arc::clone(&sink),
                            metrics.clone(),
                            Arc::clone(&dlq_topic),
                            Arc::clone(&permit),
                        ));
                    }
                }
                None => open = false,
            },
            Some(first) = pending.next(), if !pending.is_empty() => {
                // Complete everything already finished in one store.
                let mut done: Vec<Ticket> = first.into_iter().collect();
                while let Some(Some(more)) = pending.next().now_or_never() {
                    done.extend(more);
                }
                committer.complete(&done);
            }
            else => {
                tracing::debug!("acknowledgement task: no more batches");
                break;
            }
        }
    }
}

/// Delivers every send of `pending`; returns its ticket when the offset may be
/// stored (`None`: abandoned at shutdown, to be read again).
async fn finish(
    pending: PendingRecord,
    sink: Arc<Sink>,
    metrics: KafkaMetrics,
    dlq_topic: Arc<str>,
    _permit: Arc<OwnedSemaphorePermit>,
) -> Option<Ticket> {
    let PendingRecord { record, sends } = pending;
    let results = futures::future::join_all(sends.into_iter().map(|mut send| {
        let sink = Arc::clone(&sink);
        async move {
            let result = sink.deliver(&send.message, send.queued.take()).await;
            (send.kind, result)
        }
    }))
    .await;
    let mut refused: Option<String> = None;
    for (kind, result) in results {
        match result {
            Ok(()) => match kind {
                SendKind::Alert {
                    rule_id,
                    sev_deg,
                    fixmedins_code,
                } => {
                    metrics.source.alert(&rule_id, &sev_deg, &fixmedins_code);
                }
                SendKind::DeadLetter { stage } => {
                    metrics.dead_letters.with_label_values(&[stage]).inc();
                }
                SendKind::Forward => {}
            },
            Err(DeliveryError::Stopped) => return None,
            Err(DeliveryError::Permanent(err)) => match kind {
                SendKind::DeadLetter { .. } => {
                    tracing::error!(
                        error = %err,
                        partition = record.ticket.tp.partition,
                        offset = record.ticket.offset,
                        "the dead-letter topic refuses this message for good; it is skipped"
                    );
                }
                _ => {
                    metrics.source.error("sink");
                    refused = Some(err.to_string());
                }
            },
        }
    }
    if let Some(reason) = refused {
        // The broker will never take this message's alert: dead-letter the input
        // instead of stalling the partition.
        let err = DecodeError {
            path: "$".into(),
            value: None,
            reason: format!(
                "an alert of this message cannot be written to the alerts topic: {reason}"
            ),
        };
        let (message, _) = dead_letter_message(&dlq_topic, &record, "produce", &err);
        match sink.deliver(&message, None).await {
            Ok(()) => metrics.dead_letters.with_label_values(&["produce"]).inc(),
            Err(DeliveryError::Stopped) => return None,
            Err(DeliveryError::Permanent(err)) => tracing::error!(
                error = %err,
                partition = record.ticket.tp.partition,
                offset = record.ticket.offset,
                "neither its alert nor its dead letter can be written; the message is skipped"
            ),
        }
    }
    let latency = match record.timestamp_ms {
        Some(ts) => {
            let now = chrono::Utc::now().timestamp_millis();
            Duration::from_millis(now.saturating_sub(ts).max(0) as u64)
        }
        None => record.received.elapsed(),
    };
    metrics
        .event_to_alert_seconds
        .observe(latency.as_secs_f64());
    Some(record.ticket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::offsets::{OffsetTracker, TopicPartition};

    #[test]
    fn a_dead_letter_keeps_the_message_and_names_the_field_and_source() {
        let mut tracker = OffsetTracker::new();
        let record = Record {
            ticket: tracker.begin(TopicPartition::new("in", 3), 42),
            key: Some(b"P1".to_vec()),
            payload: Some(b"{\"patient_dtos\":[{\"brdy\":\"x\"}]}".to_vec()),
            timestamp_ms: Some(1_700_000_000_000),
            received: Instant::now(),
            decoded: None,
        };
        let err = decode_event(record.payload.as_deref().unwrap_or_default()).expect_err("bad");
        let (message, kind) = dead_letter_message(&Arc::from("dlq"), &record, "decode", &err);
        assert!(matches!(kind, SendKind::DeadLetter { stage: "decode" }));
        assert_eq!(&*message.topic, "dlq");
        assert_eq!(message.key.as_deref(), Some(&b"P1"[..]));
        assert_eq!(Some(message.payload.as_slice()), record.payload.as_deref());
        let header = |name: &str| {
            message
                .headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header(DLQ_HEADERS.source_topic), Some("in"));
        assert_eq!(header(DLQ_HEADERS.source_partition), Some("3"));
        assert_eq!(header(DLQ_HEADERS.source_offset), Some("42"));
        assert_eq!(header(DLQ_HEADERS.source_timestamp), Some("1700000000000"));
        assert_eq!(header(DLQ_HEADERS.path), Some(err.path.as_str()));
        assert!(header(DLQ_HEADERS.reason).is_some_and(|r| !r.is_empty()));
    }
}
