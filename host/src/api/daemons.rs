//! `/v1/daemons`: the daemons sharing this pool, whether each is alive, and how many nodes each
//! drives (store/cluster.rs).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use crate::api::state::AppState;
use crate::provision::WorkflowCore;
use crate::store::cluster::{self, DaemonView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[utoipa::path(get, path = "/v1/daemons", operation_id = "list_daemons", extensions(("x-metalhost-policy" = json!("admin"))), tag = "daemons",
    responses((status = 200, description = "Every daemon that has heartbeated in this pool: alive (heard from within the lease TTL), since when, and how many node leases it holds.", body = Vec<DaemonView>)))]
async fn list(State(core): State<WorkflowCore>) -> ApiResult<Json<Vec<DaemonView>>> {
    let ttl_ms = core.lease_ttl_ms();
    Ok(Json(core.store.call(move |c| cluster::list(c, ttl_ms)).await?))
}
