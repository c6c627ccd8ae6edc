//! `/ui/images` and `/ui/plugins`: what can be deployed, and the drivers with what each may touch.

use axum::extract::State;
use axum::response::Html;
use maud::html;

use super::error::UiResult;
use super::page::{self, Nav};
use crate::api::policy::{Access, authorize};
use crate::domain::tenancy::Policy;
use crate::provision::WorkflowCore;
use crate::store::images;

pub async fn images(State(core): State<WorkflowCore>, access: Access) -> UiResult<Html<String>> {
    let visible = access.visible_projects();
    let list = core
        .store
        .call(move |c| match visible {
            None => images::list(c),
            Some(mine) => images::list_visible(c, &mine),
        })
        .await?;
    let body = html! {
        h1 { "Images" }
        @if list.is_empty() { p.empty { "No images." } } @else {
            div.scroll { table {
                thead { tr { th { "Image" } th.num { "Size" } th { "Format" } th { "Compression" } th { "Source" } th { "sha256" } th { "Added (UTC)" } } }
                tbody { @for i in &list {
                    tr {
                        td { (i.name) }
                        td.num.nowrap { @if let Some(s) = i.size { (page::bytes(s)) } }
                        // The inspection's reason on hover: what was found when the image was added.
                        td title=(i.verdict_reason.as_deref().unwrap_or("not inspected (added before inspection)")) { (i.format) }
                        td { (i.compression) }
                        td.err { @if let Some(u) = &i.url { (u) } @else { "uploaded" } }
                        td { code.hash title=(i.sha256) { (i.sha256.get(..12).unwrap_or(&i.sha256)) "…" } }
                        td.nowrap { (page::utc(i.created_at)) }
                    }
                } }
            } }
        }
    };
    Ok(Html(page::shell("Images", Nav::Images, body).into_string()))
}

pub async fn plugins(State(core): State<WorkflowCore>, access: Access) -> UiResult<Html<String>> {
    // The API's list_plugins: grants are for admins only.
    authorize(&core, &access.caller, Policy::Admin, "").await?;
    let list = core.plugins.status();
    let body = html! {
        h1 { "Plugins" }
        @if list.is_empty() { p.empty { "No plugins configured." } }
        @for plugin in &list {
            section.plugin {
                h2 { (plugin.name) " " span.tag { (plugin.kind) } " "
                    @if plugin.loaded { span class="badge s-available" { "loaded" } } @else { span class="badge s-error" { "not loaded" } } }
                @if let Some(e) = &plugin.error { p.flash.bad { (e) } }
                dl.facts {
                    @if !plugin.version.is_empty() { dt { "Version" } dd { (plugin.version) } }
                    @if !plugin.contract.is_empty() { dt { "Contract" } dd { (plugin.contract) } }
                    @if let Some(s) = &plugin.sha256 { dt { "sha256" } dd { code.hash { (s) } } }
                    @if let Some(g) = &plugin.grants {
                        dt { "May run" } dd {
                            @if g.exec.is_empty() { "nothing" }
                            @for (name, path) in &g.exec { code { (name) " → " (path.display()) } " " }
                        }
                        @if !g.dirs.is_empty() { dt { "Dirs" } dd { @for d in &g.dirs { code { (d.display()) } " " } } }
                        dt { "Network" } dd { (g.network.as_deref().unwrap_or("none")) }
                        dt { "Limits" } dd { (g.memory_mb) " MiB, " (g.call_timeout_s) " s a call" }
                    }
                    @if let Some(c) = &plugin.confinement { dt { "Confinement" } dd { (c.summary()) } }
                }
            }
        }
    };
    Ok(Html(page::shell("Plugins", Nav::Plugins, body).into_string()))
}
