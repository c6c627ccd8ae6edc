//! Typed drivers over loaded plugins: every call instantiates a fresh sandbox, configures it, calls
//! one export, and runs in a tracing span naming plugin, interface and operation (`call.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::bindings::{netboot, switch};
use crate::call::{Call, with_instance};
use crate::classify::trap;
use crate::contract::Contract;
use crate::error::{CallError, CallFailure, CallResult, DriverError};
use crate::netconf_session::SharedSession;
use crate::power::{self, Power, PowerCall, PowerPre};
use crate::runtime::{Loaded, PluginHost, Pre};
use crate::spec::PluginKind;
use crate::state::PluginState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmc {
    pub host: String,
    pub port: u16,
}

/// BMC login; the password goes to the plugin call only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

/// What `set_power_state` does; the contract (`wit/drivers-0.2.0.wit`) says it in full. `Reboot`
/// powers an off node on. The graceful ones need a 0.2.0 plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    Off,
    Reboot,
    /// Ask the OS to shut down.
    GracefulOff,
    /// Ask the OS to restart (an off node is powered on).
    GracefulReboot,
}

/// The firmware mode a node boots in (0.2.0 plugins; 0.1.0 ones leave the BMC's setting alone).
/// `Legacy` is BIOS, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Uefi,
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    Pxe,
    Disk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    pub id: u16,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchDescription {
    pub model: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub mac: String,
    pub ip: String,
    pub hostname: String,
    pub kernel_url: String,
    pub initrd_url: String,
    pub kernel_args: String,
}

/// A loaded power plugin, spoken to in the newest contract's terms whatever it was built for
/// (`power.rs`; a 0.1.0 plugin through `v0_1.rs`).
pub struct PowerDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
    pre: PowerPre,
}

impl PluginHost {
    pub fn power(&self, name: &str) -> CallResult<PowerDriver<'_>> {
        let plugin = self.get(name, PluginKind::Power, "load")?;
        let Pre::Power(pre) = plugin.pre.clone() else { return Err(trap(&plugin, "load", "wrong plugin kind".into())) };
        Ok(PowerDriver { host: self, plugin, pre })
    }

    pub fn switch(&self, name: &str) -> CallResult<SwitchDriver<'_>> {
        let plugin = self.get(name, PluginKind::Switch, "load")?;
        let Pre::Switch(pre) = plugin.pre.clone() else { return Err(trap(&plugin, "load", "wrong plugin kind".into())) };
        Ok(SwitchDriver { host: self, plugin, pre })
    }

    pub fn netboot(&self, name: &str) -> CallResult<NetbootDriver<'_>> {
        let plugin = self.get(name, PluginKind::Netboot, "load")?;
        let Pre::Netboot(pre) = plugin.pre.clone() else { return Err(trap(&plugin, "load", "wrong plugin kind".into())) };
        Ok(NetbootDriver { host: self, plugin, pre })
    }
}

