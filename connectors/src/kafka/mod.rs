//! Kafka streaming: settlement events in, alerts out, at least once.
//!
//! Where a settlement on Kafka becomes an alert on Kafka:
//! [`source`] (an rdkafka `StreamConsumer` in a consumer group, on its own thread)
//! registers each message's offset in the [`offsets`] tracker and queues it →
//! [`pipeline`] closes micro-batches (1,024 events or 5 ms by default), decodes them
//! with the engine's lenient decoder and makes one engine call per batch against
//! the histories of the partitions this instance owns ([`state`]) → [`sink`]
//! sends each alert (key `fixmedins_code`, value the alert JSON) with
//! the idempotent producer, and each undecodable message to the dead-letter topic
//! → when every alert of a message is acknowledged by the broker, its offset
//! becomes storable (the per-partition low-water mark) and librdkafka's
//! auto-commit commits it.
//!
//! Guarantees: an offset is committed only after its alerts are acknowledged, so
//! a crash (even `kill -9`) or a broker restart loses no alert; what is read again
//! after a crash gives the same alerts with the same `jr_id`, so consumers can
//! de-duplicate. A bad message never stops the stream. On a rebalance, revoked
//! partitions are drained (bounded by `drain_timeout_ms`) before they go; with
//! `state_dir` their history goes with them (snapshot + log per partition), and
//! `rebuild_history` rebuilds a history that did not from the input topic.
//!
//! [`config`] documents every key; `docs/kafka.md` is the guide;
//! [`run_pipeline`] is the entry point.

pub mod config;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
mod sink;
mod source;
mod state;

pub use config::{
    BatchConfig, EngineSection, KafkaConfig, KafkaConfigError, Setting, StreamConfig,
};
pub use metrics::KafkaMetrics;
pub use pipeline::{
    DLQ_HEADERS, JR_ID_HEADER, PipelineError, PipelineHandle, PipelineReport, Processor,
    run_pipeline, run_pipeline_with_metrics, start,
};
