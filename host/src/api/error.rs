//! The API error type: every failure becomes `{"error": {"code", "message"}}` with the right status.
//!
//! Internal details are logged, never echoed to the client.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metalhost_wire::{ErrorBody, ErrorDetail};

use crate::domain::{FailureKind, ParseError};
use crate::drivers::DriverFailure;
use crate::images::ImageError;
use crate::provision::StepFailure;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A token that was valid once: revoked or expired (401, saying which).
    #[error("{0}")]
    TokenRefused(String),
    /// The caller sees the object but may not do this (api/policy.rs).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// A driver call failed: the status and code follow its kind.
    #[error("{message}")]
    Driver { kind: FailureKind, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A plain request to a WebSocket route.
    #[error("{0}")]
    UpgradeRequired(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("the range starts beyond the end of the {0}-byte image")]
    RangeNotSatisfiable(u64),
    #[error("internal error")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The HTTP status this error answers with (the web view shows it too).
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Driver { kind, .. } => (driver_status(*kind), kind.as_str()),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized | ApiError::TokenRefused(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.to_string() } };
        (status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) | StoreError::LeaseLost(m) => ApiError::Conflict(m),
            StoreError::Unprocessable(m) => ApiError::Unprocessable(m),
            StoreError::Db(ref db) if crate::store::is_constraint(db) => {
                ApiError::Conflict(format!("the request conflicts with existing data ({db})"))
            }
            StoreError::Db(ref db) if db.is_unavailable() => {
                tracing::warn!("database unavailable: {db}");
                ApiError::Unavailable(format!("the database is unavailable ({db}); retry"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Store(e) => e.into(),
            // A refused image, or one whose URL could not be read: the operator's input, not ours.
            ImageError::Inspect(_) => ApiError::Unprocessable(e.to_string()),
            ImageError::Interrupted(_) | ImageError::Empty => ApiError::BadRequest(e.to_string()),
            ImageError::NotHere { .. } => ApiError::NotFound(e.to_string()),
            ImageError::NoVerifiedCopy { .. } | ImageError::CopyInProgress { .. } => ApiError::Unavailable(e.to_string()),
            ImageError::Io { .. } | ImageError::NoPeer { .. } | ImageError::Client(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// A device that answered badly is a bad gateway; one that did not answer in time, a gateway
/// timeout; a request the node's setup cannot serve, unprocessable or not implemented; a plugin
/// that is not loaded, a conflict with the node's record.
fn driver_status(kind: FailureKind) -> StatusCode {
    match kind {
        FailureKind::Unreachable | FailureKind::Deadline => StatusCode::GATEWAY_TIMEOUT,
        FailureKind::AuthFailed
        | FailureKind::Transport
        | FailureKind::CommandFailed
        | FailureKind::SwitchLocked
        | FailureKind::BmcBusy
        | FailureKind::ParseError
        | FailureKind::PluginFault
        | FailureKind::Agent => StatusCode::BAD_GATEWAY,
        FailureKind::NotFound | FailureKind::InvalidConfig => StatusCode::UNPROCESSABLE_ENTITY,
        FailureKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        // The node names a plugin this daemon has not loaded: the node or the config must change,
        // waiting does not help (so not 503).
        FailureKind::NotLoaded => StatusCode::CONFLICT,
        FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DriverFailure> for ApiError {
    fn from(e: DriverFailure) -> Self {
        ApiError::Driver { kind: e.kind, message: e.to_string() }
    }
}

/// A driver failure keeps its kind (the message names the step); a store error maps as it would alone.
impl From<StepFailure> for ApiError {
    fn from(e: StepFailure) -> Self {
        match e {
            StepFailure::Store { source, .. } => source.into(),
            StepFailure::Driver { .. } => ApiError::Driver { kind: e.kind(), message: e.to_string() },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

/// `axum::Json`, but a body that does not parse is a 400 in our error format naming the field, and
/// an integer written as a whole float (`4060.0`, which JSON Schema counts as an integer) is read
/// as that integer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The framework's checks first (content type, body limit), with its words.
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(rejection_error(rejection)),
        };
        let value = whole_floats_as_integers(value);
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|e| {
            let path = e.path().to_string();
            let message = in_api_words(&e.into_inner().to_string());
            if path == "." {
                ApiError::BadRequest(format!("invalid request body: {message}"))
            } else {
                ApiError::BadRequest(format!("invalid request body: {path}: {message}"))
            }
        })
    }
}

fn rejection_error(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(rejection.body_text()),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(rejection.body_text()),
        _ => ApiError::BadRequest(format!("invalid request body: {}", rejection.body_text())),
    }
}

/// serde's words for what it expected, with JSON's names instead of Rust's types.
fn in_api_words(message: &str) -> String {
    let Some((head, expected)) = message.split_once(", expected ") else { return message.to_owned() };
    let expected = match expected {
        e if e.starts_with("struct ") || e.starts_with("map") => "a JSON object",
        "i64" | "u64" | "i32" | "u32" | "u16" | "u8" | "usize" => "an integer",
        "f64" | "f32" => "a number",
        e => e,
    };
    format!("{head}, expected {expected}")
}

/// `4060.0` → `4060`: a float with no fraction that fits an integer becomes that integer.
fn whole_floats_as_integers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            // Within ±2^63 an f64 with no fraction converts exactly.
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_floats_as_integers).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, whole_floats_as_integers(v))).collect()),
        other => other,
    }
}

/// How much of a rejection's text body is kept as the error message.
const REJECTION_TEXT_LIMIT: usize = 16 * 1024;

/// Whatever refuses a request (a path, query or header extractor, the router for an unknown route
/// or method, a body limit), an API client gets the API's error body: `{"error": {"code",
/// "message"}}`, with the status and headers (such as `Allow`) it had. The web view (`/ui`) keeps
/// its HTML pages.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let route = format!("{} {}", request.method(), request.uri().path());
    let is_api = !request.uri().path().starts_with("/ui");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !is_api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REJECTION_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, message) = rejection(status, &route, text);
    let mut answer = (status, axum::Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message } })).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// The code and message of a refusal the API's handlers did not word themselves.
fn rejection(status: StatusCode, route: &str, text: String) -> (&'static str, String) {
    let or = |fallback: String| if text.is_empty() { fallback } else { text.clone() };
    match status {
        StatusCode::NOT_FOUND => ("not_found", or(format!("no such route: {route}"))),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", or(format!("{route}: method not allowed"))),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", or("the request body is too large".to_owned())),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", or("unsupported content type".to_owned())),
        StatusCode::UNAUTHORIZED => ("unauthorized", or("missing or invalid bearer token".to_owned())),
        status if status.is_server_error() => ("internal", or("internal error".to_owned())),
        _ => ("bad_request", or(format!("{route}: bad request"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_name_json_types_not_rust_ones() {
        assert_eq!(
            in_api_words("invalid type: string \"nope\", expected struct CreateNode"),
            "invalid type: string \"nope\", expected a JSON object"
        );
        assert_eq!(in_api_words("invalid type: floating point `1.5`, expected i64"), "invalid type: floating point `1.5`, expected an integer");
        assert_eq!(in_api_words("missing field `mac`"), "missing field `mac`");
    }

    #[test]
    fn whole_floats_become_integers_and_fractions_stay() {
        let value = serde_json::json!({"vlan": 4060.0, "n": [1.5, -2.0, 7], "big": 1e300, "s": "3.0"});
        assert_eq!(whole_floats_as_integers(value), serde_json::json!({"vlan": 4060, "n": [1.5, -2, 7], "big": 1e300, "s": "3.0"}));
    }
}
