//! Micro-batching: concurrent inline requests share one engine call.
//!
//! Each request becomes a [`Job`] in a bounded queue ([`Batcher::submit`] never
//! waits: a full queue is an immediate "overloaded"). One collector task takes an
//! evaluation slot, then the first job, then more until the batch holds
//! `max_events` or `max_wait_us` has passed, and hands the batch to the evaluation
//! runtime; each job is answered through its own oneshot channel. Because a batch
//! starts only when a slot is free, batches stay small when the service is idle
//! (latency) and grow by themselves under load (throughput).
//!
//! A job whose caller has already given up (its fail-open budget ran out) is
//! dropped before evaluation, and its alerts are not stored when the evaluation
//! was already under way: the HIS was told the check was skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fundwatch_engine::{Alert, Engine, EvalError, Event, Stage};
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use super::metrics::Metrics;
use super::store::AlertStore;

/// What evaluates a batch: the [`Engine`] in production; a wrapper in tests (e.g.
/// one that never finishes, to exercise the fail-open path).
pub trait Evaluator: Send + Sync + 'static {
    /// Alerts of each event, in input order (see [`Engine::evaluate`]).
    fn evaluate<'a>(
        &'a self,
        events: &'a [&'a Event],
    ) -> BoxFuture<'a, Result<Vec<Vec<Alert>>, EvalError>>;

    /// The versions in force, for `/readyz` and the admin status.
    fn versions(&self) -> Versions;
}

/// Rule pack and KB versions in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// `name@version` of the rule pack.
    pub rule_pack: String,
    /// KB version id.
    pub kb: String,
}

impl Evaluator for Engine {
    fn evaluate<'a>(
        &'a self,
        events: &'a [&'a Event],
    ) -> BoxFuture<'a, Result<Vec<Vec<Alert>>, EvalError>> {
        Box::pin(Engine::evaluate(self, events))
    }

    fn versions(&self) -> Versions {
        Versions {
            rule_pack: self.program().pack().version_label(),
            kb: self.program().kb().id().to_string(),
        }
    }
}

/// Batching knobs (`[http.batch]`, resolved).
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Most events per engine call.
    pub max_events: usize,
    /// Longest wait for more jobs after the first.
    pub max_wait: Duration,
    /// Queue capacity.
    pub queue: usize,
    /// Batches evaluated at once.
    pub concurrency: usize,
}

/// One inline request waiting for evaluation.
#[derive(Debug)]
pub(crate) struct Job {
    /// The decoded request.
    pub event: Event,
    /// The authenticated institution; alerts are stored under it.
    pub institution: String,
    /// Where the answer goes.
    pub respond: oneshot::Sender<Outcome>,
}

/// The answer to one job.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Evaluated.
    Done {
        /// The event's alerts.
        alerts: Vec<Alert>,
        /// Duration of the engine call.
        eval: Duration,
        /// Events in that call.
        batch: usize,
    },
    /// The engine failed on the batch (answered fail-open).
    Failed(String),
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// The queue is full: shed with 503.
    Full,
    /// The collector has stopped (the service is shutting down).
    Closed,
}

