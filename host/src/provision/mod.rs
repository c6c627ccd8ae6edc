//! The deploy and destroy workflows (the lifecycle in ARCHITECTURE.md) as a durable state machine.
//!
//! The node's state is written before each side effect. One runner per node reads the state and
//! performs the next step, so a restarted daemon resumes every node from where its state says: the
//! driver steps are idempotent, and agent waits pick up the task already in the database.
//! Inspection is one state, `inspecting`: its runner boots the agent while the task is pending,
//! then waits for it, and returns the node to the state the task says.
//! `start.rs` is the API's way in: each function there owns its transaction and kicks the runner.

mod core;
mod failure;
mod operator;
mod retry;
mod start;
mod steps;
mod validate;

pub use core::{WorkflowCore, lease_ttl_ms};
pub use failure::{Fault, StepFailure};
pub use operator::{move_port, power_state, set_boot_device, set_power};
pub use start::{recover, start_deploy, start_destroy, start_inspect};
pub use steps::{initrd_url, kernel_args};
pub use validate::{revalidate_enrolled, validate_node};

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::domain::{InstanceState, NodeId, ProvisionState, deadline_in, time_left};
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::nodes::{self, Node, Transition};
use crate::store::{Db, FENCE, StoreError, cluster, instances};

/// One pass of a node's runner, or one operator action: the node as read, and until when its
/// steps may retry (None: no retries, the caller is waiting on an answer).
pub(crate) struct Run<'a> {
    pub core: &'a WorkflowCore,
    pub node: &'a Node,
    pub retry_until: Option<Instant>,
    /// The last transient driver failure a step retried: when the state's deadline cuts an
    /// attempt short, the node's failure names it rather than the deadline alone.
    pub last_retried: std::sync::Mutex<Option<(&'static str, crate::drivers::DriverFailure)>>,
}

impl Run<'_> {
    /// The fence before a device call: Ok unless this is a runner whose lease may run out before
    /// the call ends. Another daemon may take a lease once it expires; the holder stops driving
    /// the node a third of the TTL before that, counted on its monotonic clock from the last
    /// renewal (store/cluster.rs `LeaseClock`). So a daemon that was frozen, or whose heartbeat
    /// could not reach the database, stops by itself before anyone takes over. Operator actions
    /// (no runner, no lease) pass.
    pub fn fence(&self) -> Result<(), StoreError> {
        let Ok(lease) = FENCE.try_with(Clone::clone) else { return Ok(()) };
        let ttl = self.core.config.cluster.lease_ttl;
        let margin = ttl / 3;
        let left = lease.clock.left(ttl, std::time::Instant::now());
        if left >= margin {
            return Ok(());
        }
        Err(StoreError::LeaseLost(format!(
            "daemon {} stops driving node {} before another device call: its lease (epoch {}) has {} ms left, less than the {} ms a call may take (it was not renewed in time)",
            lease.owner,
            lease.node,
            lease.epoch,
            left.as_millis(),
            margin.as_millis()
        )))
    }
}

