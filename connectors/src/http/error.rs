//! Every error answer is JSON naming the field and the reason:
//! `{"infcode":-1,"err_msg":"<field>: <reason>","error":{"field","reason","value"}}`,
//! plus `inf_refmsgid`/`refmsg_time`/`respond_time` on the `/fsi/*` endpoints.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fundwatch_engine::DecodeError;
use serde::Serialize;

use super::envelope::{Stamp, respond_time};

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The field at fault (a JSON path such as `warns[0].dspo_way_rea`, a header
    /// or a query parameter); `None` when no field is (overload, unknown route).
    pub field: Option<String>,
    /// What is wrong and what to do.
    pub reason: String,
    /// The offending value, as sent.
    pub value: Option<String>,
    // Boxed: keeps `Result<_, ApiError>` small on the hot path.
    stamp: Option<Box<Stamp>>,
}

impl ApiError {
    /// An error about `field`.
    pub fn new(status: StatusCode, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status,
            field: Some(field.into()),
            reason: reason.into(),
            value: None,
            stamp: None,
        }
    }

    /// An error about no particular field.
    pub fn general(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            field: None,
            reason: reason.into(),
            value: None,
            stamp: None,
        }
    }

    /// 400 about `field`.
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, field, reason)
    }

    /// Adds the offending value.
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Adds the message ids of an `/fsi/*` answer.
    pub(crate) fn with_stamp(mut self, stamp: &Stamp) -> Self {
        self.stamp = Some(Box::new(stamp.clone()));
        self
    }

    /// `err_msg`: `field: reason (got value)`.
    pub fn message(&self) -> String {
        let value = self
            .value
            .as_ref()
            .map(|v| format!(" (got {v})"))
            .unwrap_or_default();
        match &self.field {
            Some(field) => format!("{field}: {}{value}", self.reason),
            None => format!("{}{value}", self.reason),
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(err: DecodeError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(err.path),
            reason: err.reason,
            value: err.value,
            stamp: None,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    infcode: i32,
    err_msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    inf_refmsgid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refmsg_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    respond_time: Option<String>,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    field: Option<&'a str>,
    reason: &'a str,
    value: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            infcode: -1,
            err_msg: self.message(),
            inf_refmsgid: self.stamp.as_ref().map(|s| s.inf_refmsgid.as_str()),
            refmsg_time: self.stamp.as_ref().map(|s| s.refmsg_time.as_str()),
            respond_time: self.stamp.as_ref().map(|_| respond_time()),
            error: ErrorDetail {
                field: self.field.as_deref(),
                reason: &self.reason,
                value: self.value.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"fundwatch\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