/// The queue in front of the collector task.
#[derive(Debug)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// Starts the collector on the current runtime; batches run on `eval`.
    pub fn start(
        settings: BatchSettings,
        evaluator: Arc<dyn Evaluator>,
        store: Arc<dyn AlertStore>,
        eval: Handle,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue);
        let collector = Collector {
            rx,
            settings,
            evaluator,
            store,
            eval,
            metrics: Arc::clone(&metrics),
        };
        tokio::spawn(collector.run());
        Self {
            tx,
            capacity: settings.queue,
            metrics,
        }
    }

    /// Queues a job without waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        match self.tx.try_send(job) {
            Ok(()) => {
                self.metrics.queue_depth.set(self.depth() as i64);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// Jobs waiting.
    pub fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Queue capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the collector still runs.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

struct Collector {
    rx: mpsc::Receiver<Job>,
    settings: BatchSettings,
    evaluator: Arc<dyn Evaluator>,
    store: Arc<dyn AlertStore>,
    eval: Handle,
    metrics: Arc<Metrics>,
}

impl Collector {
    async fn run(mut self) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        loop {
            // The semaphore is never closed, so acquiring only fails if it were.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Some(first) = self.rx.recv().await else {
                return;
            };
            let mut jobs = Vec::with_capacity(self.settings.max_events);
            push_live(&mut jobs, first);
            self.fill(&mut jobs).await;
            self.metrics.queue_depth.set(self.rx.len() as i64);
            if jobs.is_empty() {
                continue;
            }
            let evaluator = Arc::clone(&self.evaluator);
            let store = Arc::clone(&self.store);
            let metrics = Arc::clone(&self.metrics);
            let span = tracing::info_span!("http_batch", events = jobs.len());
            self.eval.spawn(
                async move {
                    run_batch(jobs, evaluator.as_ref(), store.as_ref(), &metrics).await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
    }

    /// Adds jobs until the batch is full or `max_wait` has passed since now.
    async fn fill(&mut self, jobs: &mut Vec<Job>) {
        let max_wait = self.settings.max_wait;
        let deadline = Instant::now() + max_wait;
        while jobs.len() < self.settings.max_events {
            match self.rx.try_recv() {
                Ok(job) => push_live(jobs, job),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    if Instant::now() >= deadline {
                        return;
                    }
                    if max_wait >= Duration::from_millis(1) {
                        // Tokio's timer has millisecond resolution: fine here.
                        match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                            Ok(Some(job)) => push_live(jobs, job),
                            Ok(None) | Err(_) => return,
                        }
                    } else {
                        // Below the timer's resolution: let the connection tasks
                        // run and look again, for at most `max_wait`.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }
}

/// Keeps `job` unless its caller has already been answered fail-open.
fn push_live(jobs: &mut Vec<Job>, job: Job) {
    if !job.respond.is_closed() {
        jobs.push(job);
    }
}

async fn run_batch(
    jobs: Vec<Job>,
    evaluator: &dyn Evaluator,
    store: &dyn AlertStore,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let result = {
        let events: Vec<&Event> = jobs.iter().map(|j| &j.event).collect();
        evaluator.evaluate(&events).await
    };
    let eval = started.elapsed();
    let batch = jobs.len();
    metrics.eval.observe(eval.as_secs_f64());
    metrics.batch_events.observe(batch as f64);
    match result {
        Ok(per_event) => {
            let sink_started = Instant::now();
            let mut per_event = per_event.into_iter();
            for job in jobs {
                let Some(alerts) = per_event.next() else {
                    let _ = job.respond.send(Outcome::Failed(
                        "the engine returned fewer results than events".to_string(),
                    ));
                    continue;
                };
                if job.respond.is_closed() {
                    continue;
                }
                if let Err(err) = store.put_alerts(&job.institution, &alerts) {
                    metrics.store_errors.inc();
                    tracing::error!(institution = %job.institution, error = %err, "alerts answered but not persisted");
                }
                for alert in &alerts {
                    metrics
                        .source
                        .alert(&alert.rule_id, &alert.sev_deg, &alert.fixmedins_code);
                }
                // The receiver may have timed out since the check above: then the
                // answer is simply dropped.
                let _ = job.respond.send(Outcome::Done {
                    alerts,
                    eval,
                    batch,
                });
            }
            // Storing and answering the batch's alerts.
            metrics
                .source
                .stage(Stage::Sink)
                .observe(sink_started.elapsed().as_secs_f64());
        }
        Err(err) => {
            let message = err.to_string();
            metrics.source.error("evaluate");
            tracing::error!(error = %message, events = batch, "evaluation failed; answering fail-open");
            for job in jobs {
                let _ = job.respond.send(Outcome::Failed(message.clone()));
            }
        }
    }
}
