//! The daemon's view of its drivers: one call per hardware action, in domain types (a node's `Bmc`,
//! a `SwitchAccess`, never a store row), each failure typed by kind and naming the plugin and the
//! operation. Wraps metalhost-plugin-host so workflows never see wasmtime. Every call runs in a
//! `driver` span carrying the node (and instance), so the runtime's `plugin_call` span and the
//! plugin's log lines sit under the node they acted for.

use tracing::Instrument;

use crate::domain::{Bmc, BootDevice, BootMode, FailureKind, MacAddr, NodeLabel, PowerAction, PowerState, SwitchAccess, Vlan};

// The runtime's request types are plain data (no wasmtime in them), so workflows use them as they are.
use metalhost_plugin_host as ph;
pub use metalhost_plugin_host::{BootEntry, PluginHost, PluginSpec, PluginStatus};

/// A driver call that failed: which plugin, which operation, what kind of failure, what it said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin:?} {operation}: {kind}: {message}")]
pub struct DriverFailure {
    pub plugin: String,
    pub operation: String,
    pub kind: FailureKind,
    /// The plugin's or the runtime's own words, without the kind.
    pub message: String,
}

impl DriverFailure {
    fn new(plugin: &str, operation: &str, kind: FailureKind, message: impl std::fmt::Display) -> Self {
        DriverFailure { plugin: plugin.to_owned(), operation: operation.to_owned(), kind, message: message.to_string() }
    }
}

impl From<ph::CallError> for DriverFailure {
    fn from(e: ph::CallError) -> Self {
        let (kind, message) = classify(&e.failure);
        DriverFailure { plugin: e.plugin, operation: e.operation.to_owned(), kind, message }
    }
}

/// The contract's error kind, and the runtime's own failures, as one [`FailureKind`].
///
/// Three transient cases hide inside `command-failed`, and contract 0.1.0 has no case for them, so
/// they are told by their words (matched case-insensitively; the switch, the BMC and the SDK put
/// these phrases in their error messages, and the plugins pass them through):
/// - the host's NETCONF session broke mid-call: the SDK reports "netconf session failed" (transport).
/// - the switch's candidate configuration is held by another session: Junos says "configuration
///   database is already open" / "configuration database locked" (an engineer in `configure
///   exclusive`, or a session that died holding it), "configuration database modified" (someone
///   else's uncommitted edits); NETCONF servers say `lock-denied` / `in-use` (RFC 6241). These are
///   the errors networking-generic-switch retries.
/// - the BMC answered "node busy" (IPMI completion code 0xC0) or says it is busy.
///
/// A plugin call that ran out of time counts as `deadline`, which is retried like `unreachable`.
pub fn classify(failure: &ph::CallFailure) -> (FailureKind, String) {
    match failure {
        ph::CallFailure::Driver(e) => {
            let kind = match e {
                ph::DriverError::Unreachable(_) => FailureKind::Unreachable,
                ph::DriverError::AuthFailed(_) => FailureKind::AuthFailed,
                ph::DriverError::CommandFailed(m) => command_failed_kind(m),
                ph::DriverError::ParseError(_) => FailureKind::ParseError,
                ph::DriverError::NotFound(_) => FailureKind::NotFound,
                ph::DriverError::Unsupported(_) => FailureKind::Unsupported,
                ph::DriverError::InvalidConfig(_) => FailureKind::InvalidConfig,
            };
            (kind, driver_message(e).to_owned())
        }
        ph::CallFailure::Deadline(_) => (FailureKind::Deadline, failure.to_string()),
        ph::CallFailure::Memory(_) | ph::CallFailure::Trap(_) => (FailureKind::PluginFault, failure.to_string()),
        ph::CallFailure::NotLoaded(m) => (FailureKind::NotLoaded, m.clone()),
    }
}

fn driver_message(e: &ph::DriverError) -> &str {
    match e {
        ph::DriverError::Unreachable(m)
        | ph::DriverError::AuthFailed(m)
        | ph::DriverError::CommandFailed(m)
        | ph::DriverError::ParseError(m)
        | ph::DriverError::NotFound(m)
        | ph::DriverError::Unsupported(m)
        | ph::DriverError::InvalidConfig(m) => m,
    }
}

