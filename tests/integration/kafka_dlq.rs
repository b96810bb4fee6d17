//! Poison messages on a real broker: each goes to the dead-letter topic unchanged,
//! with the field path, the reason and its source coordinates in headers, and
//! the stream goes on (the good events around them are alerted).

use crate::support;

use std::time::Duration;

use fundwatch_connectors::kafka::{self, DLQ_HEADERS, KafkaMetrics, Processor};
use support::broker::Broker;
use support::{Collector, Topics};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_messages_go_to_the_dlq_and_the_stream_goes_on() {
    let broker = Broker::start();
    let topics = Topics::named("dlq");
    // One partition: the poison sits between the good events.
    support::create_topics(&broker, &topics, 1).await;

    let engine = support::national_engine().await;
    // Two events with alerts: one before the poison, one after.
    let good: Vec<_> = support::labelled_events(&engine, 1, "dlq")
        .into_iter()
        .filter(|e| !e.labels.is_empty())
        .take(2)
        .collect();
    let expected = support::expected_alerts(&engine, &good).await;
    assert!(!expected.is_empty());

    let alerts = Collector::start(&broker.bootstrap(), &topics.alerts);
    let dead = Collector::start(&broker.bootstrap(), &topics.dlq);
    let config = support::pipeline_config(&broker.bootstrap(), &topics, "dlq");
    let pipeline = kafka::start(Processor::Evaluate(engine), config, KafkaMetrics::new())
        .expect("pipeline starts");

    let producer = support::producer(&broker.bootstrap());
    support::produce(&producer, &topics.input, &good[..1]).await;
    let not_json = b"{\"infno\": \"3101\", \"input\": {\"data\": ".as_slice();
    let bad_date = br#"{"patient_dtos":[{"patn_id":"P-BAD","brdy":"not a date","curr_mdtrt_id":"M","fsi_encounter_dtos":[{"mdtrt_id":"M"}]}]}"#.as_slice();
    let (_, off_not_json) =
        support::produce_raw(&producer, &topics.input, "P-X", Some(not_json)).await;
    let (_, off_bad_date) =
        support::produce_raw(&producer, &topics.input, "P-BAD", Some(bad_date)).await;
    let (_, off_empty) = support::produce_raw(&producer, &topics.input, "P-NULL", None).await;
    support::produce(&producer, &topics.input, &good[1..]).await;

    let letters = dead
        .wait_for(
            WAIT,
            "three dead letters",
            |c| c.len() >= 3,
            || broker.log_tail(),
        )
        .await;
    let collected = alerts
        .wait_for(
            WAIT,
            "the alerts of the good events on both sides of the poison",
            |c| c.len() >= expected.len(),
            || broker.log_tail(),
        )
        .await;
    let expected_ids: Vec<_> = expected.iter().map(|a| a["jr_id"].clone()).collect();
    for alert in &collected {
        assert!(expected_ids.contains(&alert.json()["jr_id"]));
    }

    let header = |i: usize, name: &str| letters[i].headers.get(name).cloned().unwrap_or_default();
    // Unchanged payload and key; source coordinates; stage, path, reason.
    assert_eq!(letters[0].payload, not_json);
    assert_eq!(letters[0].key.as_deref(), Some("P-X"));
    assert_eq!(header(0, DLQ_HEADERS.source_topic), topics.input);
    assert_eq!(header(0, DLQ_HEADERS.source_partition), "0");
    assert_eq!(
        header(0, DLQ_HEADERS.source_offset),
        off_not_json.to_string()
    );
    assert_eq!(header(0, DLQ_HEADERS.stage), "decode");
    assert_eq!(header(0, DLQ_HEADERS.path), "$");
    assert!(
        header(0, DLQ_HEADERS.reason).contains("not valid JSON"),
        "{:?}",
        letters[0].headers
    );

    assert_eq!(letters[1].payload, bad_date);
    assert_eq!(
        header(1, DLQ_HEADERS.source_offset),
        off_bad_date.to_string()
    );
    assert_eq!(header(1, DLQ_HEADERS.path), "patient_dtos[0].brdy");
    assert_eq!(header(1, DLQ_HEADERS.value), "\"not a date\"");
    assert!(header(1, DLQ_HEADERS.message).starts_with("patient_dtos[0].brdy: "));

    assert!(letters[2].payload.is_empty());
    assert_eq!(header(2, DLQ_HEADERS.source_offset), off_empty.to_string());
    assert!(header(2, DLQ_HEADERS.reason).contains("no value"));

    let metrics = pipeline.metrics().clone();
    support::wait_until(WAIT, "five messages done", || {
        metrics.messages_done.get() >= 5
    })
    .await;
    let report = pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(report.dead_letters, 3);
    assert_eq!(report.alerts, expected.len() as u64);
    assert_eq!(
        metrics.dead_letters.with_label_values(&["decode"]).get(),
        3,
        "{}",
        metrics.render()
    );
    println!(
        "dlq: 3 poison messages dead-lettered with path and reason; {} alerts of the good events around them",
        collected.len()
    );
}
