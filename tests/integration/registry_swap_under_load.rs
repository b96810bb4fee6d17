//! Issue 7 item 2: activation and rollback through the admin endpoints while
//! concurrent 3101 requests keep coming. Every request is answered (HTTP 200,
//! infcode 0, never fail-open), every alert comes wholly from one pack version
//! (a batch in flight finishes on the program it started with), both versions
//! are seen, and after the last rollback the old version answers again. Timing
//! is measured by `benches/src/bin/swap_bench.rs`, not asserted here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hyper::StatusCode;
use serde_json::json;

use fundwatch_connectors::http::SKIPPED_HEADER;

use crate::http_support::{KEY_A, KEY_ADMIN, b1_request};
use crate::registry_support::{ManagedServer, derive_pack, fundwatch_ok};

const SEX: &str = "GZ10000301004000";

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    failed: AtomicU64,
    v1: AtomicU64,
    v2: AtomicU64,
    inconsistent: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_under_load_answer_every_request_from_one_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("registry");
    let reg = registry.to_str().expect("utf8");
    // v2 differs from v1 in one rule's message: an alert shows which program built it.
    let v1 = derive_pack(dir.path(), "swap", "1.0.0", |_, t| Some(t), &[]);
    let v2 = derive_pack(
        dir.path(),
        "swap",
        "2.0.0",
        |file, t| {
            Some(if file == format!("{SEX}.toml") {
                t.replacen("message = \"", "message = \"[v2] ", 1)
            } else {
                t
            })
        },
        &[],
    );
    for pack in [&v1, &v2] {
        fundwatch_ok(&[
            "rules",
            "publish",
            "--registry",
            reg,
            pack.to_str().expect("utf8"),
        ]);
    }
    fundwatch_ok(&["rules", "activate", "--registry", reg, "swap@1.0.0"]);

    // A generous budget: a slow debug build must not turn into fail-open answers.
    let server = Arc::new(
        ManagedServer::start(&registry, "[http]\nbudget_ms = 60000\neval_threads = 2").await,
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (server, tally, stop) = (Arc::clone(&server), Arc::clone(&tally), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
                let ok = reply.status == StatusCode::OK
                    && reply.body["infcode"] == 0
                    && reply.header(SKIPPED_HEADER).is_none();
                if !ok {
                    tally.failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("failed: {} {}", reply.status, reply.text);
                    continue;
                }
                for alert in reply.body["output"]["result"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if alert["rule_id"] != SEX {
                        continue;
                    }
                    let version = alert["rule_pack_version"].as_str().unwrap_or("");
                    let marked = alert["vola_cont"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("[v2] ");
                    match (version, marked) {
                        ("swap@1.0.0", false) => tally.v1.fetch_add(1, Ordering::SeqCst),
                        ("swap@2.0.0", true) => tally.v2.fetch_add(1, Ordering::SeqCst),
                        _ => tally.inconsistent.fetch_add(1, Ordering::SeqCst),
                    };
                }
                tally.answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    // Steady load first, then activate v2 / roll back, twice each.
    let wait_for_answers = |n: u64| {
        let tally = Arc::clone(&tally);
        async move {
            let target = tally.answered.load(Ordering::SeqCst) + n;
            crate::http_support::wait_until(std::time::Duration::from_secs(120), || {
                let tally = Arc::clone(&tally);
                async move { tally.answered.load(Ordering::SeqCst) >= target }
            })
            .await;
        }
    };
    wait_for_answers(20).await;
    let mut answered_during = Vec::new();
    for step in 0..4 {
        let before = tally.answered.load(Ordering::SeqCst);
        let reply = if step % 2 == 0 {
            server
                .post(
                    "/api/v1/admin/rules/activate",
                    KEY_ADMIN,
                    json!({"version": "swap@2.0.0"}).to_string(),
                )
                .await
        } else {
            server
                .post("/api/v1/admin/rules/rollback", KEY_ADMIN, "")
                .await
        };
        assert_eq!(reply.status, StatusCode::OK, "step {step}: {}", reply.text);
        assert_eq!(
            reply.body["validation"]["cases"],
            reply.body["validation"]["passed"]
        );
        answered_during.push(tally.answered.load(Ordering::SeqCst) - before);
        wait_for_answers(20).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client task");
    }

    let failed = tally.failed.load(Ordering::SeqCst);
    let answered = tally.answered.load(Ordering::SeqCst);
    eprintln!(
        "answered {answered}, failed {failed}, v1 alerts {}, v2 alerts {}, answered while activating {answered_during:?}",
        tally.v1.load(Ordering::SeqCst),
        tally.v2.load(Ordering::SeqCst)
    );
    assert_eq!(failed, 0, "no request may fail during a swap");
    assert_eq!(tally.inconsistent.load(Ordering::SeqCst), 0);
    assert!(tally.v1.load(Ordering::SeqCst) > 0 && tally.v2.load(Ordering::SeqCst) > 0);
    // Requests kept being answered while each activation compiled and ran its cases.
    assert!(
        answered_during.iter().all(|n| *n > 0),
        "{answered_during:?}"
    );

    // After the last rollback v1 answers; the log has the four changes by `ops`.
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    let sex: Vec<_> = reply.body["output"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["rule_id"] == SEX)
        .collect();
    assert_eq!(sex[0]["rule_pack_version"], "swap@1.0.0", "{}", reply.text);
    let log = server.manager.registry().log().expect("log");
    let by_ops: Vec<_> = log.iter().filter(|a| a.actor == "ops").collect();
    assert_eq!(by_ops.len(), 4, "{log:#?}");
    assert_eq!(by_ops[3].to.pack.as_deref(), Some("swap@1.0.0"));
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => panic!("clients still hold the server"),
    }
}
