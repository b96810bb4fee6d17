//! `fundwatch serve --config FILE` with a `[kafka]` table: one process, one
//! engine, HTTP and the Kafka pipeline side by side (SPEC §7). The test sends a
//! labelled stream to the input topic while the HTTP service answers, reads every
//! expected alert from the alerts topic, then sends SIGTERM: the process exits
//! cleanly and the group's committed offsets cover the whole stream.

use crate::support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use support::broker::Broker;
use support::{Collector, Topics};

const WAIT: Duration = Duration::from_secs(120);

/// `fundwatch serve`, SIGKILLed on drop if still running.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status line of `GET path` (HTTP/1.1, no keep-alive), or `None` when
/// nothing answers yet.
fn http_status(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.lines().next().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_runs_http_and_the_kafka_pipeline_and_stops_cleanly_on_sigterm() {
    let broker = Broker::start();
    let topics = Topics::named("serve");
    support::create_topics(&broker, &topics, 2).await;

    // Events whose alerts depend on themselves alone (see the kill -9 test).
    let engine = support::national_engine().await;
    let events = support::labelled_events_of(&engine, 1, "serve", |rule| {
        rule.history_days == 0 && rule.cases.iter().all(|c| c.person_status.is_empty())
    });
    let expected: BTreeSet<String> = support::expected_alerts(&engine, &events)
        .await
        .iter()
        .map(|a| a["jr_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!expected.is_empty());

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let kafka = support::pipeline_config(&broker.bootstrap(), &topics, "serve");
    let config = format!(
        "[http]\naddr = \"{addr}\"\n\n[store]\nkind = \"memory\"\n\n[[auth.keys]]\nrole = \"institution\"\nfixmedins_code = \"H43079600001\"\nkey = \"key-of-hospital-a-0123456789\"\n\n{}",
        support::config_toml(&kafka)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("serve.toml");
    std::fs::write(&config_path, config).expect("config file");
    let log_path = dir.path().join("serve.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let collector = Collector::start(&broker.bootstrap(), &topics.alerts);
    let mut serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_fundwatch"))
            .args(["serve", "--log-format", "text", "--config"])
            .arg(&config_path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(&log_path).expect("log file"),
            ))
            .spawn()
            .expect("starts fundwatch serve"),
    );

    // Ready means HTTP up, versions loaded and Kafka partitions assigned.
    support::wait_until(WAIT, "serve ready (/readyz 200, Kafka assigned)", || {
        tokio::task::block_in_place(|| http_status(addr, "/readyz"))
            .is_some_and(|status| status.contains(" 200"))
    })
    .await;

    let producer = support::producer(&broker.bootstrap());
    support::produce(&producer, &topics.input, &events).await;
    collector
        .wait_for(
            WAIT,
            "every expected alert from serve's pipeline",
            |c| support::jr_ids(c).is_superset(&expected),
            &log,
        )
        .await;
    assert_eq!(
        tokio::task::block_in_place(|| http_status(addr, "/healthz")).as_deref(),
        Some("HTTP/1.1 200 OK"),
        "HTTP still served beside the pipeline"
    );

    // One history for both: a person's daily payment-course drug settled over
    // Kafka for 15 days, then day 16 checked over HTTP (3101, 事前) — only the
    // streamed days make it exceed the 14-day course.
    let mut streamed = support::daily_course_messages(1, 16, "serve");
    let checked = streamed.pop().expect("day 16");
    let checked: serde_json::Value = serde_json::from_slice(&checked.json).expect("JSON");
    support::produce(&producer, &topics.input, &streamed).await;
    let last_task = streamed
        .last()
        .map(|e| e.task_id.clone())
        .unwrap_or_default();
    collector
        .wait_for(
            WAIT,
            "the streamed course's day-15 alert",
            |c| c.iter().any(|a| a.json()["task_id"] == last_task.as_str()),
            &log,
        )
        .await;
    let request = serde_json::json!({
        "infno": "3101", "fixmedins_code": "H43079600001", "fixmedins_name": "测试医院",
        "input": { "data": checked },
    });
    let reply = crate::http_support::call(
        addr,
        hyper::Method::POST,
        "/fsi/3101",
        Some("key-of-hospital-a-0123456789"),
        Some(request.to_string().into_bytes()),
    )
    .await;
    assert!(
        reply.status.is_success() && reply.text.contains("GZ10000101010000"),
        "the HTTP check sees the settlements streamed through Kafka as history: {}\n{}",
        reply.text,
        log()
    );

    // SIGTERM: finish, commit, leave, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = serve.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "serve did not stop\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "serve exited with {exit}\n{}", log());

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "serve")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for partition in 0..2 {
        tpl.add_partition(&topics.input, partition);
    }
    let committed =
        tokio::task::block_in_place(|| reader.committed_offsets(tpl, Duration::from_secs(10)))
            .expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(
        total,
        (events.len() + streamed.len()) as i64,
        "the offsets of every event are committed at shutdown\n{}",
        log()
    );
    println!(
        "serve + kafka: {} events → {} expected alerts all on the alerts topic; SIGTERM → exit 0, offsets committed to the end",
        events.len(),
        expected.len()
    );
}
