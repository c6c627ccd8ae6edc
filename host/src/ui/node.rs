//! `/ui/nodes/{id}`: one node's facts, actions, and a live part (state, the agent's progress,
//! events with durations) that the page's script refreshes from `/ui/nodes/{id}/live`.

use axum::extract::{Path, State};
use axum::response::Html;
use maud::{Markup, html};

use super::error::UiResult;
use super::page::{self, Nav, badge};
use crate::api::policy::{Access, authorize};
use crate::domain::Key;
use crate::domain::ProvisionState;
use crate::domain::tenancy::{ObjectKind, Policy, Role};
use crate::provision::WorkflowCore;
use crate::store::console::{self, ConsoleLine};
use crate::store::events::{self, Event};
use crate::store::nodes::{self, Node};
use crate::store::switches;
use crate::store::tasks::{self, Task};

/// The newest events shown; the CLI and API have them all.
const EVENTS_SHOWN: i64 = 200;
/// The newest console lines shown (`metalhost node console-log` has the whole ring).
const CONSOLE_SHOWN: i64 = 300;

/// Everything one node's page shows, read in one store call.
struct NodeData {
    node: Node,
    switch: String,
    /// The newest events, newest first.
    events: Vec<Event>,
    /// Whether older ones were left out.
    events_more: bool,
    task: Option<Task>,
    console: Vec<ConsoleLine>,
    /// Who looks: a user sees no BMC or switch port, and only its own tenancy's lines and events.
    admin: bool,
}

/// Reads a node for `access`, after the same decision the API makes for `show_node`.
async fn load(core: &WorkflowCore, access: &Access, id: String) -> UiResult<NodeData> {
    authorize(core, &access.caller, Policy::Read(ObjectKind::Node), &id).await?;
    let admin = access.is_admin();
    let key = Key::parse(&id);
    let data = core
        .store
        .call(move |c| {
            let node = nodes::get(c, &key)?;
            let switch = switches::get_by_id(c, node.switch_id).map(|s| s.name).unwrap_or_else(|_| format!("#{}", node.switch_id.0));
            let tenancy = if admin { None } else { Some(node.tenancy) };
            // The newest page only, read as the API's pages are: the page is refreshed while it is open.
            let shown = EVENTS_SHOWN + 1;
            let query = events::EventQuery { tenancy, newest_first: true, limit: Some(shown), ..events::EventQuery::of(node.id) };
            let mut events = events::query(c, &query)?;
            let events_more = events.len() > EVENTS_SHOWN as usize;
            events.truncate(EVENTS_SHOWN as usize);
            let task = tasks::latest_for_node(c, node.id)?;
            let console = console::tail_of(c, node.id, CONSOLE_SHOWN, tenancy)?;
            Ok(NodeData { node, switch, events, events_more, task, console, admin })
        })
        .await?;
    Ok(data)
}

pub async fn page(State(core): State<WorkflowCore>, access: Access, Path(id): Path<String>) -> UiResult<Html<String>> {
    let data = load(&core, &access, id).await?;
    let n = &data.node;
    let body = html! {
        h1 { (n.name) }
        (facts(&data))
        (actions(n, &access))
        section #live data-live={ "/ui/nodes/" (n.id.0) "/live" } { (live_part(&data)) }
        (live_console(n.id.0))
    };
    Ok(Html(page::shell(&n.name, Nav::Pool, body).into_string()))
}

/// The node's serial console, opened on demand by the script (`/ui/nodes/{id}/console`, a
/// WebSocket): what it prints, and a line to type. Outside the polled part, so a refresh does
/// not close it.
fn live_console(id: i64) -> Markup {
    html! {
        section.live-console #live-console data-console={ "/ui/nodes/" (id) "/console" } {
            h2 { "Live console" }
            p.hint #console-status { "Closed. Opening it starts the node's console program (its power plugin must describe one); it ends when every viewer has left." }
            button #console-open type="button" { "Open console" }
            button #console-close type="button" hidden { "Close" }
            pre.console.terminal #console-screen hidden {}
            form #console-form hidden {
                label for="console-line" { "Type a line (sent with Enter)" }
                input #console-line type="text" autocomplete="off" spellcheck="false";
            }
        }
    }
}

