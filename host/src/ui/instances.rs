//! `/ui/instances`: the instances, a page of 100 at a time with a link to the next (the API's
//! `instances::query`), each with its node's progress; a create form and delete buttons (both go
//! through a confirmation page, `actions.rs`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Html;
use maud::html;

use super::error::UiResult;
use super::page::{self, Nav, badge};
use crate::api::paging;
use crate::api::policy::Access;
use crate::domain::{ImageId, ProvisionState};
use crate::provision::WorkflowCore;
use crate::store::instances::{self, Instance};
use crate::store::tasks::{self, Task};
use crate::store::{images, nodes, projects};

/// An instance with what the page shows of its node.
struct Row {
    instance: Instance,
    node: Option<(i64, String, ProvisionState)>,
    task: Option<Task>,
}

/// Instances on one page; the next page goes on after the last one's id.
const PAGE: i64 = 100;

#[derive(serde::Deserialize)]
pub struct Cursor {
    /// Instances after this id.
    after: Option<i64>,
}

pub async fn page(State(core): State<WorkflowCore>, access: Access, Query(cursor): Query<Cursor>) -> UiResult<Html<String>> {
    let visible = access.visible_projects();
    let after = cursor.after.filter(|a| *a >= 0);
    let (mut rows, images, available, projects) = core
        .store
        .call(move |c| {
            let mut rows = Vec::new();
            // Within the user's projects (an admin's: all); one more than the page: whether a next exists.
            let shown = instances::query(c, after, Some(PAGE + 1), None, visible.as_deref())?;
            for instance in shown {
                let (node, task) = match instance.node_id {
                    Some(id) => {
                        let n = nodes::get_by_id(c, id)?;
                        let task = tasks::latest_for_node(c, n.id)?;
                        (Some((n.id.0, n.name, n.state)), task)
                    }
                    None => (None, None),
                };
                rows.push(Row { instance, node, task });
            }
            let images = match &visible {
                None => images::list(c)?,
                Some(mine) => images::list_visible(c, mine)?,
            };
            // Users pick a project and let the daemon choose the node: the pool is not theirs to see.
            let available: Vec<String> = match &visible {
                None => nodes::list_in_state(c, ProvisionState::Available)?.into_iter().map(|n| n.name).collect(),
                Some(_) => Vec::new(),
            };
            let projects = projects::list(c, visible.as_deref())?;
            Ok((rows, images, available, projects))
        })
        .await?;
    let next = paging::cut(&mut rows, Some(PAGE), |r| r.instance.id.0);
    let image_names: HashMap<ImageId, &str> = images.iter().map(|i| (i.id, i.name.as_str())).collect();
    let body = html! {
        h1 { "Instances" }
        @if rows.is_empty() { p.empty { "No instances." } } @else {
            div.scroll { table {
                thead { tr { th { "Instance" } th { "State" } th { "Image" } th { "Node" } th { "Progress" } th { "Created (UTC)" } th { "Last error" } th {} } }
                tbody { @for r in &rows {
                    tr {
                        td { (r.instance.name) }
                        td { (badge(r.instance.state.as_str())) }
                        td { (image_names.get(&r.instance.image_id).copied().unwrap_or("?")) }
                        td { @if let Some((id, name, st)) = &r.node { a href={ "/ui/nodes/" (id) } { (name) } " " (badge(st.as_str())) } }
                        td.nowrap { @if let Some(t) = &r.task { @if t.bytes_written > 0 { (page::bytes(t.bytes_written)) } } }
                        td.nowrap { (page::utc(r.instance.created_at)) }
                        td.err { @if let Some(e) = &r.instance.last_error { (e) } }
                        td { form method="post" action={ "/ui/instances/" (r.instance.id) "/delete" } { button.danger type="submit" { "Delete" } } }
                    }
                } }
            } }
        }
        @if after.is_some() || next.is_some() {
            nav.pages aria-label="Pages" {
                @if after.is_some() { a href="/ui/instances" { "First page" } }
                @if let Some(last) = next { a rel="next" href={ "/ui/instances?after=" (last) } { "Next " (PAGE) " →" } }
            }
        }
        h2 { "Create an instance" }
        @if images.is_empty() { p.hint { "Upload an image first (" code { "metalhost image add" } ")." } } @else {
            form.create method="post" action="/ui/instances" {
                label { "Name (optional) " input type="text" name="name" pattern="[A-Za-z0-9._-]{1,63}"; }
                label { "Image " select name="image" required { @for i in &images { option value=(i.name) { (i.name) } } } }
                label { "Project " select name="project" {
                    @if access.is_admin() { option value="" { "none (tenant VLAN)" } }
                    @for p in &projects { option value=(p.name) { (p.name) } }
                } }
                label { "Node " select name="node" {
                    option value="" { "first available that fits" }
                    @for n in &available { option value=(n) { (n) } }
                } }
                button type="submit" { "Create…" }
            }
        }
    };
    Ok(Html(page::shell("Instances", Nav::Instances, body).into_string()))
}
