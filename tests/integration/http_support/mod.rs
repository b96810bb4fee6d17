//! Shared by the `tests/http_*.rs` end-to-end tests: a FundWatch HTTP service on
//! 127.0.0.1:0 with the real national KB and pack (or a stand-in evaluator), and a
//! small hyper client.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fundwatch_connectors::http::store::AlertStore;
use fundwatch_connectors::http::{
    Authenticator, Evaluator, MemoryStore, NdjsonStore, ServeConfig, Service,
};
use fundwatch_engine::{Clock, Engine, Program, ProgramOptions};
use fundwatch_rules::RulePack;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Institution of the DOMAIN B.1 request.
pub const HOSPITAL_A: &str = "H43079600001";
/// Institution of fixture line 5 (bare `data`, `medins_id`).
pub const HOSPITAL_B: &str = "H11010500003";
/// Keys.
pub const KEY_A: &str = "key-of-hospital-a-0123456789";
pub const KEY_B: &str = "key-of-hospital-b-0123456789";
pub const KEY_ADMIN: &str = "key-of-the-operator-0123456789";

/// A config with the three keys; `extra` is appended TOML (e.g. `[http]` keys).
pub fn config(extra: &str) -> (ServeConfig, Authenticator) {
    let text = format!(
        r#"{extra}

[[auth.keys]]
role = "institution"
fixmedins_code = "{HOSPITAL_A}"
key = "{KEY_A}"

[[auth.keys]]
role = "institution"
fixmedins_code = "{HOSPITAL_B}"
key = "{KEY_B}"

[[auth.keys]]
role = "admin"
name = "ops"
key = "{KEY_ADMIN}"
"#
    );
    let config = ServeConfig::from_toml(&text, "<test>").expect("test config parses");
    config.validate().expect("test config validates");
    let auth = Authenticator::from_config(&config.auth.keys, |_| None).expect("test keys");
    (config, auth)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real engine (shipped national KB × national pack). The program is compiled
/// once per test binary; each call gets an engine with a history of its own, so
/// tests do not see each other's events.
pub fn engine() -> Engine {
    static PROGRAM: OnceLock<Arc<Program>> = OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        // Compiling is async; the tests' own runtimes cannot block, so compile on a
        // thread with a runtime of its own.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let kb = Arc::new(fundwatch_kb::national().expect("shipped national KB"));
                let pack = Arc::new(
                    RulePack::load(repo().join("rule-base/packs/national")).expect("national pack"),
                );
                let program = Program::compile(pack, kb, &ProgramOptions::default())
                    .await
                    .expect("national pack compiles");
                Arc::new(program)
            })
        })
        .join()
        .expect("compiling the engine")
    });
    Engine::new(Arc::clone(program), Clock::Wall)
}

/// A running service; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts `evaluator` behind the config's `[http]` with `store`.
    pub async fn start(
        extra_config: &str,
        evaluator: Arc<dyn Evaluator>,
        store: Arc<dyn AlertStore>,
    ) -> Self {
        let (config, auth) = config(extra_config);
        let service = Service::new(&config.http, auth, evaluator, store).expect("service");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve(listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The real engine with an NDJSON store in `dir`.
    pub async fn real(extra_config: &str, dir: &Path) -> Self {
        let store = Arc::new(NdjsonStore::open(dir, false).expect("store"));
        Self::start(extra_config, Arc::new(engine()), store).await
    }

    /// The real engine with a memory store.
    pub async fn real_in_memory(extra_config: &str) -> Self {
        Self::start(
            extra_config,
            Arc::new(engine()),
            Arc::new(MemoryStore::new()),
        )
        .await
    }

    /// Stops accepting, finishes requests in flight and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .expect("server task")
                .expect("server ran");
        }
    }

    /// One request; the answer's status, headers and JSON body (`Value::Null` when
    /// the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        call(self.addr, method, path, key, body).await
    }

    /// `POST path` with `body` as the given key.
    pub async fn post(&self, path: &str, key: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.call(Method::POST, path, Some(key), Some(body.into()))
            .await
    }

    /// `GET path` as the given key.
    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// `err_msg`.
    pub fn err_msg(&self) -> &str {
        self.body["err_msg"].as_str().unwrap_or("")
    }

    /// `error.field`.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request on a fresh loopback connection, bounded by 30 s so a hang
/// fails the test instead of stalling it.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let work = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("x-fundwatch-key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("answered within 30 s")
}

/// Lines of `tests/fixtures/events.ndjson`.
pub fn fixture_lines() -> Vec<String> {
    std::fs::read_to_string(repo().join("tests/fixtures/events.ndjson"))
        .expect("fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The DOMAIN Appendix B.1 request (fixture line 1).
pub fn b1_request() -> String {
    fixture_lines().into_iter().next().expect("line 1")
}

/// Waits until `condition` holds, polling every 5 ms, for at most `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let work = async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .expect("condition reached in time");
}