/// The console's WebSocket for the page above. The session cookie opened `/ui`; the Origin
/// must be this daemon's (the cookie is SameSite=Strict too), so no other site can attach.
pub async fn console(
    State(core): State<WorkflowCore>,
    access: Access,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    upgrade: Result<axum::extract::WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> UiResult<axum::response::Response> {
    if !super::guard::same_origin(&headers) {
        return Err(crate::api::error::ApiError::BadRequest("the console opens from this daemon's own pages only".into()).into());
    }
    // As the API's node_console: the node's current tenant's members, and admins.
    authorize(&core, &access.caller, Policy::Write(ObjectKind::Tenancy), &id).await?;
    let data = load(&core, &access, id).await?;
    let upgrade = upgrade.map_err(|e| crate::api::error::ApiError::BadRequest(format!("this route speaks WebSocket only: {}", e.body_text())))?;
    let viewer = crate::api::console::attach(&core, &data.node, crate::console::Role::Typist).await?;
    Ok(upgrade.on_upgrade(move |socket| crate::api::console::serve(socket, viewer)))
}

/// The part the script polls: it changes while a workflow runs.
pub async fn live(State(core): State<WorkflowCore>, access: Access, Path(id): Path<String>) -> UiResult<Html<String>> {
    let data = load(&core, &access, id).await?;
    Ok(Html(live_part(&data).into_string()))
}

fn facts(data: &NodeData) -> Markup {
    let n = &data.node;
    html! {
        dl.facts {
            dt { "MAC" } dd { (n.mac) }
            dt { "IP" } dd { (n.ip) }
            dt { "Size" } dd { (n.cpus) " CPUs, " (n.ram_mb) " MB RAM, " (n.disk_gb) " GB disk" }
            @if data.admin {
                dt { "BMC" } dd { (n.bmc_address) ":" (n.bmc_port) " as " (n.bmc_username) " via " (n.power_driver) }
                dt { "Switch port" } dd { (data.switch) " " (n.switch_port) }
            }
            dt { "Maintenance" } dd { @if n.maintenance { "on: no automatic actions" } @else { "off" } }
        }
    }
}

fn live_part(data: &NodeData) -> Markup {
    let n = &data.node;
    html! {
        dl.facts.status {
            dt { "State" } dd #node-state { (badge(n.state.as_str())) }
            dt { "Power" } dd #node-power { (n.power_state) }
            dt { "Network" } dd { (n.network) @if let Some(v) = n.vlan { " (VLAN " (v.id()) ")" } }
            dt { "Instance" } dd { @if let Some(i) = n.instance_id { a href="/ui/instances" { "#" (i.0) } } @else { "none" } }
            @if let Some(deadline) = n.state_deadline { dt { "Deadline" } dd { (page::utc(deadline)) " UTC" } }
        }
        @if let Some(e) = &n.last_error { p.flash.bad #last-error { (e) } }
        @if let Some(t) = &data.task { (progress(t, n.state)) }
        h2 { "Console log" }
        @if data.console.is_empty() {
            p.hint #console-empty { "Nothing recorded yet: lines appear while the node deploys, cleans or inspects." }
        } @else {
            pre.console #console-log { @for l in &data.console { (page::utc(l.at)) " " (l.text) "\n" } }
        }
        h2 { "Events" }
        @if data.events_more { p.hint { "The newest " (data.events.len()) "; " code { "metalhost node events" } " has them all." } }
        div.scroll {
            table.events {
                thead { tr { th { "Time (UTC)" } th { "Kind" } th { "Change" } th { "Message" } th.num { "Took" } } }
                tbody {
                    @for e in &data.events {
                        tr class={ "k-" (e.kind) } {
                            td.nowrap { (page::utc(e.at)) }
                            td { (e.kind) }
                            td.nowrap { @if let (Some(f), Some(t)) = (&e.from_state, &e.to_state) { (f) " → " (t) } }
                            td { (e.message) }
                            td.num { @if let Some(ms) = e.duration_ms { (page::duration(ms)) } }
                        }
                    }
                }
            }
        }
    }
}

/// The agent's latest task: what it does and how far it got.
fn progress(task: &Task, state: ProvisionState) -> Markup {
    let running = state.expects_agent();
    html! {
        div.task #task {
            p { "Agent task #" (task.id.0) ": " (task.kind) ", " (task.state)
                @if task.bytes_written > 0 { ", " (page::bytes(task.bytes_written)) @if let Some(t) = task.total_bytes { " of " (page::bytes(t)) } " written" } }
            @if running { @if let Some(total) = task.total_bytes.filter(|t| *t > 0) {
                progress value=(task.bytes_written.min(total)) max=(total) {}
            } }
            @if let Some(m) = &task.message { p.hint { (m) } }
        }
    }
}

/// The buttons the viewer may use: power for the tenant's members and admins, recover for admins.
fn actions(n: &Node, access: &Access) -> Markup {
    let member = access.is_admin() || n.instance_id.is_some() && access.caller.roles.iter().any(|(_, r)| *r == Role::Member);
    let form = |action: &str, label: &str| {
        html! {
            form method="post" action={ "/ui/nodes/" (n.id.0) "/action" } {
                input type="hidden" name="action" value=(action);
                button type="submit" { (label) }
            }
        }
    };
    html! {
        div.actions {
            @if member {
                (form("power-on", "Power on"))
                (form("power-off", "Power off"))
                (form("reboot", "Reboot"))
            }
            @if access.is_admin() { (form("recover", "Recover")) }
        }
    }
}
