//! History state survives a crash and follows a partition to its next owner
//! (`kafka.state_dir`, SPEC § 9). The stream is one where most alerts need
//! stored history: a payment-course drug (支付不超过14天) given daily, so from day
//! 15 each event's alert depends on the 14 days before, evaluated earlier —
//! often by the process that was killed or the instance that gave the
//! partition up. A new owner without the state would miss those alerts or
//! change their 涉及项; the tests require every expected alert, nothing else,
//! and each one identical to what `Engine::evaluate` gives in one uninterrupted run.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fundwatch_connectors::kafka::{self, KafkaMetrics, Processor};
use serde_json::Value;
use support::broker::Broker;
use support::{Collector, TestEvent, Topics};

const WAIT: Duration = Duration::from_secs(180);
const PERSONS: usize = 60;
const DAYS: usize = 30;

/// The uninterrupted run's alerts by `jr_id` (without `emitted_at`).
async fn expected(events: &[TestEvent]) -> BTreeMap<String, Value> {
    let engine = support::national_engine().await;
    let alerts = support::expected_alerts(&engine, events).await;
    assert!(
        alerts.len() >= PERSONS * (DAYS - 15),
        "the stream should give history-dependent alerts, got {}",
        alerts.len()
    );
    support::by_jr_id(alerts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_keeps_the_history_state_and_every_history_alert_appears() {
    let broker = Broker::start();
    let topics = Topics::named("hkill");
    support::create_topics(&broker, &topics, 4).await;

    let events = support::daily_course_messages(PERSONS, DAYS, "k");
    let expected = expected(&events).await;
    let expected_ids: BTreeSet<String> = expected.keys().cloned().collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = support::pipeline_config(&broker.bootstrap(), &topics, "hkill");
    config.batch.max_events = 16;
    config.state_dir = Some(dir.path().join("state"));
    // Days 0–19 first; the rest arrives while the first process dies.
    let run = support::kill_9_mid_stream(
        &broker,
        &config,
        events.split_at(PERSONS * 20),
        PERSONS,
        &expected_ids,
    )
    .await;
    let duplicates = support::assert_exactly(&run.collected, &expected);
    assert!(
        run.log.contains("partition history restored"),
        "the second process restored the partitions' state\n{}",
        run.log
    );
    println!(
        "kill -9 with history: {} events, {} expected alerts all delivered and identical; {} seen before the kill, {duplicates} redelivered duplicates",
        events.len(),
        expected_ids.len(),
        run.at_kill
    );
}

/// What a hand-over run saw.
struct HandOver {
    expected: BTreeMap<String, Value>,
    collected: Vec<support::Collected>,
    a: KafkaMetrics,
    b: KafkaMetrics,
    report_a: kafka::PipelineReport,
    report_b: kafka::PipelineReport,
}

/// The course stream through two instances of `config`'s group: A alone for
/// days 0–17, then B joins and days 18–29 — which need days 4–17, evaluated
/// only by A — arrive once B has partitions; waits for every expected alert
/// and requires each to be identical to one uninterrupted run.
async fn hand_over(name: &str, configure: impl FnOnce(&mut kafka::KafkaConfig)) -> HandOver {
    let broker = Broker::start();
    let topics = Topics::named(name);
    support::create_topics(&broker, &topics, 4).await;
    let events = support::daily_course_messages(PERSONS, DAYS, name);
    let expected = expected(&events).await;
    let expected_ids: BTreeSet<String> = expected.keys().cloned().collect();
    let (first, rest) = events.split_at(PERSONS * 18);

    let mut config = support::pipeline_config(&broker.bootstrap(), &topics, name);
    config.batch.max_events = 16;
    configure(&mut config);
    let engine = support::national_engine().await;
    let a = kafka::start(
        Processor::Evaluate(engine.clone()),
        config.clone(),
        KafkaMetrics::new(),
    )
    .expect("instance A starts");
    let collector = Collector::start(&broker.bootstrap(), &topics.alerts);
    let producer = support::producer(&broker.bootstrap());
    support::produce(&producer, &topics.input, first).await;
    let a_metrics = a.metrics().clone();
    let n_first = first.len() as u64;
    support::wait_until(WAIT, "instance A through days 0-17", || {
        a_metrics.messages_done.get() >= n_first
    })
    .await;

    let b = kafka::start(Processor::Evaluate(engine), config, KafkaMetrics::new())
        .expect("instance B starts");
    let b_metrics = b.metrics().clone();
    support::wait_until(WAIT, "instance B assigned partitions", || {
        b_metrics.assigned_partitions.get() > 0
    })
    .await;
    support::produce(&producer, &topics.input, rest).await;
    let collected = collector
        .wait_for(
            WAIT,
            "every expected alert",
            |c| support::jr_ids(c).is_superset(&expected_ids),
            || {
                let seen = support::jr_ids(&collector.snapshot());
                format!(
                    "{} of {} expected alerts missing\nA:\n{}\nB:\n{}",
                    expected_ids.difference(&seen).count(),
                    expected_ids.len(),
                    a_metrics.render(),
                    b_metrics.render()
                )
            },
        )
        .await;
    support::assert_exactly(&collected, &expected);
    HandOver {
        expected,
        collected,
        report_a: a.stop().await.expect("A stops cleanly"),
        report_b: b.stop().await.expect("B stops cleanly"),
        a: a_metrics,
        b: b_metrics,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebalance_hands_the_history_state_to_the_next_owner() {
    // One volume for both instances: a revoke snapshots, the next owner opens.
    let dir = tempfile::tempdir().expect("tempdir");
    let run = hand_over("hgroup", |config| {
        config.state_dir = Some(dir.path().to_path_buf());
    })
    .await;
    assert!(
        run.report_b.messages_done > 0,
        "B evaluated part of the stream after the hand-over"
    );
    let restores = run
        .b
        .history_seconds
        .with_label_values(&["restore"])
        .get_sample_count();
    assert!(
        restores > 0,
        "B restored partition histories\n{}",
        run.b.render()
    );
    let snapshots = std::fs::read_dir(dir.path())
        .expect("state dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("snapshot.bin").exists())
        .count();
    assert_eq!(snapshots, 4, "one state directory per input partition");
    println!(
        "rebalance with history: A evaluated {}, B {}; {} expected alerts all seen and identical, {} duplicates; A revoked {} time(s)",
        run.report_a.messages_done,
        run.report_b.messages_done,
        run.expected.len(),
        run.collected.len() - support::jr_ids(&run.collected).len(),
        run.a.rebalances.with_label_values(&["revoke"]).get()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_shared_volume_the_next_owner_rebuilds_history_from_the_topic() {
    // History in memory on each instance; a partition that arrives without it is
    // read again from its beginning, recorded, not evaluated, up to the commit.
    let run = hand_over("hrebuild", |config| config.rebuild_history = true).await;
    // B read its partitions' first 18 days again but sent nothing for them.
    let duplicates = run.collected.len() - support::jr_ids(&run.collected).len();
    assert_eq!(
        duplicates, 0,
        "a rebuild records without evaluating: no alert is sent twice"
    );
    let events = (PERSONS * DAYS) as u64;
    assert!(
        run.report_a.messages + run.report_b.messages > events,
        "B read its partitions again from their beginning (A {} + B {} messages for {events} events)",
        run.report_a.messages,
        run.report_b.messages
    );
    println!(
        "rebuild: A read {}, B read {} (its partitions again from the start); {} expected alerts all seen once and identical",
        run.report_a.messages,
        run.report_b.messages,
        run.expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_rebalancing_hands_over_only_the_moved_partitions_state() {
    // Incremental assignment: A keeps the partitions it is not asked to give up
    // (no snapshot/restore for them), B restores only what moves.
    let dir = tempfile::tempdir().expect("tempdir");
    let run = hand_over("hcoop", |config| {
        config.state_dir = Some(dir.path().to_path_buf());
        config.consumer.insert(
            "partition.assignment.strategy".into(),
            kafka::Setting::Text("cooperative-sticky".into()),
        );
    })
    .await;
    assert!(run.report_b.messages_done > 0, "B took partitions over");
    let a_restores = run
        .a
        .history_seconds
        .with_label_values(&["restore"])
        .get_sample_count();
    let b_restores = run
        .b
        .history_seconds
        .with_label_values(&["restore"])
        .get_sample_count();
    // On a quiet machine A restores each partition once and B the 2 that move;
    // a loaded one may move partitions again (a member late for its session),
    // so only the hand-over itself is required here.
    assert!(a_restores >= 4, "A restored its partitions ({a_restores})");
    assert!(b_restores > 0, "B restored what moved to it");
    println!(
        "cooperative: A evaluated {}, B {}; A restored {a_restores}, B {b_restores} partition(s); {} expected alerts all identical",
        run.report_a.messages_done,
        run.report_b.messages_done,
        run.expected.len()
    );
}
