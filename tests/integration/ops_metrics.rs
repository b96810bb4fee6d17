//! Operations of a running `fundwatch demo`: `/healthz`, `/readyz`, the exact
//! metric set on `/metrics` (SPEC §8; every name documented in docs/metrics.md,
//! no personal label), then SIGTERM: the demo finishes its batch, prints its
//! summary and exits cleanly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fundwatch_connectors::metrics::Metrics;

use crate::ops_support::{self, Demo};

/// Families a demo exposes: the shared ones (sources `synthetic` and `http`) and
/// the HTTP service's. The Kafka families are in [`kafka_families`].
const DEMO_FAMILIES: &[&str] = &[
    "fundwatch_build_info",
    "fundwatch_kb_info",
    "fundwatch_rule_pack_info",
    "fundwatch_events_in_total",
    "fundwatch_events_out_total",
    "fundwatch_alerts_total",
    "fundwatch_institution_alerts_total",
    "fundwatch_stage_duration_seconds",
    "fundwatch_batch_duration_seconds",
    "fundwatch_batch_events",
    "fundwatch_event_to_alert_seconds",
    "fundwatch_errors_total",
    "fundwatch_rule_eval_seconds_total",
    "fundwatch_rule_evals_total",
    "fundwatch_http_requests_total",
    "fundwatch_http_request_duration_seconds",
    "fundwatch_http_queue_depth",
    "fundwatch_http_fail_open_total",
    "fundwatch_http_shed_total",
];

/// Label names that would carry personal data or per-event ids.
const FORBIDDEN_LABELS: &[&str] = &[
    "patn_id",
    "patn_name",
    "psn_no",
    "certno",
    "mdtrt_id",
    "rx_id",
    "jr_id",
    "task_id",
];

/// Everything a process running the Kafka pipeline exposes (checked against
/// the documentation; no broker needed to register them).
fn kafka_families() -> BTreeSet<String> {
    let metrics = Metrics::new();
    // Lag and history series exist per assigned partition only: give them one.
    let kafka = metrics.kafka();
    kafka
        .consumer_lag
        .with_label_values(&["settlements", "0"])
        .set(0);
    kafka.history_persons.with_label_values(&["0"]).set(0);
    ops_support::families(&metrics.render())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_health_and_exactly_the_documented_metrics_then_stops_on_sigterm() {
    let mut demo = Demo::start(300, "600s");
    let addr = demo.addr;

    let health = ops_support::get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["status"], "ok");
    let ready = ops_support::get(addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready", "{}", ready.text);
    assert!(
        ready.body["kb"]
            .as_str()
            .is_some_and(|kb| kb.starts_with("kb-")),
        "{}",
        ready.text
    );
    assert!(
        ready.body["rule_pack"]
            .as_str()
            .is_some_and(|p| p.contains('@')),
        "{}",
        ready.text
    );

    // Wait until the stream has produced alerts and every stage has been seen.
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let text = ops_support::get(addr, "/metrics").await.text;
        let stages_seen = [
            "decode",
            "batch_build",
            "evaluate",
            "alert_build",
            "history",
            "sink",
        ]
        .iter()
        .all(|stage| {
            ops_support::sample(
                &text,
                &format!(
                    "fundwatch_stage_duration_seconds_count{{source=\"synthetic\",stage=\"{stage}\"}}"
                ),
            )
            .is_some_and(|n| n > 0.0)
        });
        if stages_seen && ops_support::sum(&text, "fundwatch_alerts_total") > 0.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no alerts or unseen stages after 120 s:\n{text}\nstderr:\n{}",
            demo.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Exactly the expected families: a new metric must be added here and to
    // docs/metrics.md; a lost one fails.
    let exposed = ops_support::families(&text);
    let expected: BTreeSet<String> = DEMO_FAMILIES.iter().map(|s| s.to_string()).collect();
    assert_eq!(exposed, expected, "metric families of a running demo");
    let documented = ops_support::documented();
    let kafka = kafka_families();
    for name in exposed.iter().chain(&kafka) {
        assert!(
            documented.contains(name),
            "{name} is exposed but not documented in docs/metrics.md"
        );
    }
    for name in &documented {
        assert!(
            exposed.contains(name) || kafka.contains(name),
            "docs/metrics.md documents {name}, which no registry exposes"
        );
    }
    for label in ops_support::label_names(&text) {
        assert!(
            !FORBIDDEN_LABELS.contains(&label.as_str()),
            "label {label} would carry personal or per-event data"
        );
    }

    // Values that must be there after a run.
    let out = ops_support::sample(&text, "fundwatch_events_out_total{source=\"synthetic\"}")
        .expect("events out of the synthetic source");
    let inn = ops_support::sample(&text, "fundwatch_events_in_total{source=\"synthetic\"}")
        .expect("events in of the synthetic source");
    assert!(out > 0.0 && inn >= out, "in {inn}, out {out}");
    let kb = ready.body["kb"].as_str().unwrap_or_default();
    assert_eq!(
        ops_support::sample(&text, &format!("fundwatch_kb_info{{version=\"{kb}\"}}")),
        Some(1.0),
        "the KB in force is exposed as fundwatch_kb_info"
    );
    let pack = ready.body["rule_pack"].as_str().unwrap_or_default();
    assert_eq!(
        ops_support::sample(
            &text,
            &format!("fundwatch_rule_pack_info{{mode=\"active\",version=\"{pack}\"}}")
        ),
        Some(1.0)
    );
    assert!(
        ops_support::sum(&text, "fundwatch_event_to_alert_seconds_count") > 0.0,
        "event→alert latency observed"
    );
    assert!(text.contains("fundwatch_alerts_total{rule_id=\""));
    assert!(text.contains("sev_deg=\""));
    // Every rule of the active pack reports its cost; after a run with alerts
    // some plans ran and took time.
    let rules_costed = text
        .lines()
        .filter(|l| l.starts_with("fundwatch_rule_evals_total{"))
        .count();
    let pack_rules = std::fs::read_dir(ops_support::repo().join("rule-base/packs/national/rules"))
        .expect("the national pack's rules")
        .count();
    assert_eq!(
        rules_costed, pack_rules,
        "one series per rule of the national pack"
    );
    assert!(ops_support::sum(&text, "fundwatch_rule_evals_total") > 0.0);
    assert!(ops_support::sum(&text, "fundwatch_rule_eval_seconds_total") > 0.0);

    // SIGTERM: the batch in flight finishes, the summary is printed, exit 0
    // (the run is scored: every label found, no false alert).
    let status = demo.terminate();
    let stdout = demo.stdout();
    let stderr = demo.stderr();
    assert!(
        stderr.contains("stopped by Ctrl-C / SIGTERM"),
        "stderr:\n{stderr}"
    );
    assert!(
        stdout.contains("fundwatch demo:") && stdout.contains("result: PASS"),
        "summary after SIGTERM:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        status.success(),
        "exit status {status:?}; stdout:\n{stdout}"
    );
}
