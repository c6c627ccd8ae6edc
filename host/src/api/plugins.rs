//! `/v1/plugins`: what each configured driver is, what it is granted, and whether it loaded.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::state::AppState;
use crate::provision::WorkflowCore;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[utoipa::path(get, path = "/v1/plugins", operation_id = "list_plugins", extensions(("x-metalhost-policy" = json!("admin"))), tag = "plugins",
    responses((status = 200, description = "Every configured plugin: kind, contract, grants, confinement, load error.", body = Vec<crate::drivers::PluginStatus>)))]

async fn list(State(core): State<WorkflowCore>) -> Json<Vec<crate::drivers::PluginStatus>> {
    Json(core.plugins.status())
}
