//! Configuration of the Kafka pipeline: the `[kafka]` table of a FundWatch config
//! file. These doc comments are the reference for every key;
//! `deploy/config/kafka.example.toml` is a filled-in example and `docs/kafka.md`
//! the guide.
//!
//! librdkafka settings pass through `[kafka.consumer]` and `[kafka.producer]`
//! unchanged (any key of librdkafka's CONFIGURATION.md), over FundWatch's
//! defaults ([`CONSUMER_DEFAULTS`], [`PRODUCER_DEFAULTS`]). A few keys carry the
//! at-least-once guarantee and cannot be overridden: the consumer's
//! `enable.auto.offset.store=false` and `enable.auto.commit=true`, the producer's
//! `enable.idempotence=true`; `bootstrap.servers` and `group.id` come from
//! `brokers` and `group_id`.
//!
//! | environment variable | overrides |
//! |---|---|
//! | `FUNDWATCH_KAFKA_BROKERS` | `kafka.brokers` |
//! | `FUNDWATCH_KAFKA_GROUP_ID` | `kafka.group_id` |
//! | `FUNDWATCH_KAFKA_INPUT_TOPIC` | `kafka.input_topic` |
//! | `FUNDWATCH_KAFKA_ALERTS_TOPIC` | `kafka.alerts_topic` |
//! | `FUNDWATCH_KAFKA_DLQ_TOPIC` | `kafka.dlq_topic` |
//! | `FUNDWATCH_KAFKA_STATE_DIR` | `kafka.state_dir` (e.g. the pod's volume) |
//! | `FUNDWATCH_KB` | `engine.kb` (`fundwatch stream`) |
//! | `FUNDWATCH_RULES` | `engine.rules` (`fundwatch stream`) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A Kafka configuration that cannot be used: what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names line and key).
    #[error("config file {origin}: {message}")]
    Parse {
        /// The file (or `<string>`).
        origin: String,
        /// TOML's message, naming the line, the key and what was expected.
        message: String,
    },
    /// The file has no `[kafka]` table.
    #[error(
        "config file {origin} has no [kafka] table: add one with at least `brokers` (see deploy/config/kafka.example.toml)"
    )]
    MissingKafka {
        /// The file.
        origin: String,
    },
    /// A key has a value that parses but cannot work.
    #[error("config key {key} = {value}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `kafka.batch.max_events`.
        key: String,
        /// The value as written.
        value: String,
        /// What to change.
        reason: String,
    },
    /// A pass-through librdkafka key would break at-least-once delivery.
    #[error(
        "config key kafka.{section}.\"{key}\" = {value:?} is not allowed: {reason}; remove it from [kafka.{section}]"
    )]
    Reserved {
        /// `consumer` or `producer`.
        section: &'static str,
        /// The librdkafka key.
        key: String,
        /// Its value.
        value: String,
        /// Why FundWatch owns it.
        reason: &'static str,
    },
    /// The drain on partition revoke would outlast librdkafka's poll deadline.
    #[error(
        "The kafka.drain_timeout_ms ({drain_ms}) must be less than kafka.consumer.\"max.poll.interval.ms\" ({max_poll_ms}): a revoke waits for in-flight alerts inside the poll loop"
    )]
    DrainTooLong {
        /// `kafka.drain_timeout_ms`.
        drain_ms: u64,
        /// `max.poll.interval.ms` in force.
        max_poll_ms: u64,
    },
}

/// FundWatch's librdkafka consumer defaults (latency first); `[kafka.consumer]`
/// overrides any of them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // A new group reads the topic from its start: no settlement is skipped.
    ("auto.offset.reset", "earliest"),
    // Stored offsets reach the broker within a second; a crash redelivers at most
    // about a second of already-alerted events.
    ("auto.commit.interval.ms", "1000"),
    // Kafka answers a fetch as soon as one byte is there, so this bounds only idle
    // polling; some Kafka-protocol brokers (tansu) hold every fetch this long, and
    // there 100 ms cost 300 ms of event→alert p50 (benches/RESULTS.md).
    ("fetch.wait.max.ms", "20"),
    // Small requests go out at once: with Nagle on, loopback round trips waited on
    // delayed ACKs (raw pipe p99 180 → 87 ms at 2,000 events/s without it).
    ("socket.nagle.disable", "true"),
    // For the consumer-lag gauge.
    ("statistics.interval.ms", "5000"),
];

