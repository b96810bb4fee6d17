//! Version administration over HTTP: KB import/activation, pack
//! publish/activation/rollback, shadow mode (docs/registry.md §HTTP).
//!
//! The routes sit behind the admin guard (admin key only, every call in the
//! audit log, see [`super::api::admin_guard`]); the registry's own activation
//! log records who changed what from what to what. Activation work — loading,
//! compiling, running the pack's cases — runs on a thread of its own with a
//! runtime of its own: neither the request threads nor the evaluation runtime
//! ever wait for it, and the swap at its end is one pointer store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fundwatch_engine::deploy::{ActivationReport, DeployError};
use fundwatch_engine::{Engine, VersionManager};
use fundwatch_rules::RegistryError;
use fundwatch_rules::registry::{Kind, diff_packs};
use futures::future::BoxFuture;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::auth::Principal;
use super::error::ApiError;
use super::server::AppState;

/// What the version endpoints act on: the engine's [`VersionManager`], and the
/// process metrics whose `_info` gauges name the versions in force.
#[derive(Debug)]
pub struct VersionControl {
    manager: Arc<VersionManager>,
    metrics: Option<crate::metrics::Metrics>,
}

impl VersionControl {
    /// Version control over `manager` (whose engine the service evaluates with).
    pub fn new(manager: Arc<VersionManager>) -> Self {
        Self {
            manager,
            metrics: None,
        }
    }

    /// Registers the shadow-mode metrics in `metrics` and keeps its
    /// `fundwatch_kb_info` / `fundwatch_rule_pack_info` gauges current.
    pub fn with_metrics(mut self, metrics: &crate::metrics::Metrics) -> Self {
        let collector = ShadowCollector::new(self.manager.engine().clone());
        if let Err(err) = metrics.registry().register(Box::new(collector)) {
            tracing::warn!(error = %err, "shadow metrics not registered");
        }
        self.metrics = Some(metrics.clone());
        self.publish_versions();
        self
    }

    /// The manager.
    pub fn manager(&self) -> &Arc<VersionManager> {
        &self.manager
    }

    /// Follows activations made by other processes (`fundwatch rules activate`
    /// on the same registry): every `interval` the registry's state is compared
    /// with the running deployment and, when it moved, built and swapped in.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        self.manager
            .follow(interval, move || this.publish_versions())
    }

    fn publish_versions(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let d = self.manager.engine().deployment();
        let program = d.latest();
        metrics.set_active_versions(&program.pack().version_label(), program.kb().id());
        metrics.set_shadow_version(d.shadow().map(|s| s.label()).as_deref());
    }
}

/// Runs `work` on a thread of its own with a current-thread runtime.
async fn off_hot_path<T: Send + 'static>(
    work: impl FnOnce() -> BoxFuture<'static, T> + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("fundwatch-activate".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let _ = tx.send(runtime.block_on(work()));
                }
                Err(err) => tracing::error!(error = %err, "cannot start the activation runtime"),
            }
        });
    if let Err(err) = spawned {
        return Err(ApiError::general(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start the activation thread: {err}"),
        ));
    }
    rx.await.map_err(|_| {
        ApiError::general(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the activation thread stopped without an answer; see the log",
        )
    })
}

fn control(state: &AppState) -> Result<&Arc<VersionControl>, ApiError> {
    state.version_control.get().ok_or_else(|| {
        ApiError::general(
            StatusCode::NOT_FOUND,
            "this service runs fixed versions (engine.kb / engine.rules in the config); \
             set engine.registry to manage versions",
        )
    })
}

fn actor(state: &AppState, headers: &HeaderMap) -> String {
    match state.authenticate(headers) {
        Ok(Principal::Admin { name }) => name.clone(),
        Ok(other) => other.name().to_string(),
        Err(_) => "-".to_string(),
    }
}

