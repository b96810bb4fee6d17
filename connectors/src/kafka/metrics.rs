//! Prometheus metrics of the Kafka pipeline (prefix `fundwatch_kafka_`), in their
//! own registry so `fundwatch serve` can expose them beside the HTTP ones. No
//! label carries a patient, encounter or alert id (SPEC §8).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds: 100 µs … 5 s, dense below the 100 ms target.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Batch-size buckets (events per engine call).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// The pipeline's metrics.
#[derive(Debug, Clone)]
pub struct KafkaMetrics {
    registry: Registry,
    /// Messages read from the input topic.
    pub messages_in: IntCounter,
    /// Messages whose alerts (or dead letter) were all acknowledged by the broker.
    pub messages_done: IntCounter,
    /// Alerts acknowledged by the broker, by rule and severity.
    pub alerts: IntCounterVec,
    /// Messages sent to the dead-letter topic, by stage (`decode`, `evaluate`,
    /// `produce`).
    pub dead_letters: IntCounterVec,
    /// Events per engine call.
    pub batch_events: Histogram,
    /// One engine call.
    pub evaluate_seconds: Histogram,
    /// From the message's timestamp to the broker's acknowledgement of its last
    /// alert (or of its dead letter).
    pub event_to_alert_seconds: Histogram,
    /// Messages read but not yet done.
    pub in_flight: IntGauge,
    /// Sends retried after a failed delivery.
    pub delivery_retries: IntCounter,
    /// Offsets stored for commit.
    pub offsets_stored: IntCounter,
    /// Partition assignments and revocations, by kind.
    pub rebalances: IntCounterVec,
    /// Revokes whose drain ran out of time (their messages are redelivered).
    pub drain_timeouts: IntCounter,
    /// librdkafka reported that the consumer missed `max.poll.interval.ms`
    /// and left the group.
    pub max_poll_exceeded: IntCounter,
    /// Errors reported by librdkafka, by client (`consumer`, `producer`).
    pub client_errors: IntCounterVec,
    /// Consumer lag per input partition (from librdkafka statistics).
    pub consumer_lag: IntGaugeVec,
}

impl Default for KafkaMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaMetrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Names and label sets below are constant and distinct: creation and
        // registration cannot fail.
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
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let in_flight = IntGauge::new(
            "fundwatch_kafka_in_flight_messages",
            "Messages read but whose alerts are not yet all acknowledged",
        )
        .expect("valid metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "fundwatch_kafka_consumer_lag",
                "Messages behind the end of the input partition (librdkafka statistics)",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        Self {
            messages_in: counter(
                "fundwatch_kafka_messages_total",
                "Messages read from the input topic",
            ),
            messages_done: counter(
                "fundwatch_kafka_messages_done_total",
                "Messages whose alerts or dead letter were acknowledged by the broker",
            ),
            alerts: counter_vec(
                "fundwatch_kafka_alerts_total",
                "Alerts acknowledged by the broker, by rule and severity",
                &["rule_id", "sev_deg"],
            ),
            dead_letters: counter_vec(
                "fundwatch_kafka_dead_letters_total",
                "Messages sent to the dead-letter topic, by stage",
                &["stage"],
            ),
            batch_events: histogram(
                "fundwatch_kafka_batch_events",
                "Events per engine call",
                BATCH_BUCKETS,
            ),
            evaluate_seconds: histogram(
                "fundwatch_kafka_evaluate_seconds",
                "One engine call over a micro-batch",
                LATENCY_BUCKETS,
            ),
            event_to_alert_seconds: histogram(
                "fundwatch_kafka_event_to_alert_seconds",
                "From the input message's timestamp to the acknowledgement of its last alert",
                LATENCY_BUCKETS,
            ),
            in_flight,
            delivery_retries: counter(
                "fundwatch_kafka_delivery_retries_total",
                "Alert or dead-letter sends retried after a failed delivery",
            ),
            offsets_stored: counter(
                "fundwatch_kafka_offsets_stored_total",
                "Input positions stored for commit",
            ),
            rebalances: counter_vec(
                "fundwatch_kafka_rebalances_total",
                "Partition assignments and revocations",
                &["kind"],
            ),
            drain_timeouts: counter(
                "fundwatch_kafka_drain_timeouts_total",
                "Revokes whose drain of in-flight messages ran out of time",
            ),
            max_poll_exceeded: counter(
                "fundwatch_kafka_max_poll_exceeded_total",
                "Times the consumer missed max.poll.interval.ms and left the group",
            ),
            client_errors: counter_vec(
                "fundwatch_kafka_client_errors_total",
                "Errors reported by librdkafka",
                &["client"],
            ),
            consumer_lag,
            registry,
        }
    }

    /// The registry holding every metric above.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
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

fn sum_counter_vec(vec: &IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    vec.collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}
