//! The daemon's view of its drivers: one call per hardware action, in domain types, each failure
//! naming the plugin and the operation. Wraps metalhost-plugin-host so workflows never see wasmtime.

use crate::domain::{PowerState, Vlan};
use crate::store::nodes::Node;
use crate::store::switches::Switch;

// The runtime's request types are plain data (no wasmtime in them), so workflows use them as they are.
pub use metalhost_plugin_host::{BootDevice, BootEntry, PluginHost, PluginSpec, PluginStatus, PowerAction};
use metalhost_plugin_host as ph;

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

impl From<ph::CallError> for DriverFailure {
    fn from(e: ph::CallError) -> Self {
        DriverFailure { plugin: e.plugin.clone(), operation: e.operation.to_owned(), message: e.failure.to_string() }
    }
}

fn bmc_of(node: &Node) -> (ph::Bmc, ph::Credentials) {
    (
        ph::Bmc { host: node.bmc_address.clone(), port: node.bmc_port },
        ph::Credentials { username: node.bmc_username.clone(), password: node.bmc_password.expose().to_owned() },
    )
}

pub async fn power_state(host: &PluginHost, node: &Node) -> Result<PowerState, DriverFailure> {
    let (bmc, creds) = bmc_of(node);
    let state = host.power(&node.power_driver)?.get_power_state(&bmc, &creds).await?;
    Ok(match state {
        ph::PowerState::On => PowerState::On,
        ph::PowerState::Off => PowerState::Off,
    })
}

pub async fn set_power(host: &PluginHost, node: &Node, action: PowerAction) -> Result<(), DriverFailure> {
    let (bmc, creds) = bmc_of(node);
    Ok(host.power(&node.power_driver)?.set_power_state(&bmc, &creds, action).await?)
}

pub async fn set_boot_device(host: &PluginHost, node: &Node, device: BootDevice, persistent: bool) -> Result<(), DriverFailure> {
    let (bmc, creds) = bmc_of(node);
    Ok(host.power(&node.power_driver)?.set_boot_device(&bmc, &creds, device, persistent).await?)
}

/// How the host reaches a switch: its stored credentials and the key it trusts.
pub fn netconf_target(switch: &Switch) -> metalhost_netconf::Target {
    metalhost_netconf::Target {
        address: switch.address.clone(),
        port: switch.port,
        username: switch.username.clone(),
        password: switch.password.expose().to_owned(),
        expected_host_key: switch.host_key.clone(),
        connect_timeout: std::time::Duration::from_secs(10),
        read_timeout: std::time::Duration::from_secs(30),
    }
}

/// Puts `port` in access mode on `vlan` (creating the VLAN if needed) and reads it back. Returns the
/// switch's SSH host key fingerprint so a first-use key can be remembered.
pub async fn move_port(host: &PluginHost, switch: &Switch, port: &str, vlan: Vlan, vlan_name: &str) -> Result<String, DriverFailure> {
    let driver = host.switch(&switch.driver)?;
    let session = driver.session(netconf_target(switch));
    let wanted = ph::Vlan { id: vlan.id(), name: vlan_name.to_owned() };
    let outcome = async {
        session.ensure_vlan(&wanted).await?;
        session.set_access_vlan(port, &wanted).await?;
        let now = session.get_port_vlan(port).await?;
        if now != Some(vlan.id()) {
            return Err(DriverFailure::new(&switch.driver, "get-port-vlan", format!("port {port} reads back VLAN {now:?} after the move to {vlan}")));
        }
        Ok(())
    }
    .await;
    let fingerprint = session.host_key_fingerprint().unwrap_or_default();
    session.close().await;
    outcome.map(|()| fingerprint)
}

/// Read-only: reachability, NETCONF capabilities, model and syntax.
pub async fn describe_switch(host: &PluginHost, switch: &Switch) -> Result<(ph::SwitchDescription, String), DriverFailure> {
    let driver = host.switch(&switch.driver)?;
    let session = driver.session(netconf_target(switch));
    let outcome = session.describe().await;
    let fingerprint = session.host_key_fingerprint().unwrap_or_default();
    session.close().await;
    Ok((outcome?, fingerprint))
}

pub async fn netboot_put(host: &PluginHost, plugin: &str, entry: &BootEntry) -> Result<(), DriverFailure> {
    Ok(host.netboot(plugin)?.put_host(entry).await?)
}

pub async fn netboot_remove(host: &PluginHost, plugin: &str, mac: &str) -> Result<(), DriverFailure> {
    Ok(host.netboot(plugin)?.remove_host(mac).await?)
}
