//! Two engine instances in one consumer group on a real broker: the second joins
//! mid-stream, the partitions are shared (both instances evaluate events), the
//! first drains its revoked partitions, and every expected alert appears
//! (de-duplicated by `jr_id`).

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use fundwatch_connectors::kafka::{self, KafkaMetrics, Processor};
use support::broker::Broker;
use support::{Collector, Topics};

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_partitions_and_every_alert_appears() {
    let broker = Broker::start();
    let topics = Topics::named("group");
    support::create_topics(&broker, &topics, 4).await;

    let engine = support::national_engine().await;
    let events = support::labelled_events(&engine, 6, "group");
    let expected: BTreeSet<String> = support::expected_alerts(&engine, &events)
        .await
        .iter()
        .map(|a| a["jr_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let third = events.len() / 3;
    let (first, rest) = events.split_at(third);
    let (during, after) = rest.split_at(third);

    let collector = Collector::start(&broker.bootstrap(), &topics.alerts);
    let mut config = support::pipeline_config(&broker.bootstrap(), &topics, "group");
    config.batch.max_events = 16;
    // History follows the partitions (the trace-code cases depend on each other).
    let state = tempfile::tempdir().expect("state dir");
    config.state_dir = Some(state.path().to_path_buf());
    let a = kafka::start(
        Processor::Evaluate(engine.clone()),
        config.clone(),
        KafkaMetrics::new(),
    )
    .expect("instance A starts");
    let producer = support::producer(&broker.bootstrap());
    support::produce(&producer, &topics.input, first).await;
    let a_metrics = a.metrics().clone();
    support::wait_until(WAIT, "instance A at work", || {
        a_metrics.messages_done.get() > 0
    })
    .await;

    // B joins while a second part of the stream trickles in, so A has messages in
    // flight when its partitions are revoked.
    let b = kafka::start(Processor::Evaluate(engine), config, KafkaMetrics::new())
        .expect("instance B starts");
    let b_metrics = b.metrics().clone();
    let trickle = during.to_vec();
    let bootstrap = broker.bootstrap();
    let input = topics.input.clone();
    let feeding = tokio::spawn(async move {
        let producer = support::producer(&bootstrap);
        for chunk in trickle.chunks(20) {
            support::produce(&producer, &input, chunk).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    support::wait_until(WAIT, "instance B assigned partitions", || {
        b_metrics.rebalances.with_label_values(&["assign"]).get() > 0
    })
    .await;
    feeding.await.expect("second part produced");
    // The last part arrives once the group has both members: B owns some of
    // the partitions it lands on.
    support::produce(&producer, &topics.input, after).await;
    support::wait_until(WAIT, "instance B evaluating", || {
        b_metrics.messages_done.get() > 0
    })
    .await;

    let collected = collector
        .wait_for(
            WAIT,
            "every expected alert",
            |c| support::jr_ids(c).is_superset(&expected),
            || {
                format!(
                    "A:\n{}\nB:\n{}\n{}",
                    a_metrics.render(),
                    b_metrics.render(),
                    broker.log_tail()
                )
            },
        )
        .await;
    let seen = support::jr_ids(&collected);
    assert_eq!(seen, expected, "no alert nobody expected");

    let revokes = a_metrics.rebalances.with_label_values(&["revoke"]).get();
    assert!(
        revokes >= 1,
        "A gave partitions up to B\n{}",
        a_metrics.render()
    );
    let report_a = a.stop().await.expect("A stops cleanly");
    let report_b = b.stop().await.expect("B stops cleanly");
    assert!(report_a.messages_done > 0 && report_b.messages_done > 0);
    assert!(
        report_a.messages_done + report_b.messages_done >= events.len() as u64,
        "every event evaluated by one of them"
    );
    println!(
        "rebalance: {} events; A evaluated {}, B {}; {} expected alerts all seen, {} duplicates; A drained {} revoke(s), {} drain timeout(s)",
        events.len(),
        report_a.messages_done,
        report_b.messages_done,
        expected.len(),
        collected.len() - seen.len(),
        revokes,
        a_metrics.drain_timeouts.get()
    );
}
