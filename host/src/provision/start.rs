//! Starting workflows: each function checks and moves the node in one transaction, then kicks its
//! runner. The API calls these and only maps their errors.

use crate::domain::Key;
use crate::domain::{DeployRequest, InstanceState, ProvisionState, TaskKind, deadline_in};
use crate::provision::WorkflowCore;
use crate::store::StoreError;
use crate::store::instances::{self, Claim, Instance};
use crate::store::last_error::LastError;
use crate::store::nodes::{self, Node, Transition};
use crate::store::tasks::{self, NewTask};
use crate::work::TaskOptions;

/// Claims a fitting node for a new instance (one transaction: two claims never get the same node)
/// and starts its deploy.
pub async fn start_deploy(core: &WorkflowCore, request: DeployRequest) -> Result<(Instance, Node), StoreError> {
    let claim = Claim { request, deadline: deadline_in(core.config.deploy.step_timeout) };
    let (instance, node) = core.store.call(move |c| instances::claim(c, claim)).await?;
    tracing::info!(instance = instance.id.0, node = node.id.0, "instance created: deploying");
    super::kick(core, node.id);
    Ok((instance, node))
}

/// Destroy: the node goes `deleting` (from `active` or `error`) and its runner does the rest; the
/// instance disappears once the node is clean. An instance without a node goes at once. Returns the
/// instance as it is now.
pub async fn start_destroy(core: &WorkflowCore, instance: Key) -> Result<Instance, StoreError> {
    let deadline = deadline_in(core.config.deploy.step_timeout);
    let (instance, node) = core
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let instance = instances::get(&tx, &instance)?;
            let id = instance.id;
            let Some(node_id) = instance.node_id else {
                instances::remove(&tx, id)?;
                tx.commit()?;
                return Ok((instance, None));
            };
            let node = nodes::get_by_id(&tx, node_id)?;
            if node.maintenance {
                return Err(StoreError::Conflict(format!("node {:?} is in maintenance: turn it off to destroy the instance", node.name)));
            }
            if !matches!(node.state, ProvisionState::Active | ProvisionState::Error) {
                return Err(StoreError::Conflict(format!(
                    "instance {:?} cannot be deleted while its node is {}: wait until it is active or in error",
                    instance.name, node.state
                )));
            }
            let message = format!("destroy of instance {:?}", instance.name);
            let from = [ProvisionState::Active, ProvisionState::Error];
            nodes::transition(&tx, Transition::until(node.id, &from, ProvisionState::Deleting, &message, deadline))?;
            instances::set_state(&tx, id, InstanceState::Deleting, None)?;
            let instance = instances::get(&tx, &Key::Id(instance.id.0))?;
            tx.commit()?;
            Ok((instance, Some(node.id)))
        })
        .await?;
    if let Some(node) = node {
        super::kick(core, node);
    }
    Ok(instance)
}

/// From `error`: power off, port back to provisioning, clean (unless skip_clean), then available.
/// An instance the node still holds is destroyed with it.
pub async fn recover(core: &WorkflowCore, node: Key) -> Result<Node, StoreError> {
    let deadline = deadline_in(core.config.deploy.step_timeout);
    let node = core
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let node = nodes::get(&tx, &node)?;
            if node.maintenance {
                return Err(StoreError::Conflict(format!("node {:?} is in maintenance: turn it off first", node.name)));
            }
            let message = "recover: power off, port to provisioning, clean";
            let node = nodes::transition(&tx, Transition::until(node.id, &[ProvisionState::Error], ProvisionState::Deleting, message, deadline))?;
            if let Some(instance) = node.instance_id {
                instances::set_state(&tx, instance, InstanceState::Deleting, Some(&LastError::text("node recovery destroys it")))?;
            }
            tx.commit()?;
            Ok(node)
        })
        .await?;
    super::kick(core, node.id);
    Ok(node)
}

/// Inspection: the node goes `inspecting` (from `available` or `enrolled`) with its inspect task
/// queued in the same transaction; its runner boots it into the agent, waits for the report,
/// powers it off and puts it back in the state it came from.
pub async fn start_inspect(core: &WorkflowCore, node: Key) -> Result<Node, StoreError> {
    let config = &core.config;
    let deadline = deadline_in(config.inspection.timeout);
    let options =
        TaskOptions { poweroff: config.deploy.agent_poweroff, lldp_wait_s: config.inspection.lldp_wait.as_secs(), ..TaskOptions::default() };
    let node = core
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            let node = nodes::get(&tx, &node)?;
            if node.maintenance {
                return Err(StoreError::Conflict(format!("node {:?} is in maintenance: turn it off first", node.name)));
            }
            if !node.state.can_be_inspected() {
                return Err(StoreError::Conflict(format!(
                    "node {:?} is {}: only an available or enrolled node can be inspected",
                    node.name, node.state
                )));
            }
            if node.needs_bmc() {
                return Err(StoreError::Conflict(format!(
                    "node {:?} has no BMC yet: give it one with `metalhost node update` before inspecting it",
                    node.name
                )));
            }
            let options = TaskOptions { return_to: Some(node.state.to_string()), ..options };
            let node = nodes::transition(
                &tx,
                Transition::until(
                    node.id,
                    &[node.state],
                    ProvisionState::Inspecting,
                    "inspection: boot the agent, read the hardware, listen for LLDP",
                    deadline,
                ),
            )?;
            tasks::create(&tx, NewTask { node: node.id, kind: TaskKind::Inspect, payload: options.to_json(), image: None, deadline })?;
            tx.commit()?;
            Ok(node)
        })
        .await?;
    tracing::info!(node = node.id.0, "inspection started");
    super::kick(core, node.id);
    Ok(node)
}