/// FundWatch's librdkafka producer defaults (latency first); `[kafka.producer]`
/// overrides any of them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // Alerts leave within 5 ms, batched: fewer, larger produce requests kept the
    // broker's per-request cost off the tail (raw pipe p99 at 2,000 events/s: 87 ms
    // at 2 ms, 73 ms at 5 ms, 84 ms at 10 ms; 1.2 s at 0).
    ("linger.ms", "5"),
    ("socket.nagle.disable", "true"),
    // Give up on one send attempt sequence after 30 s: the pipeline then resends
    // through a fresh producer (the offset is not stored meanwhile). A fresh
    // producer also gets past a broker that forgot the idempotent producer's id
    // (a restart without its state), where librdkafka would retry forever.
    ("message.timeout.ms", "30000"),
];

/// Consumer keys FundWatch sets itself, with why.
const CONSUMER_RESERVED: &[(&str, &str, &str)] = &[
    (
        "enable.auto.offset.store",
        "false",
        "FundWatch stores an offset only after all alerts of its message are acknowledged (at-least-once)",
    ),
    (
        "enable.auto.commit",
        "true",
        "stored offsets are committed by librdkafka's auto-commit; without it nothing would be committed",
    ),
    ("bootstrap.servers", "", "set kafka.brokers instead"),
    ("group.id", "", "set kafka.group_id instead"),
];

/// Producer keys FundWatch sets itself, with why.
const PRODUCER_RESERVED: &[(&str, &str, &str)] = &[
    (
        "enable.idempotence",
        "true",
        "alerts are sent with the idempotent producer so retries neither duplicate nor reorder them",
    ),
    ("bootstrap.servers", "", "set kafka.brokers instead"),
    (
        "transactional.id",
        "",
        "the pipeline is at-least-once with deterministic jr_id, not transactional",
    ),
];

