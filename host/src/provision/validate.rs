//! Enrolment validation: a node becomes `available` once its power driver is loaded and its switch
//! port is known, and stays `enrolled` with a `last_error` naming what it lacks otherwise.

use super::WorkflowCore;
use crate::domain::{FailureKind, NodeId, ProvisionState, SwitchPort};
use crate::store::StoreError;
use crate::store::last_error::LastError;
use crate::store::nodes::{self, Node, Transition};

/// `enrolled` → `available` once the node's power driver is loaded and its switch is known;
/// otherwise the node stays `enrolled` with `last_error` saying why.
pub async fn validate_node(core: &WorkflowCore, id: NodeId) -> Result<Node, StoreError> {
    let node = core.store.call(move |c| nodes::get_by_id(c, id)).await?;
    if node.state != ProvisionState::Enrolled && node.state != ProvisionState::Available {
        return Ok(node);
    }
    let problem = match core.plugins.power(&node.power_driver) {
        _ if node.needs_bmc() || SwitchPort::is_unknown(&node.switch_port) => {
            Some(LastError { step: Some("validate".into()), plugin: None, operation: None, kind: None, message: incomplete(&node) })
        }
        Ok(_) => None,
        Err(e) => Some(LastError {
            step: Some("validate".into()),
            plugin: Some(node.power_driver.clone()),
            operation: None,
            kind: Some(FailureKind::NotLoaded),
            message: format!("validation failed: power driver {:?}: {e}", node.power_driver),
        }),
    };
    let (to, message) = match &problem {
        None => (ProvisionState::Available, "validated: power driver loaded, switch known".to_owned()),
        Some(problem) => (ProvisionState::Enrolled, problem.message.clone()),
    };
    if to == node.state && node.last_error == problem {
        return Ok(node);
    }
    if to == ProvisionState::Available && node.state == ProvisionState::Available {
        return Ok(node);
    }
    let node = core
        .store
        .call(move |c| {
            nodes::transition(
                c,
                Transition::settle(id, &[ProvisionState::Enrolled, ProvisionState::Available], to, &message).with_error(problem.as_ref()),
            )
        })
        .await?;
    Ok(node)
}

/// What an enlisted node still lacks, as the operator's next command.
fn incomplete(node: &Node) -> String {
    let mut missing = Vec::new();
    if node.needs_bmc() {
        missing.push("BMC credentials (--bmc-address, --bmc-username, --bmc-password, --power-driver)");
    }
    if SwitchPort::is_unknown(&node.switch_port) {
        missing.push("its switch port (--switch-id, --switch-port: no LLDP neighbour was a registered switch)");
    }
    format!("discovered node needs {}: complete it with `metalhost node update {}`", missing.join(" and "), node.name)
}

/// At startup, plugins may have appeared or gone: re-check every enrolled node.
pub async fn revalidate_enrolled(core: &WorkflowCore) {
    let enrolled = match core.store.call(|c| nodes::list_in_state(c, ProvisionState::Enrolled)).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!("cannot list enrolled nodes: {e}");
            return;
        }
    };
    for node in enrolled {
        if let Err(e) = validate_node(core, node.id).await {
            tracing::warn!(node = node.id.0, "validation failed: {e}");
        }
    }
}
