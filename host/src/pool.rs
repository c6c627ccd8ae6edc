//! The background tasks that watch the pool: the task watchdog, power sync, and the workflow
//! core's heartbeat.

use crate::domain::ProvisionState;
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};

/// Starts the daemon's background loops; the handle stops them all.
pub fn spawn_background(core: WorkflowCore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(task_watchdog(core.clone()), power_sync(core.clone()), crate::provision::heartbeat(core.clone()));
    })
}

/// Fails agent tasks whose agent went silent or whose deadline passed, so no task waits forever.
async fn task_watchdog(core: WorkflowCore) {
    let timeout_ms = i64::try_from(core.config.agent.heartbeat_timeout.as_millis()).unwrap_or(i64::MAX / 4);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let failed = core
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
                crate::metrics::task_timeouts(list.len());
                for (node, task, reason) in list {
                    tracing::warn!(node = node.0, task = task.0, %reason, "agent task failed");
                }
                core.task_events.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => tracing::error!("task watchdog: {e}"),
        }
    }
}

/// What one power-sync sweep found.
#[derive(Debug, Default, Clone, Copy)]
pub struct SweepReport {
    pub checked: usize,
    pub drifted: usize,
    pub failed: usize,
}

/// Every `interval`, reads the power state of every idle node.
async fn power_sync(core: WorkflowCore) {
    let Some(interval) = core.config.power_sync_interval() else { return };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let report = power_sync_sweep(&core).await;
        crate::metrics::power_sync(report.checked, report.drifted, report.failed);
        tracing::info!(
            checked = report.checked,
            drifted = report.drifted,
            failed = report.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "power sync sweep"
        );
    }
}

/// One sweep: at most `concurrency` BMC calls at a time, each started after a small random delay
/// so a sweep never hits every BMC in the same instant. The delay is taken before a call slot is
/// held: a sleeping call in a slot made a 10,000-node sweep last `nodes × jitter / 2 /
/// concurrency` (78 s at the defaults) with the BMCs idle. Nodes a workflow drives, or in
/// maintenance, are left alone. A changed power state is recorded as an event.
pub async fn power_sync_sweep(core: &WorkflowCore) -> SweepReport {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;
    use rand::Rng;
    let nodes = match core.store.call(|c| nodes::list(c)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!("power sync: cannot list nodes: {e}");
            return SweepReport::default();
        }
    };
    let idle: Vec<Node> = nodes.into_iter().filter(|n| !n.maintenance && !n.state.is_transitional() && n.state != ProvisionState::Enrolled).collect();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(core.config.power_sync.concurrency.max(1)));
    let jitter_ms = u64::try_from(core.config.power_sync.jitter.as_millis()).unwrap_or(u64::MAX);
    let results: Vec<Result<bool, ()>> = idle
        .into_iter()
        .map(|node| {
            let slots = slots.clone();
            async move {
                if jitter_ms > 0 {
                    let delay = rand::thread_rng().gen_range(0..=jitter_ms);
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                // Never closed, so this only waits for a free slot.
                let _slot = slots.acquire_owned().await.map_err(|_| ())?;
                // Several daemons on one pool: each idle node is synced by the daemon that gets
                // its lease for the call; one daemon alone needs none.
                let lease = if core.store.is_shared() {
                    let (owner, id, ttl_ms) = (core.member.name.clone(), node.id, core.lease_ttl_ms());
                    match core.store.call(move |c| crate::store::cluster::acquire(c, id, &owner, ttl_ms)).await {
                        Ok(Some(lease)) => Some(lease),
                        Ok(None) => return Ok(false),
                        Err(e) => {
                            tracing::warn!(node = node.id.0, "power sync: {e}");
                            return Err(());
                        }
                    }
                } else {
                    None
                };
                let outcome = sync_one(core, &node, lease.clone()).await;
                if let Some(lease) = lease {
                    let _ = core.store.call(move |c| crate::store::cluster::release(c, &lease)).await;
                }
                outcome
            }
        })
        .collect::<FuturesUnordered<_>>()
        .collect()
        .await;
    SweepReport {
        checked: results.len(),
        drifted: results.iter().filter(|r| matches!(r, Ok(true))).count(),
        failed: results.iter().filter(|r| r.is_err()).count(),
    }
}

/// Reads one node's power state and records a change (fenced by the lease when there is one).
async fn sync_one(core: &WorkflowCore, node: &Node, lease: Option<crate::store::cluster::Lease>) -> Result<bool, ()> {
    let read = async {
        match crate::drivers::power_state(&core.plugins, &node.bmc()).await {
            Ok(power) => {
                let id = node.id;
                core.store
                    .call(move |c| nodes::set_power_state(c, id, power, "power sync found a different state"))
                    .await
                    .map_err(|e| tracing::warn!(node = node.id.0, "power sync: {e}"))
            }
            Err(e) => {
                tracing::debug!(node = node.id.0, "power sync: {e}");
                Err(())
            }
        }
    };
    match lease {
        Some(lease) => crate::store::FENCE.scope(lease, read).await,
        None => read.await,
    }
}