/// `[kafka]`: where settlements come from, where alerts and dead letters go, and
/// how the pipeline batches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port` (librdkafka
    /// `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group: engine instances with the same group share the input
    /// topic's partitions (horizontal scale).
    pub group_id: String,
    /// Topic of settlement events: one 3101/3102 request per message (envelope or
    /// bare `data`), key `patn_id`.
    pub input_topic: String,
    /// Topic alerts go to: one alert JSON per message, key `fixmedins_code`.
    pub alerts_topic: String,
    /// Dead-letter topic: input messages that cannot be decoded (or evaluated),
    /// unchanged, with the reason and source coordinates in headers.
    pub dlq_topic: String,
    /// `[kafka.batch]`: micro-batching.
    pub batch: BatchConfig,
    /// Messages buffered between the consumer and evaluation; when full, the
    /// consumer stops reading (backpressure). Twice `batch.max_events` by default:
    /// the consumer thread reads (and decodes) the next full batch while one is
    /// evaluated.
    pub queue: usize,
    /// Batches evaluated but not yet acknowledged by the broker; when reached,
    /// evaluation waits for acknowledgements (backpressure). With `queue`, this
    /// bounds the messages held: up to `queue + max_in_flight_batches ×
    /// batch.max_events` (~3.5 KB each for a national request). Batches are
    /// small when the broker keeps up, so this is also a bound on the rate at a
    /// given acknowledgement latency.
    pub max_in_flight_batches: usize,
    /// On partition revoke (rebalance) and on shutdown: how long to wait for the
    /// alerts of messages in flight before letting the partitions go; what is
    /// not acknowledged by then is redelivered to the next owner.
    pub drain_timeout_ms: u64,
    /// Directory of the history state of each owned input partition
    /// (`partition-<n>/`: snapshot + log, docs/history.md § 6). With it, history
    /// rules survive a restart and follow a partition to its next owner (give
    /// every instance the same volume, or a static assignment per volume); without
    /// it, history lives in memory and a restart or rebalance starts it empty.
    pub state_dir: Option<PathBuf>,
    /// Events of a partition between two snapshots of its history (the log is
    /// replayed after the snapshot on restore). Writing a snapshot pauses the
    /// whole pipeline (it holds the partitions' state): about 3 s per 100,000
    /// persons of the partition (benches/RESULTS.md). Larger values pause less
    /// often and make a restore replay a longer log.
    pub snapshot_every: u64,
    /// When a newly assigned partition has no history (no `state_dir`, or an
    /// empty one), read the partition from its beginning first and record —
    /// without evaluating — the events up to the group's committed offset: the
    /// input topic is the changelog. Costs a replay of the topic's retention on
    /// every such assignment (set the input topic's retention to the pack's
    /// history retention); off by default.
    pub rebuild_history: bool,
    /// librdkafka consumer settings, passed through over [`CONSUMER_DEFAULTS`].
    /// Values may be strings, numbers or booleans.
    pub consumer: BTreeMap<String, Setting>,
    /// librdkafka producer settings (alerts and dead letters), passed through over
    /// [`PRODUCER_DEFAULTS`].
    pub producer: BTreeMap<String, Setting>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: "fundwatch".into(),
            input_topic: "fundwatch.settlements".into(),
            alerts_topic: "fundwatch.alerts".into(),
            dlq_topic: "fundwatch.settlements.dlq".into(),
            batch: BatchConfig::default(),
            queue: 8192,
            max_in_flight_batches: 32,
            drain_timeout_ms: 10_000,
            state_dir: None,
            snapshot_every: 200_000,
            rebuild_history: false,
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// `[kafka.batch]`: a micro-batch closes at `max_events` events or `max_wait_ms`
/// after its first event, whichever comes first. Defaults favour latency.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events per engine call. At normal rates the time bound closes a batch
    /// first (at 2,000 events/s they hold ~40 in the benchmark); a backlog is
    /// worked off in large batches, which cost less per event: a batch pays a
    /// fixed ~5 ms (one plan run per rule) and vectorises better as it grows
    /// (benches/RESULTS.md: 256 → 1,024 raised the Kafka throughput ~50 %,
    /// 1,024 → 4,096 another ~20 %).
    pub max_events: usize,
    /// Longest wait for more events after the first one of a batch, in
    /// milliseconds (0 = only what is already queued).
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 4096,
            max_wait_ms: 5,
        }
    }
}

/// One librdkafka setting's value as written in TOML: a string, a number or a
/// boolean (librdkafka takes them all as text).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Setting {
    /// `"value"`.
    Text(String),
    /// `100`.
    Integer(i64),
    /// `0.5`.
    Float(f64),
    /// `true`.
    Bool(bool),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Text(s) => f.write_str(s),
            Setting::Integer(i) => write!(f, "{i}"),
            Setting::Float(x) => write!(f, "{x}"),
            Setting::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for Setting {
    fn from(value: &str) -> Self {
        Setting::Text(value.to_string())
    }
}

/// `[engine]` of a `fundwatch stream` config file: the same table `fundwatch serve`
/// reads, so one TOML serves both commands.
pub type EngineSection = crate::http::config::EngineConfig;

/// A `fundwatch stream` config file: `[kafka]` and `[engine]`. Other top-level
/// tables (`[http]`, `[store]`, `[auth]` of `fundwatch serve`) are ignored, so one
/// file can serve both commands.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StreamConfig {
    /// `[kafka]`.
    pub kafka: Option<KafkaConfig>,
    /// `[engine]`.
    #[serde(default)]
    pub engine: EngineSection,
}

impl StreamConfig {
    /// Reads `path`, applies the environment overrides and validates; returns the
    /// Kafka and engine sections.
    pub fn load(path: &Path) -> Result<(KafkaConfig, EngineSection), KafkaConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KafkaConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut kafka, mut engine) = Self::from_toml(&text, &path.display().to_string())?;
        let lookup = |var: &str| std::env::var(var).ok();
        kafka.apply_env(lookup);
        if let Some(kb) = lookup("FUNDWATCH_KB") {
            engine.kb = Some(PathBuf::from(kb));
        }
        if let Some(rules) = lookup("FUNDWATCH_RULES") {
            engine.rules = Some(PathBuf::from(rules));
        }
        kafka.validate()?;
        Ok((kafka, engine))
    }

    /// Parses TOML text (no environment, no validation); `origin` names it in
    /// errors.
    pub fn from_toml(
        text: &str,
        origin: &str,
    ) -> Result<(KafkaConfig, EngineSection), KafkaConfigError> {
        let parsed: StreamConfig = toml::from_str(text).map_err(|err| KafkaConfigError::Parse {
            origin: origin.to_string(),
            message: err.to_string(),
        })?;
        let kafka = parsed.kafka.ok_or_else(|| KafkaConfigError::MissingKafka {
            origin: origin.to_string(),
        })?;
        Ok((kafka, parsed.engine))
    }
}

