//! What a driver call needs to reach hardware: a node's BMC, a switch, and the node a call acts
//! for. The store builds them from its rows (`Node::bmc`, `Node::label`, `Switch::access`), so the
//! drivers facade never sees a row (ARCHITECTURE.md, `drivers.rs`).

use super::{BootMode, InstanceId, NodeId, Secret};

/// The node a driver call acts for, as the call's `driver` span names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel {
    pub id: NodeId,
    pub name: String,
    pub instance: Option<InstanceId>,
}

/// A node's BMC: everything a power or console call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmc {
    pub node: NodeLabel,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// The power plugin that speaks to it.
    pub driver: String,
    /// The firmware mode the node boots in, which a boot override can name.
    pub boot_mode: BootMode,
}

/// A switch as its plugin reaches it: NETCONF over SSH with the stored login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchAccess {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    /// The switch plugin that speaks to it.
    pub driver: String,
    /// The SSH host key fingerprint it must show (pinned or learnt); none: trusted on first use.
    pub host_key: Option<String>,
}
