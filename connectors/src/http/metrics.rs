//! Prometheus metrics of the HTTP service (`GET /metrics`). What every source
//! has (events, alerts, stages, batch time, event→alert) lives in the shared
//! families of [`crate::metrics`] with `source="http"`; what only HTTP has is
//! prefixed `fundwatch_http_`. No label carries a patient, encounter or alert id
//! (SPEC §8).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

use crate::metrics::{LATENCY_BUCKETS, Source, SourceMetrics};

/// The service's metrics, registered in a process-wide [`crate::metrics::Metrics`].
#[derive(Debug, Clone)]
pub struct Metrics {
    shared: crate::metrics::Metrics,
    /// Events, alerts, stages and latency with `source="http"`.
    pub source: SourceMetrics,
    /// Requests by endpoint and HTTP status.
    pub requests: IntCounterVec,
    /// Time from request head to response, by endpoint (`X-FundWatch-Server-Us`).
    pub latency: HistogramVec,
    /// One `Engine::evaluate` call (`X-FundWatch-Eval-Us`);
    /// `fundwatch_batch_duration_seconds{source="http"}`.
    pub eval: Histogram,
    /// Events per engine call; `fundwatch_batch_events{source="http"}`.
    pub batch_events: Histogram,
    /// Requests waiting for evaluation.
    pub queue_depth: IntGauge,
    /// Inline checks answered fail-open, by reason (`budget`, `engine_error`, `engine_stopped`).
    pub fail_open: IntCounterVec,
    /// Requests shed because the queue was full.
    pub shed: IntCounter,
    /// Alerts answered, by rule and severity;
    /// `fundwatch_alerts_total{source="http"}`.
    pub alerts: IntCounterVec,
    /// Alerts or feedback the store could not persist;
    /// `fundwatch_errors_total{source="http",kind="sink"}`.
    pub store_errors: IntCounter,
}

impl Metrics {
    /// The HTTP metrics in a registry of their own (tests, embedding).
    pub fn new() -> Self {
        Self::clone(&crate::metrics::Metrics::new().http())
    }

    /// Registers the HTTP families in `shared`; called once, through
    /// [`crate::metrics::Metrics::http`].
    pub(crate) fn register(shared: &crate::metrics::Metrics) -> Self {
        let registry = shared.registry();
        let source = shared.source(Source::Http);
        // Names and label sets below are constant and distinct, and this runs
        // once per registry: creation and registration cannot fail.
        let requests = IntCounterVec::new(
            Opts::new(
                "fundwatch_http_requests_total",
                "HTTP requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "fundwatch_http_request_duration_seconds",
                "Server-side time from request head to response, by endpoint",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "fundwatch_http_queue_depth",
            "Inline requests waiting for evaluation",
        )
        .expect("valid metric");
        let fail_open = IntCounterVec::new(
            Opts::new(
                "fundwatch_http_fail_open_total",
                "Inline checks answered fail-open (infcode 0, empty result), by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ["budget", "engine_error", "engine_stopped"] {
            fail_open.with_label_values(&[reason]);
        }
        let shed = IntCounter::new(
            "fundwatch_http_shed_total",
            "Inline requests shed with 503 because the queue was full",
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(fail_open.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(shed.clone()))
            .expect("unique metric");
        Self {
            shared: shared.clone(),
            eval: source.batch_seconds.clone(),
            batch_events: source.batch_events.clone(),
            alerts: source.alerts.clone(),
            store_errors: source.errors.with_label_values(&["sink"]),
            source,
            requests,
            latency,
            queue_depth,
            fail_open,
            shed,
        }
    }

    /// The process-wide metrics these belong to.
    pub fn shared(&self) -> &crate::metrics::Metrics {
        &self.shared
    }

    /// The Prometheus text exposition of the whole registry.
    pub fn render(&self) -> String {
        self.shared.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
