//! The shipped dashboard and alert rules against a real Prometheus (the Debian
//! `prometheus` package, with `promtool`): Prometheus scrapes a running
//! `fundwatch demo` and a Kafka pipeline on a real broker (for the lag and
//! dead-letter panels), loads deploy/prometheus/rules, and every query of every
//! panel of deploy/grafana/dashboards/fundwatch.json must return data. Also:
//! `promtool check rules` / `check config` pass on the shipped files, every rule
//! evaluates without error, and `/readyz` of a Kafka-consuming service waits for
//! a partition assignment.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fundwatch_connectors::http::{Authenticator, HttpConfig, MemoryStore, Service};
use fundwatch_connectors::kafka::{self, Processor, Setting};
use fundwatch_connectors::metrics::{Metrics, Source};
use serde_json::Value;

use crate::ops_support::{self, Demo};
use crate::support::broker::Broker;
use crate::support::{self as kafka_support, Topics};

/// Dashboard variables → values an instant query can use (1 s scrapes).
const VARIABLES: &[(&str, &str)] = &[("$__rate_interval", "15s"), ("$__range", "5m")];

fn binary(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: `apt-get install -y --no-install-recommends prometheus` (.ci/run and scripts/test.sh do this)"
    );
    name.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Prometheus server; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(targets: &[SocketAddr], rules: &Path) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: fundwatch\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query; `None` while Prometheus does not answer.
    async fn query(&self, expr: &str) -> Option<Value> {
        let path = format!("/api/v1/query?query={}", encode(expr));
        let reply = tokio::time::timeout(Duration::from_secs(10), try_get(self.addr, &path))
            .await
            .ok()??;
        Some(reply)
    }
}

/// GET returning the JSON body, or `None` when the connection fails.
async fn try_get(addr: SocketAddr, path: &str) -> Option<Value> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    let reply = ops_support::get(addr, path).await;
    Some(reply.body)
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every (panel title, expr) of the dashboard, variables substituted.
fn panel_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(&ops_support::read(
        "deploy/grafana/dashboards/fundwatch.json",
    ))
    .expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?").to_string();
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let mut expr = target["expr"].as_str().expect("expr").to_string();
            for (var, value) in VARIABLES {
                expr = expr.replace(var, value);
            }
            assert!(!expr.contains('$'), "unknown variable in {title}: {expr}");
            out.push((title.clone(), expr));
        }
    }
    out
}

