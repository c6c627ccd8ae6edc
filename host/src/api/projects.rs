//! `/v1/projects`: projects (name, instance quota, VLAN) and who belongs to them; `/v1/users`,
//! `/v1/tokens`, `/v1/whoami` and `/v1/audit`. Who may call what is declared on each operation
//! and decided in api/policy.rs.

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
use crate::domain::identity::Subnet;
use crate::domain::tenancy::Role;
use crate::domain::{Key, TokenId, UserId, deadline_in};
use crate::provision::WorkflowCore;
use crate::store::audit::{self, Actor, AuditEntry, AuditQuery, OutcomeClass};
use crate::store::projects::{self, Project};
use crate::store::users::{self, TokenInfo, User};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(show_project, update_project, delete_project))
        .routes(routes!(set_subnet, remove_subnet))
        .routes(routes!(list_users, create_user))
        .routes(routes!(show_user, delete_user))
        .routes(routes!(set_role, remove_role))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(whoami))
        .routes(routes!(list_audit))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    #[schema(value_type = schema::ResourceName)]
    name: String,
    /// The most instances the project may have at once.
    #[schema(minimum = 0, maximum = 100_000)]
    quota: i64,
    /// The IPv4 subnet its instances get addresses from; without one they ask DHCP.
    subnet: Option<SubnetBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubnetBody {
    /// Like `10.77.0.0/24` (prefix 8-30).
    #[schema(min_length = 1, max_length = 18)]
    cidr: String,
    /// A host address of the subnet the instances route through.
    #[schema(min_length = 1, max_length = 15)]
    gateway: Option<String>,
    /// At most three DNS servers (IP addresses).
    #[serde(default)]
    #[schema(max_items = 3)]
    dns: Vec<String>,
}

impl SubnetBody {
    fn parse(&self) -> Result<Subnet, ApiError> {
        Subnet::parse(&self.cidr, self.gateway.as_deref(), &self.dns).map_err(|e| ApiError::Unprocessable(format!("subnet: {e}")))
    }
}

fn quota(value: i64) -> Result<i64, ApiError> {
    if (0..=100_000).contains(&value) { Ok(value) } else { Err(ApiError::BadRequest(format!("quota must be 0-100000, got {value}"))) }
}

/// Makes a project on the lowest free VLAN of `[network] tenant_vlans` (409 when none is left).
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", extensions(("x-metalhost-policy" = json!("admin"))), tag = "projects",
    request_body = CreateProject, responses((status = 201, description = "The project.", body = Project)))]
async fn create_project(State(core): State<WorkflowCore>, ApiJson(req): ApiJson<CreateProject>) -> ApiResult<(StatusCode, Json<Project>)> {
    validate::name("project name", &req.name)?;
    let quota = quota(req.quota)?;
    let subnet = req.subnet.as_ref().map(SubnetBody::parse).transpose()?;
    let range = core.config.network.tenant_vlans;
    let project = core.store.call(move |c| projects::create(c, &req.name, quota, range, subnet.as_ref())).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// The projects the caller belongs to (an admin: all).
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "projects",
    responses((status = 200, description = "Projects.", body = Vec<Project>)))]
async fn list_projects(State(core): State<WorkflowCore>, access: Access) -> ApiResult<Json<Vec<Project>>> {
    let visible = access.visible_projects();
    Ok(Json(core.store.call(move |c| projects::list(c, visible.as_deref())).await?))
}

#[utoipa::path(get, path = "/v1/projects/{id}", operation_id = "show_project", extensions(("x-metalhost-policy" = json!("read:project"))), tag = "projects",
    params(("id" = String, Path, description = "The project's id or name.")),
    responses((status = 200, description = "The project.", body = Project)))]
