//! Fault injection with librdkafka's mock cluster (no external broker):
//! - produce requests failing with retriable errors: every alert still arrives,
//!   exactly once (idempotent producer), and offsets are committed;
//! - the alerts topic's leader down: messages are read but no offset is stored
//!   or committed until their alerts are acknowledged; then everything arrives;
//! - a pipeline that cannot keep up with `max.poll.interval.ms`: librdkafka's
//!   "max poll interval exceeded" is detected and counted, and no alert is lost.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use fundwatch_connectors::kafka::{self, KafkaConfig, KafkaMetrics, Processor, Setting};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::{Collector, TestEvent, Topics};

const WAIT: Duration = Duration::from_secs(120);
const ALERTS_LEADER: i32 = 3;

struct Cluster {
    mock: MockCluster<'static, DefaultProducerContext>,
    topics: Topics,
    group: String,
}

impl Cluster {
    /// Three mock brokers: input and group on broker 1, the alerts topic led by
    /// broker 3 (so it can fail alone).
    fn new(name: &str) -> Self {
        let mock = MockCluster::new(3).expect("mock cluster");
        let topics = Topics::named(name);
        mock.create_topic(&topics.input, 2, 1).expect("input topic");
        mock.create_topic(&topics.alerts, 1, 1)
            .expect("alerts topic");
        mock.create_topic(&topics.dlq, 1, 1).expect("dlq topic");
        for partition in 0..2 {
            mock.partition_leader(&topics.input, partition, Some(1))
                .expect("input leader");
        }
        mock.partition_leader(&topics.alerts, 0, Some(ALERTS_LEADER))
            .expect("alerts leader");
        mock.partition_leader(&topics.dlq, 0, Some(1))
            .expect("dlq leader");
        let group = format!("{name}-group");
        mock.coordinator(MockCoordinator::Group(group.clone()), 1)
            .expect("group coordinator");
        Self {
            mock,
            topics,
            group,
        }
    }

    fn bootstrap(&self) -> String {
        self.mock.bootstrap_servers()
    }

    fn config(&self) -> KafkaConfig {
        let mut config = support::pipeline_config(&self.bootstrap(), &self.topics, &self.group);
        config
            .consumer
            .insert("auto.commit.interval.ms".into(), Setting::Integer(100));
        config
    }

    /// The group's committed offsets on the input partitions (`None` = nothing
    /// committed), read without joining the group.
    fn committed(&self) -> Vec<Option<i64>> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", &self.group)
            .create()
            .expect("offset reader");
        let mut tpl = TopicPartitionList::new();
        for partition in 0..2 {
            tpl.add_partition(&self.topics.input, partition);
        }
        let committed = reader
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect()
    }
}

