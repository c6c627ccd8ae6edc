//! `/v1/agent/*`: the API the agent on a PXE-booted node calls. Not behind the operator token:
//! lookup is by MAC and only for nodes that expect an agent; everything else needs the node token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use metalhost_wire::{
    ConsoleLines, DiscoverResponse, Heartbeat, InventoryReport, LookupRequest, LookupResponse, MAX_CONSOLE_LINES_PER_POST, MAX_INVENTORY_BYTES,
    Progress, TaskResult,
};
use rand::RngCore;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use crate::api::state::AppState;
use crate::domain::Key;
use crate::domain::{MacAddr, NodeId, TaskId};
use crate::inventory::{self, Facts};
use crate::provision::WorkflowCore;
use crate::store::console::{self, Source};
use crate::store::images;
use crate::store::instances;
use crate::store::nodes;
use crate::store::tasks;

/// What the bootstrap calls before it has a token: the agent binary and the lookup.
pub fn public_router() -> OpenApiRouter<AppState> {
    binary_router().routes(routes!(lookup)).routes(routes!(discover))
}

/// The agent binary alone, which the bootstrap's busybox fetches over plain HTTP (it has no TLS).
pub fn binary_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(binary))
}

/// The agent's calls with its node token.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(task))
        .routes(routes!(progress))
        .routes(routes!(result))
        .routes(routes!(heartbeat))
        .routes(routes!(console))
        .routes(routes!(inventory))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The node whose valid node token the request carries.
pub struct AgentNode(pub NodeId);

impl<S> FromRequestParts<S> for AgentNode
where
    S: Send + Sync,
    WorkflowCore: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let core = WorkflowCore::from_ref(state);
        let token = super::auth::bearer(&parts.headers).unwrap_or("").to_owned();
        if token.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let node = core.store.call(move |c| tasks::node_for_token(c, &token)).await?;
        node.map(AgentNode).ok_or(ApiError::Unauthorized)
    }
}

#[utoipa::path(get, path = "/v1/agent/binary", operation_id = "agent_binary", extensions(("x-metalhost-policy" = json!("public"))), tag = "agent",
    responses((status = 200, description = "The static agent binary.", body = String, content_type = "application/octet-stream")))]
async fn binary(State(core): State<WorkflowCore>) -> ApiResult<Response> {
    let path = core.config.agent.binary_path();
    let bytes =
        tokio::fs::read(&path).await.map_err(|e| ApiError::Unavailable(format!("the agent binary {} is not available: {e}", path.display())))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[utoipa::path(post, path = "/v1/agent/lookup", operation_id = "agent_lookup", extensions(("x-metalhost-policy" = json!("public"))), tag = "agent", request_body = LookupRequest,
    responses((status = 200, description = "The node and its token.", body = LookupResponse)))]
async fn lookup(State(core): State<WorkflowCore>, ApiJson(req): ApiJson<LookupRequest>) -> ApiResult<Json<LookupResponse>> {
    let macs: Vec<MacAddr> = req.macs.iter().filter_map(|m| m.parse().ok()).collect();
    if macs.is_empty() {
        return Err(ApiError::BadRequest("lookup needs at least one valid MAC address".into()));
    }
    let token = random_token();
    let expires = crate::domain::deadline_in(core.config.agent.token_ttl);
    let shown = req.macs.join(", ");
    let issued = token.clone();
    let node = core
        .store
        .call(move |c| {
            let Some(node) = nodes::find_by_macs(c, &macs)? else {
                return Err(crate::store::StoreError::NotFound(format!("an enrolled node with MAC {shown}")));
            };
            if !node.state.expects_agent() {
                return Err(crate::store::StoreError::Conflict(format!("node {:?} is {}: it expects no agent", node.name, node.state)));
            }
            tasks::issue_node_token(c, node.id, &issued, expires)?;
            Ok(node)
        })
        .await?;
    tracing::info!(node = node.id.0, "agent looked itself up");
    Ok(Json(LookupResponse {
        node_id: node.id.0,
        node_token: token,
        heartbeat_interval_s: core.config.agent.heartbeat_interval.as_secs(),
        poll_interval_s: core.config.agent.poll_interval.as_secs(),
    }))
}

#[utoipa::path(get, path = "/v1/agent/task", operation_id = "agent_task", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent",
    responses((status = 200, description = "A task, now started.", body = metalhost_wire::AgentTask), (status = 204, description = "No task yet: poll again.")))]
