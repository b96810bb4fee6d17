//! The alert API (`GET /api/v1/alerts`, `/api/v1/alerts/{jr_id}`) and the admin
//! endpoints (`/api/v1/admin/*`, admin key only, every call audit-logged).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Local, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;
use serde_json::json;

use super::auth::Principal;
use super::error::ApiError;
use super::server::AppState;
use super::store::{AlertQuery, AlertRecord, AuditEntry, TimeField};

/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Serialize)]
pub(crate) struct AlertList {
    count: usize,
    truncated: bool,
    alerts: Vec<AlertRecord>,
}

/// `GET /api/v1/alerts?mdtrt_id=&patn_id=&from=&to=&time_field=&limit=`: the
/// caller's institution's alerts with their feedback.
pub(crate) async fn alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<AlertList>, ApiError> {
    let institution = state.institution(&headers)?;
    let (query, _) = parse_query(params, false)?;
    Ok(Json(run_query(&state, &institution, query)))
}

/// `GET /api/v1/alerts/{jr_id}`: one alert of the caller's institution (404 for
/// another institution's, the same answer as for an unknown id).
pub(crate) async fn alert(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(jr_id): Path<String>,
) -> Result<Json<AlertRecord>, ApiError> {
    let institution = state.institution(&headers)?;
    state
        .store
        .get(&institution, &jr_id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "jr_id",
                format!("no alert with this jr_id was issued to institution {institution}"),
            )
            .with_value(format!("{jr_id:?}"))
        })
}

fn run_query(state: &AppState, institution: &str, mut query: AlertQuery) -> AlertList {
    let limit = query.limit;
    query.limit = limit + 1;
    let mut alerts = state.store.query(institution, &query);
    let truncated = alerts.len() > limit;
    alerts.truncate(limit);
    AlertList {
        count: alerts.len(),
        truncated,
        alerts,
    }
}

/// Parses the alert filters (and `fixmedins_code` for the admin variant); an
/// unknown or repeated parameter is an error, so a typo never widens a query.
fn parse_query(params: Params, admin: bool) -> Result<(AlertQuery, Option<String>), ApiError> {
    let Query(pairs) =
        params.map_err(|rejection| ApiError::bad_request("query", rejection.body_text()))?;
    let mut query = AlertQuery {
        limit: DEFAULT_LIMIT,
        ..AlertQuery::default()
    };
    let mut institution = None;
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &pairs {
        if seen.contains(&key.as_str()) {
            return Err(ApiError::bad_request(key.clone(), "given more than once"));
        }
        seen.push(key);
        let value = value.trim();
        match key.as_str() {
            "mdtrt_id" => query.mdtrt_id = Some(value.to_string()),
            "patn_id" => query.patn_id = Some(value.to_string()),
            "from" => query.from = Some(parse_time("from", value, false)?),
            "to" => query.to = Some(parse_time("to", value, true)?),
            "time_field" => {
                query.time_field = match value {
                    "emitted_at" => TimeField::EmittedAt,
                    "event_time" => TimeField::EventTime,
                    _ => {
                        return Err(ApiError::bad_request(
                            "time_field",
                            "must be emitted_at (default) or event_time",
                        )
                        .with_value(format!("{value:?}")));
                    }
                }
            }
            "limit" => {
                query.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "limit",
                            format!("must be a number from 1 to {MAX_LIMIT}"),
                        )
                        .with_value(format!("{value:?}"))
                    })?;
            }
            "fixmedins_code" if admin => institution = Some(value.to_string()),
            _ => {
                let known = if admin {
                    "fixmedins_code, mdtrt_id, patn_id, from, to, time_field, limit"
                } else {
                    "mdtrt_id, patn_id, from, to, time_field, limit"
                };
                return Err(ApiError::bad_request(
                    key.clone(),
                    format!("unknown query parameter; the parameters are {known}"),
                ));
            }
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(ApiError::bad_request("from", "is later than to"));
    }
    Ok((query, institution))
}

/// `yyyy-MM-dd[ HH:mm:ss[.SSS]]`, `yyyy-MM-ddTHH:mm:ss`, `yyyyMMdd`,
/// `yyyyMMddHHmmss[SSS]`; a bare date as `to` means the end of that day.
fn parse_time(field: &str, text: &str, end_of_day: bool) -> Result<NaiveDateTime, ApiError> {
    let day_bound = |date: NaiveDate| {
        if end_of_day {
            date.and_time(NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN))
        } else {
            date.and_time(NaiveTime::MIN)
        }
    };
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(day_bound)
        })
        .or_else(|| match text.len() {
            8 => NaiveDate::parse_from_str(text, "%Y%m%d")
                .ok()
                .map(day_bound),
            14 => NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S").ok(),
            17 => {
                let (seconds, millis) = text.split_at(14);
                let millis: i64 = millis.parse().ok()?;
                NaiveDateTime::parse_from_str(seconds, "%Y%m%d%H%M%S")
                    .ok()
                    .map(|t| t + chrono::Duration::milliseconds(millis))
            }
            _ => None,
        });
    parsed.ok_or_else(|| {
        ApiError::bad_request(
            field,
            "expected a time such as 2025-06-14, 2025-06-14 14:27:24 or 20250614142724",
        )
        .with_value(format!("{text:?}"))
    })
}

