//! Node pool rules that need more than the store: validation against the loaded drivers, and the
//! background tasks that watch the pool.

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::domain::{NodeId, ProvisionState};
use crate::store::nodes::{self, Node, Transition};

/// `enrolled` → `available` once the node's power driver is loaded and its switch is known;
/// otherwise the node stays `enrolled` with `last_error` saying why.
pub async fn validate_node(state: &AppState, id: NodeId) -> Result<Node, ApiError> {
    let node = state.store.call(move |c| nodes::get_by_id(c, id)).await?;
    if node.state != ProvisionState::Enrolled && node.state != ProvisionState::Available {
        return Ok(node);
    }
    let problem = match state.plugins.power(&node.power_driver) {
        Ok(_) => None,
        Err(e) => Some(format!("validation failed: power driver {:?}: {e}", node.power_driver)),
    };
    let (to, message) = match problem {
        None => (ProvisionState::Available, "validated: power driver loaded, switch known".to_owned()),
        Some(problem) => (ProvisionState::Enrolled, problem),
    };
    if to == node.state && node.last_error.as_deref() == Some(message.as_str()) {
        return Ok(node);
    }
    if to == ProvisionState::Available && node.state == ProvisionState::Available {
        return Ok(node);
    }
    let node = state
        .store
        .call(move |c| {
            nodes::transition(
                c,
                Transition {
                    node: id,
                    from: &[ProvisionState::Enrolled, ProvisionState::Available],
                    to,
                    message: &message,
                    deadline: None,
                    duration_ms: None,
                },
            )
        })
        .await?;
    Ok(node)
}

/// At startup, plugins may have appeared or gone: re-check every enrolled node.
pub async fn revalidate_enrolled(state: &AppState) {
    let enrolled = match state.store.call(|c| nodes::list_in_state(c, ProvisionState::Enrolled)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!("cannot list enrolled nodes: {e}");
            return;
        }
    };
    for node in enrolled {
        if let Err(e) = validate_node(state, node.id).await {
            tracing::warn!(node = node.id.0, "validation failed: {e}");
        }
    }
}

/// Starts the daemon's background loops; the handle stops them all.
pub fn spawn_background(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(task_watchdog(state.clone()));
    })
}

/// Fails agent tasks whose agent went silent or whose deadline passed, so no task waits forever.
async fn task_watchdog(state: AppState) {
    let timeout_ms = i64::try_from(state.config.agent.heartbeat_timeout_s).unwrap_or(60).saturating_mul(1000);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let failed = state
            .store
            .call(move |c| {
                let overdue = crate::store::tasks::overdue(c, crate::domain::now_ms(), timeout_ms)?;
                let mut failed = Vec::new();
                for (task, reason) in overdue {
                    crate::store::tasks::fail_or_succeed(c, task.id, false, &reason)?;
                    failed.push((task.node, task.id, reason));
                }
                Ok(failed)
            })
            .await;
        match failed {
            Ok(list) if !list.is_empty() => {
                for (node, task, reason) in list {
                    tracing::warn!(node = node.0, task = task.0, %reason, "agent task failed");
                }
                state.task_events.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => tracing::error!("task watchdog: {e}"),
        }
    }
}