fn deploy_error(err: DeployError) -> ApiError {
    let status = match &err {
        DeployError::Validation { .. } | DeployError::Compile(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        DeployError::Registry(RegistryError::NotFound(_)) => StatusCode::NOT_FOUND,
        DeployError::Kb(e) | DeployError::Registry(RegistryError::Kb(e))
            if matches!(**e, fundwatch_kb::KbError::VersionNotFound { .. }) =>
        {
            StatusCode::NOT_FOUND
        }
        DeployError::Registry(RegistryError::Conflict(_) | RegistryError::Refused(_)) => {
            StatusCode::CONFLICT
        }
        DeployError::Kb(_) | DeployError::Rules(_) | DeployError::Registry(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    ApiError::general(status, err.to_string())
}

/// A JSON body with the named fields; unknown fields are refused so a typo
/// never activates the wrong thing.
fn body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| ApiError::bad_request("body", r.body_text()))?;
    let bytes = if bytes.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("body", e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionBody {
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// Batch files on the server (xlsx as published, JSON, ICD lists).
    files: Vec<PathBuf>,
    base: Option<String>,
    effective_from: Option<String>,
    #[serde(default)]
    notes: String,
    /// Activate the new version once imported.
    #[serde(default)]
    activate: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// Pack directory on the server.
    dir: PathBuf,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    activate: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    a: String,
    b: String,
    limit: Option<usize>,
}

type ManagerOp = Box<
    dyn FnOnce(
            Arc<VersionManager>,
            String,
        ) -> BoxFuture<'static, Result<ActivationReport, DeployError>>
        + Send,
>;

/// Runs an activation by `who` off the hot path, then refreshes the version gauges.
async fn activate(
    control: &VersionControl,
    who: String,
    op: ManagerOp,
) -> Result<ActivationReport, ApiError> {
    let manager = Arc::clone(control.manager());
    let report = off_hot_path(move || op(manager, who))
        .await?
        .map_err(deploy_error)?;
    control.publish_versions();
    Ok(report)
}

/// The activation endpoints' answer: [`activate`] by the caller.
async fn activation(
    state: &AppState,
    headers: &HeaderMap,
    op: ManagerOp,
) -> Result<Response, ApiError> {
    let report = activate(control(state)?, actor(state, headers), op).await?;
    Ok(
        Json(json!({"activation": report.activation, "validation": report.validation}))
            .into_response(),
    )
}

/// `GET /api/v1/admin/versions`: the deployment in force, the registry state
/// and the last activations.
pub(crate) async fn versions(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let control = control(&state)?;
    let status = control.manager().status().map_err(deploy_error)?;
    let log = control
        .manager()
        .registry()
        .log()
        .map_err(|e| deploy_error(e.into()))?;
    let recent: Vec<_> = log.iter().rev().take(20).rev().collect();
    Ok(Json(json!({"status": status, "activations": recent})).into_response())
}

/// `GET /api/v1/admin/kb`: KB versions in the registry.
pub(crate) async fn kb_list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let control = control(&state)?;
    let registry = control.manager().registry();
    let versions = registry.kb().list().map_err(|e| deploy_error(e.into()))?;
    let active = registry.state().map_err(|e| deploy_error(e.into()))?.kb;
    let list: Vec<Value> = versions
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "content_hash": m.content_hash, "effective_from": m.effective_from,
                "created_at": m.created_at, "author": m.author, "notes": m.notes, "base": m.base,
                "points": m.counts.points, "active": active.contains(&m.id),
            })
        })
        .collect();
    Ok(Json(json!({"count": list.len(), "versions": list, "timeline": active})).into_response())
}

/// `POST /api/v1/admin/kb/import {files, base?, effective_from?, notes?, activate?}`.
pub(crate) async fn kb_import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ImportBody = body(raw)?;
    if request.files.is_empty() {
        return Err(ApiError::bad_request(
            "files",
            "name at least one batch file on the server (xlsx as published, batch_NN.json, ICD lists)",
        ));
    }
    let effective_from = match &request.effective_from {
        Some(text) => Some(fundwatch_kb::parse_date(text).map_err(|_| {
            ApiError::bad_request("effective_from", "expected YYYY-MM-DD").with_value(text.clone())
        })?),
        None => None,
    };
    let control = control(&state)?;
    let manager = Arc::clone(control.manager());
    let who = actor(&state, &headers);
    let files = request.files.clone();
    let base = request.base.clone();
    let options = fundwatch_kb::ImportOptions {
        effective_from,
        author: Some(who.clone()),
        notes: Some(request.notes.clone()),
        created_at: None,
        progress: None,
    };
    let imported = off_hot_path(move || {
        Box::pin(async move {
            manager
                .builder()
                .import_kb(base.as_deref(), &files, &options)
        })
    })
    .await?
    .map_err(deploy_error)?;
    let (manifest, new) = imported;
    let mut answer = json!({
        "imported": {"id": manifest.id, "new": new, "effective_from": manifest.effective_from,
                     "base": manifest.base, "points": manifest.counts.points,
                     "content_hash": manifest.content_hash},
    });
    if request.activate {
        let id = manifest.id.clone();
        let op: ManagerOp =
            Box::new(move |m, who| Box::pin(async move { m.activate_kb(&id, &who).await }));
        let report = activate(control, who, op).await?;
        answer["activation"] = json!(report.activation);
        answer["validation"] = json!(report.validation);
    }
    Ok(Json(answer).into_response())
}

