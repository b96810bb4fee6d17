//! `POST /fsi/3101` (事前), `/fsi/3102` (事中) and `/fsi/3103` (feedback), in the
//! national envelope or as the bare `data` object.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Local;
use fundwatch_engine::event::Envelope;
use fundwatch_engine::{Alert, Event, Stage, data_path, decode_request};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::batcher::{Job, Outcome, SubmitError};
use super::envelope::{FsiResponse, Stamp};
use super::error::ApiError;
use super::server::{AppState, BATCH_HEADER, EVAL_US_HEADER, SKIPPED_HEADER};
use super::store::{Feedback, StoreError};

/// Which inline interface a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Infno {
    /// 3101 明细审核事前分析服务: scenarios 1–5.
    PreEvent,
    /// 3102 明细审核事中分析服务: scenarios 6–10.
    InProcess,
}

impl Infno {
    fn code(self) -> &'static str {
        match self {
            Self::PreEvent => "3101",
            Self::InProcess => "3102",
        }
    }

    fn accepts(self, scenario: u8) -> bool {
        match self {
            Self::PreEvent => (1..=5).contains(&scenario),
            Self::InProcess => (6..=10).contains(&scenario),
        }
    }

    fn scenario_rule(self) -> &'static str {
        match self {
            Self::PreEvent => {
                "3101 (事前) accepts trig_scen 1–5 (1 门诊挂号, 2 门诊收费登记, 3 住院登记, 4 住院收费登记, 5 住院执行医嘱); send 事中 scenarios 6–10 to /fsi/3102"
            }
            Self::InProcess => {
                "3102 (事中) accepts trig_scen 6–10 (6 门诊结算, 7 门诊预结算, 8 住院结算, 9 住院预结算, 10 购药划卡); send 事前 scenarios 1–5 to /fsi/3101"
            }
        }
    }
}

#[derive(Serialize)]
struct CheckOutput {
    result: Vec<Alert>,
}

/// `POST /fsi/3101`.
pub(crate) async fn fsi_3101(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    inline_check(&state, Infno::PreEvent, &headers, body).await
}

/// `POST /fsi/3102`.
pub(crate) async fn fsi_3102(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    inline_check(&state, Infno::InProcess, &headers, body).await
}

async fn inline_check(
    state: &AppState,
    infno: Infno,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let stamp = state.ids.stamp();
    let arrived = Instant::now();
    let deadline = arrived + state.budget;
    let rx = match admit(state, infno, headers, body) {
        Ok(rx) => rx,
        Err(err) => return err.with_stamp(&stamp).into_response(),
    };
    let source = &state.metrics.source;
    // tokio's timeout polls the answer before the clock, so an answer that is
    // ready only at the deadline (with budget_ms = 0: any answer) would count as
    // in time; it is late.
    let outcome = tokio::time::timeout_at(deadline.into(), rx)
        .await
        .ok()
        .filter(|_| Instant::now() < deadline);
    source.events_out.inc();
    match outcome {
        Some(Ok(Outcome::Done {
            alerts,
            eval,
            batch,
        })) => {
            source
                .event_to_alert
                .observe(arrived.elapsed().as_secs_f64());
            let mut response =
                axum::Json(FsiResponse::ok(stamp, CheckOutput { result: alerts })).into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&eval.as_micros().to_string()) {
                headers.insert(EVAL_US_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&batch.to_string()) {
                headers.insert(BATCH_HEADER, v);
            }
            response
        }
        Some(Ok(Outcome::Failed(message))) => fail_open(
            state,
            stamp,
            "engine_error",
            format!("the engine failed on this request ({message})"),
        ),
        Some(Err(_)) => fail_open(
            state,
            stamp,
            "engine_stopped",
            "the evaluation was interrupted (service shutting down or engine fault)".to_string(),
        ),
        None => fail_open(
            state,
            stamp,
            "budget",
            format!(
                "evaluation did not finish within the {} ms budget",
                state.budget.as_millis()
            ),
        ),
    }
}

