//! `/ui`: the node pool, a page of 100 nodes at a time (state, power, network, instance, last
//! error) with a link to the next, counts per state that double as the filter, and a search by
//! name or MAC; read through the API's own queries (`nodes::query`, `nodes::count_states`).

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::UiResult;
use super::page::{self, Nav, badge};
use crate::api::paging;
use crate::api::policy::Access;
use crate::domain::{Key, ProvisionState, Vlan};
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};
use crate::store::projects;

/// Nodes on one page; the next page goes on after the last one's id.
const PAGE: i64 = 100;

#[derive(Deserialize)]
pub struct Filter {
    state: Option<String>,
    /// An admin's view of one project's nodes (its instances' and its dedicated ones).
    project: Option<String>,
    /// Part of the name or the MAC.
    q: Option<String>,
    /// The page's cursor: nodes after this id.
    after: Option<i64>,
}

/// `/ui` with these filters (empty ones left out) and a cursor.
fn href(state: Option<ProvisionState>, project: Option<&str>, q: Option<&str>, after: Option<i64>) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for (key, value) in [("state", state.map(|s| s.as_str())), ("project", project), ("q", q)] {
        if let Some(v) = value {
            pairs.push(format!("{key}={}", paging::encode(v)));
        }
    }
    if let Some(a) = after {
        pairs.push(format!("after={a}"));
    }
    if pairs.is_empty() { "/ui".to_owned() } else { format!("/ui?{}", pairs.join("&")) }
}

pub async fn page(State(core): State<WorkflowCore>, access: Access, Query(filter): Query<Filter>) -> UiResult<Html<String>> {
    // An empty value is the form's "all states" / "all projects" / no text.
    let wanted: Option<ProvisionState> = filter.state.as_deref().filter(|s| !s.is_empty()).map(str::parse).transpose()?;
    let project_name = filter.project.filter(|p| !p.is_empty() && access.is_admin());
    let text = filter.q.filter(|q| !q.is_empty()).map(|q| q.chars().take(64).collect::<String>());
    let after = filter.after.filter(|a| *a >= 0);
    // A user sees its projects' nodes; an admin all, or one project's.
    let visible = access.visible_projects();
    let (wanted_project, wanted_text) = (project_name.clone(), text.clone());
    let (counts, mut list, projects) = core
        .store
        .call(move |c| {
            let projects = projects::list(c, visible.as_deref())?;
            let projects_wanted = match (&visible, &wanted_project) {
                (Some(mine), _) => Some(mine.clone()),
                (None, Some(name)) => Some(vec![projects::get(c, &Key::parse(name))?.id]),
                (None, None) => None,
            };
            // The API's query, a page at a time (one more: whether a next page exists), and its
            // counts per state; listed without BMC passwords: nothing is unsealed for a list.
            let scope = nodes::NodeQuery { projects: projects_wanted, text: wanted_text, ..Default::default() };
            let counts = nodes::count_states(c, &scope)?;
            let list = nodes::query(c, &nodes::NodeQuery { state: wanted, after, limit: Some(PAGE + 1), ..scope })?;
            Ok((counts, list, projects))
        })
        .await?;
    let next = paging::cut(&mut list, Some(PAGE), |n| n.id.0);
    let count = |s: ProvisionState| counts.iter().find(|(state, _)| *state == s).map_or(0, |(_, n)| *n);
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let (project, q) = (project_name.as_deref(), text.as_deref());
    let body = html! {
        h1 { "Pool" }
        form.filter method="get" action="/ui" {
            @if let Some(s) = wanted { input type="hidden" name="state" value=(s); }
            label for="q" { "Name or MAC" }
            input #q type="search" name="q" maxlength="64" value=[q];
            @if access.is_admin() && !projects.is_empty() {
                label for="project" { "Project" }
                select #project name="project" {
                    option value="" { "all" }
                    @for p in &projects {
                        option value=(p.name) selected[project == Some(p.name.as_str())] { (p.name) " (VLAN " (p.vlan.map(|v| v.to_string()).unwrap_or_default()) ")" }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        nav.filter aria-label="Filter by state" {
            a href=(href(None, project, q, None)) aria-current=[wanted.is_none().then_some("page")] { "all " span.n { (total) } }
            @for s in ProvisionState::ALL.iter().copied().filter(|s| count(*s) > 0) {
                a href=(href(Some(s), project, q, None)) aria-current=[(wanted == Some(s)).then_some("page")] { (s) " " span.n { (count(s)) } }
            }
        }
        @if list.is_empty() {
            p.empty { "No nodes" @if let Some(s) = wanted { " in state " (s) } @if after.is_some() { " after these" } "." }
        } @else {
            (table(&list))
        }
        @if after.is_some() || next.is_some() {
            nav.pages aria-label="Pages" {
                @if after.is_some() { a href=(href(wanted, project, q, None)) { "First page" } }
                @if let Some(last) = next { a rel="next" href=(href(wanted, project, q, Some(last))) { "Next " (PAGE) " →" } }
            }
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
