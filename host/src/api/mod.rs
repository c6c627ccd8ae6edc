//! The REST API: one module per resource, each with its own `router()`.
//!
//! Every route is registered through `utoipa_axum`'s `OpenApiRouter` with a `#[utoipa::path]`
//! handler, so the OpenAPI document served at `/v1/openapi.json` is built from the same calls
//! that build the router and cannot leave a route out (ARCHITECTURE.md, "API").

mod agent;
pub mod auth;
mod boot;
pub(crate) mod console;
mod daemons;
pub mod error;
mod images;
mod instances;
mod keep_alive;
mod keypairs;
pub mod metrics;
mod node_actions;
mod nodes;
mod openapi;
pub mod paging;
mod plugins;
pub mod policy;
mod projects;
mod schema;
pub mod state;
mod switches;
pub mod validate;

use axum::Router;
use tower_http::compression::predicate::Predicate as _;
use utoipa_axum::router::OpenApiRouter;

use state::AppState;

/// The whole API: the operator routes behind the bearer token, the agent's and the netboot's
/// routes with their own checks, health, and the document that describes them all.
pub fn router(state: AppState) -> Result<Router, policy::UndeclaredPolicy> {
    let (router, document) = documented_router(metrics_here(&state)).split_for_parts();
    // Every documented operation declares who may call it; one layer enforces it (api/policy.rs).
    let enforcer = policy::Enforcer { state: state.clone(), policies: std::sync::Arc::new(policy::Policies::from_document(&document)?) };
    // The web view is HTML for people, not part of the API document; it has its own session auth.
    Ok(router
        .route_layer(axum::middleware::from_fn_with_state(enforcer, policy::enforce))
        .merge(crate::ui::router(state.clone()))
        .route_layer(axum::middleware::from_fn(metrics::track_http))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(keep_alive::close_when_body_unread))
        // Large lists and pages travel compressed when the client asks (gzip, br); image bytes,
        // already compressed or not, go as they are. The fastest level: at the default one the
        // whole 10,000-node list took longer compressed than plain on a fast link (bench/scale.sh,
        // 87 ms vs 57 ms), and JSON shrinks nearly as much at the fastest.
        .layer(
            tower_http::compression::CompressionLayer::new().quality(tower_http::CompressionLevel::Fastest).compress_when(
                tower_http::compression::predicate::SizeAbove::new(1024)
                    .and(tower_http::compression::predicate::NotForContentType::new("application/octet-stream")),
            ),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state))
}

/// The plain-HTTP boot listener (issue 31): only what firmware and the bootstrap fetch before
/// anything can verify a certificate (the iPXE scripts, the bootstrap kernel and initrd, the agent
/// binary); every other path answers 404 naming the API's URL. No token travels here.
pub fn boot_router(state: AppState) -> Router {
    let (router, _) = boot::public_router().merge(agent::binary_router()).split_for_parts();
    router
        .fallback(not_on_the_boot_port)
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(keep_alive::close_when_body_unread))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_on_the_boot_port(
    axum::extract::State(core): axum::extract::State<crate::provision::WorkflowCore>,
    uri: axum::http::Uri,
) -> error::ApiError {
    error::ApiError::NotFound(format!("{}: this port serves only netboot files in plain HTTP; the API is at {}", uri.path(), core.public_url))
}

/// The OpenAPI document alone, as `/v1/openapi.json` serves it.
pub fn document(state: &AppState) -> utoipa::openapi::OpenApi {
    finished_document(metrics_here(state))
}

fn finished_document(metrics_here: bool) -> utoipa::openapi::OpenApi {
    let mut document = documented_router(metrics_here).into_openapi();
    openapi::document_errors(&mut document);
    openapi::complete_constraints(&mut document);
    document
}

/// The document as a daemon serving /metrics on the API's listener describes it.
#[cfg(test)]
pub fn document_for_tests() -> utoipa::openapi::OpenApi {
    finished_document(true)
}

/// With `[metrics] listen` set, /metrics is served there, open; otherwise here, behind a token.
fn metrics_here(state: &AppState) -> bool {
    let metrics = &state.core.config.metrics;
    metrics.enabled && metrics.listen.is_none()
}

fn documented_router(metrics_here: bool) -> OpenApiRouter<AppState> {
    let metrics = if metrics_here { metrics::router() } else { OpenApiRouter::new() };
    let operator = OpenApiRouter::new()
        .merge(metrics)
        .merge(switches::router())
        .merge(nodes::router())
        .merge(plugins::router())
        .merge(daemons::router())
        .merge(images::router())
        .merge(instances::router())
        .merge(boot::operator_router())
        .merge(node_actions::router())
        .merge(console::router())
        .merge(projects::router())
        .merge(keypairs::router());
    let operator = openapi::secured(operator, &[openapi::OPERATOR]);
    let agent = openapi::secured(agent::router(), &[openapi::NODE_TOKEN]);
    let image_data = openapi::secured(images::data_router(), &[openapi::OPERATOR, openapi::IMAGE_TOKEN]);
    OpenApiRouter::with_openapi(openapi::base())
        .merge(operator)
        .merge(agent)
        .merge(image_data)
        .merge(agent::public_router())
        .merge(boot::public_router())
        .merge(openapi::public_router())
}