impl KafkaConfig {
    /// The `[kafka]` table of another command's config file (`fundwatch serve`
    /// reads it as plain TOML): parsed, the `FUNDWATCH_KAFKA_*` overrides applied,
    /// validated. `origin` names the file in errors.
    pub fn from_table(table: toml::Table, origin: &str) -> Result<Self, KafkaConfigError> {
        let mut kafka: KafkaConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|err: toml::de::Error| KafkaConfigError::Parse {
                    origin: origin.to_string(),
                    message: format!("[kafka]: {err}"),
                })?;
        kafka.apply_env(|var| std::env::var(var).ok());
        kafka.validate()?;
        Ok(kafka)
    }

    /// A configuration for `brokers` with every other key at its default.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// Applies the `FUNDWATCH_KAFKA_*` overrides found by `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let fields: [(&str, &mut String); 5] = [
            ("FUNDWATCH_KAFKA_BROKERS", &mut self.brokers),
            ("FUNDWATCH_KAFKA_GROUP_ID", &mut self.group_id),
            ("FUNDWATCH_KAFKA_INPUT_TOPIC", &mut self.input_topic),
            ("FUNDWATCH_KAFKA_ALERTS_TOPIC", &mut self.alerts_topic),
            ("FUNDWATCH_KAFKA_DLQ_TOPIC", &mut self.dlq_topic),
        ];
        for (var, field) in fields {
            if let Some(value) = lookup(var) {
                *field = value.trim().to_string();
            }
        }
        if let Some(dir) = lookup("FUNDWATCH_KAFKA_STATE_DIR") {
            let dir = dir.trim();
            self.state_dir = (!dir.is_empty()).then(|| PathBuf::from(dir));
        }
    }

    /// Checks that the configuration can work; each error says what to change.
    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        let invalid = |key: &str, value: &dyn std::fmt::Display, reason: &str| {
            Err(KafkaConfigError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.brokers.trim().is_empty() {
            return invalid(
                "kafka.brokers",
                &"\"\"",
                "name at least one broker as host:port, e.g. \"kafka-1:9092,kafka-2:9092\"",
            );
        }
        for (key, value) in [
            ("kafka.group_id", &self.group_id),
            ("kafka.input_topic", &self.input_topic),
            ("kafka.alerts_topic", &self.alerts_topic),
            ("kafka.dlq_topic", &self.dlq_topic),
        ] {
            if value.trim().is_empty() {
                return invalid(key, &"\"\"", "must not be empty");
            }
        }
        for (key, value) in [
            ("kafka.alerts_topic", &self.alerts_topic),
            ("kafka.dlq_topic", &self.dlq_topic),
        ] {
            if value == &self.input_topic {
                return invalid(
                    key,
                    value,
                    "must differ from kafka.input_topic: the pipeline would read its own output",
                );
            }
        }
        if self.batch.max_events == 0 {
            return invalid("kafka.batch.max_events", &0, "must be at least 1");
        }
        if self.batch.max_wait_ms > 10_000 {
            return invalid(
                "kafka.batch.max_wait_ms",
                &self.batch.max_wait_ms,
                "must be at most 10000: every event of a batch waits this long at worst",
            );
        }
        if self.queue < self.batch.max_events {
            return invalid(
                "kafka.queue",
                &self.queue,
                &format!(
                    "must be at least kafka.batch.max_events ({}) or batches can never fill",
                    self.batch.max_events
                ),
            );
        }
        if self.max_in_flight_batches == 0 {
            return invalid("kafka.max_in_flight_batches", &0, "must be at least 1");
        }
        if self.snapshot_every == 0 {
            return invalid("kafka.snapshot_every", &0, "must be at least 1");
        }
        check_reserved("consumer", &self.consumer, CONSUMER_RESERVED)?;
        check_reserved("producer", &self.producer, PRODUCER_RESERVED)?;
        let max_poll_ms =
            match self.consumer.get("max.poll.interval.ms") {
                None => 300_000,
                Some(value) => value.to_string().trim().parse::<u64>().map_err(|_| {
                    KafkaConfigError::Invalid {
                        key: "kafka.consumer.\"max.poll.interval.ms\"".into(),
                        value: value.to_string(),
                        reason: "expected milliseconds".into(),
                    }
                })?,
            };
        if self.drain_timeout_ms >= max_poll_ms {
            return Err(KafkaConfigError::DrainTooLong {
                drain_ms: self.drain_timeout_ms,
                max_poll_ms,
            });
        }
        Ok(())
    }

    /// Longest wait after the first event of a batch.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.batch.max_wait_ms)
    }

    /// Bound of the drain on revoke and shutdown.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// The librdkafka consumer settings in force: defaults, then the pass-through
    /// table, then the keys FundWatch owns.
    pub fn consumer_settings(&self) -> BTreeMap<String, String> {
        let mut out = merge(CONSUMER_DEFAULTS, &self.consumer);
        out.insert("bootstrap.servers".into(), self.brokers.clone());
        out.insert("group.id".into(), self.group_id.clone());
        out.insert("enable.auto.commit".into(), "true".into());
        out.insert("enable.auto.offset.store".into(), "false".into());
        out
    }

    /// The librdkafka producer settings in force (alerts and dead letters).
    pub fn producer_settings(&self) -> BTreeMap<String, String> {
        let mut out = merge(PRODUCER_DEFAULTS, &self.producer);
        out.insert("bootstrap.servers".into(), self.brokers.clone());
        out.insert("enable.idempotence".into(), "true".into());
        out
    }
}

