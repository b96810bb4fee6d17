//! [`Service`]: the router, its shared state and the runtimes behind it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::admin;
use super::api;
use super::auth::{AuthError, Authenticator, Principal};
use super::batcher::{BatchSettings, Batcher, Evaluator, Versions};
use super::config::HttpConfig;
use super::envelope::MsgIds;
use super::error::ApiError;
use super::fsi;
use super::metrics::Metrics;
use super::openapi;
use super::store::AlertStore;

/// Header: server-side microseconds from request head to response.
pub const SERVER_US_HEADER: &str = "x-fundwatch-server-us";
/// Header: microseconds of the engine call that evaluated the request's batch.
pub const EVAL_US_HEADER: &str = "x-fundwatch-eval-us";
/// Header: events in that engine call.
pub const BATCH_HEADER: &str = "x-fundwatch-batch";
/// Header on a fail-open answer: why the check was skipped.
pub const SKIPPED_HEADER: &str = "x-fundwatch-skipped";

/// Starting the service failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The evaluation runtime could not start.
    #[error("starting {threads} evaluation threads: {source}")]
    Runtime {
        /// Threads asked for.
        threads: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// `[http.tls]` cannot be used (a file unreadable, a key not matching).
    #[error(transparent)]
    Tls(#[from] super::config::ConfigError),
}

/// State shared by the handlers.
#[derive(Debug)]
pub(crate) struct AppState {
    pub auth: Authenticator,
    pub batcher: Batcher,
    pub store: Arc<dyn AlertStore>,
    pub metrics: Arc<Metrics>,
    pub ids: MsgIds,
    pub budget: Duration,
    pub versions: Versions,
    pub settings: BatchSettings,
    pub started: Instant,
    /// Partitions assigned to the Kafka pipeline, when this process runs one:
    /// `/readyz` then needs at least one.
    pub kafka_assigned: OnceLock<prometheus::IntGauge>,
    /// Set when shutdown begins: `/readyz` answers 503 so load balancers stop
    /// sending while the requests in flight finish.
    pub draining: AtomicBool,
    /// The version registry's endpoints act on this (unset: fixed versions).
    pub version_control: OnceLock<Arc<super::admin::VersionControl>>,
}

impl AppState {
    /// The versions in force now (they change on activation).
    pub fn versions(&self) -> Versions {
        match self.version_control.get() {
            Some(control) => {
                let program = control.manager().engine().program();
                Versions {
                    rule_pack: program.pack().version_label(),
                    kb: program.kb().id().to_string(),
                }
            }
            None => self.versions.clone(),
        }
    }

    /// The institution whose key `headers` carry: 401 without a valid key, 403 for
    /// an admin key.
    pub fn institution(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        match self.authenticate(headers)? {
            Principal::Institution { fixmedins_code, .. } => Ok(fixmedins_code.clone()),
            Principal::Admin { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "X-FundWatch-Key",
                "an admin key cannot act for an institution: use the institution's own key",
            )),
        }
    }

    /// Who `headers` authenticate as (401 otherwise).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Principal, ApiError> {
        self.auth.authenticate(headers).map_err(|err: AuthError| {
            ApiError::new(StatusCode::UNAUTHORIZED, "X-FundWatch-Key", err.to_string())
        })
    }
}

/// Owns the evaluation runtime; shutting it down without blocking makes the
/// service safe to drop from inside an async context (tests).
#[derive(Debug)]
struct EvalRuntime(Option<tokio::runtime::Runtime>);

impl Drop for EvalRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The inline HTTP service: `/fsi/3101`, `/fsi/3102`, `/fsi/3103`, the alert API,
/// admin endpoints, health, metrics and `/openapi.json` (docs/http.md).
#[derive(Debug)]
pub struct Service {
    state: Arc<AppState>,
    max_body_bytes: usize,
    /// `[http.tls]`, read at start.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    _eval: EvalRuntime,
}