/// Authenticates, decodes and validates the request and queues it.
fn admit(
    state: &AppState,
    infno: Infno,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<oneshot::Receiver<Outcome>, ApiError> {
    let institution = state.institution(headers)?;
    let source = &state.metrics.source;
    let started = Instant::now();
    let decoded = request_bytes(body).and_then(|bytes| {
        let (event, path) = decode_request(&bytes)?;
        Ok((path.prefix(), event))
    });
    source
        .stage(Stage::Decode)
        .observe(started.elapsed().as_secs_f64());
    let (prefix, mut event) = decoded.inspect_err(|_| source.error("decode"))?;
    source.events_in.inc();

    if let Some(envelope) = &event.envelope
        && !envelope.infno.is_empty()
        && envelope.infno != infno.code()
    {
        return Err(ApiError::bad_request(
            "infno",
            format!(
                "this is /fsi/{}; send infno {} requests to /fsi/{}",
                infno.code(),
                envelope.infno,
                envelope.infno
            ),
        )
        .with_value(format!("{:?}", envelope.infno)));
    }
    claim_institution(&mut event, &institution)?;
    if let Some(bad) = event.trig_scen.iter().find(|s| !infno.accepts(**s)) {
        return Err(
            ApiError::bad_request(format!("{prefix}trig_scen"), infno.scenario_rule())
                .with_value(bad.to_string()),
        );
    }

    let (respond, rx) = oneshot::channel();
    let job = Job {
        event,
        institution,
        respond,
    };
    match state.batcher.submit(job) {
        Ok(()) => Ok(rx),
        Err(SubmitError::Full) => {
            state.metrics.shed.inc();
            Err(ApiError::general(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "FundWatch is overloaded ({} requests already waiting): this request was not checked; continue without the check or retry (请求过多，本次未审核)",
                    state.batcher.capacity()
                ),
            ))
        }
        Err(SubmitError::Closed) => Err(ApiError::general(
            StatusCode::SERVICE_UNAVAILABLE,
            "FundWatch is shutting down: this request was not checked; continue without the check or retry (服务停止中，本次未审核)",
        )),
    }
}

/// The request must be for the key's institution. A request that names none
/// (bare `data` without `medins_id`) is attributed to it.
fn claim_institution(event: &mut Event, institution: &str) -> Result<(), ApiError> {
    let claimed = event.fixmedins_code();
    if claimed.is_empty() {
        match &mut event.envelope {
            Some(envelope) => envelope.fixmedins_code = institution.to_string(),
            None => {
                event.envelope = Some(Envelope {
                    fixmedins_code: institution.to_string(),
                    ..Envelope::default()
                });
            }
        }
        return Ok(());
    }
    if claimed == institution {
        return Ok(());
    }
    let from_envelope = event
        .envelope
        .as_ref()
        .is_some_and(|e| !e.fixmedins_code.is_empty());
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "fixmedins_code",
        format!(
            "this key belongs to institution {institution} and may only submit its requests{}",
            if from_envelope {
                ""
            } else {
                " (without an envelope the institution is the current encounter's medins_id)"
            }
        ),
    )
    .with_value(format!("{claimed:?}")))
}

fn fail_open(state: &AppState, stamp: Stamp, reason: &'static str, detail: String) -> Response {
    state.metrics.fail_open.with_label_values(&[reason]).inc();
    tracing::warn!(reason, %detail, "inline check skipped (fail-open)");
    let mut body = FsiResponse::ok(stamp, CheckOutput { result: Vec::new() });
    body.warn_msg = Some(format!(
        "FundWatch未完成本次审核，结果为空，请按正常流程继续 (check skipped: {detail}; the request was not checked)"
    ));
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(SKIPPED_HEADER, HeaderValue::from_static(reason));
    response
}

/// The body as JSON, or an error naming why it is not.
/// The body, refused when it could not be read or is empty.
fn request_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let bytes =
        body.map_err(|rejection| ApiError::new(rejection.status(), "$", rejection.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "$",
            "empty body: send the request as JSON (national envelope or the bare data object)",
        ));
    }
    Ok(bytes)
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = request_bytes(body)?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request("$", format!("not valid JSON: {err}")))
}

// ---------------------------------------------------------------- 3103

#[derive(Serialize)]
struct FeedbackOutput {
    accepted: usize,
}

/// `POST /fsi/3103`: `{warn_type, warns:[{warn_rslt_id, dspo_way, dspo_way_rea}]}`.
pub(crate) async fn fsi_3103(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let stamp = state.ids.stamp();
    match feedback(&state, &headers, body) {
        Ok(accepted) => {
            axum::Json(FsiResponse::ok(stamp, FeedbackOutput { accepted })).into_response()
        }
        Err(err) => err.with_stamp(&stamp).into_response(),
    }
}