/// `command-failed`, or one of the transient cases it hides (see [`classify`]).
pub fn command_failed_kind(message: &str) -> FailureKind {
    const TRANSPORT: &[&str] = &["netconf session failed"];
    const SWITCH_LOCKED: &[&str] = &[
        "configuration database is already open",
        "configuration database locked",
        "configuration database modified",
        "lock-denied",
        "lock denied",
        "in-use",
    ];
    const BMC_BUSY: &[&str] = &["node busy", "bmc busy", "bmc is busy", "device busy"];
    let lower = message.to_ascii_lowercase();
    if TRANSPORT.iter().any(|p| lower.contains(p)) {
        FailureKind::Transport
    } else if SWITCH_LOCKED.iter().any(|p| lower.contains(p)) {
        FailureKind::SwitchLocked
    } else if BMC_BUSY.iter().any(|p| lower.contains(p)) {
        FailureKind::BmcBusy
    } else {
        FailureKind::CommandFailed
    }
}

fn bmc_of(bmc: &Bmc) -> (ph::Bmc, ph::Credentials) {
    (
        ph::Bmc { host: bmc.address.clone(), port: bmc.port },
        ph::Credentials { username: bmc.username.clone(), password: bmc.password.expose().to_owned() },
    )
}

/// The span every driver call for a node runs in.
fn node_span(node: &NodeLabel) -> tracing::Span {
    tracing::info_span!("driver", node = node.id.0, node_name = %node.name, instance = node.instance.map(|i| i.0))
}

/// The domain's actions are the contract's (0.2.0), case for case.
fn power_action(action: PowerAction) -> ph::PowerAction {
    match action {
        PowerAction::On => ph::PowerAction::On,
        PowerAction::Off => ph::PowerAction::Off,
        PowerAction::Reboot => ph::PowerAction::Reboot,
        PowerAction::GracefulOff => ph::PowerAction::GracefulOff,
        PowerAction::GracefulReboot => ph::PowerAction::GracefulReboot,
    }
}

fn boot_device(device: BootDevice) -> ph::BootDevice {
    match device {
        BootDevice::Pxe => ph::BootDevice::Pxe,
        BootDevice::Disk => ph::BootDevice::Disk,
    }
}

pub async fn power_state(host: &PluginHost, bmc: &Bmc) -> Result<PowerState, DriverFailure> {
    let (address, creds) = bmc_of(bmc);
    async {
        let state = host.power(&bmc.driver)?.get_power_state(&address, &creds).await?;
        Ok(match state {
            ph::PowerState::On => PowerState::On,
            ph::PowerState::Off => PowerState::Off,
        })
    }
    .instrument(node_span(&bmc.node))
    .await
}

/// A graceful action needs a 0.2.0 plugin: a 0.1.0 one answers `unsupported`.
pub async fn set_power(host: &PluginHost, bmc: &Bmc, action: PowerAction) -> Result<(), DriverFailure> {
    let (address, creds) = bmc_of(bmc);
    async { Ok(host.power(&bmc.driver)?.set_power_state(&address, &creds, power_action(action)).await?) }.instrument(node_span(&bmc.node)).await
}

/// Sets the boot device. A UEFI node's 0.2.0 plugin is also told the boot mode (the EFI flag of the
/// BMC's boot override); a legacy (BIOS) node's override is left as before (no mode: the BMC keeps
/// its own), and a 0.1.0 plugin's contract has no such flag at all.
pub async fn set_boot_device(host: &PluginHost, bmc: &Bmc, device: BootDevice, persistent: bool) -> Result<(), DriverFailure> {
    let (address, creds) = bmc_of(bmc);
    async {
        let driver = host.power(&bmc.driver)?;
        let mode = (driver.contract() == ph::Contract::V0_2 && bmc.boot_mode == BootMode::Uefi).then_some(ph::BootMode::Uefi);
        Ok(driver.set_boot_device_in(&address, &creds, boot_device(device), persistent, mode).await?)
    }
    .instrument(node_span(&bmc.node))
    .await
}

/// Opens the node's serial console as its power plugin describes it (0.2.0 plugins with a
/// console grant).
pub async fn open_console(host: &PluginHost, bmc: &Bmc) -> Result<ph::ConsoleProcess, DriverFailure> {
    let (address, creds) = bmc_of(bmc);
    async { Ok(host.power(&bmc.driver)?.open_console(&address, &creds).await?) }.instrument(node_span(&bmc.node)).await
}

