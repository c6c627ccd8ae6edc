//! The one place the API decides who may do what (ARCHITECTURE.md, "Projects and access").
//!
//! Every operation declares its policy once, in its `#[utoipa::path]` as the `x-metalhost-policy`
//! extension, so the API document says what each operation allows. At startup [`Policies`] reads
//! those declarations back out of the document; [`enforce`] runs before every documented route:
//! it signs the caller in from the bearer token, finds the object's owner for an object policy,
//! asks `domain::tenancy::decide`, and answers 401, 403 or 404 (an object outside the caller's
//! projects does not exist for it) before the handler runs. Handlers that list, or that create
//! inside a project named in the request body, take the [`Access`] it leaves and ask it.
//! Every change (any method but GET) and every console attach is written to the audit trail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;

use super::error::ApiError;
use crate::api::auth::{bearer, is_operator};
use crate::api::state::AppState;
use crate::domain::tenancy::{Caller, Decision, ObjectKind, Owner, Policy, decide};
use crate::domain::{Key, ProjectId};
use crate::provision::WorkflowCore;
use crate::store::users::{self, OPERATOR_USER, TokenRefusal};
use crate::store::{audit, projects};

/// Each documented operation's id and declared policy, by method and path template.
#[derive(Debug, Default)]
pub struct Policies {
    by_route: HashMap<(Method, String), (String, Policy)>,
}

/// An operation the document describes without a usable policy: the daemon refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("operation {operation} ({method} {path}) declares {problem}")]
pub struct UndeclaredPolicy {
    pub operation: String,
    pub method: String,
    pub path: String,
    pub problem: String,
}

impl Policies {
    /// Reads every operation's `x-metalhost-policy` out of the API document.
    pub fn from_document(document: &OpenApi) -> Result<Policies, UndeclaredPolicy> {
        let json = serde_json::to_value(document).unwrap_or_default();
        let mut by_route = HashMap::new();
        for (path, item) in json.get("paths").and_then(|p| p.as_object()).into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method_value) = method.to_ascii_uppercase().parse::<Method>() else { continue };
                let Some(id) = operation.get("operationId").and_then(|v| v.as_str()) else { continue };
                let undeclared = |problem: String| UndeclaredPolicy { operation: id.to_owned(), method: method.clone(), path: path.clone(), problem };
                let declared = operation.get(Policy::EXTENSION).and_then(|v| v.as_str()).ok_or_else(|| undeclared("no policy".into()))?;
                let policy = declared.parse::<Policy>().map_err(|e| undeclared(e.0))?;
                by_route.insert((method_value, path.clone()), (id.to_owned(), policy));
            }
        }
        Ok(Policies { by_route })
    }

    /// Does any operation of the document live at this path?
    pub fn has_path(&self, path: &str) -> bool {
        self.by_route.keys().any(|(_, p)| p == path)
    }

    pub fn get(&self, method: &Method, path: &str) -> Option<&(String, Policy)> {
        self.by_route.get(&(method.clone(), path.to_owned()))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_route.len()
    }
}

/// The enforcing layer's state: the app and the declared policies.
#[derive(Clone)]
pub struct Enforcer {
    pub state: AppState,
    pub policies: Arc<Policies>,
}

/// What the enforcing layer learnt about the request: who calls, and what it may see. Handlers
/// take it as an extractor.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
}

impl Access {
    pub fn is_admin(&self) -> bool {
        self.caller.admin
    }

    /// The projects whose objects the caller may see; `None`: all (an admin).
    pub fn visible_projects(&self) -> Option<Vec<ProjectId>> {
        self.caller.visible_projects()
    }