// ---------------------------------------------------------------- admin

/// Lets only admin keys through and writes every attempt, allowed or not, to the
/// audit log with the status answered. An action whose audit entry cannot be
/// written is answered 500: no unaudited admin action.
pub(crate) async fn admin_guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let action = format!(
        "{} {}",
        request.method(),
        request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path().to_string(), |pq| pq.to_string())
    );
    let time = Local::now().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let (actor, role, response) = match state.authenticate(request.headers()) {
        Err(err) => ("-".to_string(), "-", err.into_response()),
        Ok(Principal::Institution { name, .. }) => (
            name.clone(),
            "institution",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "X-FundWatch-Key",
                "this endpoint needs an admin key; institution keys reach only /fsi/* and /api/v1/alerts",
            )
            .into_response(),
        ),
        Ok(Principal::Admin { name }) => (name.clone(), "admin", next.run(request).await),
    };
    let entry = AuditEntry {
        time,
        actor,
        role: role.to_string(),
        action,
        status: response.status().as_u16(),
    };
    match state.store.append_audit(&entry) {
        Ok(()) => response,
        Err(err) => {
            state.metrics.store_errors.inc();
            tracing::error!(error = %err, "audit log append failed; refusing the admin action");
            ApiError::general(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the audit log cannot be written ({err}); admin actions are refused until it can"),
            )
            .into_response()
        }
    }
}

/// `GET /api/v1/admin/audit?limit=`: the latest audit entries, oldest first.
pub(crate) async fn admin_audit(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let Query(pairs) = params.map_err(|r| ApiError::bad_request("query", r.body_text()))?;
    let mut limit = 100;
    for (key, value) in &pairs {
        match key.as_str() {
            "limit" => {
                limit = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "limit",
                            format!("must be a number from 1 to {MAX_LIMIT}"),
                        )
                        .with_value(format!("{value:?}"))
                    })?;
            }
            _ => {
                return Err(ApiError::bad_request(
                    key.clone(),
                    "unknown query parameter; the parameter is limit",
                ));
            }
        }
    }
    let entries = state.store.audit(limit);
    Ok(Json(json!({"count": entries.len(), "entries": entries})).into_response())
}

/// `GET /api/v1/admin/status`: versions, queue and batching settings.
pub(crate) async fn admin_status(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "rule_pack": state.versions().rule_pack,
        "kb": state.versions().kb,
        "uptime_s": state.started.elapsed().as_secs(),
        "budget_ms": state.budget.as_millis() as u64,
        "queue_depth": state.batcher.depth(),
        "queue_capacity": state.batcher.capacity(),
        "batch_max_events": state.settings.max_events,
        "batch_max_wait_us": state.settings.max_wait.as_micros() as u64,
        "batch_concurrency": state.settings.concurrency,
        "api_keys": state.auth.len(),
    }))
    .into_response()
}

/// `GET /api/v1/admin/alerts?fixmedins_code=…&…`: any institution's alerts.
pub(crate) async fn admin_alerts(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<AlertList>, ApiError> {
    let (query, institution) = parse_query(params, true)?;
    let institution = institution.filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "fixmedins_code",
            "required: the institution whose alerts to read",
        )
    })?;
    Ok(Json(run_query(&state, &institution, query)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_documented_form() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok();
        assert_eq!(
            parse_time("from", "2025-06-14", false).ok(),
            at("2025-06-14 00:00:00")
        );
        assert_eq!(
            parse_time("to", "2025-06-14", true).ok(),
            at("2025-06-14 23:59:59.999")
        );
        assert_eq!(
            parse_time("to", "20250614", true).ok(),
            at("2025-06-14 23:59:59.999")
        );
        assert_eq!(
            parse_time("from", "20250614142724", false).ok(),
            at("2025-06-14 14:27:24")
        );
        assert_eq!(
            parse_time("from", "20250614142724311", false).ok(),
            at("2025-06-14 14:27:24.311")
        );
        assert_eq!(
            parse_time("from", "2025-06-14T14:27:24", false).ok(),
            at("2025-06-14 14:27:24")
        );
        let err = parse_time("from", "yesterday", false).expect_err("not a time");
        assert_eq!(err.field.as_deref(), Some("from"));
    }
}
