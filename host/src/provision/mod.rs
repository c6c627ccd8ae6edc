//! The deploy and destroy workflows (DESIGN §1-2) as a durable state machine.
//!
//! The node's state is written before each side effect. One runner per node reads the state and
//! performs the next step, so a restarted daemon resumes every node from where its state says: the
//! driver steps are idempotent, and agent waits pick up the task already in the database.

mod steps;

pub use steps::move_port_to;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::app::AppState;
use crate::domain::{NodeId, ProvisionState, now_ms};
use crate::store::instances;
use crate::store::nodes::{self, Node, Transition};

/// Which nodes have a runner, and the per-switch locks that serialise switch changes.
#[derive(Default)]
pub struct Provisioner {
    running: Mutex<HashSet<i64>>,
    switch_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Provisioner {
    pub fn switch_lock(&self, switch: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.switch_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(switch).or_default().clone()
    }
}

/// A step that failed: which one, and why (usually a driver failure naming plugin and operation).
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub step: &'static str,
    pub message: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {:?} failed: {}", self.step, self.message)
    }
}

/// Starts the node's runner unless one is already going.
pub fn kick(state: &AppState, node: NodeId) {
    {
        let mut running = state.provisioner.running.lock().unwrap_or_else(|p| p.into_inner());
        if !running.insert(node.0) {
            return;
        }
    }
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = drive(&state, node).await;
        state.provisioner.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&node.0);
        if let Err(e) = outcome {
            tracing::error!(node = node.0, "workflow runner stopped: {e}");
        }
    });
}

/// At startup: every node left in a transitional state gets its runner back.
pub async fn resume_all(state: &AppState) {
    match state.store.call(|c| nodes::list_transitional(c)).await {
        Ok(list) => {
            for node in list {
                tracing::info!(node = node.id.0, state = %node.state, "resuming workflow after restart");
                kick(state, node.id);
            }
        }
        Err(e) => tracing::error!("cannot list nodes to resume: {e}"),
    }
}

/// Runs the node's workflow until it reaches a stable state, fails, or is put in maintenance.
async fn drive(state: &AppState, id: NodeId) -> Result<(), crate::store::StoreError> {
    loop {
        let node = state.store.call(move |c| nodes::get_by_id(c, id)).await?;
        if node.maintenance {
            tracing::info!(node = id.0, state = %node.state, "maintenance: workflow paused");
            return Ok(());
        }
        let budget = match node.state_deadline {
            Some(deadline) => Duration::from_millis(u64::try_from(deadline - now_ms()).unwrap_or(0)),
            None => Duration::from_secs(state.config.deploy.step_timeout_s),
        };
        let phase = async {
            match node.state {
                ProvisionState::Deploying => steps::deploy(state, &node).await,
                ProvisionState::WaitAgent => steps::wait_deploy(state, &node).await,
                ProvisionState::Activating => steps::activate(state, &node).await,
                ProvisionState::Deleting => steps::delete(state, &node).await,
                ProvisionState::Cleaning => steps::wait_clean(state, &node).await,
                _ => Err(StepFailure { step: "none", message: String::new() }),
            }
        };
        if !node.state.is_transitional() {
            return Ok(());
        }
        let outcome = match tokio::time::timeout(budget, phase).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StepFailure {
                step: state_step(node.state),
                message: format!("the node did not leave {} within its deadline ({} s)", node.state, budget.as_secs()),
            }),
        };
        if let Err(failure) = outcome {
            fail(state, &node, &failure).await?;
            return Ok(());
        }
    }
}

fn state_step(state: ProvisionState) -> &'static str {
    match state {
        ProvisionState::WaitAgent => "wait for the agent",
        ProvisionState::Cleaning => "wait for the cleaning agent",
        ProvisionState::Deploying => "deploy",
        ProvisionState::Activating => "activate",
        ProvisionState::Deleting => "delete",
        _ => "workflow",
    }
}

/// The node goes to `error` with the step and the reason; its instance shows the same.
async fn fail(state: &AppState, node: &Node, failure: &StepFailure) -> Result<(), crate::store::StoreError> {
    let id = node.id;
    let message = failure.to_string();
    tracing::warn!(node = id.0, %message, "workflow failed");
    let instance = node.instance_id;
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            nodes::transition(&tx, Transition { node: id, from: &[], to: ProvisionState::Error, message: &message, deadline: None, duration_ms: None })?;
            crate::store::tasks::open_for_node(&tx, id)?
                .map(|t| crate::store::tasks::fail_or_succeed(&tx, t.id, false, &format!("abandoned: {message}")))
                .transpose()?;
            if let Some(instance) = instance {
                instances::set_state(&tx, instance, "error", Some(&message))?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
}

/// Moves the node to its next state with a deadline for it, recording how long the last one took.
async fn advance(state: &AppState, node: &Node, to: ProvisionState, message: &str, timeout_s: u64) -> Result<(), StepFailure> {
    let id = node.id;
    let from = node.state;
    let message = message.to_owned();
    let deadline = now_ms() + i64::try_from(timeout_s).unwrap_or(i64::MAX / 4).saturating_mul(1000);
    state
        .store
        .call(move |c| {
            nodes::transition(c, Transition { node: id, from: &[from], to, message: &message, deadline: Some(deadline), duration_ms: None })
        })
        .await
        .map(|_| ())
        .map_err(|e| StepFailure { step: "record state", message: e.to_string() })
}

/// Runs one step, recording it as a node event with its duration and outcome.
async fn step<T, F>(state: &AppState, node: NodeId, name: &'static str, work: F) -> Result<T, StepFailure>
where
    F: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let outcome = work.await;
    let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let message = match &outcome {
        Ok(_) => format!("{name}: ok"),
        Err(e) => format!("{name}: {e}"),
    };
    let _ = state
        .store
        .call(move |c| {
            crate::store::events::append(
                c,
                crate::store::events::NewEvent { node, kind: "step", from: None, to: None, message: &message, duration_ms: Some(elapsed) },
            )
        })
        .await;
    outcome.map_err(|message| StepFailure { step: name, message })
}
