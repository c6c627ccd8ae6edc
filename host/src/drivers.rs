//! The daemon's view of its drivers: one call per hardware action, in domain types, each failure
//! naming the plugin and the operation. Wraps metalhost-plugin-host so workflows never see wasmtime.

use std::path::Path;

use crate::domain::{PowerState, Vlan};
use crate::store::nodes::Node;
use crate::store::switches::Switch;

// TEMPORARY: stand-ins until metalhost-plugin-host lands; the facade's signatures below stay.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub error: Option<String>,
}

pub struct PluginHost;

#[derive(Debug, thiserror::Error)]
#[error("plugin {0:?} is not loaded")]
pub struct NotLoaded(String);

impl PluginHost {
    pub fn new(_cache: &Path) -> Result<Self, NotLoaded> {
        Ok(PluginHost)
    }
    pub async fn load(&self, _specs: &[PluginSpec]) -> Vec<PluginStatus> {
        Vec::new()
    }
    pub fn status(&self) -> Vec<PluginStatus> {
        Vec::new()
    }
    pub fn power(&self, name: &str) -> Result<(), NotLoaded> {
        Err(NotLoaded(name.to_owned()))
    }
}

/// A driver call that failed: which plugin, which operation, what it said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin:?} {operation}: {message}")]
pub struct DriverFailure {
    pub plugin: String,
    pub operation: String,
    pub message: String,
}

impl DriverFailure {
    fn new(plugin: &str, operation: &str, message: impl std::fmt::Display) -> Self {
        DriverFailure { plugin: plugin.to_owned(), operation: operation.to_owned(), message: message.to_string() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    Off,
    Reboot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// What the netboot backend writes for a node.
#[derive(Debug, Clone)]
pub struct BootEntry {
    pub mac: String,
    pub ip: String,
    pub hostname: String,
    pub kernel_url: String,
    pub initrd_url: String,
    pub kernel_args: String,
}

pub async fn power_state(host: &PluginHost, node: &Node) -> Result<PowerState, DriverFailure> {
    let _ = host.power(&node.power_driver).map_err(|e| DriverFailure::new(&node.power_driver, "get-power-state", e))?;
    Err(DriverFailure::new(&node.power_driver, "get-power-state", "not implemented"))
}

pub async fn set_power(host: &PluginHost, node: &Node, action: PowerAction) -> Result<(), DriverFailure> {
    let _ = (host, action);
    Err(DriverFailure::new(&node.power_driver, "set-power-state", "not implemented"))
}

pub async fn set_boot_device(host: &PluginHost, node: &Node, device: BootDevice, persistent: bool) -> Result<(), DriverFailure> {
    let _ = (host, device, persistent);
    Err(DriverFailure::new(&node.power_driver, "set-boot-device", "not implemented"))
}

/// Puts `port` in access mode on `vlan` and reads it back. Returns the switch's SSH host key
/// fingerprint so a first-use key can be remembered.
pub async fn move_port(host: &PluginHost, switch: &Switch, port: &str, vlan: Vlan, vlan_name: &str) -> Result<String, DriverFailure> {
    let _ = (host, port, vlan, vlan_name);
    Err(DriverFailure::new(&switch.driver, "set-access-vlan", "not implemented"))
}

pub async fn netboot_put(host: &PluginHost, plugin: &str, entry: &BootEntry) -> Result<(), DriverFailure> {
    let _ = (host, entry);
    Err(DriverFailure::new(plugin, "put-host", "not implemented"))
}

pub async fn netboot_remove(host: &PluginHost, plugin: &str, mac: &str) -> Result<(), DriverFailure> {
    let _ = (host, mac);
    Err(DriverFailure::new(plugin, "remove-host", "not implemented"))
}
