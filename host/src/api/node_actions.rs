//! Operator actions on one node: power, boot device, network, recover.
//! Refused while a workflow drives the node, so a person and the daemon never fight over a BMC.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiJson, ApiResult};
use super::nodes::NodeView;
use crate::app::AppState;
use crate::domain::{NetworkKind, PowerState, ProvisionState, now_ms};
use crate::drivers::{self, BootDevice, PowerAction};
use crate::provision;
use crate::store::nodes::{self, Node, Transition};
use crate::store::switches::Key;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/nodes/{id}/power", put(set_power).get(get_power))
        .route("/v1/nodes/{id}/boot-device", put(set_boot_device))
        .route("/v1/nodes/{id}/network", put(set_network))
        .route("/v1/nodes/{id}/recover", post(recover))
}

async fn idle_node(state: &AppState, id: &str) -> ApiResult<Node> {
    let key = Key::parse(id);
    let node = state.store.call(move |c| nodes::get(c, &key)).await?;
    if node.state.is_transitional() {
        return Err(ApiError::Conflict(format!("node {:?} is {}: its workflow owns it until it settles", node.name, node.state)));
    }
    Ok(node)
}

fn driver_error(e: drivers::DriverFailure) -> ApiError {
    ApiError::Unavailable(e.to_string())
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

async fn record_power(state: &AppState, node: &Node, power: PowerState, why: &'static str) -> ApiResult<()> {
    let id = node.id;
    state.store.call(move |c| nodes::set_power_state(c, id, power, why)).await?;
    Ok(())
}

async fn set_power(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<PowerRequest>) -> ApiResult<Json<PowerView>> {
    let action = match req.action.as_str() {
        "on" => PowerAction::On,
        "off" => PowerAction::Off,
        "reboot" => PowerAction::Reboot,
        other => return Err(ApiError::BadRequest(format!("invalid power action {other:?}: expected on, off or reboot"))),
    };
    let node = idle_node(&state, &id).await?;
    drivers::set_power(&state.plugins, &node, action).await.map_err(driver_error)?;
    let power = if action == PowerAction::Off { PowerState::Off } else { PowerState::On };
    record_power(&state, &node, power, "set by the operator").await?;
    Ok(Json(PowerView { node: node.name, power_state: power.to_string() }))
}

async fn get_power(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PowerView>> {
    let key = Key::parse(&id);
    let node = state.store.call(move |c| nodes::get(c, &key)).await?;
    let power = drivers::power_state(&state.plugins, &node).await.map_err(driver_error)?;
    record_power(&state, &node, power, "read by the operator").await?;
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

async fn set_boot_device(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BootDeviceRequest>,
) -> ApiResult<StatusCode> {
    let device = match req.device.as_str() {
        "pxe" => BootDevice::Pxe,
        "disk" => BootDevice::Disk,
        other => return Err(ApiError::BadRequest(format!("invalid boot device {other:?}: expected pxe or disk"))),
    };
    let node = idle_node(&state, &id).await?;
    drivers::set_boot_device(&state.plugins, &node, device, req.persistent).await.map_err(driver_error)?;
    let message = format!("boot device set to {} ({})", req.device, if req.persistent { "persistent" } else { "next boot" });
    let node_id = node.id;
    state.store.call(move |c| crate::store::events::append(c, crate::store::events::NewEvent::note(node_id, "boot-device", &message))).await?;
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
    if network == NetworkKind::Provisioning && req.vlan.is_some_and(|v| v != i64::from(net.provisioning_vlan)) {
        return Err(ApiError::BadRequest("the provisioning network has one VLAN, set in the config".into()));
    }
    let vlan = match req.vlan {
        Some(v) => crate::domain::Vlan::new(v)?.id(),
        None => default_vlan,
    };
    let name = if vlan == default_vlan { name } else { format!("tenant-{vlan}") };
    let node = idle_node(&state, &id).await?;
    provision::move_port_to(&state, &node, network, vlan, &name, "switch port move (operator)")
        .await
        .map_err(|f| ApiError::Unavailable(f.message))?;
    let node_id = node.id;
    let node = state.store.call(move |c| nodes::get_by_id(c, node_id)).await?;
    Ok(Json(node.into()))
}

/// From `error`: power off, port back to provisioning, clean (unless skip_clean), then available.
/// An instance the node still holds is destroyed with it.
async fn recover(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<NodeView>)> {
    let key = Key::parse(&id);
    let deadline = now_ms() + i64::try_from(state.config.deploy.step_timeout_s).unwrap_or(300) * 1000;
    let node = state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let node = nodes::get(&tx, &key)?;
            if node.maintenance {
                return Err(crate::store::StoreError::Conflict(format!("node {:?} is in maintenance: turn it off first", node.name)));
            }
            let node = nodes::transition(
                &tx,
                Transition { node: node.id, from: &[ProvisionState::Error], to: ProvisionState::Deleting, message: "recover: power off, port to provisioning, clean", deadline: Some(deadline), duration_ms: None },
            )?;
            if let Some(instance) = node.instance_id {
                crate::store::instances::set_state(&tx, instance, "deleting", Some("node recovery destroys it"))?;
            }
            tx.commit()?;
            Ok(node)
        })
        .await?;
    provision::kick(&state, node.id);
    Ok((StatusCode::ACCEPTED, Json(node.into())))
}
