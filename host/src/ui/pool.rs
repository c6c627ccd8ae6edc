//! `/ui`: the node pool, one row per node (state, power, network, instance, last error), with
//! counts per state that double as the filter.

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::UiResult;
use super::page::{self, Nav, badge};
use crate::domain::{ProvisionState, Vlan};
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};

#[derive(Deserialize)]
pub struct Filter {
    state: Option<String>,
}

pub async fn page(State(core): State<WorkflowCore>, Query(filter): Query<Filter>) -> UiResult<Html<String>> {
    // An empty value is the form's "all states".
    let wanted: Option<ProvisionState> = filter.state.as_deref().filter(|s| !s.is_empty()).map(str::parse).transpose()?;
    let (list, counts) = core
        .store
        .call(move |c| {
            let list = match wanted {
                Some(s) => nodes::list_in_state(c, s)?,
                None => nodes::list(c)?,
            };
            Ok((list, nodes::count_by_state(c)?))
        })
        .await?;
    let count = |s: ProvisionState| counts.iter().filter(|(st, _, _)| *st == s).map(|(_, _, n)| n).sum::<u64>();
    let total: u64 = counts.iter().map(|(_, _, n)| n).sum();
    let body = html! {
        h1 { "Pool" }
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
