//! Shared by the `tests/kafka_*.rs` end-to-end tests: the broker ([`broker`]), the
//! national engine, labelled events built from the rule pack's own cases, a
//! producer, and collectors that read a topic in the background.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod broker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fundwatch_connectors::kafka::{KafkaConfig, Setting};
use fundwatch_engine::{Alert, Clock, Engine, Program, ProgramOptions, decode_event};
use fundwatch_rules::RulePack;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Logs to the test's output when `RUST_LOG` is set (e.g. `RUST_LOG=info`).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The national pack and KB compiled into an engine (wall clock, as `stream` runs).
pub async fn national_engine() -> Engine {
    init_logging();
    let pack =
        RulePack::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("rule-base/packs/national"))
            .expect("national pack loads");
    let kb = fundwatch_kb::national().expect("national KB loads");
    let program = Program::compile(Arc::new(pack), Arc::new(kb), &ProgramOptions::default())
        .await
        .expect("pack compiles");
    Engine::new(Arc::new(program), Clock::Wall)
}

/// One input message built from a rule-pack case.
#[derive(Debug, Clone)]
pub struct TestEvent {
    /// Message key: the (first) patient's `patn_id`.
    pub key: String,
    /// The request's `task_id` (case id + tag + copy), echoed by its alerts.
    pub task_id: String,
    /// The national envelope JSON.
    pub json: Vec<u8>,
    /// The case's label: (rule_id, sorted violating rx_ids) of each expected alert.
    pub labels: Vec<(String, Vec<String>)>,
}

/// Every case of every rule of the engine's pack, `copies` times with distinct
/// patients (`tag` keeps runs of one test apart), as 3101/3102 envelopes whose
/// `rule_ids` name the case's rule — so each event's alerts are exactly the
/// case's expectations, as `fundwatch rules test` checks.
pub fn labelled_events(engine: &Engine, copies: usize, tag: &str) -> Vec<TestEvent> {
    labelled_events_of(engine, copies, tag, |_| true)
}

/// [`labelled_events`] of the rules `keep` accepts.
pub fn labelled_events_of(
    engine: &Engine,
    copies: usize,
    tag: &str,
    keep: impl Fn(&fundwatch_rules::Rule) -> bool,
) -> Vec<TestEvent> {
    let mut out = Vec::new();
    for copy in 0..copies {
        for compiled in engine.program().rules() {
            let rule = &compiled.rule;
            if !keep(rule) {
                continue;
            }
            for (i, case) in rule.cases.iter().enumerate() {
                let case_id = format!("{}-{}", rule.rule_id, i + 1);
                let default_scen = rule.trig_scen.first().copied().unwrap_or(1);
                let mut data = case
                    .to_event(&case_id, default_scen)
                    .unwrap_or_else(|err| panic!("case {case_id}: {err}"));
                let suffix = format!("{tag}-{copy}");
                add_person_statuses(engine, case, &case_id, &suffix);
                data["rule_ids"] = json!([rule.rule_id]);
                let task_id = format!("{case_id}-{suffix}");
                data["task_id"] = json!(task_id);
                let mut key = String::new();
                if let Some(patients) = data["patient_dtos"].as_array_mut() {
                    for patient in patients {
                        let id = format!("{}-{suffix}", patient["patn_id"].as_str().unwrap_or("P"));
                        if key.is_empty() {
                            key = id.clone();
                        }
                        patient["patn_id"] = json!(id);
                    }
                }
                // The trace-code rule compares settlements of different persons:
                // its cases share one key so they reach one partition in case
                // order. With `patn_id` keys their order across partitions is
                // undefined (docs/history.md § 5: the product needs a topic keyed
                // by trace code for that).
                if rule.sql.contains("trace_uses") {
                    key = format!("trace-{suffix}");
                }
                let envelope = json!({
                    "infno": if default_scen >= 4 { "3102" } else { "3101" },
                    "msgid": format!("MSG-{case_id}-{suffix}"),
                    "fixmedins_code": format!("H4307960000{}", copy % 3),
                    "fixmedins_name": "测试医院",
                    "input": { "data": data },
                });
                let labels = case
                    .expect
                    .iter()
                    .map(|e| {
                        let mut ids = e.rx_ids.clone();
                        ids.sort();
                        (rule.rule_id.clone(), ids)
                    })
                    .collect();
                out.push(TestEvent {
                    key,
                    task_id,
                    json: serde_json::to_vec(&envelope).expect("JSON"),
                    labels,
                });
            }
        }
    }
    out
}

