//! Operator actions on one node: power, boot device, network, recover, inspect. The work is in
//! `provision` (operator actions and `recover`); these handlers parse, call and map errors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::nodes::NodeView;
use super::{schema, validate};
use crate::api::state::AppState;
use crate::domain::Key;
use crate::domain::{BootDevice, NetworkKind, PowerAction, Vlan};
use crate::provision;
use crate::provision::WorkflowCore;
use utoipa::openapi::{RefOr, Schema};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_power, get_power))
        .routes(routes!(set_boot_device))
        .routes(routes!(set_network))
        .routes(routes!(recover))
        .routes(routes!(inspect))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PowerRequest {
    #[schema(value_type = schema::PowerActionName)]
    action: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PowerView {
    node: String,
    power_state: String,
}

#[utoipa::path(put, path = "/v1/nodes/{id}/power", operation_id = "set_node_power", extensions(("x-metalhost-policy" = json!("write:tenancy"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")), request_body = PowerRequest,
    responses((status = 200, description = "The power state after the action.", body = PowerView)))]
async fn set_power(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(req): ApiJson<PowerRequest>) -> ApiResult<Json<PowerView>> {
    let action = validate::one_of("action", &req.action, PowerAction::OPERATOR, PowerAction::as_str)?;
    let (node, power) = provision::set_power(&core, Key::parse(&id), action).await?;
    Ok(Json(PowerView { node: node.name, power_state: power.to_string() }))
}

/// Reads the power state from the BMC now.
#[utoipa::path(get, path = "/v1/nodes/{id}/power", operation_id = "get_node_power", extensions(("x-metalhost-policy" = json!("read:node"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 200, description = "The BMC's answer.", body = PowerView)))]
async fn get_power(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<PowerView>> {
    let (node, power) = provision::power_state(&core, Key::parse(&id)).await?;
    Ok(Json(PowerView { node: node.name, power_state: power.to_string() }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BootDeviceRequest {
    #[schema(value_type = schema::BootDeviceName)]
    device: String,
    /// Defaults to true.
    #[serde(default = "yes")]
    persistent: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/v1/nodes/{id}/boot-device", operation_id = "set_node_boot_device", extensions(("x-metalhost-policy" = json!("admin"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")), request_body = BootDeviceRequest,
    responses((status = 204, description = "Set.")))]
async fn set_boot_device(
    State(core): State<WorkflowCore>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BootDeviceRequest>,
) -> ApiResult<StatusCode> {
    let device = validate::one_of("device", &req.device, BootDevice::ALL, BootDevice::as_str)?;
    provision::set_boot_device(&core, Key::parse(&id), device, req.persistent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `provisioning` (its one VLAN, from the config), or `tenant` with the configured tenant VLAN or
/// another one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRequest {
    network: String,
    vlan: Option<i64>,
}

impl utoipa::PartialSchema for NetworkRequest {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
        let network = |name: &'static str| ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name]));
        let request = |name: &'static str, vlan: ObjectBuilder| {
            ObjectBuilder::new()
                .property("network", network(name))
                .required("network")
                .property("vlan", vlan)
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
        };
        let no_vlan = ObjectBuilder::new().schema_type(Type::Null).description(Some("The provisioning network has one VLAN, set in the config."));
        let tenant_vlan = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(1))
            .maximum(Some(4094))
            .description(Some("A tenant VLAN other than the configured one (none: the configured one)."));
        OneOfBuilder::new().item(request("provisioning", no_vlan)).item(request("tenant", tenant_vlan)).into()
    }
}

impl utoipa::ToSchema for NetworkRequest {}

/// Moves the node's switch port to a network.
#[utoipa::path(put, path = "/v1/nodes/{id}/network", operation_id = "set_node_network", extensions(("x-metalhost-policy" = json!("admin"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")), request_body = NetworkRequest,
    responses((status = 200, description = "The node on its new network.", body = NodeView)))]
async fn set_network(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(req): ApiJson<NetworkRequest>) -> ApiResult<Json<NodeView>> {
    let network = validate::one_of("network", &req.network, NetworkKind::MOVABLE, NetworkKind::as_str)?;
    let net = &core.config.network;
    let (default_vlan, name) = match network {
        NetworkKind::Provisioning => (net.provisioning_vlan, net.provisioning_vlan_name.clone()),
        NetworkKind::Tenant => (net.tenant_vlan, net.tenant_vlan_name.clone()),
        NetworkKind::Unknown => return Err(ApiError::BadRequest("network must be provisioning or tenant".into())),
    };
    let vlan = req.vlan.map(Vlan::new).transpose()?.unwrap_or(default_vlan);
    if network == NetworkKind::Provisioning && vlan != net.provisioning_vlan {
        return Err(ApiError::BadRequest("the provisioning network has one VLAN, set in the config".into()));
    }
    let name = if vlan == default_vlan { name } else { format!("tenant-{vlan}") };
    let node = provision::move_port(&core, Key::parse(&id), network, vlan, &name).await?;
    Ok(Json(node.into()))
}

/// Takes a node out of `error`: powers it off, moves its port back, cleans it, and makes it available.
#[utoipa::path(post, path = "/v1/nodes/{id}/recover", operation_id = "recover_node", extensions(("x-metalhost-policy" = json!("admin"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 202, description = "Recovery started.", body = NodeView)))]
async fn recover(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let node = provision::recover(&core, Key::parse(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(node.into())))
}

/// Boots the node into the agent to read its hardware and its LLDP neighbours, then powers it off
/// and puts it back in the state it was in (`available` or `enrolled`).
#[utoipa::path(post, path = "/v1/nodes/{id}/inspect", operation_id = "inspect_node", extensions(("x-metalhost-policy" = json!("admin"))), tag = "node actions", params(("id" = String, Path, description = "The node's id or name.")),
    responses((status = 202, description = "Inspection started.", body = NodeView)))]
async fn inspect(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let node = provision::start_inspect(&core, Key::parse(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(node.into())))
}
