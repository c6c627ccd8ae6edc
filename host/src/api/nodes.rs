//! `/v1/nodes`: the node pool and its event log.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::policy::Access;
use super::{paging, schema, validate};
use crate::api::state::AppState;
use crate::domain::Key;
use crate::domain::{BootMode, Hostname, MacAddr, PowerState, ProvisionState, Secret, SwitchId, SwitchPort};
use crate::provision::WorkflowCore;
use crate::store::StoreError;
use crate::store::console::{self, ConsoleLine};
use crate::store::events::{self, Event, EventKind, EventQuery};
use crate::store::last_error::LastError;
use crate::store::nodes::{self, NewNode, Node, NodeUpdate};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(list_events))
        .routes(routes!(console_log))
        .routes(routes!(inventory))
}

/// A node as clients see it: no BMC password.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub id: i64,
    pub name: String,
    pub mac: String,
    pub ip: String,
    pub cpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    /// The BMC and the switch port are shown to admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_port: Option<String>,
    /// enrolled, available, deploying, active, destroying, cleaning, error, ...
    pub state: String,
    /// on, off or unknown.
    pub power_state: String,
    /// provisioning, tenant or unknown.
    pub network: String,
    pub vlan: Option<u16>,
    pub maintenance: bool,
    /// Why the node is in `error` (or still `enrolled`): step, plugin, operation, kind, message.
    pub last_error: Option<LastError>,
    pub instance_id: Option<i64>,
    /// When the transitional state the node is in times out (RFC 3339 UTC).
    #[serde(serialize_with = "crate::domain::time::as_rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub state_deadline: Option<i64>,
    /// bios or uefi: set by the operator or learnt by inspection.
    pub boot_mode: String,
    /// The project the node is dedicated to, if any.
    pub dedicated_to: Option<i64>,
}

impl NodeView {
    /// The node as `access` may see it: without its BMC and switch port unless an admin asks.
    pub fn for_caller(node: Node, access: &Access) -> NodeView {
        let mut view = NodeView::from(node);
        if !access.is_admin() {
            view.bmc_address = None;
            view.bmc_port = None;
            view.bmc_username = None;
            view.power_driver = None;
            view.switch_id = None;
            view.switch_port = None;
        }
        view
    }
}

