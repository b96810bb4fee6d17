//! Prometheus metrics of the Kafka pipeline. What every source has (events,
//! alerts, batch time, event→alert) lives in the shared families of
//! [`crate::metrics`] with `source="kafka"`; the dead-letter count and the
//! consumer lag are process-wide families (`fundwatch_dead_letters_total`,
//! `fundwatch_kafka_consumer_lag_messages`); the rest is prefixed
//! `fundwatch_kafka_`. No label carries a patient, encounter or alert id (SPEC §8).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::metrics::{Source, SourceMetrics, sum_counter_vec};

/// Dead-letter stages, present from the start (at 0) so rates and alert rules
/// see the series before the first dead letter.
pub const DEAD_LETTER_STAGES: &[&str] = &["decode", "evaluate", "produce"];

/// The pipeline's metrics.
#[derive(Debug, Clone)]
pub struct KafkaMetrics {
    shared: crate::metrics::Metrics,
    /// Events, alerts, stages and latency with `source="kafka"`.
    pub source: SourceMetrics,
    /// Messages read from the input topic;
    /// `fundwatch_events_in_total{source="kafka"}`.
    pub messages_in: IntCounter,
    /// Messages whose alerts (or dead letter) were all acknowledged by the broker;
    /// `fundwatch_events_out_total{source="kafka"}`.
    pub messages_done: IntCounter,
    /// Alerts acknowledged by the broker, by rule and severity;
    /// `fundwatch_alerts_total{source="kafka"}`.
    pub alerts: IntCounterVec,
    /// Messages sent to the dead-letter topic, by stage (`decode`, `evaluate`,
    /// `produce`).
    pub dead_letters: IntCounterVec,
    /// Events per engine call.
    pub batch_events: prometheus::Histogram,
    /// One engine call; `fundwatch_batch_duration_seconds{source="kafka"}`.
    pub evaluate_seconds: prometheus::Histogram,
    /// From the message's timestamp to the broker's acknowledgement of its last
    /// alert (or of its dead letter).
    pub event_to_alert_seconds: prometheus::Histogram,
    /// Messages read but not yet done.
    pub in_flight: IntGauge,
    /// Sends retried after a failed delivery.
    pub delivery_retries: IntCounter,
    /// Offsets stored for commit.
    pub offsets_stored: IntCounter,
    /// Partition assignments and revocations, by kind.
    pub rebalances: IntCounterVec,
    /// Input partitions currently assigned to this instance (`/readyz` needs
    /// at least one when Kafka is configured).
    pub assigned_partitions: IntGauge,
    /// Revokes whose drain ran out of time (their messages are redelivered).
    pub drain_timeouts: IntCounter,
    /// librdkafka reported that the consumer missed `max.poll.interval.ms`
    /// and left the group.
    pub max_poll_exceeded: IntCounter,
    /// Errors reported by librdkafka, by client (`consumer`, `producer`).
    pub client_errors: IntCounterVec,
    /// Consumer lag per input partition (from librdkafka statistics).
    pub consumer_lag: IntGaugeVec,
    /// Persons in the history of each owned input partition.
    pub history_persons: IntGaugeVec,
    /// Restoring (on assign) and snapshotting a partition's history, by `op`:
    /// both pause the pipeline.
    pub history_seconds: HistogramVec,
}

impl Default for KafkaMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaMetrics {
    /// The pipeline's metrics in a registry of their own (tests, benches).
    pub fn new() -> Self {
        crate::metrics::Metrics::new().kafka()
    }

    /// Registers the Kafka families in `shared`; called once, through
    /// [`crate::metrics::Metrics::kafka`].
    pub(crate) fn register(shared: &crate::metrics::Metrics) -> Self {
        let registry = shared.registry();
        let source = shared.source(Source::Kafka);
        // Names and label sets below are constant and distinct, and this runs
        // once per registry: creation and registration cannot fail.
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let consumer_lag = gauge_vec(
            "fundwatch_kafka_consumer_lag_messages",
            "Messages behind the end of the input partition (librdkafka statistics)",
            &["topic", "partition"],
        );
        let history_persons = gauge_vec(
            "fundwatch_kafka_history_persons",
            "Persons in the history of each owned input partition",
            &["partition"],
        );
        let history_seconds = HistogramVec::new(
            HistogramOpts::new(
                "fundwatch_kafka_history_seconds",
                "Restoring or snapshotting a partition's history (the pipeline waits meanwhile)",
            )
            .buckets(prometheus::exponential_buckets(0.001, 4.0, 10).unwrap_or_default()),
            &["op"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(history_seconds.clone()))
            .expect("unique metric");
        for op in ["restore", "snapshot"] {
            history_seconds.with_label_values(&[op]);
        }
        let dead_letters = counter_vec(
            "fundwatch_dead_letters_total",
            "Messages sent to the dead-letter topic, by stage",
            &["stage"],
        );
        for stage in DEAD_LETTER_STAGES {
            dead_letters.with_label_values(&[stage]);
        }
        let rebalances = counter_vec(
            "fundwatch_kafka_rebalances_total",
            "Partition assignments and revocations",
            &["kind"],
        );
        let client_errors = counter_vec(
            "fundwatch_kafka_client_errors_total",
            "Errors reported by librdkafka",
            &["client"],
        );
        // Known label values start at 0, so rates exist before the first event.
        for kind in ["assign", "revoke"] {
            rebalances.with_label_values(&[kind]);
        }
        for client in ["consumer", "producer"] {
            client_errors.with_label_values(&[client]);
        }
        Self {
            messages_in: source.events_in.clone(),
            messages_done: source.events_out.clone(),
            alerts: source.alerts.clone(),
            batch_events: source.batch_events.clone(),
            evaluate_seconds: source.batch_seconds.clone(),
            event_to_alert_seconds: source.event_to_alert.clone(),
            dead_letters,
            in_flight: gauge(
                "fundwatch_kafka_in_flight_messages",
                "Messages read but whose alerts are not yet all acknowledged",
            ),
            delivery_retries: counter(
                "fundwatch_kafka_delivery_retries_total",
                "Alert or dead-letter sends retried after a failed delivery",
            ),
            offsets_stored: counter(
                "fundwatch_kafka_offsets_stored_total",
                "Input positions stored for commit",
            ),
            rebalances,
            assigned_partitions: gauge(
                "fundwatch_kafka_assigned_partitions",
                "Input partitions currently assigned to this instance",
            ),
            drain_timeouts: counter(
                "fundwatch_kafka_drain_timeouts_total",
                "Revokes whose drain of in-flight messages ran out of time",
            ),
            max_poll_exceeded: counter(
                "fundwatch_kafka_max_poll_exceeded_total",
                "Times the consumer missed max.poll.interval.ms and left the group",
            ),
            client_errors,
            consumer_lag,
            history_persons,
            history_seconds,
            source,
            shared: shared.clone(),
        }
    }

    /// The process-wide metrics these belong to.
    pub fn shared(&self) -> &crate::metrics::Metrics {
        &self.shared
    }

    /// The registry holding every metric above.
    pub fn registry(&self) -> &Registry {
        self.shared.registry()
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.shared.render()
    }

    /// Alerts acknowledged, all rules.
    pub fn alerts_total(&self) -> u64 {
        sum_counter_vec(&self.alerts)
    }

    /// Dead letters, all stages.
    pub fn dead_letters_total(&self) -> u64 {
        sum_counter_vec(&self.dead_letters)
    }
}