/// The case's person-status rows (registered deaths) in the engine's table, for
/// its patients renamed with `suffix` — as `fundwatch rules test` does for the
/// original ids. Engine clones share the table.
fn add_person_statuses(engine: &Engine, case: &fundwatch_rules::Case, case_id: &str, suffix: &str) {
    use fundwatch_engine::history::{PersonStatus, parse_die_date};
    if case.person_status.is_empty() {
        return;
    }
    let rows: Vec<(String, PersonStatus)> = case
        .person_status
        .iter()
        .map(|row| {
            let patn_id = row
                .patn_id
                .clone()
                .unwrap_or_else(|| fundwatch_rules::Case::patient_id(case_id));
            let die_date = parse_die_date(&row.die_date)
                .unwrap_or_else(|| panic!("case {case_id}: die_date {:?}", row.die_date));
            (
                format!("{patn_id}-{suffix}"),
                PersonStatus {
                    die_date,
                    source: row.source.clone(),
                },
            )
        })
        .collect();
    engine
        .history()
        .lock()
        .expect("history lock")
        .update_person_statuses(|statuses| {
            for (patn_id, status) in rows {
                statuses.insert(&patn_id, status);
            }
        });
}

/// What `Engine::evaluate` gives for `events` (in batches of 256), as JSON
/// without `emitted_at` — the golden output a stream must reproduce.
pub async fn expected_alerts(engine: &Engine, events: &[TestEvent]) -> Vec<Value> {
    let decoded: Vec<_> = events
        .iter()
        .map(|e| decode_event(&e.json).expect("test events decode"))
        .collect();
    let mut out = Vec::new();
    for chunk in decoded.chunks(256) {
        let refs: Vec<_> = chunk.iter().collect();
        let alerts = engine.evaluate(&refs).await.expect("evaluates");
        out.extend(alerts.iter().flatten().map(normalise));
    }
    out
}

/// An alert as JSON without the wall-clock `emitted_at`.
pub fn normalise(alert: &Alert) -> Value {
    let mut value = serde_json::to_value(alert).expect("alert JSON");
    strip_emitted_at(&mut value);
    value
}

/// Removes `emitted_at` (it differs between two evaluations of the same input).
pub fn strip_emitted_at(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.remove("emitted_at");
    }
}