async fn show_project(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<Project>> {
    let key = Key::parse(&id);
    Ok(Json(core.store.call(move |c| projects::get(c, &key)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateProject {
    #[schema(minimum = 0, maximum = 100_000)]
    quota: i64,
}

/// Changes the quota (instances already there stay, even above it).
#[utoipa::path(patch, path = "/v1/projects/{id}", operation_id = "update_project", extensions(("x-metalhost-policy" = json!("admin"))), tag = "projects",
    params(("id" = String, Path, description = "The project's id or name.")), request_body = UpdateProject,
    responses((status = 200, description = "The project.", body = Project)))]
async fn update_project(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdateProject>) -> ApiResult<Json<Project>> {
    let quota = quota(req.quota)?;
    let key = Key::parse(&id);
    let project = core
        .store
        .call(move |c| {
            let project = projects::get(c, &key)?;
            projects::set_quota(c, project.id, quota)?;
            projects::get(c, &Key::Id(project.id.0))
        })
        .await?;
    Ok(Json(project))
}

/// Gives the project its subnet, or another one, while it has no instances (409 otherwise).
#[utoipa::path(put, path = "/v1/projects/{id}/subnet", operation_id = "set_project_subnet", extensions(("x-metalhost-policy" = json!("admin"))), tag = "projects",
    params(("id" = String, Path, description = "The project's id or name.")), request_body = SubnetBody,
    responses((status = 200, description = "The project.", body = Project)))]
async fn set_subnet(State(core): State<WorkflowCore>, Path(id): Path<String>, ApiJson(req): ApiJson<SubnetBody>) -> ApiResult<Json<Project>> {
    let subnet = req.parse()?;
    let key = Key::parse(&id);
    let project = core
        .store
        .call(move |c| {
            let project = projects::get(c, &key)?;
            projects::set_subnet(c, project.id, Some(&subnet))
        })
        .await?;
    Ok(Json(project))
}

/// Takes the subnet away while the project has no instances: its instances then ask DHCP.
#[utoipa::path(delete, path = "/v1/projects/{id}/subnet", operation_id = "remove_project_subnet", extensions(("x-metalhost-policy" = json!("admin"))), tag = "projects",
    params(("id" = String, Path, description = "The project's id or name.")),
    responses((status = 200, description = "The project.", body = Project)))]
async fn remove_subnet(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<Project>> {
    let key = Key::parse(&id);
    let project = core
        .store
        .call(move |c| {
            let project = projects::get(c, &key)?;
            projects::set_subnet(c, project.id, None)
        })
        .await?;
    Ok(Json(project))
}

/// Deletes an empty project (409 while it has instances or images); its VLAN is free again.
#[utoipa::path(delete, path = "/v1/projects/{id}", operation_id = "delete_project", extensions(("x-metalhost-policy" = json!("admin"))), tag = "projects",
    params(("id" = String, Path, description = "The project's id or name.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_project(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    core.store.call(move |c| projects::remove(c, &key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    #[schema(value_type = schema::ResourceName)]
    name: String,
    /// A system administrator.
    #[serde(default)]
    admin: bool,
}

#[utoipa::path(post, path = "/v1/users", operation_id = "create_user", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    request_body = CreateUser, responses((status = 201, description = "The user; give it a role and a token.", body = User)))]
async fn create_user(State(core): State<WorkflowCore>, ApiJson(req): ApiJson<CreateUser>) -> ApiResult<(StatusCode, Json<User>)> {
    validate::name("user name", &req.name)?;
    let user = core.store.call(move |c| users::create(c, &req.name, req.admin)).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/v1/users", operation_id = "list_users", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    responses((status = 200, description = "Every user and its roles.", body = Vec<User>)))]
async fn list_users(State(core): State<WorkflowCore>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(core.store.call(|c| users::list(c)).await?))
}

#[utoipa::path(get, path = "/v1/users/{id}", operation_id = "show_user", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    params(("id" = String, Path, description = "The user's id or name.")),
    responses((status = 200, description = "The user and its roles.", body = User)))]
async fn show_user(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<User>> {
    let key = Key::parse(&id);
    Ok(Json(core.store.call(move |c| users::get(c, &key)).await?))
}

/// Deletes a user and its tokens (the operator token's user stays: 409).
#[utoipa::path(delete, path = "/v1/users/{id}", operation_id = "delete_user", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    params(("id" = String, Path, description = "The user's id or name.")),
    responses((status = 204, description = "Deleted.")))]