async fn task(State(core): State<WorkflowCore>, AgentNode(node): AgentNode) -> ApiResult<Response> {
    let public_url = core.public_url.clone();
    let rendered = core
        .store
        .call(move |c| {
            let Some(task) = tasks::open_for_node(c, node)? else { return Ok(None) };
            let image = task.image.map(|id| images::get(c, &Key::Id(id.0))).transpose()?;
            let token = image.as_ref().filter(|i| i.file.is_some()).map(|_| random_token());
            // A deploy carries its instance's config drive, its user data unsealed for this answer only.
            let drive = match task.kind {
                crate::domain::TaskKind::Deploy => {
                    let node = nodes::get_listed(c, node)?;
                    match node.instance_id {
                        Some(instance) => instances::drive_identity(c, instance, &node)?.as_ref().map(crate::config_drive::render),
                        None => None,
                    }
                }
                _ => None,
            };
            tasks::start(c, task.id, token.as_deref())?;
            Ok(crate::work::render(&task, image.as_ref(), &public_url, token, drive))
        })
        .await?;
    match rendered {
        Some(task) => {
            tracing::info!(node = node.0, task = task.id, "task handed to the agent");
            Ok(Json(task).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[utoipa::path(post, path = "/v1/agent/task/{id}/progress", operation_id = "agent_progress", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent", params(("id" = i64, Path, description = "The task's id.")), request_body = Progress,
    responses((status = 204, description = "Recorded.")))]
async fn progress(
    State(core): State<WorkflowCore>,
    AgentNode(node): AgentNode,
    Path(id): Path<i64>,
    ApiJson(p): ApiJson<Progress>,
) -> ApiResult<StatusCode> {
    core.store.call(move |c| tasks::progress(c, TaskId(id), node, p.bytes_written, p.total_bytes)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/agent/task/{id}/result", operation_id = "agent_result", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent", params(("id" = i64, Path, description = "The task's id.")), request_body = TaskResult,
    responses((status = 204, description = "Recorded; the workflow goes on.")))]
async fn result(
    State(core): State<WorkflowCore>,
    AgentNode(node): AgentNode,
    Path(id): Path<i64>,
    ApiJson(r): ApiJson<TaskResult>,
) -> ApiResult<StatusCode> {
    let message = if r.message.trim().is_empty() { if r.success { "done" } else { "failed" }.to_owned() } else { r.message };
    let kind = (!r.success).then(|| crate::work::failure_kind(r.kind));
    let task = core.store.call(move |c| tasks::finish(c, TaskId(id), node, r.success, kind, &message)).await?;
    tracing::info!(node = node.0, task = id, state = %task.state, message = task.message.as_deref().unwrap_or(""), "agent reported");
    if task.state == crate::domain::TaskState::Succeeded && task.kind == crate::domain::TaskKind::Deploy {
        let seconds = (crate::domain::now_ms() - task.created_at) as f64 / 1000.0;
        crate::metrics::agent_wrote(task.bytes_written, seconds);
    }
    core.task_events.notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/agent/heartbeat", operation_id = "agent_heartbeat", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent", request_body = Heartbeat,
    responses((status = 204, description = "Recorded.")))]
async fn heartbeat(State(core): State<WorkflowCore>, AgentNode(node): AgentNode, ApiJson(_beat): ApiJson<Heartbeat>) -> ApiResult<StatusCode> {
    core.store.call(move |c| tasks::heartbeat(c, node)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent's own lines, which it also prints to the node's console: the node's console log
/// (store/console.rs) until the power world can describe a serial console (issue 17).
#[utoipa::path(post, path = "/v1/agent/console", operation_id = "agent_console", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent", request_body = ConsoleLines,
    responses((status = 204, description = "Kept in the node's console log.")))]
async fn console(State(core): State<WorkflowCore>, AgentNode(node): AgentNode, ApiJson(posted): ApiJson<ConsoleLines>) -> ApiResult<StatusCode> {
    if posted.lines.len() > MAX_CONSOLE_LINES_PER_POST {
        return Err(ApiError::BadRequest(format!("at most {MAX_CONSOLE_LINES_PER_POST} lines per post")));
    }
    core.store.call(move |c| console::append(c, node, Source::Agent, &posted.lines)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A report as posted: at most `MAX_INVENTORY_BYTES`, valid JSON of the right shape, and a
/// machine by `inventory::check`; else a 400 and nothing is written. Returns the report as
/// re-serialised (what is stored is what was checked) and its facts.
fn parse_report(body: &[u8]) -> Result<(String, Facts), ApiError> {
    if body.len() > MAX_INVENTORY_BYTES {
        return Err(ApiError::BadRequest(format!("the inventory report is {} bytes, more than {MAX_INVENTORY_BYTES}", body.len())));
    }
    let report: InventoryReport = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid inventory report: {e}")))?;
    let facts = inventory::check(&report).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let json = serde_json::to_string(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((json, facts))
}

/// The inspecting node's hardware: kept as its inventory, and its facts and switch port follow.
#[utoipa::path(post, path = "/v1/agent/inventory", operation_id = "agent_inventory", extensions(("x-metalhost-policy" = json!("agent"))), tag = "agent", request_body = InventoryReport,
    responses((status = 204, description = "Kept; the node's facts follow it.")))]
async fn inventory(State(core): State<WorkflowCore>, AgentNode(node): AgentNode, body: Bytes) -> ApiResult<StatusCode> {
    let (report, facts) = parse_report(&body)?;
    let summary = facts.summary();
    let node = core.store.call(move |c| crate::store::inventory::record(c, node, &report, &facts)).await?;
    tracing::info!(node = node.id.0, "inventory reported: {summary}");
    Ok(StatusCode::NO_CONTENT)
}

/// Enlistment: an agent whose MACs no node has offers its machine. With `[discovery] enabled` it
/// becomes an `enrolled` node that waits for its BMC credentials; otherwise 404 and nothing is written.
#[utoipa::path(post, path = "/v1/agent/discover", operation_id = "agent_discover", extensions(("x-metalhost-policy" = json!("public"))), tag = "agent", request_body = InventoryReport,
    responses((status = 201, description = "Enlisted as a new enrolled node.", body = DiscoverResponse)))]
async fn discover(State(core): State<WorkflowCore>, body: Bytes) -> ApiResult<(StatusCode, Json<DiscoverResponse>)> {
    if !core.config.discovery.enabled {
        return Err(ApiError::NotFound("discovery is off ([discovery] enabled = false): enlistment".into()));
    }
    let (report, facts) = parse_report(&body)?;
    let node = core.store.call(move |c| crate::store::inventory::enlist(c, &report, &facts)).await?;
    tracing::info!(node = node.id.0, name = %node.name, mac = %node.mac, "machine enlisted by discovery");
    let node = crate::provision::validate_node(&core, node.id).await?;
    let message = node.last_error.as_ref().map_or_else(|| "enlisted".to_owned(), |e| e.message.clone());
    Ok((StatusCode::CREATED, Json(DiscoverResponse { node_id: node.id.0, name: node.name, message })))
}