/// (rule_id, task_id, sorted violating rx_ids) of an alert: what a case label
/// names (a request with several patients is one case).
pub fn label_of(alert: &Value) -> (String, String, Vec<String>) {
    let mut ids: Vec<String> = alert["judge_result_detail_dtos"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .filter(|d| d["vola_item_type"] == "1")
                .filter_map(|d| d["rx_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    (
        alert["rule_id"].as_str().unwrap_or_default().to_string(),
        alert["task_id"].as_str().unwrap_or_default().to_string(),
        ids,
    )
}

/// The labels of `events`, keyed like [`label_of`].
pub fn labels_of(events: &[TestEvent]) -> BTreeSet<(String, String, Vec<String>)> {
    events
        .iter()
        .flat_map(|e| {
            e.labels
                .iter()
                .map(|(rule, ids)| (rule.clone(), e.task_id.clone(), ids.clone()))
        })
        .collect()
}

/// Topic names of one test.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Settlements.
    pub input: String,
    /// Alerts.
    pub alerts: String,
    /// Dead letters.
    pub dlq: String,
}

impl Topics {
    /// `<name>.in`, `<name>.alerts`, `<name>.dlq`.
    pub fn named(name: &str) -> Self {
        Self {
            input: format!("{name}.in"),
            alerts: format!("{name}.alerts"),
            dlq: format!("{name}.dlq"),
        }
    }
}

/// A pipeline configuration for tests: small commit interval, short session (a
/// killed member's partitions move within seconds).
pub fn pipeline_config(bootstrap: &str, topics: &Topics, group: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(bootstrap);
    config.group_id = group.to_string();
    config.input_topic = topics.input.clone();
    config.alerts_topic = topics.alerts.clone();
    config.dlq_topic = topics.dlq.clone();
    config.drain_timeout_ms = 5_000;
    for (key, value) in [
        ("auto.commit.interval.ms", "200"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("fetch.wait.max.ms", "50"),
    ] {
        config
            .consumer
            .insert(key.into(), Setting::Text(value.into()));
    }
    // A producer without acknowledgements this long is replaced (a broker that
    // lost its producer id leaves librdkafka retrying forever).
    config
        .producer
        .insert("message.timeout.ms".into(), Setting::Text("10000".into()));
    // librdkafka's own debug contexts, e.g. FUNDWATCH_TEST_RDKAFKA_DEBUG=cgrp,fetch.
    if let Ok(debug) = std::env::var("FUNDWATCH_TEST_RDKAFKA_DEBUG") {
        config
            .consumer
            .insert("debug".into(), Setting::Text(debug.clone()));
        config.producer.insert("debug".into(), Setting::Text(debug));
    }
    config
}

/// A stream whose alerts depend on stored history: `persons` persons each given
/// a payment-course drug (支付不超过14天, 奥扎格雷氨丁三醇注射用浓溶液, batch 6) once a
/// day for `days` days from 2026-03-01, day by day; from day 15 on each event's
/// alert needs the earlier days. Returns (`patn_id`, event) in that order; `tag`
/// keeps the ids of two tests apart.
pub fn daily_course_events(persons: usize, days: usize, tag: &str) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(persons * days);
    for day in 0..days {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date")
            + chrono::Duration::days(day as i64);
        for p in 0..persons {
            let patn_id = format!("P{tag}{p}");
            let event = json!({
                "syscode": "T", "task_id": format!("T{tag}{p}-{day}"), "trig_scen": "4",
                "patient_dtos": [{
                    "patn_id": patn_id, "gend": "1", "brdy": "1960-01-01",
                    "poolarea": "110000", "curr_mdtrt_id": format!("M{tag}{p}-{day}"),
                    "fsi_encounter_dtos": [{
                        "mdtrt_id": format!("M{tag}{p}-{day}"), "medins_id": "H11010500001",
                        "medins_lv": "3", "med_mdtrt_type": "2", "med_type": "21",
                        "insutype": "310", "adm_date": format!("{date} 08:00:00"),
                        "fsi_order_dtos": [{
                            "rx_id": format!("R{tag}{p}-{day}"),
                            "hilist_code": "XB01AXA223B004010180963",
                            "cnt": 1, "pric": 50, "curr_drord_flag": "1",
                            "drord_begn_date": format!("{date} 09:00:00")
                        }]
                    }]
                }]
            });
            out.push((patn_id, event));
        }
    }
    out
}

/// [`daily_course_events`] as input messages (key `patn_id`, bare `data`).
pub fn daily_course_messages(persons: usize, days: usize, tag: &str) -> Vec<TestEvent> {
    daily_course_events(persons, days, tag)
        .into_iter()
        .map(|(key, event)| TestEvent {
            key,
            task_id: event["task_id"].as_str().unwrap_or_default().to_string(),
            json: serde_json::to_vec(&event).expect("JSON"),
            labels: Vec::new(),
        })
        .collect()
}

/// A `fundwatch stream` child process, SIGKILLed on drop.
pub struct StreamProcess(std::process::Child);

impl StreamProcess {
    /// Starts `fundwatch stream --config <config>`, its log in `log`.
    pub fn spawn(config: &Path, log: &Path) -> Self {
        use std::process::{Command, Stdio};
        let log = std::fs::File::create(log).expect("child log");
        let child = Command::new(env!("CARGO_BIN_EXE_fundwatch"))
            .args(["stream", "--log-format", "text", "--config"])
            .arg(config)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starts fundwatch stream");
        Self(child)
    }

    /// SIGKILL: no shutdown, no final commit, nothing flushed.
    pub fn kill_9(&mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for StreamProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates the input topic with `input_partitions` partitions, and the alerts
/// (2) and dead-letter (1) topics.
pub async fn create_topics(broker: &broker::Broker, topics: &Topics, input_partitions: i32) {
    broker.create_topic(&topics.input, input_partitions).await;
    broker.create_topic(&topics.alerts, 2).await;
    broker.create_topic(&topics.dlq, 1).await;
}

/// Alerts (JSON without `emitted_at`) by `jr_id`.
pub fn by_jr_id(alerts: Vec<Value>) -> BTreeMap<String, Value> {
    alerts
        .into_iter()
        .map(|a| (a["jr_id"].as_str().unwrap_or_default().to_string(), a))
        .collect()
}

/// Every collected alert is an expected one, equal to it apart from
/// `emitted_at` (redeliveries included); returns the number of duplicates.
pub fn assert_exactly(collected: &[Collected], expected: &BTreeMap<String, Value>) -> usize {
    for c in collected {
        let mut alert = c.json();
        strip_emitted_at(&mut alert);
        let id = alert["jr_id"].as_str().unwrap_or_default().to_string();
        let Some(want) = expected.get(&id) else {
            panic!("an alert nobody expected: {alert}");
        };
        assert_eq!(
            &alert, want,
            "an alert differs from Engine::evaluate's for the same events"
        );
    }
    collected.len() - jr_ids(collected).len()
}

/// A `fundwatch stream` process killed mid-stream and a second one after it.
pub struct KillRun {
    /// Distinct alerts seen when the first process was killed.
    pub at_kill: usize,
    /// Everything on the alerts topic once every expected alert is there.
    pub collected: Vec<Collected>,
    /// The second process's log.
    pub log: String,
}

/// Produces `first`, starts `fundwatch stream` with `config`; once
/// `first_alerts` alerts are out, produces `second` while SIGKILLing the process,
/// and starts a second one; waits until every `expected` alert appears.
pub async fn kill_9_mid_stream(
    broker: &broker::Broker,
    config: &KafkaConfig,
    (first, second): (&[TestEvent], &[TestEvent]),
    first_alerts: usize,
    expected: &BTreeSet<String>,
) -> KillRun {
    const WAIT: Duration = Duration::from_secs(180);
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("stream.toml");
    std::fs::write(&config_path, config_toml(config)).expect("config file");
    let log = |n: usize| std::fs::read_to_string(dir.path().join(format!("stream-{n}.log")));
    let log = |n: usize| log(n).unwrap_or_default();

    let collector = Collector::start(&broker.bootstrap(), &config.alerts_topic);
    produce(&producer(&broker.bootstrap()), &config.input_topic, first).await;
    let mut one = StreamProcess::spawn(&config_path, &dir.path().join("stream-1.log"));
    collector
        .wait_for(
            WAIT,
            "the first process's alerts",
            |c| c.len() >= first_alerts,
            || log(1),
        )
        .await;
    // The rest of the stream arrives while the process dies.
    let rest = second.to_vec();
    let (bootstrap, input) = (broker.bootstrap(), config.input_topic.clone());
    let feeding = tokio::spawn(async move {
        let producer = producer(&bootstrap);
        for chunk in rest.chunks(50) {
            produce(&producer, &input, chunk).await;
        }
    });
    one.kill_9();
    let at_kill = jr_ids(&collector.snapshot()).len();
    assert!(
        at_kill < expected.len(),
        "the kill must land mid-stream ({at_kill} of {} alerts seen)",
        expected.len()
    );

    let _two = StreamProcess::spawn(&config_path, &dir.path().join("stream-2.log"));
    feeding.await.expect("second part produced");
    let collected = collector
        .wait_for(
            WAIT,
            "every expected alert after the restart",
            |c| jr_ids(c).is_superset(expected),
            || {
                let seen = jr_ids(&collector.snapshot());
                let missing: Vec<&String> = expected.difference(&seen).take(10).collect();
                format!(
                    "{} of {} expected alerts missing, e.g. {missing:?}\n{}\n---\n{}\n{}",
                    expected.difference(&seen).count(),
                    expected.len(),
                    log(1),
                    log(2),
                    broker.log_tail()
                )
            },
        )
        .await;
    KillRun {
        at_kill,
        collected,
        log: log(2),
    }
}

/// The same settings as a `fundwatch stream` TOML file.
pub fn config_toml(config: &KafkaConfig) -> String {
    let mut text = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{}\"\ninput_topic = \"{}\"\nalerts_topic = \"{}\"\ndlq_topic = \"{}\"\ndrain_timeout_ms = {}\n\n[kafka.batch]\nmax_events = {}\nmax_wait_ms = {}\n\n[kafka.consumer]\n",
        config.brokers,
        config.group_id,
        config.input_topic,
        config.alerts_topic,
        config.dlq_topic,
        config.drain_timeout_ms,
        config.batch.max_events,
        config.batch.max_wait_ms,
    );
    if let Some(dir) = &config.state_dir {
        // Keys of [kafka] must come before its sub-tables.
        let at = text.find("\n[kafka.batch]").unwrap_or(text.len());
        text.insert_str(
            at,
            &format!("state_dir = {:?}\n", dir.display().to_string()),
        );
    }
    for (key, value) in &config.consumer {
        text.push_str(&format!("\"{key}\" = \"{value}\"\n"));
    }
    text.push_str("\n[kafka.producer]\n");
    for (key, value) in &config.producer {
        text.push_str(&format!("\"{key}\" = \"{value}\"\n"));
    }
    text
}

/// A plain producer for test input.
///
/// One message per record batch (`batch.num.messages=1`): tansu 0.6.0 answers a
/// fetch at an offset inside a multi-record batch with the batches that *start*
/// at or after it, so a consumer resuming from a committed offset in the middle
/// of a batch would silently skip the rest of that batch (Kafka returns the whole
/// batch and the client skips the records before the offset). With one record
/// per batch every committed offset is a batch start; see docs/kafka.md, "What
/// tansu cannot do".
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("test producer")
}

/// Sends `events` to `topic` (key = `patn_id`) and waits for every
/// acknowledgement.
pub async fn produce(producer: &FutureProducer, topic: &str, events: &[TestEvent]) {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let record = FutureRecord::to(topic).key(&event.key).payload(&event.json);
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(err, _)| err)
                .expect("test producer queue"),
        );
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("test producer alive")
            .map_err(|(err, _)| err)
            .expect("test event delivered");
    }
}

