//! `/v1/plugins`: what each configured driver is, what it is granted, and whether it loaded.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/plugins", get(list))
}

async fn list(State(state): State<AppState>) -> Json<Vec<crate::drivers::PluginStatus>> {
    Json(state.plugins.status())
}
