//! `/metrics` over HTTP: the Prometheus text rendered by the recorder in `metrics.rs`, with the
//! node gauges refreshed from the store at each scrape, and the request counter every route
//! passes through.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};

use crate::provision::WorkflowCore;

/// `/metrics` alone, for the API router (behind the token) or the open listener: generic over
/// the router's state so both serve it.
pub fn router<S>() -> utoipa_axum::router::OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    WorkflowCore: axum::extract::FromRef<S>,
{
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(render))
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", extensions(("x-metalhost-policy" = json!("admin"))), tag = "meta",
    responses((status = 200, description = "Metrics in the Prometheus text format.", body = String, content_type = "text/plain")))]
async fn render(State(core): State<WorkflowCore>) -> Response {
    let Some(handle) = crate::metrics::handle() else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed").into_response();
    };
    crate::metrics::refresh_node_gauges(&core.store).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// Counts and times every request by its route template (`/v1/nodes/{id}`, never the id itself).
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("metalhost_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("metalhost_http_request_duration_seconds", "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    response
}

/// The open listener's app: `/metrics` only, requests tracked like the API's.
pub fn open_app(core: WorkflowCore) -> Router {
    Router::from(router()).route_layer(middleware::from_fn(track_http)).with_state(core)
}
