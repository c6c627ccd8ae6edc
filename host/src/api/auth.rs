//! Bearer-token checks for the operator API.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::api::state::AppState;

/// The token in an `Authorization: Bearer ...` header, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Constant-time comparison with the operator token.
pub fn is_operator(state: &AppState, presented: &str) -> bool {
    presented.as_bytes().ct_eq(state.operator_token.expose().as_bytes()).into()
}

/// Rejects any request without the operator token before it reaches a handler, so nothing changes.
pub async fn require_operator(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if is_operator(&state, bearer(request.headers()).unwrap_or("")) { Ok(next.run(request).await) } else { Err(ApiError::Unauthorized) }
}