    /// May the caller create something in the project the request names (`None`: nothing named,
    /// which makes a public image or an instance outside any project: admins only)? Returns the
    /// project's id. Decided by the same `decide` as every other operation.
    pub async fn create_in(&self, core: &WorkflowCore, project: Option<&str>) -> Result<Option<ProjectId>, ApiError> {
        let Some(name) = project else {
            return match decide(Policy::CreateIn, Some(&self.caller), Some(&Owner::Nobody)) {
                Decision::Allow => Ok(None),
                _ => Err(ApiError::Forbidden("only an admin creates outside a project: name one of your projects".into())),
            };
        };
        if name.is_empty() {
            return Err(ApiError::BadRequest("project must not be empty: name one of your projects, or leave it out".into()));
        }
        let key = Key::parse(name);
        let found = core.store.call(move |c| projects::owner_of(c, ObjectKind::Project, &key)).await?;
        let Some(owner) = found else {
            return Err(if self.caller.admin {
                ApiError::Unprocessable(format!("project {name:?} does not exist"))
            } else {
                ApiError::NotFound(format!("project {name:?} not found"))
            });
        };
        let Owner::Projects(ids) = &owner else { return Err(ApiError::Internal("a project owned by no project".into())) };
        let id = ids.first().copied();
        match decide(Policy::CreateIn, Some(&self.caller), Some(&owner)) {
            Decision::Allow => Ok(id),
            Decision::Hidden => Err(ApiError::NotFound(format!("project {name:?} not found"))),
            Decision::Forbidden => Err(ApiError::Forbidden(format!("a reader of project {name:?} cannot create in it"))),
            Decision::Unauthenticated => Err(ApiError::Unauthorized),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Access, ApiError> {
        // Only routes whose policy needs a caller get here with one (`enforce`).
        parts.extensions.get::<Access>().cloned().ok_or(ApiError::Unauthorized)
    }
}

/// Decides `policy` for a signed-in caller on the object `id` (for an object policy): the owner
/// lookup and `decide` that [`enforce`] runs for every API route, and that the web view's pages,
/// which are not in the API document, call with the policy of the operation they mirror.
pub async fn authorize(core: &WorkflowCore, caller: &Caller, policy: Policy, id: &str) -> Result<(), ApiError> {
    let owner = match policy.object() {
        Some(kind) if !caller.admin => {
            let key = Key::parse(id);
            core.store.call(move |c| projects::owner_of(c, kind, &key)).await?
        }
        _ => None,
    };
    match decide(policy, Some(caller), owner.as_ref()) {
        Decision::Allow => Ok(()),
        Decision::Unauthenticated => Err(ApiError::Unauthorized),
        Decision::Forbidden => Err(ApiError::Forbidden(format!("{policy}: {} may not do this", caller.name))),
        // Outside the caller's projects the object does not exist: the same words as a missing one.
        Decision::Hidden => Err(ApiError::NotFound(format!("{} {id} not found", policy.object().map_or("object", |k| k.as_str())))),
    }
}

/// Signs a token in, as the API does: the web view's sign-in form uses it.
pub async fn sign_in_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    sign_in(state, Some(token)).await
}

/// The caller the config's operator token signs in as: the first admin (migration 9).
fn operator_caller() -> Caller {
    Caller { user: OPERATOR_USER, name: "admin".into(), admin: true, roles: Vec::new() }
}

/// Signs the bearer token in: the operator token, or a user's token.
async fn sign_in(state: &AppState, token: Option<&str>) -> Result<Caller, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Err(ApiError::Unauthorized) };
    if is_operator(state, token) {
        return Ok(operator_caller());
    }
    if !token.starts_with(users::TOKEN_PREFIX) {
        return Err(ApiError::Unauthorized);
    }
    let token = token.to_owned();
    match state.core.store.call(move |c| users::sign_in(c, &token)).await? {
        Ok(caller) => Ok(caller),
        Err(TokenRefusal::Unknown) => Err(ApiError::Unauthorized),
        Err(TokenRefusal::Revoked) => Err(ApiError::TokenRefused("this token was revoked".into())),
        Err(TokenRefusal::Expired) => Err(ApiError::TokenRefused("this token has expired: ask for a new one (metalhost token create)".into())),
    }
}