/// How the host reaches a switch: its stored credentials and the key it trusts.
pub fn netconf_target(switch: &SwitchAccess) -> metalhost_netconf::Target {
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

/// Puts the node's switch `port` in access mode on `vlan` (creating the VLAN if needed) and reads
/// it back. Returns the switch's SSH host key fingerprint so a first-use key can be remembered.
pub async fn move_port(
    host: &PluginHost,
    switch: &SwitchAccess,
    node: &NodeLabel,
    port: &str,
    vlan: Vlan,
    vlan_name: &str,
) -> Result<String, DriverFailure> {
    let span =
        tracing::info_span!("driver", node = node.id.0, node_name = %node.name, instance = node.instance.map(|i| i.0), switch = %switch.name, port);
    async {
        let driver = host.switch(&switch.driver)?;
        let session = driver.session(netconf_target(switch));
        let wanted = ph::Vlan { id: vlan.id(), name: vlan_name.to_owned() };
        let outcome = async {
            session.ensure_vlan(&wanted).await?;
            session.set_access_vlan(port, &wanted).await?;
            let now = session.get_port_vlan(port).await?;
            if now != Some(vlan.id()) {
                return Err(DriverFailure::new(
                    &switch.driver,
                    "get-port-vlan",
                    FailureKind::CommandFailed,
                    format!("port {port} reads back VLAN {now:?} after the move to {vlan}"),
                ));
            }
            Ok(())
        }
        .await;
        let fingerprint = session.host_key_fingerprint().unwrap_or_default();
        session.close().await;
        outcome.map(|()| fingerprint)
    }
    .instrument(span)
    .await
}

/// Read-only: reachability, NETCONF capabilities, model and syntax.
pub async fn describe_switch(host: &PluginHost, switch: &SwitchAccess) -> Result<(ph::SwitchDescription, String), DriverFailure> {
    let driver = host.switch(&switch.driver)?;
    let session = driver.session(netconf_target(switch));
    let outcome = session.describe().await;
    let fingerprint = session.host_key_fingerprint().unwrap_or_default();
    session.close().await;
    Ok((outcome?, fingerprint))
}

pub async fn netboot_put(host: &PluginHost, plugin: &str, node: &NodeLabel, entry: &BootEntry) -> Result<(), DriverFailure> {
    async { Ok(host.netboot(plugin)?.put_host(entry).await?) }.instrument(node_span(node)).await
}

pub async fn netboot_remove(host: &PluginHost, plugin: &str, node: &NodeLabel, mac: &MacAddr) -> Result<(), DriverFailure> {
    let mac = mac.to_string();
    async { Ok(host.netboot(plugin)?.remove_host(&mac).await?) }.instrument(node_span(node)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_and_locks_and_busy_bmcs_are_told_apart() {
        let driver = |e| classify(&ph::CallFailure::Driver(e)).0;
        assert_eq!(driver(ph::DriverError::AuthFailed("RAKP 2 HMAC is invalid".into())), FailureKind::AuthFailed);
        assert_eq!(driver(ph::DriverError::Unreachable("no response".into())), FailureKind::Unreachable);
        assert_eq!(
            driver(ph::DriverError::CommandFailed("cannot lock the candidate configuration: Configuration database is already open".into())),
            FailureKind::SwitchLocked
        );
        assert_eq!(driver(ph::DriverError::CommandFailed("error: configuration database locked by: jdoe".into())), FailureKind::SwitchLocked);
        assert_eq!(driver(ph::DriverError::CommandFailed("ipmitool exited with 1: Node Busy".into())), FailureKind::BmcBusy);
        assert_eq!(driver(ph::DriverError::CommandFailed("No vlan matches vlan tag 7".into())), FailureKind::CommandFailed);
        assert_eq!(driver(ph::DriverError::CommandFailed("netconf session failed: channel closed".into())), FailureKind::Transport);
        assert_eq!(classify(&ph::CallFailure::Deadline(5)).0, FailureKind::Deadline);
        assert_eq!(classify(&ph::CallFailure::Trap("unreachable".into())).0, FailureKind::PluginFault);
        let (kind, message) = classify(&ph::CallFailure::Driver(ph::DriverError::NotFound("the switch has no port ge-0/0/9".into())));
        assert_eq!((kind, message.as_str()), (FailureKind::NotFound, "the switch has no port ge-0/0/9"));
    }
}
