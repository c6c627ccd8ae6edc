//! The web view's stylesheet and script, embedded in the binary: nothing to build or install.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");

pub async fn css() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

pub async fn js() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], JS)
}
