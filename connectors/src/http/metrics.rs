//! Prometheus metrics of the HTTP service (`GET /metrics`, prefix `fundwatch_http_`).
//! No label carries a patient, encounter or alert id (SPEC §8).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds: 50 µs … 1 s, dense where the 5 ms target is.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// The service's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and HTTP status.
    pub requests: IntCounterVec,
    /// Time from request head to response, by endpoint (`X-FundWatch-Server-Us`).
    pub latency: HistogramVec,
    /// One `Engine::evaluate` call (`X-FundWatch-Eval-Us`).
    pub eval: Histogram,
    /// Events per engine call.
    pub batch_events: Histogram,
    /// Requests waiting for evaluation.
    pub queue_depth: IntGauge,
    /// Inline checks answered fail-open, by reason (`budget`, `engine_error`, `engine_stopped`).
    pub fail_open: IntCounterVec,
    /// Requests shed because the queue was full.
    pub shed: IntCounter,
    /// Alerts answered, by rule and severity.
    pub alerts: IntCounterVec,
    /// Alerts or feedback the store could not persist.
    pub store_errors: IntCounter,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Names and label sets below are constant and distinct: creation and
        // registration cannot fail.
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let requests = counter_vec(
            "fundwatch_http_requests_total",
            "HTTP requests by endpoint and status",
            &["endpoint", "status"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "fundwatch_http_request_duration_seconds",
                "Server-side time from request head to response, by endpoint",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        let eval = histogram(
            "fundwatch_http_eval_duration_seconds",
            "Duration of one engine evaluation of a micro-batch",
            LATENCY_BUCKETS.to_vec(),
        );
        let batch_events = histogram(
            "fundwatch_http_batch_events",
            "Events per engine evaluation",
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
        );
        let queue_depth = IntGauge::new(
            "fundwatch_http_queue_depth",
            "Inline requests waiting for evaluation",
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique metric");
        let fail_open = counter_vec(
            "fundwatch_http_fail_open_total",
            "Inline checks answered fail-open (infcode 0, empty result), by reason",
            &["reason"],
        );
        let shed = IntCounter::new(
            "fundwatch_http_shed_total",
            "Inline requests shed with 503 because the queue was full",
        )
        .expect("valid metric");
        registry
            .register(Box::new(shed.clone()))
            .expect("unique metric");
        let alerts = counter_vec(
            "fundwatch_http_alerts_total",
            "Alerts answered to HIS, by rule and severity",
            &["rule_id", "sev_deg"],
        );
        let store_errors = IntCounter::new(
            "fundwatch_http_store_errors_total",
            "Alerts or feedback that could not be persisted",
        )
        .expect("valid metric");
        registry
            .register(Box::new(store_errors.clone()))
            .expect("unique metric");
        Self {
            registry,
            requests,
            latency,
            eval,
            batch_events,
            queue_depth,
            fail_open,
            shed,
            alerts,
            store_errors,
        }
    }

    /// The registry, to merge into a process-wide one.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|err| format!("# encoding metrics failed: {err}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
