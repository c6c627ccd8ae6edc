//! A failed page or action, shown as a page: the status and message the REST API would give
//! (`ApiError`, which never echoes internals), with a way back.

use axum::response::{Html, IntoResponse, Response};
use maud::html;

use super::page::{self, Nav};
use crate::api::error::ApiError;
use crate::domain::ParseError;
use crate::provision::StepFailure;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UiError(#[from] pub ApiError);

pub type UiResult<T> = Result<T, UiError>;

/// What the REST API maps (store, workflow, parse failures) maps the same way here.
macro_rules! via_api {
    ($($t:ty),+) => { $(impl From<$t> for UiError { fn from(e: $t) -> Self { UiError(e.into()) } })+ };
}
via_api!(StoreError, StepFailure, ParseError);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let ApiError::Internal(detail) = &self.0 {
            tracing::error!(error = %detail, "web view request failed");
        }
        let body = html! {
            h1 { "Not done" }
            p.flash.bad { (self.0.to_string()) }
            p { a href="/ui" { "Back to the pool" } }
        };
        (status, Html(page::shell("Error", Nav::Pool, body).into_string())).into_response()
    }
}
