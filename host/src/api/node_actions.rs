//! Operator actions on one node: power, boot device, network, recover. The work is in
//! `provision` (operator actions and `recover`); these handlers parse, call and map errors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson, ApiResult};
use super::nodes::NodeView;
use crate::app::AppState;
use crate::domain::{BootDevice, NetworkKind, PowerAction, Vlan};
use crate::provision;
use crate::store::switches::Key;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/nodes/{id}/power", put(set_power).get(get_power))
        .route("/v1/nodes/{id}/boot-device", put(set_boot_device))
        .route("/v1/nodes/{id}/network", put(set_network))
        .route("/v1/nodes/{id}/recover", post(recover))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PowerRequest {
    action: String,
}

#[derive(Serialize)]
struct PowerView {
    node: String,
    power_state: String,
}

async fn set_power(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<PowerRequest>) -> ApiResult<Json<PowerView>> {
    let action: PowerAction = req.action.parse()?;
    let (node, power) = provision::set_power(&state, Key::parse(&id), action).await?;
    Ok(Json(PowerView { node: node.name, power_state: power.to_string() }))
}

async fn get_power(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PowerView>> {
    let (node, power) = provision::power_state(&state, Key::parse(&id)).await?;
    Ok(Json(PowerView { node: node.name, power_state: power.to_string() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootDeviceRequest {
    device: String,
    #[serde(default = "yes")]
    persistent: bool,
}

fn yes() -> bool {
    true
}

async fn set_boot_device(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<BootDeviceRequest>) -> ApiResult<StatusCode> {
    let device: BootDevice = req.device.parse()?;
    provision::set_boot_device(&state, Key::parse(&id), device, req.persistent).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRequest {
    network: String,
    vlan: Option<i64>,
}

async fn set_network(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<NetworkRequest>) -> ApiResult<Json<NodeView>> {
    let network: NetworkKind = req.network.parse()?;
    let net = &state.config.network;
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
    let node = provision::move_port(&state, Key::parse(&id), network, vlan, &name).await?;
    Ok(Json(node.into()))
}

async fn recover(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let node = provision::recover(&state, Key::parse(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(node.into())))
}