/// A runner's store call, tried again after a transient failure (a lost session, a serialization
/// failure, a deadlock) with the steps' backoff while `until` allows; any other error, or a
/// transient one past `until`, is returned. `f` runs once per attempt, so it must be safe to run
/// again after an attempt that committed but whose answer was lost.
pub(crate) async fn store_call<T, F>(core: &WorkflowCore, until: Option<Instant>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: Fn(&mut Db) -> Result<T, StoreError> + Clone + Send + 'static,
{
    let backoff = core.backoff();
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        match core.store.call(f.clone()).await {
            Err(e) if e.is_transient() => {
                let Some(pause) = backoff.next_if(true, attempt, started.elapsed(), until) else { return Err(e) };
                tracing::warn!(attempt, "store call failed ({e}); trying again in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Starts the node's runner unless one is already going here; false when one was. The runner first takes the node's
/// lease (store/cluster.rs): if another live daemon holds it, that daemon drives the node and
/// this one does nothing. Every store call of the runner is fenced by the lease.
pub fn kick(core: &WorkflowCore, node: NodeId) -> bool {
    if !core.runners.claim(node.0) {
        return false;
    }
    let core = core.clone();
    let span = tracing::info_span!("runner", node = node.0, instance = tracing::field::Empty);
    tokio::spawn(
        async move {
            let owner = core.member.name.clone();
            let ttl_ms = core.lease_ttl_ms();
            match core.store.call(move |c| cluster::acquire(c, node, &owner, ttl_ms)).await {
                Ok(Some(lease)) => {
                    core.runners.hold(&lease);
                    // The node boots during its workflow: its serial console goes to its console log.
                    let recording = crate::console::recorder::start(&core.recording(), node);
                    let outcome = FENCE.scope(lease.clone(), drive(&core, node)).await;
                    drop(recording);
                    core.runners.drop_lease(&lease);
                    let held = lease.clone();
                    if let Err(e) = core.store.call(move |c| cluster::release(c, &held)).await {
                        tracing::warn!("cannot release the node's lease (it expires by itself): {e}");
                    }
                    match outcome {
                        Err(StoreError::LeaseLost(why)) => fenced_stop(&core, &lease, why).await,
                        Err(e) => tracing::error!("workflow runner stopped: {e}"),
                        Ok(()) => {}
                    }
                }
                Ok(None) => tracing::debug!("another daemon holds the node's lease"),
                Err(e) => tracing::error!("cannot take the node's lease: {e}"),
            }
            core.runners.release(node.0);
        }
        .instrument(span),
    );
    true
}

/// A runner stopped by its fence says so once, in the log and in the node's events. The event is
/// the one write a fenced daemon makes for the node: a note, outside the fence, that changes
/// nothing the holder relies on. If the lease was still this daemon's (its heartbeat was late),
/// it was released above, and the next heartbeat resumes the node here or elsewhere.
async fn fenced_stop(core: &WorkflowCore, lease: &cluster::Lease, why: String) {
    tracing::warn!("workflow runner stopped by its fence, sending the node nothing more: {why}");
    let node = lease.node;
    let message = format!("fenced: {why}");
    let written = core.store.call(move |c| events::append(c, NewEvent::note(node, EventKind::Lease, &message))).await;
    if let Err(e) = written {
        tracing::warn!("cannot record the fenced stop: {e}");
    }
}

/// At startup, and at every heartbeat: every node left in a transitional state whose lease is
/// free, expired or this daemon's gets its runner (back). After a restart that is the daemon's
/// own nodes; after another daemon died, its nodes once their leases ran out.
pub async fn resume_all(core: &WorkflowCore) {
    let me = core.member.name.clone();
    match core.store.call(move |c| cluster::orphans(c, &me)).await {
        Ok(list) => {
            for node in list {
                if kick(core, node) {
                    tracing::info!(node = node.0, "resuming the node's workflow");
                }
            }
        }
        Err(e) => tracing::error!("cannot list nodes to resume: {e}"),
    }
}

/// Heartbeats every third of the lease TTL: renews this daemon's leases and takes over the nodes
/// of daemons that stopped.
pub async fn heartbeat(core: WorkflowCore) {
    let ttl = core.config.cluster.lease_ttl;
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let me = core.member.clone();
        let ttl_ms = core.lease_ttl_ms();
        match core.store.call(move |c| cluster::heartbeat(c, &me, ttl_ms)).await {
            Ok(renewal) => core.runners.renewed(&renewal),
            Err(e) => {
                // The runners' lease clocks stay where they were: they stop driving their nodes
                // before the leases can expire (Run::fence).
                tracing::error!("heartbeat failed: {e}");
                continue;
            }
        }
        resume_all(&core).await;
        if core.store.is_shared() {
            core.images.replicate().await;
        }
    }
}

/// Runs the node's workflow until it reaches a stable state, fails, or is put in maintenance.
async fn drive(core: &WorkflowCore, id: NodeId) -> Result<(), StoreError> {
    loop {
        let node = store_call(core, Some(Instant::now() + core.config.deploy.step_timeout), move |c| nodes::get_by_id(c, id)).await?;
        if let Some(instance) = node.instance_id {
            tracing::Span::current().record("instance", instance.0);
        }
        if node.maintenance {
            tracing::info!(state = %node.state, "maintenance: workflow paused");
            return Ok(());
        }
        if !node.state.is_transitional() {
            return Ok(());
        }
        let budget = node.state_deadline.map_or(core.config.deploy.step_timeout, time_left);
        let run = Run { core, node: &node, retry_until: Some(Instant::now() + budget), last_retried: Default::default() };
        let phase = async {
            match node.state {
                ProvisionState::Deploying => steps::deploy(&run).await,
                ProvisionState::WaitAgent => steps::wait_deploy(&run).await,
                ProvisionState::Activating => steps::activate(&run).await,
                ProvisionState::Deleting => steps::delete(&run).await,
                ProvisionState::Inspecting => steps::inspect(&run).await,
                _ => steps::wait_clean(&run).await,
            }
        };
        let outcome = match tokio::time::timeout(budget, phase).await {
            Ok(outcome) => outcome,
            // Cut short while retrying a device that kept failing: that failure is the news.
            Err(_) => match run.last_retried.lock().ok().and_then(|mut last| last.take()) {
                Some((step, source)) => Err(StepFailure::Driver { step, source }),
                None => Err(StepFailure::Deadline { step: state_step(node.state), state: node.state, budget }),
            },
        };
        if let Err(failure) = outcome {
            if let Some(why) = failure.fenced() {
                return Err(StoreError::LeaseLost(why.to_owned()));
            }
            fail(core, &node, &failure).await?;
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
        ProvisionState::Inspecting => "inspect",
        _ => "workflow",
    }
}

/// The node goes to `error` with the failure as its `last_error`; its instance shows the same.
async fn fail(core: &WorkflowCore, node: &Node, failure: &StepFailure) -> Result<(), StoreError> {
    let id = node.id;
    let record = failure.to_last_error();
    let message = record.to_string();
    tracing::warn!(kind = %failure.kind(), step = failure.step(), %message, "workflow failed");
    let instance = node.instance_id;
    store_call(core, Some(Instant::now() + core.config.deploy.step_timeout), move |c| {
        let tx = c.transaction()?;
        let to_error = Transition::failed(id, &message, &record);
        nodes::transition(&tx, to_error)?;
        crate::store::tasks::open_for_node(&tx, id)?
            .map(|t| crate::store::tasks::fail_or_succeed(&tx, t.id, false, &format!("abandoned: {message}")))
            .transpose()?;
        if let Some(instance) = instance {
            instances::set_state(&tx, instance, InstanceState::Error, Some(&record))?;
        }
        tx.commit()?;
        Ok(())
    })
    .await
}

/// Moves the node to its next state with a deadline for it. A retry that finds the node already
/// there found its own earlier attempt, which committed before its answer was lost: no one else
/// moves a node out of a transitional state while this runner holds its lease.
async fn advance(run: &Run<'_>, to: ProvisionState, message: &str, within: Duration) -> Result<(), StepFailure> {
    let id = run.node.id;
    let from = run.node.state;
    let message = message.to_owned();
    let deadline = deadline_in(within);
    store_call(run.core, run.retry_until, move |c| {
        if nodes::get_by_id(c, id)?.state == to {
            return Ok(());
        }
        nodes::transition(c, Transition::until(id, &[from], to, &message, deadline)).map(|_| ())
    })
    .await
    .map_err(|source| StepFailure::Store { step: "record state", source })
}

/// Runs one step, retrying transient failures (see `retry.rs`) while the run allows, each retry
/// an event; then records the step as an event with its duration and outcome. `work` is called
/// again for each attempt.
async fn step<T, F, Fut>(run: &Run<'_>, name: &'static str, mut work: F) -> Result<T, StepFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fault>>,
{
    let backoff = run.core.backoff();
    let started = Instant::now();
    let mut attempt = 1;
    let outcome = loop {
        // No device call, first or retried, without the lease (ARCHITECTURE.md, "Several daemons, one pool").
        if let Err(fenced) = run.fence() {
            break Err(Fault::Store(fenced));
        }
        let attempt_started = Instant::now();
        let fault = match work().await {
            Ok(value) => break Ok(value),
            Err(fault) => fault,
        };
        if fault.is_fenced() {
            break Err(fault);
        }
        let Some(pause) = backoff.next_if(fault.is_transient(), attempt, attempt_started.elapsed(), run.retry_until) else { break Err(fault) };
        if let (Fault::Driver(failure), Ok(mut last)) = (&fault, run.last_retried.lock()) {
            *last = Some((name, failure.clone()));
        }
        let message = format!("{name}: attempt {attempt} failed ({fault}); trying again in {} ms", pause.as_millis());
        tracing::warn!(kind = %fault.kind(), attempt, "{message}");
        crate::metrics::step_retry(name, &fault.kind().to_string());
        record(run, EventKind::Retry, message, None).await;
        tokio::time::sleep(pause).await;
        attempt += 1;
    };
    if outcome.is_ok()
        && let Ok(mut last) = run.last_retried.lock()
    {
        // Retried and then done: a later deadline is not this step's doing.
        *last = None;
    }
    if let Some(fault) = outcome.as_ref().err().filter(|f| f.is_fenced()) {
        // Stopped by the fence: nothing to record for a node this daemon no longer drives.
        tracing::debug!("{name}: {fault}");
        return outcome.map_err(|fault| fault.at(name));
    }
    crate::metrics::step(name, outcome.is_ok(), started.elapsed().as_secs_f64());
    let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let message = match &outcome {
        Ok(_) if attempt > 1 => format!("{name}: ok after {attempt} attempts"),
        Ok(_) => format!("{name}: ok"),
        Err(e) => format!("{name}: {e}{}", console_pointer(run).await),
    };
    record(run, EventKind::Step, message, Some(elapsed)).await;
    outcome.map_err(|fault| fault.at(name))
}

/// Where a failed step's reader finds what the node printed, when it printed anything.
async fn console_pointer(run: &Run<'_>) -> String {
    let node = run.node.id;
    match run.core.store.call(move |c| crate::store::console::has_lines(c, node)).await {
        Ok(true) => format!(" (console log: metalhost node console-log {})", run.node.name),
        _ => String::new(),
    }
}

/// Appends a node event; a failure to record is logged, never fails the step.
async fn record(run: &Run<'_>, kind: EventKind, message: String, duration_ms: Option<i64>) {
    let node = run.node.id;
    let written =
        run.core.store.call(move |c| events::append(c, NewEvent { node, kind, from: None, to: None, message: &message, duration_ms })).await;
    if let Err(e) = written {
        tracing::warn!("cannot record a {} event: {e}", kind.as_str());
    }
}