impl From<Node> for NodeView {
    fn from(n: Node) -> Self {
        NodeView {
            id: n.id.0,
            name: n.name,
            mac: n.mac.to_string(),
            ip: n.ip.to_string(),
            cpus: n.cpus,
            ram_mb: n.ram_mb,
            disk_gb: n.disk_gb,
            bmc_address: Some(n.bmc_address),
            bmc_port: Some(n.bmc_port),
            bmc_username: Some(n.bmc_username),
            power_driver: Some(n.power_driver),
            switch_id: Some(n.switch_id.0),
            switch_port: Some(n.switch_port),
            state: n.state.to_string(),
            power_state: n.power_state.to_string(),
            network: n.network.to_string(),
            vlan: n.vlan.map(|v| v.id()),
            maintenance: n.maintenance,
            last_error: n.last_error,
            instance_id: n.instance_id.map(|i| i.0),
            state_deadline: n.state_deadline,
            boot_mode: n.boot_mode.to_string(),
            dedicated_to: n.project_id.map(|p| p.0),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// Defaults to `node-` and the MAC without separators.
    #[schema(value_type = Option<schema::ResourceName>)]
    name: Option<String>,
    #[schema(value_type = schema::Mac)]
    mac: String,
    #[schema(value_type = schema::IpAddress)]
    ip: String,
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    cpus: i64,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    ram_mb: i64,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    disk_gb: i64,
    #[schema(value_type = schema::Host)]
    bmc_address: String,
    /// IPMI over LAN listens on 623 by default.
    #[schema(minimum = 1, maximum = 65535)]
    bmc_port: Option<i64>,
    #[schema(value_type = schema::NonBlank)]
    bmc_username: String,
    #[schema(value_type = schema::NonBlank)]
    bmc_password: String,
    /// The name of a loaded power plugin.
    #[schema(value_type = schema::ResourceName)]
    power_driver: String,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    switch_id: i64,
    #[schema(value_type = schema::PortName)]
    switch_port: String,
    /// bios (default) or uefi.
    #[schema(value_type = Option<schema::BootModeName>)]
    boot_mode: Option<String>,
}

fn boot_mode(value: &str) -> Result<BootMode, ApiError> {
    validate::one_of("boot_mode", value, BootMode::ALL, BootMode::as_str)
}

fn parse_ip(value: &str) -> Result<IpAddr, ApiError> {
    value.parse().map_err(|_| ApiError::BadRequest(format!("invalid IP address {value:?}")))
}

impl CreateNode {
    fn validate(self) -> Result<NewNode, ApiError> {
        let mac: MacAddr = self.mac.parse()?;
        let name = self.name.unwrap_or_else(|| format!("node-{}", mac.to_string().replace(':', "")));
        validate::name("node name", &name)?;
        validate::non_empty("bmc_username", &self.bmc_username)?;
        validate::non_empty("bmc_password", &self.bmc_password)?;
        validate::name("power_driver", &self.power_driver)?;
        Ok(NewNode {
            name,
            mac,
            ip: parse_ip(&self.ip)?,
            cpus: validate::positive("cpus", self.cpus)?,
            ram_mb: validate::positive("ram_mb", self.ram_mb)?,
            disk_gb: validate::positive("disk_gb", self.disk_gb)?,
            bmc_address: self.bmc_address.parse::<Hostname>()?,
            bmc_port: validate::port("bmc_port", self.bmc_port.unwrap_or(623))?,
            bmc_username: self.bmc_username,
            bmc_password: Secret::new(self.bmc_password),
            power_driver: self.power_driver,
            switch_id: SwitchId(self.switch_id),
            switch_port: self.switch_port.parse::<SwitchPort>()?,
            boot_mode: self.boot_mode.as_deref().map(str::parse).transpose()?.unwrap_or(BootMode::Legacy),
        })
    }
}

/// Only the fields given change; a changed node is validated again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    #[schema(value_type = Option<schema::ResourceName>)]
    name: Option<String>,
    #[schema(value_type = Option<schema::Mac>)]
    mac: Option<String>,
    #[schema(value_type = Option<schema::IpAddress>)]
    ip: Option<String>,
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    cpus: Option<i64>,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    ram_mb: Option<i64>,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    disk_gb: Option<i64>,
    #[schema(value_type = Option<schema::Host>)]
    bmc_address: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    bmc_port: Option<i64>,
    #[schema(value_type = Option<schema::NonBlank>)]
    bmc_username: Option<String>,
    #[schema(value_type = Option<schema::NonBlank>)]
    bmc_password: Option<String>,
    #[schema(value_type = Option<schema::ResourceName>)]
    power_driver: Option<String>,
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    switch_id: Option<i64>,
    #[schema(value_type = Option<schema::PortName>)]
    switch_port: Option<String>,
    maintenance: Option<bool>,
    /// bios or uefi.
    #[schema(value_type = Option<schema::BootModeName>)]
    boot_mode: Option<String>,
    /// Dedicates the node to this project (id or name): only its instances get it. An empty string
    /// dedicates it to none.
    dedicated_to: Option<String>,
}

impl UpdateNode {
    fn validate(self) -> Result<NodeUpdate, ApiError> {
        if let Some(name) = &self.name {
            validate::name("node name", name)?;
        }
        if let Some(v) = &self.bmc_username {
            validate::non_empty("bmc_username", v)?;
        }
        if let Some(v) = &self.bmc_password {
            validate::non_empty("bmc_password", v)?;
        }
        if let Some(v) = &self.power_driver {
            validate::name("power_driver", v)?;
        }
        Ok(NodeUpdate {
            name: self.name,
            mac: self.mac.map(|m| m.parse()).transpose()?,
            ip: self.ip.as_deref().map(parse_ip).transpose()?,
            cpus: self.cpus.map(|v| validate::positive("cpus", v)).transpose()?,
            ram_mb: self.ram_mb.map(|v| validate::positive("ram_mb", v)).transpose()?,
            disk_gb: self.disk_gb.map(|v| validate::positive("disk_gb", v)).transpose()?,
            bmc_address: self.bmc_address.map(|a| a.parse()).transpose()?,
            bmc_port: self.bmc_port.map(|p| validate::port("bmc_port", p)).transpose()?,
            bmc_username: self.bmc_username,
            bmc_password: self.bmc_password.map(Secret::new),
            power_driver: self.power_driver,
            switch_id: self.switch_id.map(SwitchId),
            switch_port: self.switch_port.map(|p| p.parse()).transpose()?,
            maintenance: self.maintenance,
            boot_mode: self.boot_mode.as_deref().map(boot_mode).transpose()?,
        })
    }
}

/// Enrol a node: it is validated (its power plugin reads its power state) and becomes `available`.
#[utoipa::path(post, path = "/v1/nodes", operation_id = "create_node", extensions(("x-metalhost-policy" = json!("admin"))), tag = "nodes", request_body = CreateNode,
    responses((status = 201, description = "Enrolled.", body = NodeView)))]