/// `POST /api/v1/admin/kb/activate {version}`.
pub(crate) async fn kb_activate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let VersionBody { version } = body(raw)?;
    activation(
        &state,
        &headers,
        Box::new(move |m, who| Box::pin(async move { m.activate_kb(&version, &who).await })),
    )
    .await
}

/// `POST /api/v1/admin/kb/rollback`.
pub(crate) async fn kb_rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    activation(
        &state,
        &headers,
        Box::new(|m, who| Box::pin(async move { m.rollback(Kind::Kb, &who).await })),
    )
    .await
}

/// `GET /api/v1/admin/kb/diff?a=&b=&limit=`: knowledge points added, removed, changed.
pub(crate) async fn kb_diff(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("query", r.body_text()))?;
    let control = control(&state)?;
    let manager = Arc::clone(control.manager());
    let (a, b) = (q.a.clone(), q.b.clone());
    let diff = off_hot_path(move || {
        Box::pin(async move {
            let ka = manager.builder().kb(&a)?;
            let kb = manager.builder().kb(&b)?;
            Ok::<_, DeployError>(fundwatch_kb::diff(&ka, &kb))
        })
    })
    .await?
    .map_err(deploy_error)?;
    let limit = q.limit.unwrap_or(1000);
    Ok(Json(json!({
        "a": diff.a, "b": diff.b,
        "counts": {"added": diff.added.len(), "removed": diff.removed.len(), "changed": diff.changed.len()},
        "by_rule_class": diff.by_rule_class(),
        "added": diff.added.iter().take(limit).collect::<Vec<_>>(),
        "removed": diff.removed.iter().take(limit).collect::<Vec<_>>(),
        "changed": diff.changed.iter().take(limit).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/admin/rules`: published packs, active and shadow.
pub(crate) async fn rules_list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let control = control(&state)?;
    let registry = control.manager().registry();
    let packs = registry
        .packs()
        .list()
        .map_err(|e| deploy_error(e.into()))?;
    let s = registry.state().map_err(|e| deploy_error(e.into()))?;
    Ok(
        Json(json!({"count": packs.len(), "packs": packs, "active": s.pack, "shadow": s.shadow}))
            .into_response(),
    )
}

/// `POST /api/v1/admin/rules/publish {dir, notes?, activate?}`.
pub(crate) async fn rules_publish(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: PublishBody = body(raw)?;
    let control = control(&state)?;
    let who = actor(&state, &headers);
    let (record, new) = control
        .manager()
        .registry()
        .packs()
        .publish(&request.dir, &who, &request.notes)
        .map_err(|e| deploy_error(e.into()))?;
    let mut answer = json!({"published": record, "new": new});
    if request.activate {
        let id = record.id.clone();
        let op: ManagerOp =
            Box::new(move |m, who| Box::pin(async move { m.activate_pack(&id, &who).await }));
        let report = activate(control, who, op).await?;
        answer["activation"] = json!(report.activation);
        answer["validation"] = json!(report.validation);
    }
    Ok(Json(answer).into_response())
}

/// `POST /api/v1/admin/rules/activate {version}`.
pub(crate) async fn rules_activate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let VersionBody { version } = body(raw)?;
    activation(
        &state,
        &headers,
        Box::new(move |m, who| Box::pin(async move { m.activate_pack(&version, &who).await })),
    )
    .await
}

/// `POST /api/v1/admin/rules/rollback`.
pub(crate) async fn rules_rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    activation(
        &state,
        &headers,
        Box::new(|m, who| Box::pin(async move { m.rollback(Kind::Pack, &who).await })),
    )
    .await
}

/// `GET /api/v1/admin/rules/diff?a=&b=`.
pub(crate) async fn rules_diff(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("query", r.body_text()))?;
    let control = control(&state)?;
    let builder = control.manager().builder();
    let load = |id: &str| {
        builder
            .pack(if id == "default" { None } else { Some(id) })
            .map_err(deploy_error)
    };
    let (a, b) = (load(&q.a)?, load(&q.b)?);
    Ok(Json(json!(diff_packs(&a, &b))).into_response())
}

/// `POST /api/v1/admin/shadow {version}`: start a shadow candidate.
pub(crate) async fn shadow_start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let VersionBody { version } = body(raw)?;
    activation(
        &state,
        &headers,
        Box::new(move |m, who| Box::pin(async move { m.shadow(&version, &who).await })),
    )
    .await
}

/// `GET /api/v1/admin/shadow`: per-rule hit counts and the alert diff.
pub(crate) async fn shadow_report(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let control = control(&state)?;
    let deployment = control.manager().engine().deployment();
    match deployment.shadow() {
        None => Err(ApiError::general(
            StatusCode::NOT_FOUND,
            "no shadow candidate runs; POST /api/v1/admin/shadow {\"version\": …} starts one",
        )),
        Some(shadow) => Ok(Json(json!(shadow.report())).into_response()),
    }
}

/// `POST /api/v1/admin/shadow/promote`.
pub(crate) async fn shadow_promote(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    activation(
        &state,
        &headers,
        Box::new(|m, who| Box::pin(async move { m.promote(&who).await })),
    )
    .await
}

/// `POST /api/v1/admin/shadow/discard`.
pub(crate) async fn shadow_discard(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    activation(
        &state,
        &headers,
        Box::new(|m, who| Box::pin(async move { m.discard(&who).await })),
    )
    .await
}

/// Shadow-mode measurements as Prometheus gauges, read from the engine at each
/// scrape (the run's totals since it started; they restart with a new candidate).
#[derive(Debug)]
struct ShadowCollector {
    engine: Engine,
    alerts: IntGaugeVec,
    diff: IntGaugeVec,
    batches: IntGaugeVec,
}

impl ShadowCollector {
    fn new(engine: Engine) -> Self {
        // Constant, valid names and labels.
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        Self {
            engine,
            alerts: gauge(
                "fundwatch_shadow_alerts",
                "Shadow run: alerts per rule of the active pack and of the candidate on the same batches",
                &["rule_id", "pack"],
            ),
            diff: gauge(
                "fundwatch_shadow_alert_diff",
                "Shadow run: alerts only the candidate (only_candidate) or only the active pack (only_active) raised",
                &["rule_id", "side"],
            ),
            batches: gauge(
                "fundwatch_shadow_batches",
                "Shadow run: micro-batches evaluated by the candidate, skipped (busy) or failed",
                &["outcome"],
            ),
        }
    }
}

impl Collector for ShadowCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.alerts.desc();
        d.extend(self.diff.desc());
        d.extend(self.batches.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.alerts.reset();
        self.diff.reset();
        self.batches.reset();
        let deployment = self.engine.deployment();
        let Some(shadow) = deployment.shadow() else {
            return Vec::new();
        };
        let r = shadow.report();
        let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        for (rule, s) in &r.rules {
            self.alerts
                .with_label_values(&[rule, "active"])
                .set(n(s.active));
            self.alerts
                .with_label_values(&[rule, "candidate"])
                .set(n(s.candidate));
            self.diff
                .with_label_values(&[rule, "only_candidate"])
                .set(n(s.only_candidate));
            self.diff
                .with_label_values(&[rule, "only_active"])
                .set(n(s.only_active));
        }
        self.batches
            .with_label_values(&["evaluated"])
            .set(n(r.batches));
        self.batches
            .with_label_values(&["skipped"])
            .set(n(r.skipped_batches));
        self.batches.with_label_values(&["failed"]).set(n(r.errors));
        let mut out = self.alerts.collect();
        out.extend(self.diff.collect());
        out.extend(self.batches.collect());
        out
    }
}
