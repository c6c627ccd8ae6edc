//! The web view's actions, the ones the CLI has: power, recover, instance create and delete. A
//! post without `confirm=yes` answers with a page that restates the action and asks; the confirmed
//! post calls the same workflow functions as the REST API and sends the browser back.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::{UiError, UiResult};
use super::page::{self, Nav};
use crate::api::error::ApiError;
use crate::api::policy::{Access, authorize};
use crate::api::validate;
use crate::domain::DeployRequest;
use crate::domain::Key;
use crate::domain::PowerAction;
use crate::domain::tenancy::{ObjectKind, Policy};
use crate::provision;
use crate::provision::WorkflowCore;
use crate::store::instances;
use crate::store::nodes;

fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(LOCATION, v)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn confirmed(value: &Option<String>) -> bool {
    value.as_deref() == Some("yes")
}

/// Empty form fields mean "not given".
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The confirmation page: the question, the same post with `confirm=yes`, and a way out.
fn confirm_page(question: Markup, action: &str, fields: &[(&str, &str)], button: &str, back: &str) -> Html<String> {
    let body = html! {
        section.confirm {
            h1 { "Confirm" }
            p.question { (question) }
            form method="post" action=(action) {
                @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { (button) }
                " " a.cancel href=(back) { "Cancel" }
            }
        }
    };
    Html(page::shell("Confirm", Nav::Pool, body).into_string())
}

#[derive(Clone, Copy)]
enum NodeAction {
    Power(PowerAction),
    Recover,
}

impl NodeAction {
    fn parse(s: &str) -> Result<NodeAction, UiError> {
        match s {
            "power-on" => Ok(NodeAction::Power(PowerAction::On)),
            "power-off" => Ok(NodeAction::Power(PowerAction::Off)),
            "reboot" => Ok(NodeAction::Power(PowerAction::Reboot)),
            "recover" => Ok(NodeAction::Recover),
            other => Err(UiError(ApiError::BadRequest(format!("unknown action {other:?}")))),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NodeAction::Power(PowerAction::On) => "Power on",
            NodeAction::Power(PowerAction::Off) => "Power off",
            NodeAction::Power(PowerAction::Reboot) => "Reboot",
            // Not offered by `parse` (nor by the API: `PowerAction::OPERATOR`).
            NodeAction::Power(PowerAction::GracefulOff) => "Shut down",
            NodeAction::Power(PowerAction::GracefulReboot) => "Restart",
            NodeAction::Recover => "Recover (power off, back to provisioning, clean)",
        }
    }
}

#[derive(Deserialize)]
pub struct NodeActionForm {
    action: String,
    confirm: Option<String>,
}

pub async fn node_action(
    State(core): State<WorkflowCore>,
    access: Access,
    Path(id): Path<String>,
    Form(form): Form<NodeActionForm>,
) -> UiResult<Response> {
    let action = NodeAction::parse(&form.action)?;
    // The API's policies for the same calls: set_node_power and recover_node.
    let policy = match action {
        NodeAction::Power(_) => Policy::Write(ObjectKind::Tenancy),
        NodeAction::Recover => Policy::Admin,
    };
    authorize(&core, &access.caller, policy, &id).await?;
    let key = Key::parse(&id);
    let node = core.store.call(move |c| nodes::get(c, &key)).await?;
    let back = format!("/ui/nodes/{}", node.id.0);
    if !confirmed(&form.confirm) {
        let question = html! { (action.describe()) " node " strong { (node.name) } " (now " (node.state) ", power " (node.power_state) ")?" };
        return Ok(confirm_page(question, &format!("{back}/action"), &[("action", form.action.as_str())], action.describe(), &back).into_response());
    }
    let key = Key::Id(node.id.0);
    match action {
        NodeAction::Power(p) => {
            provision::set_power(&core, key, p).await?;
        }
        NodeAction::Recover => {
            provision::recover(&core, key).await?;
        }
    }
    tracing::info!(node = node.id.0, action = %form.action, "web view action");
    Ok(see_other(&back))
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: Option<String>,
    image: String,
    node: Option<String>,
    project: Option<String>,
    confirm: Option<String>,
}

pub async fn create_instance(State(core): State<WorkflowCore>, access: Access, Form(form): Form<CreateForm>) -> UiResult<Response> {
    let name = given(form.name);
    let node = given(form.node);
    let project_name = given(form.project);
    let project = access.create_in(&core, project_name.as_deref()).await?;
    if let Some(n) = &name {
        validate::name("instance name", n)?;
    }
    if !confirmed(&form.confirm) {
        let question = html! {
            "Deploy image " strong { (form.image) } " as "
            @if let Some(n) = &name { "instance " strong { (n) } } @else { "a new instance" }
            " onto " @if let Some(n) = &node { "node " strong { (n) } } @else { "the first available node that fits" } "?"
        };
        let fields = [
            ("name", name.as_deref().unwrap_or("")),
            ("image", form.image.as_str()),
            ("node", node.as_deref().unwrap_or("")),
            ("project", project_name.as_deref().unwrap_or("")),
        ];
        return Ok(confirm_page(question, "/ui/instances", &fields, "Deploy", "/ui/instances").into_response());
    }
    let request = DeployRequest {
        name,
        image: Key::parse(&form.image),
        node: node.as_deref().map(Key::parse),
        cpus: 0,
        ram_mb: 0,
        disk_gb: 0,
        project,
        identity: Default::default(),
    };
    let (instance, node) = provision::start_deploy(&core, request).await?;
    tracing::info!(instance = instance.id.0, node = node.id.0, "web view created an instance");
    Ok(see_other(&format!("/ui/nodes/{}", node.id.0)))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: Option<String>,
}

pub async fn delete_instance(
    State(core): State<WorkflowCore>,
    access: Access,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> UiResult<Response> {
    authorize(&core, &access.caller, Policy::Write(ObjectKind::Instance), &id).await?;
    let key = Key::parse(&id);
    let instance = core.store.call(move |c| instances::get(c, &key)).await?;
    if !confirmed(&form.confirm) {
        let question = html! { "Delete instance " strong { (instance.name) } "? Its node is powered off and its disks are cleaned." };
        return Ok(confirm_page(question, &format!("/ui/instances/{}/delete", instance.id), &[], "Delete", "/ui/instances").into_response());
    }
    provision::start_destroy(&core, Key::Id(instance.id.0)).await?;
    tracing::info!(instance = instance.id.0, "web view deleted an instance");
    Ok(see_other("/ui/instances"))
}