async fn create(State(core): State<WorkflowCore>, ApiJson(req): ApiJson<CreateNode>) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let new = req.validate()?;
    let node = core.store.call(move |c| nodes::insert(c, new)).await?;
    tracing::info!(node = node.id.0, name = %node.name, mac = %node.mac, "node enrolled");
    let node = crate::provision::validate_node(&core, node.id).await?;
    Ok((StatusCode::CREATED, Json(node.into())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeFilter {
    /// At most this many nodes (1-1000); the answer's `Link: <...>; rel="next"` header names the
    /// next page while there is one. Without it, every node.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The cursor: nodes after this id (the `Link` header's next page sets it).
    #[param(minimum = 0)]
    after: Option<i64>,
    #[param(value_type = Option<schema::ProvisionStateName>)]
    state: Option<String>,
    #[param(value_type = Option<schema::PowerStateName>)]
    power: Option<String>,
    maintenance: Option<bool>,
    /// Nodes of this project (id or name): its instances' and its dedicated ones.
    #[param(min_length = 1)]
    project: Option<String>,
    /// Part of the name or the MAC (case-insensitive).
    #[param(max_length = 64)]
    q: Option<String>,
}

#[utoipa::path(get, path = "/v1/nodes", operation_id = "list_nodes", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "nodes",
    params(NodeFilter),
    responses((status = 200, description = "The nodes the caller may see that pass the filters, in id order; with `limit`, one page and a `Link` header to the next.", body = Vec<NodeView>,
        headers(("link" = String, description = "`<...>; rel=\"next\"` while more pages follow.")))))]
async fn list(State(core): State<WorkflowCore>, access: Access, Query(filter): Query<NodeFilter>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let limit = paging::check(filter.limit, filter.after, paging::Order::Ascending)?;
    if filter.project.as_deref() == Some("") {
        return Err(ApiError::BadRequest("project must not be empty".into()));
    }
    let state = filter.state.as_deref().map(|s| validate::one_of("state", s, ProvisionState::ALL, ProvisionState::as_str)).transpose()?;
    let power = filter.power.as_deref().map(|s| validate::one_of("power", s, PowerState::ALL, PowerState::as_str)).transpose()?;
    if filter.q.as_ref().is_some_and(|q| q.chars().count() > 64) {
        return Err(ApiError::BadRequest("q is longer than 64 characters".into()));
    }
    // A user sees its projects' nodes only; a project filter narrows that (or an admin's all).
    let visible = access.visible_projects();
    let wanted_project = filter.project.clone();
    let query_text = filter.q.clone();
    let page = core
        .store
        .call(move |c| {
            let projects = match (visible, wanted_project) {
                (visible, None) => visible,
                (visible, Some(name)) => {
                    let id = projects::get(c, &Key::parse(&name)).map(|p| p.id).ok();
                    // A project the caller cannot see is as empty as one that does not exist.
                    Some(id.into_iter().filter(|id| visible.as_ref().is_none_or(|v| v.contains(id))).collect())
                }
            };
            // One more than the page: whether a next page exists.
            let query = nodes::NodeQuery {
                after: filter.after,
                limit: limit.map(|l| l + 1),
                state,
                power,
                maintenance: filter.maintenance,
                projects,
                text: query_text,
            };
            nodes::query(c, &query)
        })
        .await?;
    let mut page = page;
    let next = paging::cut(&mut page, limit, |n| n.id.0);
    let views: Vec<NodeView> = page.into_iter().map(|n| NodeView::for_caller(n, &access)).collect();
    let mut response = Json(views).into_response();
    let filters = [
        ("state", filter.state),
        ("power", filter.power),
        ("maintenance", filter.maintenance.map(|m| m.to_string())),
        ("project", filter.project),
        ("q", filter.q),
    ];
    paging::link_next(&mut response, "/v1/nodes", limit, paging::Order::Ascending, next, &filters);
    Ok(response)
}

