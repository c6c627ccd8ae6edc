//! An operator's direct actions on one node: power, boot device, switch port. Refused while a
//! workflow drives the node, so a person and the daemon never fight over a BMC. Not retried: the
//! operator is waiting on the answer and sees the failure's kind in it.

use super::{Fault, Run, StepFailure, steps};
use crate::domain::Key;
use crate::domain::{BootDevice, NetworkKind, PowerAction, PowerState, Vlan};
use crate::drivers;
use crate::provision::WorkflowCore;
use crate::store::StoreError;
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::nodes::{self, Node};

async fn idle_node(core: &WorkflowCore, key: Key, step: &'static str) -> Result<Node, StepFailure> {
    let node = core.store.call(move |c| nodes::get(c, &key)).await.map_err(|source| StepFailure::Store { step, source })?;
    if node.state.is_transitional() {
        let conflict = StoreError::Conflict(format!("node {:?} is {}: its workflow owns it until it settles", node.name, node.state));
        return Err(StepFailure::Store { step, source: conflict });
    }
    Ok(node)
}

async fn record_power(core: &WorkflowCore, node: &Node, power: PowerState, why: &'static str, step: &'static str) -> Result<(), StepFailure> {
    let id = node.id;
    core.store.call(move |c| nodes::set_power_state(c, id, power, why)).await.map_err(|source| StepFailure::Store { step, source })?;
    Ok(())
}

/// Sets the node's power; returns the node and the power state it now has.
pub async fn set_power(core: &WorkflowCore, key: Key, action: PowerAction) -> Result<(Node, PowerState), StepFailure> {
    const STEP: &str = "power (operator)";
    let node = idle_node(core, key, STEP).await?;
    drivers::set_power(&core.plugins, &node.bmc(), action).await.map_err(|e| Fault::from(e).at(STEP))?;
    let power = if action == PowerAction::Off { PowerState::Off } else { PowerState::On };
    record_power(core, &node, power, "set by the operator", STEP).await?;
    Ok((node, power))
}

/// Reads the node's power from its BMC (any state: reading changes nothing).
pub async fn power_state(core: &WorkflowCore, key: Key) -> Result<(Node, PowerState), StepFailure> {
    const STEP: &str = "read power (operator)";
    let node = core.store.call(move |c| nodes::get(c, &key)).await.map_err(|source| StepFailure::Store { step: STEP, source })?;
    let power = drivers::power_state(&core.plugins, &node.bmc()).await.map_err(|e| Fault::from(e).at(STEP))?;
    record_power(core, &node, power, "read by the operator", STEP).await?;
    Ok((node, power))
}

pub async fn set_boot_device(core: &WorkflowCore, key: Key, device: BootDevice, persistent: bool) -> Result<(), StepFailure> {
    const STEP: &str = "boot device (operator)";
    let node = idle_node(core, key, STEP).await?;
    drivers::set_boot_device(&core.plugins, &node.bmc(), device, persistent).await.map_err(|e| Fault::from(e).at(STEP))?;
    let message = format!("boot device set to {device} ({})", if persistent { "persistent" } else { "next boot" });
    let id = node.id;
    core.store
        .call(move |c| events::append(c, NewEvent::note(id, EventKind::BootDevice, &message)))
        .await
        .map_err(|source| StepFailure::Store { step: STEP, source })
}

/// Moves the node's switch port to `vlan` on `network`; returns the node as it is now.
pub async fn move_port(core: &WorkflowCore, key: Key, network: NetworkKind, vlan: Vlan, vlan_name: &str) -> Result<Node, StepFailure> {
    const STEP: &str = "switch port move (operator)";
    let node = idle_node(core, key, STEP).await?;
    let run = Run { core, node: &node, retry_until: None, last_retried: Default::default() };
    steps::move_port_to(&run, network, vlan, vlan_name, STEP).await?;
    let id = node.id;
    core.store.call(move |c| nodes::get_by_id(c, id)).await.map_err(|source| StepFailure::Store { step: STEP, source })
}
