//! The API error type: every failure becomes `{"error": {"code", "message"}}` with the right status.
//!
//! Internal details are logged, never echoed to the client.

use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
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
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
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
/// that is not loaded, unavailable.
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
        FailureKind::NotLoaded => StatusCode::SERVICE_UNAVAILABLE,
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

/// `axum::Json`, but a body that does not parse is a 400 in our error format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!("invalid request body: {}", rejection.body_text()))),
        }
    }
}