#[utoipa::path(get, path = "/v1/nodes/{id}", operation_id = "show_node", extensions(("x-metalhost-policy" = json!("read:node"))), tag = "nodes", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 200, description = "The node.", body = NodeView)))]
async fn show(State(core): State<WorkflowCore>, access: Access, Path(id): Path<String>) -> ApiResult<Json<NodeView>> {
    let key = Key::parse(&id);
    let node = core.store.call(move |c| nodes::get(c, &key)).await?;
    Ok(Json(NodeView::for_caller(node, &access)))
}

#[utoipa::path(patch, path = "/v1/nodes/{id}", operation_id = "update_node", extensions(("x-metalhost-policy" = json!("admin"))), tag = "nodes", params(("id" = String, Path, description = "The node's id or name.")), request_body = UpdateNode,
    responses((status = 200, description = "The node as changed.", body = NodeView)))]
async fn update(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(mut req): ApiJson<UpdateNode>) -> ApiResult<Json<NodeView>> {
    let dedicated_to = req.dedicated_to.take();
    let change = req.validate()?;
    let key = Key::parse(&id);
    let node = core
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            // The project first: an unknown one is refused before anything changes.
            let project = match dedicated_to.as_deref() {
                None => None,
                Some("") => Some(None),
                Some(p) => Some(Some(
                    projects::get(&tx, &Key::parse(p))
                        .map_err(|e| match e {
                            StoreError::NotFound(what) => StoreError::Unprocessable(format!("{what} does not exist")),
                            other => other,
                        })?
                        .id,
                )),
            };
            let mut tx = tx;
            let node = nodes::update(&mut tx, &key, change)?;
            if let Some(project) = project {
                nodes::dedicate(&tx, node.id, project)?;
            }
            let node = nodes::get_by_id(&tx, node.id)?;
            tx.commit()?;
            Ok(node)
        })
        .await?;
    tracing::info!(node = node.id.0, "node updated");
    let node = crate::provision::validate_node(&core, node.id).await?;
    Ok(Json(node.into()))
}

#[utoipa::path(delete, path = "/v1/nodes/{id}", operation_id = "delete_node", extensions(("x-metalhost-policy" = json!("admin"))), tag = "nodes", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 204, description = "Deleted.")))]
async fn remove(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    core.store.call(move |c| nodes::delete(c, &key)).await?;
    tracing::info!(node = %id, "node deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// At most this many events (1-1000); the answer's `Link: <...>; rel="next"` header names the
    /// next page while there is one. Without it, the whole log (a node's, not the pool's).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The cursor: events after this id (the `Link` header's next page sets it).
    #[param(minimum = 0)]
    after: Option<i64>,
    #[param(value_type = Option<schema::EventKindName>)]
    kind: Option<String>,
}

/// The node's event log, oldest first: state changes, steps with durations, retries, power drift.
#[utoipa::path(get, path = "/v1/nodes/{id}/events", operation_id = "list_node_events", extensions(("x-metalhost-policy" = json!("read:tenancy"))), tag = "nodes",
    params(("id" = String, Path, description = "The node's id or name."), EventFilter),
    responses((status = 200, description = "The events the caller may read (a tenant: its own tenancy's), oldest first; with `limit`, one page and a `Link` header to the next.", body = Vec<Event>,
        headers(("link" = String, description = "`<...>; rel=\"next\"` while more pages follow.")))))]
