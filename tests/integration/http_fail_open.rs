//! Fail-open over real HTTP: an evaluation past the budget, an engine error and a
//! stopped engine are all answered `infcode 0` with an empty result and a
//! `warn_msg` (the settlement goes on); a full queue is shed at once with 503 and
//! `infcode -1`; nothing hangs.

use crate::http_support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fundwatch_connectors::http::{Evaluator, MemoryStore, Versions};
use fundwatch_engine::{Alert, EvalError, Event};
use http_support::{KEY_A, Server, b1_request, wait_until};
use hyper::{Method, StatusCode};
use tokio::sync::{Notify, mpsc};

type Evaluation<'a> = Pin<Box<dyn Future<Output = Result<Vec<Vec<Alert>>, EvalError>> + Send + 'a>>;

/// An evaluation that reports it started, then waits until released.
struct Stuck {
    started: mpsc::UnboundedSender<usize>,
    release: Arc<Notify>,
}

impl Evaluator for Stuck {
    fn evaluate<'a>(&'a self, events: &'a [&'a Event]) -> Evaluation<'a> {
        Box::pin(async move {
            let _ = self.started.send(events.len());
            self.release.notified().await;
            Ok(vec![Vec::new(); events.len()])
        })
    }

    fn versions(&self) -> Versions {
        Versions {
            rule_pack: "stuck@0".into(),
            kb: "none".into(),
        }
    }
}

/// An evaluation that fails.
struct Failing;

impl Evaluator for Failing {
    fn evaluate<'a>(&'a self, _events: &'a [&'a Event]) -> Evaluation<'a> {
        Box::pin(async {
            Err(EvalError::Compile {
                rule_id: "GZ-TEST".into(),
                pack: "test@0".into(),
                message: "injected failure".into(),
            })
        })
    }

    fn versions(&self) -> Versions {
        Versions {
            rule_pack: "failing@0".into(),
            kb: "none".into(),
        }
    }
}

fn assert_skipped(reply: &http_support::Reply, reason: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["infcode"], 0, "{}", reply.text);
    assert_eq!(reply.body["err_msg"], "");
    assert_eq!(reply.body["output"]["result"], serde_json::json!([]));
    let warn = reply.body["warn_msg"].as_str().unwrap_or("");
    assert!(warn.contains("check skipped"), "{warn}");
    assert_eq!(reply.header("x-fundwatch-skipped"), Some(reason));
    assert_eq!(reply.body["inf_refmsgid"].as_str().map(str::len), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_the_answer_is_an_empty_result_saying_the_check_was_skipped() {
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let evaluator = Arc::new(Stuck {
        started,
        release: Arc::clone(&release),
    });
    let server = Server::start(
        "[http]\nbudget_ms = 100",
        evaluator,
        Arc::new(MemoryStore::new()),
    )
    .await;
    let sent = Instant::now();
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    let took = sent.elapsed();
    assert_skipped(&reply, "budget");
    assert!(
        reply.body["warn_msg"]
            .as_str()
            .unwrap_or("")
            .contains("100 ms")
    );
    assert!(
        took >= Duration::from_millis(100),
        "answered before the budget: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "fail-open took {took:?}");
    // The evaluation really was under way.
    assert_eq!(started_rx.try_recv().ok(), Some(1));
    release.notify_waiters();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_zero_skips_every_check_of_the_real_engine() {
    let server = Server::real_in_memory("[http]\nbudget_ms = 0").await;
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    assert_skipped(&reply, "budget");
    // Input errors are still reported: fail-open covers FundWatch's faults only.
    let reply = server.post("/fsi/3101", KEY_A, "{").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_error_is_answered_fail_open() {
    let server = Server::start("", Arc::new(Failing), Arc::new(MemoryStore::new())).await;
    let reply = server.post("/fsi/3101", KEY_A, b1_request()).await;
    assert_skipped(&reply, "engine_error");
    assert!(
        reply.body["warn_msg"]
            .as_str()
            .unwrap_or("")
            .contains("injected failure"),
        "{}",
        reply.text
    );
    let metrics = server.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("fundwatch_http_fail_open_total{reason=\"engine_error\"} 1"),
        "{}",
        metrics.text
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_shed_at_once_with_503_and_nothing_hangs() {
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let evaluator = Arc::new(Stuck {
        started,
        release: Arc::clone(&release),
    });
    // One evaluation at a time, one request may wait.
    let server = Server::start(
        "[http]\nbudget_ms = 3000\n[http.batch]\nqueue = 1\nconcurrency = 1\nmax_wait_us = 0",
        evaluator,
        Arc::new(MemoryStore::new()),
    )
    .await;
    let addr = server.addr;
    let post = move || {
        tokio::spawn(async move {
            http_support::call(
                addr,
                Method::POST,
                "/fsi/3101",
                Some(KEY_A),
                Some(b1_request().into_bytes()),
            )
            .await
        })
    };
    // The first request is being evaluated (and stays so)…
    let first = post();
    tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
        .await
        .expect("first evaluation starts");
    // …the second waits in the queue…
    let second = post();
    wait_until(Duration::from_secs(10), || async {
        let ready = http_support::call(addr, Method::GET, "/readyz", None, None).await;
        ready.body["queue_depth"] == 1
    })
    .await;
    // …so the third is shed at once.
    let sent = Instant::now();
    let third = server.post("/fsi/3101", KEY_A, b1_request()).await;
    assert!(sent.elapsed() < Duration::from_secs(1), "shedding waited");
    assert_eq!(
        third.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        third.text
    );
    assert_eq!(third.body["infcode"], -1);
    assert!(
        third.err_msg().contains("overloaded"),
        "{}",
        third.err_msg()
    );
    assert_eq!(third.header("retry-after"), Some("1"));
    assert!(third.body["error"]["field"].is_null());

    // The two others are answered fail-open when their budget runs out.
    for task in [first, second] {
        let reply = task.await.expect("request task");
        assert_skipped(&reply, "budget");
    }
    release.notify_waiters();
    server.stop().await;
}