async fn delete_user(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    core.store.call(move |c| users::remove(c, &key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetRole {
    #[schema(value_type = schema::RoleName)]
    role: String,
}

/// Gives a user a role in a project (replacing the one it had there).
#[utoipa::path(put, path = "/v1/users/{id}/roles/{project}", operation_id = "set_user_role", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    params(("id" = String, Path, description = "The user's id or name."), ("project" = String, Path, description = "The project's id or name.")),
    request_body = SetRole, responses((status = 200, description = "The user and its roles.", body = User)))]
async fn set_role(
    State(core): State<WorkflowCore>,
    Path((id, project)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetRole>,
) -> ApiResult<Json<User>> {
    let role = validate::one_of("role", &req.role, &[Role::Reader, Role::Member], Role::as_str)?;
    let (user, project) = (Key::parse(&id), Key::parse(&project));
    let user = core
        .store
        .call(move |c| {
            let user = users::get(c, &user)?;
            let project = projects::get(c, &project)?;
            projects::set_role(c, user.id, project.id, role)?;
            users::get(c, &Key::Id(user.id.0))
        })
        .await?;
    Ok(Json(user))
}

/// Takes a user's role in a project away.
#[utoipa::path(delete, path = "/v1/users/{id}/roles/{project}", operation_id = "remove_user_role", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    params(("id" = String, Path, description = "The user's id or name."), ("project" = String, Path, description = "The project's id or name.")),
    responses((status = 200, description = "The user and its roles.", body = User)))]
async fn remove_role(State(core): State<WorkflowCore>, Path((id, project)): Path<(String, String)>) -> ApiResult<Json<User>> {
    let (user, project) = (Key::parse(&id), Key::parse(&project));
    let user = core
        .store
        .call(move |c| {
            let user = users::get(c, &user)?;
            let project = projects::get(c, &project)?;
            if !projects::remove_role(c, user.id, project.id)? {
                return Err(crate::store::StoreError::NotFound(format!("a role of user {:?} in project {:?}", user.name, project.name)));
            }
            users::get(c, &Key::Id(user.id.0))
        })
        .await?;
    Ok(Json(user))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// Whose token (an admin may name any user); the caller's own by default.
    #[schema(min_length = 1)]
    user: Option<String>,
    /// What the token is for, shown in lists.
    #[serde(default)]
    #[schema(max_length = 200)]
    description: String,
    /// Days until it expires (1-365, default 30).
    #[schema(minimum = 1, maximum = 365)]
    expires_in_days: Option<i64>,
}

/// A new token, shown this once: the daemon keeps only its hash.
#[derive(Serialize, utoipa::ToSchema)]
struct NewToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// The token itself: `Authorization: Bearer <token>`. It cannot be shown again.
    token: String,
}

/// Makes an API token for the caller (or, for an admin, any user).
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "users",
    request_body = CreateToken, responses((status = 201, description = "The token, shown once.", body = NewToken)))]
async fn create_token(
    State(core): State<WorkflowCore>,
    access: Access,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let days = req.expires_in_days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::BadRequest(format!("expires_in_days must be 1-365, got {days}")));
    }
    if req.description.chars().count() > 200 {
        return Err(ApiError::BadRequest("description is longer than 200 characters".into()));
    }
    let user = match &req.user {
        Some(name) if access.is_admin() => Key::parse(name),
        Some(name) if Key::parse(name).matches(access.caller.user.0, &access.caller.name) => Key::Id(access.caller.user.0),
        Some(_) => return Err(ApiError::Forbidden("only an admin makes tokens for another user".into())),
        None => Key::Id(access.caller.user.0),
    };
    let expires_at = deadline_in(std::time::Duration::from_secs(u64::try_from(days).unwrap_or(30) * 86_400));
    let (info, token) = core
        .store
        .call(move |c| {
            let user = users::get(c, &user)?;
            users::issue_token(c, user.id, &req.description, expires_at)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(NewToken { info, token: token.expose().to_owned() })))
}