impl PowerDriver<'_> {
    /// The contract the plugin was built for.
    pub fn contract(&self) -> Contract {
        self.plugin.contract
    }

    pub async fn get_power_state(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<PowerState> {
        Ok(self.pre.get_power_state(&self.call("get-power-state", bmc, creds, self.address(bmc, &self.plugin.grants).await)).await?.into())
    }

    pub async fn set_power_state(&self, bmc: &Bmc, creds: &Credentials, action: PowerAction) -> CallResult<()> {
        self.pre.set_power_state(&self.call("set-power-state", bmc, creds, self.address(bmc, &self.plugin.grants).await), action.into()).await
    }

    /// The boot device, leaving the firmware boot mode as the BMC has it.
    pub async fn set_boot_device(&self, bmc: &Bmc, creds: &Credentials, device: BootDevice, persistent: bool) -> CallResult<()> {
        self.set_boot_device_in(bmc, creds, device, persistent, None).await
    }

    /// The boot device and, for 0.2.0 plugins, the firmware boot mode (a 0.1.0 plugin cannot set
    /// one: asking it to is `unsupported`).
    pub async fn set_boot_device_in(
        &self,
        bmc: &Bmc,
        creds: &Credentials,
        device: BootDevice,
        persistent: bool,
        mode: Option<BootMode>,
    ) -> CallResult<()> {
        self.pre
            .set_boot_device(
                &self.call("set-boot-device", bmc, creds, self.address(bmc, &self.plugin.grants).await),
                device.into(),
                persistent,
                mode.map(Into::into),
            )
            .await
    }

    /// What the plugin says its console is (`describe-console`), without running it. A 0.1.0
    /// plugin cannot describe one: `unsupported`.
    pub async fn describe_console(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<crate::ConsoleCommand> {
        let power::ConsoleAccess::Command(cmd) =
            self.pre.describe_console(&self.call("describe-console", bmc, creds, self.address(bmc, &self.plugin.console_grants).await)).await?;
        Ok(crate::ConsoleCommand { program: cmd.program, args: cmd.args, env: cmd.env, quit: cmd.quit })
    }

    /// Opens the node's serial console: asks the plugin how (`describe-console`), then runs that
    /// program on a pty if the operator granted it to this plugin for consoles.
    pub async fn open_console(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<crate::ConsoleProcess> {
        // Said before the BMC is asked: no program of this plugin's could run anyway. (A 0.1.0
        // plugin is told it has no console at all, by its adapter.)
        if self.plugin.console_grants.is_empty() && self.plugin.contract == Contract::V0_2 {
            let message = format!(
                "plugin {:?} has no console grant: its [[plugin]] entry needs console = [\"<program>\"] (\"ipmitool\" for ipmi-lan)",
                self.plugin.name
            );
            return Err(CallError {
                plugin: self.plugin.name.to_string(),
                operation: "console",
                failure: CallFailure::Driver(DriverError::InvalidConfig(message)),
            });
        }
        let command = self.describe_console(bmc, creds).await?;
        let refuse =
            |failure: DriverError| CallError { plugin: self.plugin.name.to_string(), operation: "console", failure: CallFailure::Driver(failure) };
        let reach = crate::netscope::resolve(&bmc.host, bmc.port)
            .await
            .map_err(|e| refuse(DriverError::Unreachable(format!("the node's BMC {} does not resolve: {e}", bmc.host))))?;
        // The description is checked against the call's BMC before anything runs; the network
        // scope holds whatever the check misses.
        let target = crate::console_args::Target { host: &bmc.host, port: bmc.port, addrs: &reach };
        let secrets = [creds.password.as_str()];
        if let Err(why) = crate::console_args::check(&command.program, &command.args, &target, &secrets) {
            let args = crate::console_args::redacted(&command.args, &secrets);
            tracing::warn!(plugin = &*self.plugin.name, program = %command.program, args = ?args, "console refused: {why}");
            return Err(refuse(DriverError::InvalidConfig(format!("plugin {:?} described a console the host refuses: {why}", self.plugin.name))));
        }
        crate::console::spawn(&self.plugin.name, &self.plugin.console_grants, &command, self.host.confiner(), &reach, &secrets).map_err(|e| {
            refuse(match e {
                crate::ConsoleError::NotPermitted(m) => DriverError::InvalidConfig(m),
                crate::ConsoleError::SpawnFailed(m) => DriverError::CommandFailed(m),
            })
        })
    }

    /// The BMC address the plugin is told. A plugin whose call may run programs (`programs`: its
    /// exec grants, or its console grants when it describes a console) gets a BMC named by a host
    /// name as the address the daemon resolved it to: those programs may reach that address only
    /// and cannot ask DNS themselves (`netscope/`). Otherwise it is told the BMC as configured
    /// (a 0.2.0 plugin's `http` verifies TLS against the name).
    async fn address(&self, bmc: &Bmc, programs: &BTreeMap<String, PathBuf>) -> power::BmcAddress {
        let named = bmc.host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_err();
        if named
            && !programs.is_empty()
            && let Ok(addrs) = crate::netscope::resolve(&bmc.host, bmc.port).await
            && let Some(first) = addrs.first()
        {
            return power::BmcAddress { host: first.ip().to_string(), port: bmc.port };
        }
        power::BmcAddress { host: bmc.host.clone(), port: bmc.port }
    }

    fn call<'b>(&'b self, operation: &'static str, bmc: &'b Bmc, creds: &Credentials, told: power::BmcAddress) -> PowerCall<'b> {
        PowerCall {
            call: Call { host: self.host, plugin: &self.plugin, operation, netconf: None, bmc: Some(bmc) },
            bmc: told,
            creds: power::Credentials { username: creds.username.clone(), password: creds.password.clone() },
        }
    }
}

