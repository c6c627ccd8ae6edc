//! The REST API: one module per resource, each with its own `router()`.

mod agent;
mod auth;
mod boot;
pub mod error;
mod images;
mod instances;
mod node_actions;
mod nodes;
mod plugins;
mod switches;
pub mod validate;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

pub use auth::{bearer, is_operator};

/// The whole API: the operator routes behind the bearer token, plus unauthenticated health.
pub fn router(state: AppState) -> Router {
    // With `[metrics] listen` set, /metrics is served there, open; otherwise here, behind the token.
    let metrics = if state.config.metrics.listen.is_none() { crate::metrics::router() } else { Router::new() };
    let operator = Router::new()
        .merge(metrics)
        .merge(switches::router())
        .merge(nodes::router())
        .merge(plugins::router())
        .merge(images::router())
        .merge(instances::router())
        .merge(boot::operator_router())
        .merge(node_actions::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_operator));
    Router::new()
        .merge(operator)
        .merge(agent::router())
        .merge(images::data_router())
        .merge(boot::public_router())
        .merge(crate::ui::router(state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
