//! `/v1/switches`: the switch registry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::{schema, validate};
use crate::api::state::AppState;
use crate::domain::Key;
use crate::domain::{ChassisId, Hostname, Secret};
use crate::provision::WorkflowCore;
use crate::store::switches::{self, NewSwitch, Switch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, update, remove)).routes(routes!(check))
}

/// A switch as clients see it: no password.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SwitchView {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub driver: String,
    pub description: String,
    pub host_key: Option<String>,
    pub host_key_pinned: bool,
    /// The LLDP chassis id it announces: inspection fills in a node's port from it.
    pub chassis_id: Option<String>,
}

impl From<Switch> for SwitchView {
    fn from(s: Switch) -> Self {
        SwitchView {
            id: s.id.0,
            name: s.name,
            address: s.address,
            port: s.port,
            username: s.username,
            driver: s.driver,
            description: s.description,
            host_key: s.host_key,
            host_key_pinned: s.host_key_pinned,
            chassis_id: s.chassis_id,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSwitch {
    /// Defaults to the address (with `-` for each character a name cannot have, at most 63).
    #[schema(value_type = Option<schema::ResourceName>)]
    name: Option<String>,
    #[schema(value_type = schema::Host)]
    address: String,
    /// NETCONF over SSH listens on 830 by default.
    #[schema(minimum = 1, maximum = 65535)]
    port: Option<i64>,
    #[schema(value_type = schema::NonBlank)]
    username: String,
    #[schema(value_type = schema::NonBlank)]
    password: String,
    /// The name of a loaded switch plugin.
    #[schema(value_type = schema::ResourceName)]
    driver: String,
    #[serde(default)]
    description: String,
    /// Pin the SSH host key (`SHA256:...`) instead of trusting the first one seen.
    #[schema(pattern = "^SHA256:.{13,}$")]
    host_key: Option<String>,
    /// The LLDP chassis id the switch announces (a MAC, or its text): nodes inspected behind it
    /// get their switch port from their LLDP neighbour.
    #[schema(value_type = Option<schema::ChassisIdText>)]
    chassis_id: Option<String>,
}

/// A switch named after its address: the address, with `-` for what a name cannot hold (an IPv6
/// address's colons), cut to a name's 63 characters.
fn name_from_address(address: &Hostname) -> String {
    let name: String = address.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).take(63).collect();
    name
}

#[utoipa::path(post, path = "/v1/switches", operation_id = "create_switch", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches", request_body = CreateSwitch,
    responses((status = 201, description = "Added.", body = SwitchView)))]
async fn create(State(core): State<WorkflowCore>, ApiJson(req): ApiJson<CreateSwitch>) -> ApiResult<(StatusCode, Json<SwitchView>)> {
    let address: Hostname = req.address.parse()?;
    let name = req.name.unwrap_or_else(|| name_from_address(&address));
    validate::name("switch name", &name)?;
    let port = validate::port("port", req.port.unwrap_or(830))?;
    validate::non_empty("username", &req.username)?;
    validate::non_empty("password", &req.password)?;
    validate::name("driver", &req.driver)?;
    if let Some(key) = &req.host_key
        && (!key.starts_with("SHA256:") || key.chars().count() < 20)
    {
        return Err(ApiError::BadRequest(format!("invalid host_key {key:?}: expected an OpenSSH fingerprint SHA256:...")));
    }
    let new = NewSwitch {
        name,
        address,
        port,
        username: req.username,
        password: Secret::new(req.password),
        driver: req.driver,
        description: req.description,
        pinned_host_key: req.host_key,
        chassis_id: req.chassis_id.as_deref().map(str::parse::<ChassisId>).transpose()?,
    };
    let switch = core.store.call(move |c| switches::insert(c, new)).await?;
    tracing::info!(switch = switch.id.0, name = %switch.name, "switch added");
    Ok((StatusCode::CREATED, Json(switch.into())))
}