/// Sends one raw message (any bytes, or no value) and returns its partition and
/// offset.
pub async fn produce_raw(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
) -> (i32, i64) {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(err, _)| err)
        .expect("raw message delivered");
    (delivery.partition, delivery.offset)
}

/// A message read by a [`Collector`].
#[derive(Debug, Clone)]
pub struct Collected {
    /// Key as text.
    pub key: Option<String>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers as text.
    pub headers: BTreeMap<String, String>,
}

impl Collected {
    /// The value as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).expect("collected message is JSON")
    }
}

/// Reads a topic from its start in the background (its own consumer group).
pub struct Collector {
    messages: Arc<Mutex<Vec<Collected>>>,
    task: JoinHandle<()>,
}

impl Collector {
    /// Starts reading `topic` on `bootstrap`.
    pub fn start(bootstrap: &str, topic: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set(
                "group.id",
                format!("collector-{topic}-{}", std::process::id()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .expect("collector consumer");
        consumer.subscribe(&[topic]).expect("collector subscribes");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        let task = tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(message) => {
                        let headers = message
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (
                                            h.key.to_string(),
                                            String::from_utf8_lossy(h.value.unwrap_or_default())
                                                .into_owned(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let collected = Collected {
                            key: message
                                .key()
                                .map(|k| String::from_utf8_lossy(k).into_owned()),
                            payload: message.payload().unwrap_or_default().to_vec(),
                            headers,
                        };
                        sink.lock().expect("collector lock").push(collected);
                    }
                    // Broker restarts and rebalances: keep reading.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Self { messages, task }
    }

    /// Everything read so far.
    pub fn snapshot(&self) -> Vec<Collected> {
        self.messages.lock().expect("collector lock").clone()
    }

    /// Waits until `condition` holds over what was read, or panics after
    /// `timeout` naming `what` and showing `context()`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&[Collected]) -> bool,
        context: impl Fn() -> String,
    ) -> Vec<Collected> {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot();
            if condition(&snapshot) {
                return snapshot;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what} ({} messages read)\n{}",
                snapshot.len(),
                context()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Distinct `jr_id`s among collected alerts.
pub fn jr_ids(collected: &[Collected]) -> BTreeSet<String> {
    collected
        .iter()
        .filter_map(|c| c.json()["jr_id"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `condition` holds, or panics after `timeout` naming `what`.
pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
