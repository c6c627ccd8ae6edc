//! `/ui`: the node pool, one row per node (state, power, network, instance, last error), with
//! counts per state that double as the filter.

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::UiResult;
use super::page::{self, Nav, badge};
use crate::api::policy::Access;
use crate::domain::{Key, ProvisionState, Vlan};
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};
use crate::store::projects;

#[derive(Deserialize)]
pub struct Filter {
    state: Option<String>,
    /// An admin's view of one project's nodes (its instances' and its dedicated ones).
    project: Option<String>,
}

pub async fn page(State(core): State<WorkflowCore>, access: Access, Query(filter): Query<Filter>) -> UiResult<Html<String>> {
    // An empty value is the form's "all states" / "all projects".
    let wanted: Option<ProvisionState> = filter.state.as_deref().filter(|s| !s.is_empty()).map(str::parse).transpose()?;
    let project_name = filter.project.filter(|p| !p.is_empty() && access.is_admin());
    // A user sees its projects' nodes; an admin all, or one project's.
    let visible = access.visible_projects();
    let (scope, projects) = core
        .store
        .call(move |c| {
            let projects = projects::list(c, visible.as_deref())?;
            // Listed without their BMC passwords: nothing is unsealed for a list.
            let projects_wanted = match (&visible, &project_name) {
                (Some(mine), _) => Some(mine.clone()),
                (None, Some(name)) => Some(vec![projects::get(c, &Key::parse(name))?.id]),
                (None, None) => None,
            };
            let scope = nodes::query(c, &nodes::NodeQuery { projects: projects_wanted, ..Default::default() })?;
            Ok((scope, projects))
        })
        .await?;
    let count = |s: ProvisionState| scope.iter().filter(|n| n.state == s).count();
    let total = scope.len();
    let list: Vec<Node> = scope.iter().filter(|n| wanted.is_none_or(|w| n.state == w)).cloned().collect();
    let body = html! {
        h1 { "Pool" }
        @if access.is_admin() && !projects.is_empty() {
            form.filter method="get" action="/ui" {
                label for="project" { "Project" }
                select #project name="project" {
                    option value="" { "all" }
                    @for p in &projects { option value=(p.name) { (p.name) " (VLAN " (p.vlan.map(|v| v.to_string()).unwrap_or_default()) ")" } }
                }
                button type="submit" { "Show" }
            }
        }
        nav.filter aria-label="Filter by state" {
            a href="/ui" aria-current=[wanted.is_none().then_some("page")] { "all " span.n { (total) } }
            @for s in ProvisionState::ALL.iter().copied().filter(|s| count(*s) > 0) {
                a href={ "/ui?state=" (s) } aria-current=[(wanted == Some(s)).then_some("page")] { (s) " " span.n { (count(s)) } }
            }
        }
        @if list.is_empty() {
            p.empty { "No nodes" @if let Some(s) = wanted { " in state " (s) } "." }
        } @else {
            (table(&list))
        }
    };
    Ok(Html(page::shell("Pool", Nav::Pool, body).into_string()))
}

fn network(kind: impl std::fmt::Display, vlan: Option<Vlan>) -> String {
    match vlan {
        Some(v) => format!("{kind} ({})", v.id()),
        None => kind.to_string(),
    }
}

fn table(list: &[Node]) -> Markup {
    html! {
        div.scroll {
            table.pool {
                thead { tr { th { "Node" } th { "State" } th { "Power" } th { "Network" } th { "Instance" } th { "Last error" } } }
                tbody {
                    @for n in list {
                        tr {
                            td { a href={ "/ui/nodes/" (n.id.0) } { (n.name) } @if n.maintenance { " " span.tag { "maintenance" } } }
                            td { (badge(n.state.as_str())) }
                            td { (n.power_state) }
                            td { (network(n.network, n.vlan)) }
                            td { @if let Some(i) = n.instance_id { (i.0) } }
                            td.err { @if let Some(e) = &n.last_error { (e) } }
                        }
                    }
                }
            }
        }
    }
}