fn promtool(args: &[&str]) {
    let output = Command::new(binary("promtool"))
        .args(args)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_shipped_rules_and_config() {
    let repo = ops_support::repo();
    let rules = repo.join("deploy/prometheus/rules/fundwatch.rules.yml");
    promtool(&["check", "rules", rules.to_str().expect("path")]);
    // The shipped config names the rules where the compose file mounts them;
    // point it at the repository's copy to check both together.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ops_support::read("deploy/prometheus/prometheus.yml").replace(
        "/etc/prometheus/rules/*.yml",
        &repo
            .join("deploy/prometheus/rules/*.yml")
            .display()
            .to_string(),
    );
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).expect("write config");
    promtool(&["check", "config", path.to_str().expect("path")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_panel_has_data_from_a_real_prometheus() {
    // Fail fast when Prometheus is missing, before the slow starts.
    binary("prometheus");
    let mut demo = Demo::start(200, "600s");

    // A Kafka pipeline with its own /metrics (what `serve` with [kafka] runs).
    let broker = Broker::start();
    let topics = Topics::named("ops");
    broker.create_topic(&topics.input, 2).await;
    broker.create_topic(&topics.alerts, 1).await;
    broker.create_topic(&topics.dlq, 1).await;
    let engine = kafka_support::national_engine().await;
    let events: Vec<_> = kafka_support::labelled_events(&engine, 1, "ops")
        .into_iter()
        .filter(|e| !e.labels.is_empty())
        .take(20)
        .collect();
    let metrics = Metrics::new();
    let kafka_metrics = metrics.kafka();
    let http_engine = engine
        .clone()
        .with_observer(Arc::new(metrics.source(Source::Http)));
    let service = Service::with_metrics(
        &HttpConfig {
            eval_threads: 1,
            ..HttpConfig::default()
        },
        Authenticator::from_config(&[], |_| None).expect("no keys"),
        Arc::new(http_engine),
        Arc::new(MemoryStore::new()),
        &metrics,
    )
    .expect("service");
    service.require_kafka(&kafka_metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let kafka_addr = listener.local_addr().expect("address");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(service.serve(listener, async move {
        let _ = http_stopped.await;
    }));

    // Not ready before the pipeline has a partition.
    let ready = ops_support::get(kafka_addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(
        ready.text.contains("no Kafka partition assigned yet"),
        "{}",
        ready.text
    );

    let mut config = kafka_support::pipeline_config(&broker.bootstrap(), &topics, "ops");
    config.consumer.insert(
        "statistics.interval.ms".into(),
        Setting::Text("1000".into()),
    );
    let pipeline = kafka::start(Processor::Evaluate(engine), config, kafka_metrics.clone())
        .expect("pipeline starts");
    let producer = kafka_support::producer(&broker.bootstrap());
    kafka_support::produce(&producer, &topics.input, &events).await;
    kafka_support::produce_raw(&producer, &topics.input, "P-OPS", Some(b"not json")).await;
    kafka_support::wait_until(Duration::from_secs(120), "Kafka input processed", || {
        kafka_metrics.messages_done.get() > events.len() as u64
    })
    .await;
    let ready = ops_support::get(kafka_addr, "/readyz").await;
    assert_eq!(ready.status, 200, "ready once assigned: {}", ready.text);

    let rules = ops_support::repo().join("deploy/prometheus/rules/fundwatch.rules.yml");
    let prometheus = Prometheus::start(&[demo.addr, kafka_addr], &rules);

    // Both targets up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prometheus.query("sum(up{job=\"fundwatch\"})").await;
        let value = up
            .as_ref()
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str())
            .and_then(|s| s.parse::<f64>().ok());
        if value == Some(2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape both targets in 60 s: {up:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every panel's every query returns at least one series.
    let queries = panel_queries();
    assert!(
        queries.len() >= 15,
        "the dashboard lost panels: {}",
        queries.len()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<(String, String, String)> = Vec::new();
    for (title, expr) in &queries {
        loop {
            let answer = prometheus.query(expr).await;
            let status = answer.as_ref().map(|a| a["status"].clone());
            let has_data = answer
                .as_ref()
                .and_then(|a| a["data"]["result"].as_array())
                .is_some_and(|r| !r.is_empty());
            assert_ne!(
                status,
                Some(Value::from("error")),
                "panel {title}: Prometheus rejects {expr}: {answer:?}"
            );
            if has_data {
                break;
            }
            if Instant::now() >= deadline {
                missing.push((title.clone(), expr.clone(), format!("{answer:?}")));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(
        missing.is_empty(),
        "panels without data: {missing:#?}\ndemo metrics:\n{}",
        ops_support::get(demo.addr, "/metrics").await.text
    );

    // The alert rules load and evaluate without error against real series.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = try_get(prometheus.addr, "/api/v1/rules").await;
        let groups = rules
            .as_ref()
            .and_then(|r| r["data"]["groups"].as_array().cloned())
            .unwrap_or_default();
        let all: Vec<Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = !all.is_empty()
            && all.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
        if evaluated {
            for rule in &all {
                assert_eq!(
                    rule["health"], "ok",
                    "rule {} does not evaluate: {}",
                    rule["name"], rule["lastError"]
                );
            }
            assert!(all.len() >= 10, "rules loaded: {}", all.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated in 30 s: {rules:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    drop(prometheus);
    let report = pipeline.stop().await.expect("pipeline stops");
    assert!(
        report.dead_letters >= 1,
        "the poison message was dead-lettered"
    );
    let _ = stop_http.send(());
    let _ = http.await;
    let status = demo.terminate();
    assert!(status.success(), "demo exit {status:?}:\n{}", demo.stdout());
}