/// The caller's tokens (an admin: everybody's), never the tokens themselves.
#[utoipa::path(get, path = "/v1/tokens", operation_id = "list_tokens", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "users",
    responses((status = 200, description = "Tokens.", body = Vec<TokenInfo>)))]
async fn list_tokens(State(core): State<WorkflowCore>, access: Access) -> ApiResult<Json<Vec<TokenInfo>>> {
    let user = if access.is_admin() { None } else { Some(access.caller.user) };
    Ok(Json(core.store.call(move |c| users::tokens(c, user)).await?))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", operation_id = "revoke_token", extensions(("x-metalhost-policy" = json!("write:token"))), tag = "users",
    params(("id" = i64, Path, description = "The token's id.")),
    responses((status = 200, description = "The token, revoked.", body = TokenInfo)))]
async fn revoke_token(State(core): State<WorkflowCore>, Path(id): Path<i64>) -> ApiResult<Json<TokenInfo>> {
    Ok(Json(core.store.call(move |c| users::revoke_token(c, TokenId(id))).await?))
}

/// Who the caller is: its user, whether it is an admin, and its roles.
#[utoipa::path(get, path = "/v1/whoami", operation_id = "whoami", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "users",
    responses((status = 200, description = "The caller.", body = User)))]
async fn whoami(State(core): State<WorkflowCore>, access: Access) -> ApiResult<Json<User>> {
    let id = access.caller.user;
    Ok(Json(core.store.call(move |c| users::get(c, &Key::Id(id.0))).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// How many entries, newest first (default 100, at most 1000); the answer's
    /// `Link: <...>; rel="next"` header names the next (older) page while there is one.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The cursor: entries older than this id (the `Link` header's next page sets it).
    #[param(minimum = 0)]
    before: Option<i64>,
    /// Whose entries: a user's id, or the name recorded (`anonymous` for requests without a valid token).
    #[param(min_length = 1, max_length = 64)]
    user: Option<String>,
    /// Operations whose id starts with this, case-insensitive: `delete` is every delete,
    /// `create_node` one operation.
    #[param(min_length = 1, max_length = 64)]
    action: Option<String>,
    #[param(value_type = Option<schema::OutcomeClassName>)]
    outcome: Option<String>,
}

/// The audit trail, newest first: who changed what, and every console attach, with the outcome.
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit", extensions(("x-metalhost-policy" = json!("admin"))), tag = "users",
    params(AuditParams), responses((status = 200, description = "Entries that pass the filters, newest first: one page and a `Link` header to the next.", body = Vec<AuditEntry>,
        headers(("link" = String, description = "`<...>; rel=\"next\"` while more pages follow.")))))]
async fn list_audit(State(core): State<WorkflowCore>, Query(params): Query<AuditParams>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    // Unlike the other lists, a bounded default: the trail only grows.
    let limit = paging::check(Some(params.limit.unwrap_or(100)), params.before, paging::Order::NewestFirst)?;
    for (name, value) in [("user", &params.user), ("action", &params.action)] {
        if value.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > 64) {
            return Err(ApiError::BadRequest(format!("{name} must be 1-64 characters")));
        }
    }
    let outcome = params.outcome.as_deref().map(|o| validate::one_of("outcome", o, OutcomeClass::ALL, OutcomeClass::as_str)).transpose()?;
    let query = AuditQuery {
        before: params.before,
        // One more than the page: whether a next page exists.
        limit: limit.map(|l| l + 1),
        actor: params.user.as_deref().map(|u| match Key::parse(u) {
            Key::Id(id) => Actor::Id(UserId(id)),
            Key::Name(name) => Actor::Name(name),
        }),
        action: params.action.clone(),
        outcome,
    };
    let mut page = core.store.call(move |c| audit::query(c, &query)).await?;
    let next = paging::cut(&mut page, limit, |e| e.id);
    let mut response = Json(page).into_response();
    let filters = [("user", params.user), ("action", params.action), ("outcome", params.outcome)];
    paging::link_next(&mut response, "/v1/audit", limit, paging::Order::NewestFirst, next, &filters);
    Ok(response)
}