async fn list_events(
    State(core): State<WorkflowCore>,
    access: Access,
    Path(id): Path<String>,
    Query(filter): Query<EventFilter>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let limit = paging::check(filter.limit, filter.after, paging::Order::Ascending)?;
    let kind = filter.kind.as_deref().map(|k| validate::one_of("kind", k, EventKind::ALL, EventKind::as_str)).transpose()?;
    let key = Key::parse(&id);
    let after = filter.after;
    let (node, mut page) = core
        .store
        .call(move |c| {
            let node = nodes::get(c, &key)?;
            // One more than the page: whether a next page exists.
            let query = EventQuery { tenancy: tenancy(&access, &node), kind, after, limit: limit.map(|l| l + 1), ..EventQuery::of(node.id) };
            Ok((node.id, events::query(c, &query)?))
        })
        .await?;
    let next = paging::cut(&mut page, limit, |e| e.id.0);
    let mut response = Json(page).into_response();
    // The path by id: a node's name may change between pages, its id does not.
    paging::link_next(&mut response, &format!("/v1/nodes/{}/events", node.0), limit, paging::Order::Ascending, next, &[("kind", filter.kind)]);
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsoleQuery {
    /// The newest lines wanted; the whole ring by default.
    limit: Option<i64>,
}

/// What the node printed while it was being deployed or cleaned (a bounded ring, oldest first).
#[utoipa::path(get, path = "/v1/nodes/{id}/console-log", operation_id = "node_console_log", extensions(("x-metalhost-policy" = json!("read:tenancy"))), tag = "nodes",
    params(("id" = String, Path, description = "The node's id or name."), ConsoleQuery),
    responses((status = 200, description = "The newest lines, oldest first.", body = Vec<ConsoleLine>)))]
async fn console_log(
    State(core): State<WorkflowCore>,
    access: Access,
    Path(id): Path<String>,
    Query(q): Query<ConsoleQuery>,
) -> ApiResult<Json<Vec<ConsoleLine>>> {
    let key = Key::parse(&id);
    let limit = q.limit.unwrap_or(console::MAX_LINES).clamp(0, console::MAX_LINES);
    let lines = core
        .store
        .call(move |c| {
            let node = nodes::get(c, &key)?;
            console::tail_of(c, node.id, limit, tenancy(&access, &node))
        })
        .await?;
    Ok(Json(lines))
}

/// Whose lines and events a caller reads: an admin all of them; a tenant only those of the node's
/// current tenancy, never an earlier tenant's.
fn tenancy(access: &Access, node: &Node) -> Option<i64> {
    if access.is_admin() { None } else { Some(node.tenancy) }
}

/// A node's last inventory report, as its agent sent it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InventoryView {
    pub node: String,
    /// When the agent reported it (RFC 3339 UTC).
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub reported_at: i64,
    pub report: metalhost_wire::InventoryReport,
}

/// The hardware the node's last inspection (or its enlistment) found: 404 until it has one.
#[utoipa::path(get, path = "/v1/nodes/{id}/inventory", operation_id = "node_inventory", extensions(("x-metalhost-policy" = json!("admin"))), tag = "nodes", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 200, description = "The last report.", body = InventoryView)))]
async fn inventory(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<InventoryView>> {
    let key = Key::parse(&id);
    let (node, stored) = core
        .store
        .call(move |c| {
            let node = nodes::get(c, &key)?;
            let stored = crate::store::inventory::get(c, node.id)?;
            Ok((node, stored))
        })
        .await?;
    let stored = stored.ok_or_else(|| ApiError::NotFound(format!("inventory of node {:?}: inspect it first", node.name)))?;
    let report = serde_json::from_str(&stored.report).map_err(|e| ApiError::Internal(format!("stored inventory of node {}: {e}", node.id)))?;
    Ok(Json(InventoryView { node: node.name, reported_at: stored.reported_at, report }))
}