#[utoipa::path(get, path = "/v1/switches", operation_id = "list_switches", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches",
    responses((status = 200, description = "Every switch.", body = Vec<SwitchView>)))]
async fn list(State(core): State<WorkflowCore>) -> ApiResult<Json<Vec<SwitchView>>> {
    let all = core.store.call(|c| switches::list(c)).await?;
    Ok(Json(all.into_iter().map(SwitchView::from).collect()))
}

#[utoipa::path(get, path = "/v1/switches/{id}", operation_id = "show_switch", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches", params(("id" = String, Path, description = "The switch's id or name.")),
    responses((status = 200, description = "The switch.", body = SwitchView)))]
async fn show(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<SwitchView>> {
    let key = Key::parse(&id);
    let switch = core.store.call(move |c| switches::get(c, &key)).await?;
    Ok(Json(switch.into()))
}

/// What can change on a registered switch without re-adding it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSwitch {
    /// The LLDP chassis id it announces (a MAC, or its text).
    #[schema(value_type = Option<schema::ChassisIdText>)]
    chassis_id: Option<String>,
}

/// Sets what the switch announces over LLDP, so inspections behind it find their ports.
#[utoipa::path(patch, path = "/v1/switches/{id}", operation_id = "update_switch", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches", params(("id" = String, Path, description = "The switch's id or name.")), request_body = UpdateSwitch,
    responses((status = 200, description = "The switch as changed.", body = SwitchView)))]
async fn update(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdateSwitch>) -> ApiResult<Json<SwitchView>> {
    let chassis = req.chassis_id.as_deref().map(str::parse::<ChassisId>).transpose()?;
    let key = Key::parse(&id);
    let switch = core.store.call(move |c| switches::set_chassis_id(c, &key, chassis)).await?;
    tracing::info!(switch = switch.id.0, "switch updated");
    Ok(Json(switch.into()))
}

#[utoipa::path(delete, path = "/v1/switches/{id}", operation_id = "delete_switch", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches", params(("id" = String, Path, description = "The switch's id or name.")),
    responses((status = 204, description = "Deleted.")))]
async fn remove(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    core.store.call(move |c| switches::delete(c, &key)).await?;
    tracing::info!(switch = %id, "switch deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
struct CheckView {
    switch: String,
    reachable: bool,
    model: Option<String>,
    capabilities: Vec<String>,
    host_key: Option<String>,
    error: Option<String>,
}

/// Connects and reports reachability, NETCONF capabilities and model/syntax; changes nothing
/// (except remembering a first-use host key).
#[utoipa::path(get, path = "/v1/switches/{id}/check", operation_id = "check_switch", extensions(("x-metalhost-policy" = json!("admin"))), tag = "switches", params(("id" = String, Path, description = "The switch's id or name.")),
    responses((status = 200, description = "What the switch answered; an unreachable switch is `reachable: false` with its error.", body = CheckView)))]
async fn check(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<CheckView>> {
    let key = Key::parse(&id);
    let switch = core.store.call(move |c| switches::get(c, &key)).await?;
    let outcome = crate::drivers::describe_switch(&core.plugins, &switch.access()).await;
    Ok(Json(match outcome {
        Ok((description, fingerprint)) => {
            if !fingerprint.is_empty() && switch.host_key.is_none() {
                let id = switch.id;
                let fp = fingerprint.clone();
                core.store.call(move |c| switches::learn_host_key(c, id, &fp)).await?;
            }
            CheckView {
                switch: switch.name,
                reachable: true,
                model: Some(description.model),
                capabilities: description.capabilities,
                host_key: Some(fingerprint),
                error: None,
            }
        }
        Err(e) => CheckView {
            switch: switch.name,
            reachable: false,
            model: None,
            capabilities: vec![],
            host_key: switch.host_key,
            error: Some(e.to_string()),
        },
    }))
}