/// Why the host would refuse `command` as the console of a call about `bmc` before running it
/// (`console_args.rs`), if it would: what `metalhost plugin test` tells a vendor.
pub async fn console_refusal(bmc: &Bmc, creds: &Credentials, command: &crate::ConsoleCommand) -> Option<String> {
    let reach = match crate::netscope::resolve(&bmc.host, bmc.port).await {
        Ok(reach) => reach,
        Err(e) => return Some(format!("the BMC {} does not resolve: {e}", bmc.host)),
    };
    let target = crate::console_args::Target { host: &bmc.host, port: bmc.port, addrs: &reach };
    crate::console_args::check(&command.program, &command.args, &target, &[creds.password.as_str()]).err()
}

/// A loaded switch plugin.
pub struct SwitchDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
    pre: switch::SwitchManagerPre<PluginState>,
}

impl<'a> SwitchDriver<'a> {
    /// Calls about one switch. They share one NETCONF session, opened on first use.
    pub fn session(&self, target: metalhost_netconf::Target) -> SwitchSession<'a> {
        SwitchSession { host: self.host, plugin: self.plugin.clone(), pre: self.pre.clone(), netconf: SharedSession::new(target) }
    }
}

pub struct SwitchSession<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
    pre: switch::SwitchManagerPre<PluginState>,
    netconf: SharedSession,
}

impl SwitchSession<'_> {
    pub async fn describe(&self) -> CallResult<SwitchDescription> {
        let d = with_instance!(&self.call("describe"), &self.pre, |store, inst| inst.metalhost_drivers_switch().call_describe(store).await)?;
        Ok(SwitchDescription { model: d.model, capabilities: d.capabilities })
    }

    pub async fn ensure_vlan(&self, vlan: &Vlan) -> CallResult<()> {
        let v = switch::exports::metalhost::drivers::switch::Vlan { id: vlan.id, name: vlan.name.clone() };
        with_instance!(&self.call("ensure-vlan"), &self.pre, |store, inst| inst.metalhost_drivers_switch().call_ensure_vlan(store, &v).await)
    }

    pub async fn set_access_vlan(&self, port: &str, vlan: &Vlan) -> CallResult<()> {
        let v = switch::exports::metalhost::drivers::switch::Vlan { id: vlan.id, name: vlan.name.clone() };
        with_instance!(&self.call("set-access-vlan"), &self.pre, |store, inst| inst
            .metalhost_drivers_switch()
            .call_set_access_vlan(store, port, &v)
            .await)
    }

    pub async fn clear_port(&self, port: &str) -> CallResult<()> {
        with_instance!(&self.call("clear-port"), &self.pre, |store, inst| inst.metalhost_drivers_switch().call_clear_port(store, port).await)
    }

    pub async fn get_port_vlan(&self, port: &str) -> CallResult<Option<u16>> {
        with_instance!(&self.call("get-port-vlan"), &self.pre, |store, inst| inst.metalhost_drivers_switch().call_get_port_vlan(store, port).await)
    }

    /// The switch's SSH host key fingerprint, once connected (to remember on first use).
    pub fn host_key_fingerprint(&self) -> Option<String> {
        self.netconf.host_key_fingerprint()
    }

    pub async fn close(self) {
        self.netconf.close().await;
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call { host: self.host, plugin: &self.plugin, operation, netconf: Some(self.netconf.clone()), bmc: None }
    }
}

/// A loaded netboot plugin.
pub struct NetbootDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
    pre: netboot::NetbootBackendPre<PluginState>,
}

impl NetbootDriver<'_> {
    pub async fn put_host(&self, entry: &BootEntry) -> CallResult<()> {
        let e = netboot::exports::metalhost::drivers::netboot::BootEntry {
            mac: entry.mac.clone(),
            ip: entry.ip.clone(),
            hostname: entry.hostname.clone(),
            kernel_url: entry.kernel_url.clone(),
            initrd_url: entry.initrd_url.clone(),
            kernel_args: entry.kernel_args.clone(),
        };
        with_instance!(&self.call("put-host"), &self.pre, |store, inst| inst.metalhost_drivers_netboot().call_put_host(store, &e).await)
    }

    pub async fn remove_host(&self, mac: &str) -> CallResult<()> {
        with_instance!(&self.call("remove-host"), &self.pre, |store, inst| inst.metalhost_drivers_netboot().call_remove_host(store, mac).await)
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call { host: self.host, plugin: &self.plugin, operation, netconf: None, bmc: None }
    }
}

#[allow(dead_code)]
fn _assert_send(e: CallError) -> impl Send {
    e
}