fn feedback(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<usize, ApiError> {
    let institution = state.institution(headers)?;
    let value = json_body(body)?;
    let root = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("$", "expected a JSON object"))?;
    let prefix = data_path(&value).prefix();
    let mut msgid = String::new();
    let data: &Map<String, Value> = if let Some(input) = root.get("input") {
        if let Some(infno) = root.get("infno").and_then(scalar)
            && !infno.is_empty()
            && infno != "3103"
        {
            return Err(ApiError::bad_request(
                "infno",
                format!("this is /fsi/3103; send infno {infno} requests to /fsi/{infno}"),
            )
            .with_value(format!("{infno:?}")));
        }
        if let Some(code) = root.get("fixmedins_code").and_then(scalar)
            && !code.is_empty()
            && code != institution
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "fixmedins_code",
                format!(
                    "this key belongs to institution {institution} and may only send its feedback"
                ),
            )
            .with_value(format!("{code:?}")));
        }
        msgid = root.get("msgid").and_then(scalar).unwrap_or_default();
        input
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad_request("input.data", "missing or not an object"))?
    } else if let Some(data) = root.get("data").and_then(Value::as_object) {
        data
    } else {
        root
    };

    let field = |name: &str| format!("{prefix}{name}");
    let warn_type = data.get("warn_type").and_then(scalar).unwrap_or_default();
    if warn_type != "1" && warn_type != "2" {
        let err = ApiError::bad_request(
            field("warn_type"),
            "must be 1 (事前, for 3101 alerts) or 2 (事中, for 3102 alerts)",
        );
        return Err(match data.get("warn_type") {
            Some(v) => err.with_value(v.to_string()),
            None => err,
        });
    }
    let warns = data
        .get("warns")
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                field("warns"),
                "must be a non-empty array of {warn_rslt_id, dspo_way, dspo_way_rea}",
            )
        })?;

    let received_at = Local::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let mut entries = Vec::with_capacity(warns.len());
    for (i, warn) in warns.iter().enumerate() {
        let path = |name: &str| field(&format!("warns[{i}].{name}"));
        let warn = warn.as_object().ok_or_else(|| {
            ApiError::bad_request(field(&format!("warns[{i}]")), "expected an object")
        })?;
        let warn_rslt_id = warn
            .get("warn_rslt_id")
            .and_then(scalar)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    path("warn_rslt_id"),
                    "missing: the jr_id of the alert this feedback is about",
                )
            })?;
        let dspo_way = warn.get("dspo_way").and_then(scalar).unwrap_or_default();
        if dspo_way != "1" && dspo_way != "2" {
            let err = ApiError::bad_request(
                path("dspo_way"),
                "must be 1 (继续执行医嘱) or 2 (返回修改医嘱)",
            );
            return Err(match warn.get("dspo_way") {
                Some(v) => err.with_value(v.to_string()),
                None => err,
            });
        }
        let dspo_way_rea = warn
            .get("dspo_way_rea")
            .and_then(scalar)
            .unwrap_or_default();
        if dspo_way == "1" && dspo_way_rea.is_empty() {
            return Err(ApiError::bad_request(
                path("dspo_way_rea"),
                "mandatory when dspo_way = 1 (继续执行): give the reason for going ahead despite the alert",
            ));
        }
        if state.store.get(&institution, &warn_rslt_id).is_none() {
            return Err(unknown_alert(
                path("warn_rslt_id"),
                &institution,
                &warn_rslt_id,
            ));
        }
        entries.push(Feedback {
            warn_rslt_id,
            warn_type: warn_type.clone(),
            dspo_way,
            dspo_way_rea,
            msgid: msgid.clone(),
            received_at: received_at.clone(),
        });
    }
    match state.store.put_feedback(&institution, &entries) {
        Ok(()) => Ok(entries.len()),
        Err(StoreError::UnknownAlert { jr_id, .. }) => {
            let i = entries
                .iter()
                .position(|e| e.warn_rslt_id == jr_id)
                .unwrap_or(0);
            Err(unknown_alert(
                field(&format!("warns[{i}].warn_rslt_id")),
                &institution,
                &jr_id,
            ))
        }
        Err(err) => {
            state.metrics.store_errors.inc();
            tracing::error!(error = %err, "feedback not persisted");
            Err(ApiError::general(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the feedback could not be stored ({err}); send it again"),
            ))
        }
    }
}

/// Unknown and another institution's `jr_id` get the same answer, so a key cannot
/// learn which ids exist elsewhere.
fn unknown_alert(path: String, institution: &str, jr_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        path,
        format!(
            "unknown warn_rslt_id: no alert with this jr_id was issued to institution {institution}"
        ),
    )
    .with_value(format!("{jr_id:?}"))
}

/// A string or number as trimmed text (HIS send both).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
