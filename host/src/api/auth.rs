//! Bearer-token checks for the operator API.

use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::api::state::AppState;

/// The token in an `Authorization: Bearer ...` header, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Constant-time comparison with the operator token.
pub fn is_operator(state: &AppState, presented: &str) -> bool {
    presented.as_bytes().ct_eq(state.operator_token.expose().as_bytes()).into()
}