impl Service {
    /// Builds the service; must be called inside a tokio runtime (the batch
    /// collector is spawned on it). Evaluation runs on `config.eval_threads`
    /// threads of its own.
    pub fn new(
        config: &HttpConfig,
        auth: Authenticator,
        evaluator: Arc<dyn Evaluator>,
        store: Arc<dyn AlertStore>,
    ) -> Result<Self, ServiceError> {
        Self::with_metrics(
            config,
            auth,
            evaluator,
            store,
            &crate::metrics::Metrics::new(),
        )
    }

    /// [`Service::new`] registering in, and serving at `/metrics`, the
    /// process-wide `metrics` (shared with the Kafka pipeline or the demo). Stage
    /// durations of the engine show only if the evaluator reports them (an
    /// [`Engine`](fundwatch_engine::Engine) built
    /// `with_observer(metrics.source(Source::Http))`).
    pub fn with_metrics(
        config: &HttpConfig,
        auth: Authenticator,
        evaluator: Arc<dyn Evaluator>,
        store: Arc<dyn AlertStore>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, ServiceError> {
        let tls = config
            .tls
            .as_ref()
            .map(super::tls::server_config)
            .transpose()?;
        let threads = config.eval_threads();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("fundwatch-eval")
            .enable_all()
            .build()
            .map_err(|source| ServiceError::Runtime { threads, source })?;
        let settings = BatchSettings {
            max_events: config.batch.max_events,
            max_wait: Duration::from_micros(config.batch.max_wait_us),
            queue: config.batch.queue,
            concurrency: if config.batch.concurrency > 0 {
                config.batch.concurrency
            } else {
                threads
            },
        };
        let versions = evaluator.versions();
        metrics.set_active_versions(&versions.rule_pack, &versions.kb);
        let metrics = metrics.http();
        let batcher = Batcher::start(
            settings,
            evaluator,
            Arc::clone(&store),
            runtime.handle().clone(),
            Arc::clone(&metrics),
        );
        let state = AppState {
            auth,
            batcher,
            store,
            metrics,
            ids: MsgIds::new(&config.admdvs),
            budget: config.budget(),
            versions,
            settings,
            started: Instant::now(),
            kafka_assigned: OnceLock::new(),
            draining: AtomicBool::new(false),
            version_control: OnceLock::new(),
        };
        Ok(Self {
            state: Arc::new(state),
            max_body_bytes: config.max_body_bytes,
            tls,
            _eval: EvalRuntime(Some(runtime)),
        })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Makes `/readyz` also require a Kafka partition assignment (this process
    /// runs the pipeline whose metrics `kafka` are).
    pub fn require_kafka(&self, kafka: &crate::kafka::KafkaMetrics) {
        let _ = self
            .state
            .kafka_assigned
            .set(kafka.assigned_partitions.clone());
    }

    /// Enables the version endpoints (`/api/v1/admin/{versions,kb,rules,shadow}`,
    /// docs/registry.md) over `control`, whose engine must be the evaluator's.
    pub fn set_version_control(&self, control: Arc<super::admin::VersionControl>) {
        let _ = self.state.version_control.set(control);
    }

    /// The router (for embedding or for driving without a socket).
    pub fn router(&self) -> Router {
        let admin = Router::new()
            .route("/api/v1/admin/audit", get(api::admin_audit))
            .route("/api/v1/admin/status", get(api::admin_status))
            .route("/api/v1/admin/alerts", get(api::admin_alerts))
            .route("/api/v1/admin/versions", get(admin::versions))
            .route("/api/v1/admin/kb", get(admin::kb_list))
            .route("/api/v1/admin/kb/import", post(admin::kb_import))
            .route("/api/v1/admin/kb/activate", post(admin::kb_activate))
            .route("/api/v1/admin/kb/rollback", post(admin::kb_rollback))
            .route("/api/v1/admin/kb/diff", get(admin::kb_diff))
            .route("/api/v1/admin/rules", get(admin::rules_list))
            .route("/api/v1/admin/rules/publish", post(admin::rules_publish))
            .route("/api/v1/admin/rules/activate", post(admin::rules_activate))
            .route("/api/v1/admin/rules/rollback", post(admin::rules_rollback))
            .route("/api/v1/admin/rules/diff", get(admin::rules_diff))
            .route(
                "/api/v1/admin/shadow",
                get(admin::shadow_report).post(admin::shadow_start),
            )
            .route("/api/v1/admin/shadow/promote", post(admin::shadow_promote))
            .route("/api/v1/admin/shadow/discard", post(admin::shadow_discard))
            .route_layer(middleware::from_fn_with_state(
                Arc::clone(&self.state),
                api::admin_guard,
            ));
        Router::new()
            .route("/fsi/3101", post(fsi::fsi_3101))
            .route("/fsi/3102", post(fsi::fsi_3102))
            .route("/fsi/3103", post(fsi::fsi_3103))
            .route("/api/v1/alerts", get(api::alerts))
            .route("/api/v1/alerts/{jr_id}", get(api::alert))
            .merge(admin)
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi_json))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&self.state),
                timing,
            ))
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes, then finishes the requests
    /// in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let state = Arc::clone(&self.state);
        let shutdown = async move {
            shutdown.await;
            state.draining.store(true, Ordering::SeqCst);
            tracing::info!("HTTP: not ready any more; finishing the requests in flight");
        };
        if let Some(tls) = &self.tls {
            let listener = super::tls::TlsListener::new(listener, Arc::clone(tls))?;
            return axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
        }
        let listener = listener.tap_io(|stream| {
            // Small JSON answers: do not let Nagle hold them back.
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// A coarse endpoint label (no ids in labels).
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/fsi/3101" => "3101",
        "/fsi/3102" => "3102",
        "/fsi/3103" => "3103",
        p if p.starts_with("/api/v1/admin/") => "admin",
        p if p.starts_with("/api/v1/alerts") => "alerts",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        _ => "other",
    }
}

