//! `/v1/instances`: create (deploy onto a fitting node) and delete (destroy), plus progress. The
//! workflows start in `provision::{start_deploy, start_destroy}`.

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
use crate::domain::identity;
use crate::domain::{DeployRequest, InstanceState, Key, RequestedIdentity, Secret};
use crate::provision;
use crate::provision::WorkflowCore;
use crate::store::instances::{self, Instance};
use crate::store::keypairs;
use crate::store::nodes;
use crate::store::projects;
use crate::store::tasks;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, remove))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InstanceView {
    #[serde(flatten)]
    instance: Instance,
    node_name: Option<String>,
    node_state: Option<String>,
    /// Bytes the agent reported written, and the total when known.
    bytes_written: Option<u64>,
    total_bytes: Option<u64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateInstance {
    #[schema(value_type = Option<schema::ResourceName>)]
    name: Option<String>,
    /// Image id or name. One that does not exist is refused with 422.
    #[schema(min_length = 1)]
    image: String,
    /// A node id or name; otherwise the first available node that fits.
    #[schema(min_length = 1)]
    node: Option<String>,
    /// The fewest CPUs the node must have (0: any).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    cpus: i64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    ram_mb: i64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    disk_gb: i64,
    /// The project (id or name) the instance is for: its quota, VLAN and dedicated nodes. Users
    /// must name one of theirs; an admin may leave it out (the instance is then on
    /// `[network] tenant_vlan`).
    #[schema(min_length = 1)]
    project: Option<String>,
    /// The host name on its config drive (RFC 1123); otherwise one made from the instance's name.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = r"^(?![0-9.]+$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
    )]
    hostname: Option<String>,
    /// OpenSSH public key lines that may log in.
    #[serde(default)]
    #[schema(max_items = 32)]
    ssh_keys: Vec<String>,
    /// Names of the caller's key pairs (`/v1/keypairs`) whose keys may log in too.
    #[serde(default)]
    #[schema(max_items = 32)]
    keypairs: Vec<String>,
    /// cloud-config (`#cloud-config` first, valid YAML) or a script, at most 64 KiB. Sealed at rest,
    /// never shown or logged.
    #[schema(max_length = 65536)]
    user_data: Option<String>,
    /// String pairs for `meta_data.json`'s `meta` (at most 128; keys and values up to 255).
    #[serde(default)]
    meta: std::collections::BTreeMap<String, String>,
    /// Write a config drive (a `config-2` partition at the disk's end, which the image's partition
    /// table must have room for). Default: when the instance is given a host name, keys, user data
    /// or metadata, or gets an address from its project's subnet.
    config_drive: Option<bool>,
}

