//! `/v1/keypairs`: the caller's own SSH key pairs, by name, for `instance create`'s `keypairs`.
//! Every signed-in user has its own set; a name is looked up among the caller's keys only, so
//! another user's key pair is never seen, used or deleted (api/policy.rs: `signed-in`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::policy::Access;
use super::{schema, validate};
use crate::api::state::AppState;
use crate::domain::identity;
use crate::provision::WorkflowCore;
use crate::store::keypairs::{self, KeyPair};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, add)).routes(routes!(remove))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddKeyPair {
    #[schema(value_type = schema::ResourceName)]
    name: String,
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    #[schema(min_length = 1, max_length = 16384)]
    public_key: String,
}

#[utoipa::path(get, path = "/v1/keypairs", operation_id = "list_keypairs", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "keypairs",
    responses((status = 200, description = "The caller's key pairs.", body = Vec<KeyPair>)))]
async fn list(State(core): State<WorkflowCore>, access: Access) -> ApiResult<Json<Vec<KeyPair>>> {
    let user = access.caller.user;
    Ok(Json(core.store.call(move |c| keypairs::list(c, user)).await?))
}

/// Registers a public key under a name of the caller's (409 when the caller has one by that name).
#[utoipa::path(post, path = "/v1/keypairs", operation_id = "add_keypair", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "keypairs",
    request_body = AddKeyPair, responses((status = 201, description = "The key pair.", body = KeyPair)))]
async fn add(State(core): State<WorkflowCore>, access: Access, ApiJson(req): ApiJson<AddKeyPair>) -> ApiResult<(StatusCode, Json<KeyPair>)> {
    validate::name("key pair name", &req.name)?;
    let key = identity::ssh_key(&req.public_key).map_err(|e| ApiError::Unprocessable(format!("public_key: {e}")))?;
    let user = access.caller.user;
    let pair = core.store.call(move |c| keypairs::add(c, user, &req.name, &key)).await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

#[utoipa::path(delete, path = "/v1/keypairs/{name}", operation_id = "delete_keypair", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "keypairs",
    params(("name" = String, Path, description = "The name of one of the caller's key pairs.")),
    responses((status = 204, description = "Deleted (instances made with it keep their key).")))]
async fn remove(State(core): State<WorkflowCore>, access: Access, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let user = access.caller.user;
    core.store.call(move |c| keypairs::remove(c, user, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