/// `n` events of the pack's cases that each give at least one alert.
async fn positive_events(
    n: usize,
    tag: &str,
) -> (fundwatch_engine::Engine, Vec<TestEvent>, BTreeSet<String>) {
    let engine = support::national_engine().await;
    let mut events = Vec::new();
    let mut expected = BTreeSet::new();
    for event in support::labelled_events(&engine, 1, tag) {
        // Each event on its own, with no history from the cases before it: the
        // events left out never reach the stream.
        let mut history =
            fundwatch_engine::history::DurableHistory::in_memory(engine.program().history_days());
        history.share_person_statuses(engine.history().lock().expect("history").person_statuses());
        let alone = engine.rebind_history(history);
        let alerts = support::expected_alerts(&alone, std::slice::from_ref(&event)).await;
        if alerts.is_empty() {
            continue;
        }
        expected.extend(
            alerts
                .iter()
                .map(|a| a["jr_id"].as_str().unwrap_or_default().to_string()),
        );
        events.push(event);
        if events.len() == n {
            break;
        }
    }
    (engine, events, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produce_errors_are_retried_and_every_alert_arrives_once() {
    let cluster = Cluster::new("retry");
    let (engine, events, expected) = positive_events(40, "retry").await;
    // The next 12 produce requests fail with retriable errors.
    let mut errors = Vec::new();
    for _ in 0..4 {
        errors.extend([
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ]);
    }
    let collector = Collector::start(&cluster.bootstrap(), &cluster.topics.alerts);
    let pipeline = kafka::start(
        Processor::Evaluate(engine),
        cluster.config(),
        KafkaMetrics::new(),
    )
    .expect("pipeline starts");
    // Input goes in first, so the injected errors hit the alert producer.
    let producer = support::producer(&cluster.bootstrap());
    support::produce(&producer, &cluster.topics.input, &events).await;
    cluster.mock.request_errors(RDKafkaApiKey::Produce, &errors);

    let collected = collector
        .wait_for(
            WAIT,
            "every alert through the produce errors",
            |c| support::jr_ids(c).is_superset(&expected),
            || pipeline.metrics().render(),
        )
        .await;
    assert_eq!(
        collected.len(),
        expected.len(),
        "the idempotent producer's retries duplicate nothing"
    );
    let metrics = pipeline.metrics().clone();
    let n = events.len() as u64;
    support::wait_until(WAIT, "every message done", || {
        metrics.messages_done.get() >= n
    })
    .await;
    let report = pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(report.alerts, expected.len() as u64);
    let committed: i64 = cluster.committed().iter().map(|o| o.unwrap_or(0)).sum();
    assert_eq!(
        committed, n as i64,
        "every input offset committed after the stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_wait_for_alert_acknowledgements() {
    let cluster = Cluster::new("unacked");
    let (engine, events, expected) = positive_events(30, "unacked").await;
    cluster
        .mock
        .broker_down(ALERTS_LEADER)
        .expect("alerts leader down");

    let pipeline = kafka::start(
        Processor::Evaluate(engine),
        cluster.config(),
        KafkaMetrics::new(),
    )
    .expect("pipeline starts");
    let metrics = pipeline.metrics().clone();
    let producer = support::producer(&cluster.bootstrap());
    support::produce(&producer, &cluster.topics.input, &events).await;
    let n = events.len() as u64;
    support::wait_until(WAIT, "every message read", || {
        metrics.messages_in.get() >= n
    })
    .await;

    // Read, evaluated, alerts queued — but not acknowledged: nothing may be
    // stored or committed. Auto-commit runs every 100 ms; watch ten rounds of it.
    let watch_until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < watch_until {
        assert_eq!(metrics.messages_done.get(), 0);
        assert_eq!(metrics.offsets_stored.get(), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cluster.committed().iter().all(|o| o.is_none_or(|o| o == 0)),
        "offsets committed before their alerts were acknowledged: {:?}",
        cluster.committed()
    );

    cluster
        .mock
        .broker_up(ALERTS_LEADER)
        .expect("alerts leader up");
    let collector = Collector::start(&cluster.bootstrap(), &cluster.topics.alerts);
    collector
        .wait_for(
            WAIT,
            "every alert once the leader is back",
            |c| support::jr_ids(c).is_superset(&expected),
            || metrics.render(),
        )
        .await;
    support::wait_until(WAIT, "every message done", || {
        metrics.messages_done.get() >= n
    })
    .await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let committed: i64 = cluster.committed().iter().map(|o| o.unwrap_or(0)).sum();
    assert_eq!(committed, n as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_poll_interval_exceeded_is_detected_and_counted() {
    let cluster = Cluster::new("maxpoll");
    let (engine, events, expected) = positive_events(20, "maxpoll").await;
    let mut config = cluster.config();
    // A pipeline that stalls (alerts cannot be acknowledged, queues of one) stops
    // polling; librdkafka gives it 6 s (the mock coordinator's join takes ~3 s,
    // so shorter intervals cannot even join).
    config.queue = 1;
    config.batch.max_events = 1;
    config.max_in_flight_batches = 1;
    config.drain_timeout_ms = 2000;
    for (key, value) in [
        ("max.poll.interval.ms", "6000"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ] {
        config
            .consumer
            .insert(key.into(), Setting::Text(value.into()));
    }
    cluster
        .mock
        .broker_down(ALERTS_LEADER)
        .expect("alerts leader down");
    let pipeline = kafka::start(Processor::Evaluate(engine), config, KafkaMetrics::new())
        .expect("pipeline starts");
    let metrics = pipeline.metrics().clone();
    let producer = support::producer(&cluster.bootstrap());
    support::produce(&producer, &cluster.topics.input, &events).await;

    // The fault itself lasts a fixed time: the stall must outlast
    // max.poll.interval.ms (6 s). librdkafka reports the violation through the
    // queue the consumer polls, so it is seen when polling resumes.
    support::wait_until(WAIT, "the consumer stalled", || {
        metrics.messages_in.get() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(
        metrics.messages_done.get() == 0,
        "nothing acknowledged during the stall"
    );
    cluster
        .mock
        .broker_up(ALERTS_LEADER)
        .expect("alerts leader up");
    support::wait_until(WAIT, "max poll interval exceeded detected", || {
        metrics.max_poll_exceeded.get() >= 1
    })
    .await;
    let collector = Collector::start(&cluster.bootstrap(), &cluster.topics.alerts);
    collector
        .wait_for(
            WAIT,
            "every alert after the consumer rejoined",
            |c| support::jr_ids(c).is_superset(&expected),
            || metrics.render(),
        )
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    println!(
        "max poll: detected {} time(s); every alert delivered",
        metrics.max_poll_exceeded.get()
    );
}