/// The identity fields checked before anything is touched, each error naming its field; the key
/// pairs resolved among the caller's own.
async fn requested_identity(core: &WorkflowCore, access: &Access, req: &mut CreateInstance) -> ApiResult<RequestedIdentity> {
    // What the document states (the host name's pattern) is a 400; what only parsing tells (a key
    // that does not decode, YAML that does not load, a key pair the caller does not have) is a 422:
    // the request is well-formed, its content is not (api/error.rs).
    let bad = |field: &str, e: crate::domain::ParseError| ApiError::Unprocessable(format!("{field}: {e}"));
    let hostname = req.hostname.as_deref().map(identity::host_name).transpose().map_err(|e| ApiError::BadRequest(format!("hostname: {e}")))?;
    if req.ssh_keys.len() + req.keypairs.len() > identity::MAX_SSH_KEYS {
        return Err(ApiError::Unprocessable(format!("ssh_keys: at most {} keys (with keypairs)", identity::MAX_SSH_KEYS)));
    }
    let mut ssh_keys = Vec::new();
    for (i, key) in req.ssh_keys.iter().enumerate() {
        ssh_keys.push(identity::ssh_key(key).map_err(|e| bad(&format!("ssh_keys[{i}]"), e))?);
    }
    if let Some(user_data) = &req.user_data {
        identity::user_data(user_data).map_err(|e| bad("user_data", e))?;
    }
    identity::meta(&req.meta).map_err(|e| bad("meta", e))?;
    if !req.keypairs.is_empty() {
        let (user, names) = (access.caller.user, req.keypairs.clone());
        let found = core
            .store
            .call(move |c| {
                names
                    .iter()
                    .map(|name| match keypairs::get(c, user, name) {
                        Ok(pair) => Ok(Ok(pair.public_key)),
                        Err(crate::store::StoreError::NotFound(_)) => Ok(Err(name.clone())),
                        Err(e) => Err(e),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        for key in found {
            ssh_keys.push(key.map_err(|name| ApiError::Unprocessable(format!("keypairs: you have no key pair named {name:?}")))?);
        }
    }
    ssh_keys.dedup();
    let identity = RequestedIdentity {
        config_drive: req.config_drive,
        hostname,
        ssh_keys,
        user_data: req.user_data.take().map(Secret::new),
        meta: std::mem::take(&mut req.meta),
    };
    if req.config_drive == Some(false) && identity.is_given() {
        return Err(ApiError::Unprocessable(
            "config_drive: false, yet a hostname, ssh_keys, keypairs, user_data or meta was given, which only a config drive carries".into(),
        ));
    }
    Ok(identity)
}

fn non_negative(field: &str, v: i64) -> Result<i64, ApiError> {
    if v < 0 { Err(ApiError::BadRequest(format!("{field} must not be negative, got {v}"))) } else { Ok(v) }
}

/// An instance's node and its latest task, read inside a store call.
fn node_and_task(c: &mut crate::store::Db, instance: &Instance) -> Result<Option<(nodes::Node, Option<tasks::Task>)>, crate::store::StoreError> {
    let Some(id) = instance.node_id else { return Ok(None) };
    let node = nodes::get_listed(c, id)?;
    let task = tasks::latest_for_node(c, node.id)?;
    Ok(Some((node, task)))
}

async fn view(core: &WorkflowCore, instance: Instance) -> ApiResult<InstanceView> {
    let looked_at = instance.clone();
    let extra = core.store.call(move |c| node_and_task(c, &looked_at)).await?;
    Ok(view_of(instance, extra))
}

fn view_of(instance: Instance, extra: Option<(nodes::Node, Option<tasks::Task>)>) -> InstanceView {
    let (node_name, node_state, bytes_written, total_bytes) = match extra {
        Some((node, task)) => {
            (Some(node.name), Some(node.state.to_string()), task.as_ref().map(|t| t.bytes_written), task.and_then(|t| t.total_bytes))
        }
        None => (None, None, None, None),
    };
    InstanceView { instance, node_name, node_state, bytes_written, total_bytes }
}

/// Claims a fitting node and starts the deploy; follow it on the instance or the node.
#[utoipa::path(post, path = "/v1/instances", operation_id = "create_instance", extensions(("x-metalhost-policy" = json!("create-in-project"))), tag = "instances", request_body = CreateInstance,
    responses((status = 201, description = "Deploy started.", body = InstanceView)))]
async fn create(
    State(core): State<WorkflowCore>,
    access: Access,
    ApiJson(mut req): ApiJson<CreateInstance>,
) -> ApiResult<(StatusCode, Json<InstanceView>)> {
    if let Some(name) = &req.name {
        validate::name("instance name", name)?;
    }
    let identity = requested_identity(&core, &access, &mut req).await?;
    let project = access.create_in(&core, req.project.as_deref()).await?;
    let request = DeployRequest {
        name: req.name,
        image: Key::parse(&req.image),
        node: req.node.as_deref().map(Key::parse),
        cpus: u32::try_from(non_negative("cpus", req.cpus)?).unwrap_or(u32::MAX),
        ram_mb: u64::try_from(non_negative("ram_mb", req.ram_mb)?).unwrap_or(0),
        disk_gb: u64::try_from(non_negative("disk_gb", req.disk_gb)?).unwrap_or(0),
        project,
        identity,
    };
    let (instance, _) = provision::start_deploy(&core, request).await?;
    Ok((StatusCode::CREATED, Json(view(&core, instance).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InstanceFilter {
    /// At most this many (1-1000); the `Link: <...>; rel="next"` header names the next page while
    /// there is one. Without it, every instance.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The cursor: instances after this id.
    #[param(minimum = 0)]
    after: Option<i64>,
    #[param(value_type = Option<schema::InstanceStateName>)]
    state: Option<String>,
    /// Instances of this project (id or name).
    #[param(min_length = 1)]
    project: Option<String>,
}

#[utoipa::path(get, path = "/v1/instances", operation_id = "list_instances", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "instances",
    params(InstanceFilter),
    responses((status = 200, description = "The instances the caller may see that pass the filters, in id order; with `limit`, one page and a `Link` header to the next.", body = Vec<InstanceView>,
        headers(("link" = String, description = "`<...>; rel=\"next\"` while more pages follow.")))))]
async fn list(State(core): State<WorkflowCore>, access: Access, Query(filter): Query<InstanceFilter>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let limit = paging::check(filter.limit, filter.after, paging::Order::Ascending)?;
    if filter.project.as_deref() == Some("") {
        return Err(ApiError::BadRequest("project must not be empty".into()));
    }
    let state = filter.state.as_deref().map(|s| validate::one_of("state", s, InstanceState::ALL, InstanceState::as_str)).transpose()?;
    let visible = access.visible_projects();
    let (after, wanted) = (filter.after, filter.project.clone());
    // One store call for the whole page, not one per instance.
    let mut all = core
        .store
        .call(move |c| {
            let projects = match wanted {
                None => visible,
                Some(name) => {
                    // A project the caller cannot see is as empty as one that does not exist.
                    let id = projects::get(c, &Key::parse(&name)).map(|p| p.id).ok();
                    Some(id.into_iter().filter(|id| visible.as_ref().is_none_or(|v| v.contains(id))).collect())
                }
            };
            let all = instances::query(c, after, limit.map(|l| l + 1), state, projects.as_deref())?;
            let mut out = Vec::with_capacity(all.len());
            for instance in all {
                let extra = node_and_task(c, &instance)?;
                out.push((instance, extra));
            }
            Ok(out)
        })
        .await?;
    let next = paging::cut(&mut all, limit, |(instance, _)| instance.id.0);
    let mut response = Json(all.into_iter().map(|(instance, extra)| view_of(instance, extra)).collect::<Vec<_>>()).into_response();
    paging::link_next(&mut response, "/v1/instances", limit, paging::Order::Ascending, next, &[("state", filter.state), ("project", filter.project)]);
    Ok(response)
}

#[utoipa::path(get, path = "/v1/instances/{id}", operation_id = "show_instance", extensions(("x-metalhost-policy" = json!("read:instance"))), tag = "instances", params(("id" = String, Path, description = "The instance's id or name.")),
    responses((status = 200, description = "The instance and its deploy progress.", body = InstanceView)))]
async fn show(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<InstanceView>> {
    let key = Key::parse(&id);
    let instance = core.store.call(move |c| instances::get(c, &key)).await?;
    Ok(Json(view(&core, instance).await?))
}

#[utoipa::path(delete, path = "/v1/instances/{id}", operation_id = "delete_instance", extensions(("x-metalhost-policy" = json!("write:instance"))), tag = "instances", params(("id" = String, Path, description = "The instance's id or name.")),
    responses((status = 202, description = "Destroy started.", body = InstanceView)))]
/// Destroy: the node powers off, its port goes back to provisioning and its disks are cleaned; the
/// instance disappears once the node is back in the pool.
async fn remove(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<(StatusCode, Json<InstanceView>)> {
    let instance = provision::start_destroy(&core, Key::parse(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&core, instance).await?)))
}