/// Measures every request and stamps `X-FundWatch-Server-Us`.
async fn timing(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = endpoint_label(request.uri().path());
    // One span per request: the endpoint, never ids or personal data.
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        endpoint,
        status = tracing::field::Empty,
        us = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    span.record("status", response.status().as_u16());
    span.record("us", elapsed.as_micros() as u64);
    state
        .metrics
        .latency
        .with_label_values(&[endpoint])
        .observe(elapsed.as_secs_f64());
    state
        .metrics
        .requests
        .with_label_values(&[endpoint, response.status().as_str()])
        .inc();
    if let Ok(value) = HeaderValue::from_str(&elapsed.as_micros().to_string()) {
        response.headers_mut().insert(SERVER_US_HEADER, value);
    }
    response
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready = the KB and the rule pack are loaded, the evaluator runs, Kafka has
/// assigned partitions (when this process consumes) and shutdown has not begun.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let batcher = &state.batcher;
    let versions = state.versions();
    let kafka = state.kafka_assigned.get().map(prometheus::IntGauge::get);
    let mut waiting: Vec<&str> = Vec::new();
    if versions.kb.is_empty() {
        waiting.push("knowledge base not loaded");
    }
    if versions.rule_pack.is_empty() {
        waiting.push("rule pack not loaded");
    }
    if !batcher.is_running() {
        waiting.push("evaluator stopped");
    }
    if kafka.is_some_and(|assigned| assigned <= 0) {
        waiting.push("no Kafka partition assigned yet");
    }
    if state.draining.load(Ordering::SeqCst) {
        waiting.push("shutting down");
    }
    let ready = waiting.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "waiting_for": waiting,
        "rule_pack": versions.rule_pack,
        "kb": versions.kb,
        "kafka_assigned_partitions": kafka,
        "queue_depth": batcher.depth(),
        "queue_capacity": batcher.capacity(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi::DOCUMENT,
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "path",
        "no such endpoint; the endpoints are listed in /openapi.json",
    )
    .with_value(request.uri().path().to_string())
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        format!(
            "{} does not accept this method (3101/3102/3103 are POST, the alert API is GET)",
            request.uri().path()
        ),
    )
    .with_value(request.method().to_string())
}