/// The layer in front of every documented route (see the module's comment).
pub async fn enforce(State(enforcer): State<Enforcer>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let Some(template) = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let Some((operation, policy)) = enforcer.policies.get(&method, &template).cloned() else {
        // A method the path does not have: the router answers 405 with what it allows.
        if enforcer.policies.has_path(&template) {
            return next.run(request).await;
        }
        // Fail closed: a route with no declared policy serves nobody (Policies refuses at start).
        return ApiError::Forbidden(format!("{method} {template} declares no policy")).into_response();
    };
    if matches!(policy, Policy::Public | Policy::Agent) {
        return next.run(request).await;
    }
    let audited = method != Method::GET || operation == "node_console";
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let object = format!("{method} {}", request.uri().path());
    let caller = sign_in(&enforcer.state, bearer(request.headers())).await;
    let decision = match &caller {
        Err(error) => Err(error_response(error)),
        Ok(caller) => decide_for(&enforcer.state, policy, caller, &mut request).await,
    };
    let response = match decision {
        Err(response) => response,
        Ok(()) => {
            if let Ok(caller) = &caller {
                request.extensions_mut().insert(Access { caller: caller.clone() });
            }
            next.run(request).await
        }
    };
    if audited {
        record(&enforcer.state.core, caller.as_ref().ok(), operation, object, response.status().as_u16(), address).await;
    }
    response
}

/// Appends one entry to the audit trail: who (`None`: no valid token), what, to what, the outcome.
pub async fn record(core: &WorkflowCore, caller: Option<&Caller>, action: String, object: String, outcome: u16, address: Option<String>) {
    let entry = audit::NewEntry {
        user_id: caller.map(|c| c.user),
        actor: caller.map_or_else(|| "anonymous".to_owned(), |c| c.name.clone()),
        action,
        object,
        outcome,
        address,
    };
    if let Err(e) = core.store.call(move |c| audit::append(c, &entry)).await {
        tracing::error!(error = %e, "could not write the audit trail");
    }
}

fn error_response(error: &ApiError) -> Response {
    match error {
        ApiError::Unauthorized => ApiError::Unauthorized.into_response(),
        ApiError::TokenRefused(why) => ApiError::TokenRefused(why.clone()).into_response(),
        other => ApiError::Internal(other.to_string()).into_response(),
    }
}

/// Decides an operation for a signed-in caller; the object, if the policy names one, is the
/// route's `{id}`.
async fn decide_for(state: &AppState, policy: Policy, caller: &Caller, request: &mut Request) -> Result<(), Response> {
    // Only an object policy for a user needs the route's `{id}`; `authorize` decides the rest.
    let id = if policy.object().is_some() && !caller.admin {
        let (mut parts, body) = std::mem::replace(request, Request::new(axum::body::Body::empty())).into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, &()).await;
        *request = Request::from_parts(parts, body);
        let id = params.ok().and_then(|p| p.iter().find(|(name, _)| *name == "id").map(|(_, v)| v.to_owned()));
        let Some(id) = id else { return Err(ApiError::Internal(format!("policy {policy} on a route without {{id}}")).into_response()) };
        id
    } else {
        String::new()
    };
    authorize(&state.core, caller, policy, &id).await.map_err(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_operation_declares_a_policy_the_layer_understands() {
        let document = crate::api::document_for_tests();
        let policies = Policies::from_document(&document).expect("every operation declares a policy");
        assert!(policies.len() >= 60, "only {} operations", policies.len());
        // The roles, held against the declarations: what only admins may touch.
        for ((method, path), (id, policy)) in &policies.by_route {
            let admin_only = ["/v1/switches", "/v1/plugins", "/v1/users", "/v1/audit", "/v1/daemons", "/metrics"].iter().any(|p| path.starts_with(p))
                || (path.starts_with("/v1/projects") && *method != Method::GET)
                || (path.starts_with("/v1/nodes") && *method != Method::GET && !path.ends_with("/power") && !path.ends_with("/console"))
                || (path.starts_with("/v1/nodes") && path.ends_with("/inventory"));
            if admin_only {
                assert_eq!(*policy, Policy::Admin, "{id} ({method} {path}) is an admin's operation");
            }
        }
    }
}