fn merge(defaults: &[(&str, &str)], table: &BTreeMap<String, Setting>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in table {
        out.insert(key.clone(), value.to_string());
    }
    out
}

fn check_reserved(
    section: &'static str,
    table: &BTreeMap<String, Setting>,
    reserved: &[(&'static str, &'static str, &'static str)],
) -> Result<(), KafkaConfigError> {
    for (key, required, reason) in reserved {
        if let Some(value) = table.get(*key) {
            let text = value.to_string();
            // The value FundWatch sets anyway is harmless to repeat.
            if !required.is_empty() && text.trim().eq_ignore_ascii_case(required) {
                continue;
            }
            return Err(KafkaConfigError::Reserved {
                section,
                key: key.to_string(),
                value: text,
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_validates() {
        let text = include_str!("../../../deploy/config/kafka.example.toml");
        let (kafka, engine) = StreamConfig::from_toml(text, "kafka.example.toml").expect("parses");
        kafka.validate().expect("valid");
        assert_eq!(kafka.batch, BatchConfig::default());
        assert_eq!(engine, EngineSection::default());
        assert_eq!(
            kafka.consumer_settings()["enable.auto.offset.store"],
            "false"
        );
    }

    #[test]
    fn pass_through_values_of_any_scalar_type_become_text_over_the_defaults() {
        let (kafka, _) = StreamConfig::from_toml(
            "[kafka]\nbrokers = \"k:9092\"\n[kafka.consumer]\n\"fetch.wait.max.ms\" = 50\n\"check.crcs\" = true\n[kafka.producer]\n\"compression.type\" = \"lz4\"\n",
            "t",
        )
        .expect("parses");
        kafka.validate().expect("valid");
        let consumer = kafka.consumer_settings();
        assert_eq!(consumer["fetch.wait.max.ms"], "50");
        assert_eq!(consumer["check.crcs"], "true");
        assert_eq!(consumer["socket.nagle.disable"], "true");
        assert_eq!(consumer["auto.offset.reset"], "earliest");
        assert_eq!(consumer["bootstrap.servers"], "k:9092");
        let producer = kafka.producer_settings();
        assert_eq!(producer["compression.type"], "lz4");
        assert_eq!(producer["enable.idempotence"], "true");
    }

    #[test]
    fn keys_that_would_break_at_least_once_are_refused_with_the_reason() {
        let (kafka, _) = StreamConfig::from_toml(
            "[kafka]\nbrokers = \"k:9092\"\n[kafka.consumer]\n\"enable.auto.offset.store\" = true\n",
            "t",
        )
        .expect("parses");
        let err = kafka.validate().expect_err("refused").to_string();
        assert!(err.contains("enable.auto.offset.store"), "{err}");
        assert!(err.contains("remove it from [kafka.consumer]"), "{err}");

        let (kafka, _) = StreamConfig::from_toml(
            "[kafka]\nbrokers = \"k:9092\"\n[kafka.producer]\n\"enable.idempotence\" = false\n",
            "t",
        )
        .expect("parses");
        assert!(kafka.validate().is_err());

        // Repeating the value FundWatch sets anyway is fine.
        let (kafka, _) = StreamConfig::from_toml(
            "[kafka]\nbrokers = \"k:9092\"\n[kafka.producer]\n\"enable.idempotence\" = true\n",
            "t",
        )
        .expect("parses");
        kafka.validate().expect("valid");
    }

    #[test]
    fn the_drain_must_end_before_the_poll_deadline() {
        let mut kafka = KafkaConfig::new("k:9092");
        kafka
            .consumer
            .insert("max.poll.interval.ms".into(), Setting::Integer(5000));
        kafka.drain_timeout_ms = 5000;
        let err = kafka.validate().expect_err("refused").to_string();
        assert_eq!(
            err,
            "The kafka.drain_timeout_ms (5000) must be less than kafka.consumer.\"max.poll.interval.ms\" (5000): a revoke waits for in-flight alerts inside the poll loop"
        );
    }

    #[test]
    fn unknown_keys_missing_tables_and_bad_values_are_named() {
        let err = StreamConfig::from_toml("[kafka]\nbrokers = \"k\"\nbatch_size = 3\n", "f.toml")
            .expect_err("unknown key");
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err =
            StreamConfig::from_toml("[http]\naddr = \"x\"\n", "f.toml").expect_err("no kafka");
        assert!(err.to_string().contains("no [kafka] table"), "{err}");
        let mut kafka = KafkaConfig::new("k:9092");
        kafka.alerts_topic = kafka.input_topic.clone();
        let err = kafka.validate().expect_err("same topic").to_string();
        assert!(err.starts_with("config key kafka.alerts_topic"), "{err}");
        let mut kafka = KafkaConfig::new("k:9092");
        kafka.queue = 10;
        assert!(kafka.validate().is_err());
    }

    #[test]
    fn a_kafka_table_of_the_serve_file_is_read_and_checked() {
        let table: toml::Table =
            toml::from_str("brokers = \"k:9092\"\ngroup_id = \"g\"\n[batch]\nmax_events = 64\n")
                .expect("TOML");
        let kafka = KafkaConfig::from_table(table, "serve.toml").expect("valid");
        assert_eq!(kafka.group_id, "g");
        assert_eq!(kafka.batch.max_events, 64);
        let table: toml::Table = toml::from_str("brokers = \"k\"\nbatch_size = 3\n").expect("TOML");
        let err = KafkaConfig::from_table(table, "serve.toml").expect_err("unknown key");
        assert!(err.to_string().contains("serve.toml"), "{err}");
        assert!(err.to_string().contains("batch_size"), "{err}");
    }

    #[test]
    fn environment_overrides_topics_and_brokers() {
        let mut kafka = KafkaConfig::default();
        kafka.apply_env(|var| match var {
            "FUNDWATCH_KAFKA_BROKERS" => Some(" b1:9092,b2:9092 ".into()),
            "FUNDWATCH_KAFKA_DLQ_TOPIC" => Some("dead".into()),
            _ => None,
        });
        assert_eq!(kafka.brokers, "b1:9092,b2:9092");
        assert_eq!(kafka.dlq_topic, "dead");
        assert_eq!(kafka.group_id, "fundwatch");
    }
}
