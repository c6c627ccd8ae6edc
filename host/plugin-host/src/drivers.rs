//! Typed drivers over loaded plugins: every call instantiates a fresh sandbox, configures it, calls
//! one export, and runs in a tracing span naming plugin, interface and operation.

use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::bindings::power2::metalhost::drivers::types as types2;
use crate::bindings::{netboot, switch, types};
use crate::classify::{classify, driver, trap};
use crate::error::{CallError, CallFailure, CallResult, DriverError};
use crate::netconf_session::SharedSession;
use crate::runtime::{Loaded, PluginHost, Pre};
use crate::spec::PluginKind;

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

fn wit_bmc(b: &Bmc, c: &Credentials) -> (types::BmcAddress, types::Credentials) {
    (types::BmcAddress { host: b.host.clone(), port: b.port }, types::Credentials { username: c.username.clone(), password: c.password.clone() })
}

fn wit_bmc2(b: &Bmc, c: &Credentials) -> (types2::BmcAddress, types2::Credentials) {
    (types2::BmcAddress { host: b.host.clone(), port: b.port }, types2::Credentials { username: c.username.clone(), password: c.password.clone() })
}

fn power_state2(s: types2::PowerState) -> PowerState {
    match s {
        types2::PowerState::On => PowerState::On,
        types2::PowerState::Off => PowerState::Off,
    }
}

/// How long past its deadline a call stuck in a host import is given before it is dropped.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// Instantiates the plugin's world in `$store`, calls `configure`, binds the instance to `$inst`.
macro_rules! with_instance {
    ($host:expr, $plugin:expr, $op:expr, $netconf:expr, $bmc:expr, $variant:ident, |$store:ident, $inst:ident| $body:expr) => {{
        let plugin: &Loaded = $plugin;
        let span = tracing::info_span!(
            "plugin_call",
            plugin = &*plugin.name,
            interface = plugin.spec.kind.interface(),
            operation = $op,
            elapsed_us = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            // The epoch deadline stops guest code; this also bounds time spent inside host imports
            // (a NETCONF round trip, the reload hook), a little later so the epoch fires first.
            let budget = Duration::from_secs(plugin.spec.call_timeout_s) + DEADLINE_GRACE;
            let call = async {
                let mut store = $host.store(plugin, $netconf, $bmc).map_err(|e| trap(plugin, $op, e))?;
                let Pre::$variant(pre) = &plugin.pre else { return Err(trap(plugin, $op, "wrong plugin kind".into())) };
                let $inst = pre.instantiate_async(&mut store).await.map_err(|e| classify(plugin, $op, e))?;
                $inst
                    .metalhost_drivers_plugin()
                    .call_configure(&mut store, &plugin.config)
                    .await
                    .map_err(|e| classify(plugin, $op, e))?
                    .map_err(|e| driver(plugin, "configure", e))?;
                let $store = &mut store;
                $body
            };
            let outcome = match tokio::time::timeout(budget, call).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    Err(CallError { plugin: plugin.name.to_string(), operation: $op, failure: CallFailure::Deadline(plugin.spec.call_timeout_s) })
                }
            };
            let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::Span::current().record("elapsed_us", elapsed_us);
            match &outcome {
                Ok(_) => tracing::debug!(elapsed_us, "plugin call done"),
                Err(e) => tracing::debug!(elapsed_us, "plugin call failed: {e}"),
            }
            crate::observe::call(&plugin.name, $op, started.elapsed(), outcome.as_ref().err());
            outcome
        }
        .instrument(span)
        .await
    }};
}

/// A loaded power plugin.
pub struct PowerDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
}

impl PluginHost {
    pub fn power(&self, name: &str) -> CallResult<PowerDriver<'_>> {
        Ok(PowerDriver { host: self, plugin: self.get(name, PluginKind::Power, "load")? })
    }

    pub fn switch(&self, name: &str) -> CallResult<SwitchDriver<'_>> {
        Ok(SwitchDriver { host: self, plugin: self.get(name, PluginKind::Switch, "load")? })
    }

    pub fn netboot(&self, name: &str) -> CallResult<NetbootDriver<'_>> {
        Ok(NetbootDriver { host: self, plugin: self.get(name, PluginKind::Netboot, "load")? })
    }
}

impl PowerDriver<'_> {
    /// The contract the plugin was built for (`metalhost:drivers@0.1.0` or `@0.2.0`).
    pub fn contract(&self) -> &'static str {
        self.plugin.contract
    }

    pub async fn get_power_state(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<PowerState> {
        let op = "get-power-state";
        if let Pre::Power2(_) = &self.plugin.pre {
            let (b, c) = wit_bmc2(bmc, creds);
            return with_instance!(self.host, &self.plugin, op, None, Some(bmc), Power2, |store, inst| {
                match inst.metalhost_drivers_power().call_get_power_state(store, &b, &c).await.map_err(|e| classify(&self.plugin, op, e))? {
                    Ok(state) => Ok(power_state2(state)),
                    Err(e) => Err(driver(&self.plugin, op, e)),
                }
            });
        }
        let (b, c) = wit_bmc(bmc, creds);
        with_instance!(self.host, &self.plugin, op, None, None, Power, |store, inst| {
            match inst.metalhost_drivers_power().call_get_power_state(store, &b, &c).await.map_err(|e| classify(&self.plugin, op, e))? {
                Ok(types::PowerState::On) => Ok(PowerState::On),
                Ok(types::PowerState::Off) => Ok(PowerState::Off),
                Err(e) => Err(driver(&self.plugin, op, e)),
            }
        })
    }

    pub async fn set_power_state(&self, bmc: &Bmc, creds: &Credentials, action: PowerAction) -> CallResult<()> {
        let op = "set-power-state";
        if let Pre::Power2(_) = &self.plugin.pre {
            let (b, c) = wit_bmc2(bmc, creds);
            let action = match action {
                PowerAction::On => types2::PowerAction::On,
                PowerAction::Off => types2::PowerAction::Off,
                PowerAction::Reboot => types2::PowerAction::Reboot,
                PowerAction::GracefulOff => types2::PowerAction::GracefulOff,
                PowerAction::GracefulReboot => types2::PowerAction::GracefulReboot,
            };
            return with_instance!(self.host, &self.plugin, op, None, Some(bmc), Power2, |store, inst| {
                inst.metalhost_drivers_power()
                    .call_set_power_state(store, &b, &c, action)
                    .await
                    .map_err(|e| classify(&self.plugin, op, e))?
                    .map_err(|e| driver(&self.plugin, op, e))
            });
        }
        let (b, c) = wit_bmc(bmc, creds);
        let action = match action {
            PowerAction::On => types::PowerAction::On,
            PowerAction::Off => types::PowerAction::Off,
            PowerAction::Reboot => types::PowerAction::Reboot,
            PowerAction::GracefulOff | PowerAction::GracefulReboot => {
                let message =
                    format!("graceful power actions need a {} plugin; this one was built for {}", crate::CONTRACT_0_2, self.plugin.contract);
                return Err(driver(&self.plugin, op, DriverError::Unsupported(message)));
            }
        };
        with_instance!(self.host, &self.plugin, op, None, None, Power, |store, inst| {
            inst.metalhost_drivers_power()
                .call_set_power_state(store, &b, &c, action)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
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
        let op = "set-boot-device";
        if let Pre::Power2(_) = &self.plugin.pre {
            let (b, c) = wit_bmc2(bmc, creds);
            let device = match device {
                BootDevice::Pxe => types2::BootDevice::Pxe,
                BootDevice::Disk => types2::BootDevice::Disk,
            };
            let mode = mode.map(|m| match m {
                BootMode::Uefi => types2::BootMode::Uefi,
                BootMode::Legacy => types2::BootMode::Legacy,
            });
            return with_instance!(self.host, &self.plugin, op, None, Some(bmc), Power2, |store, inst| {
                inst.metalhost_drivers_power()
                    .call_set_boot_device(store, &b, &c, device, persistent, mode)
                    .await
                    .map_err(|e| classify(&self.plugin, op, e))?
                    .map_err(|e| driver(&self.plugin, op, e))
            });
        }
        if mode.is_some() {
            let message = format!("a boot mode needs a {} plugin; this one was built for {}", crate::CONTRACT_0_2, self.plugin.contract);
            return Err(driver(&self.plugin, op, DriverError::Unsupported(message)));
        }
        let (b, c) = wit_bmc(bmc, creds);
        let device = match device {
            BootDevice::Pxe => types::BootDevice::Pxe,
            BootDevice::Disk => types::BootDevice::Disk,
        };
        with_instance!(self.host, &self.plugin, op, None, None, Power, |store, inst| {
            inst.metalhost_drivers_power()
                .call_set_boot_device(store, &b, &c, device, persistent)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }
}

impl PowerDriver<'_> {
    /// What the plugin says its console is (`describe-console`), without running it. A 0.1.0
    /// plugin cannot describe one: `unsupported`.
    pub async fn describe_console(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<crate::ConsoleCommand> {
        let op = "describe-console";
        if !matches!(self.plugin.pre, Pre::Power2(_)) {
            let message = format!("a serial console needs a {} plugin; this one was built for {}", crate::CONTRACT_0_2, self.plugin.contract);
            return Err(driver(&self.plugin, op, DriverError::Unsupported(message)));
        }
        let (b, c) = wit_bmc2(bmc, creds);
        let access = with_instance!(self.host, &self.plugin, op, None, Some(bmc), Power2, |store, inst| {
            inst.metalhost_drivers_power()
                .call_describe_console(store, &b, &c)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })?;
        let types2::ConsoleAccess::Command(cmd) = access;
        Ok(crate::ConsoleCommand { program: cmd.program, args: cmd.args, env: cmd.env, quit: cmd.quit })
    }

    /// Opens the node's serial console: asks the plugin how (`describe-console`), then runs that
    /// program on a pty if the operator granted it to this plugin for consoles.
    pub async fn open_console(&self, bmc: &Bmc, creds: &Credentials) -> CallResult<crate::ConsoleProcess> {
        if self.plugin.console_grants.is_empty() && matches!(self.plugin.pre, Pre::Power2(_)) {
            // Said before the BMC is asked: no program of this plugin's could run anyway.
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
        crate::console::spawn(&self.plugin.name, &self.plugin.console_grants, &command, self.host.confiner()).map_err(|e| {
            let failure = match e {
                crate::ConsoleError::NotPermitted(m) => DriverError::InvalidConfig(m),
                crate::ConsoleError::SpawnFailed(m) => DriverError::CommandFailed(m),
            };
            CallError { plugin: self.plugin.name.to_string(), operation: "console", failure: CallFailure::Driver(failure) }
        })
    }
}

/// A loaded switch plugin.
pub struct SwitchDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
}

impl<'a> SwitchDriver<'a> {
    /// Calls about one switch. They share one NETCONF session, opened on first use.
    pub fn session(&self, target: metalhost_netconf::Target) -> SwitchSession<'a> {
        SwitchSession { host: self.host, plugin: self.plugin.clone(), netconf: SharedSession::new(target) }
    }
}

pub struct SwitchSession<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
    netconf: SharedSession,
}

impl SwitchSession<'_> {
    pub async fn describe(&self) -> CallResult<SwitchDescription> {
        let op = "describe";
        with_instance!(self.host, &self.plugin, op, Some(self.netconf.clone()), None, Switch, |store, inst| {
            inst.metalhost_drivers_switch()
                .call_describe(store)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map(|d| SwitchDescription { model: d.model, capabilities: d.capabilities })
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    pub async fn ensure_vlan(&self, vlan: &Vlan) -> CallResult<()> {
        let op = "ensure-vlan";
        let v = switch::exports::metalhost::drivers::switch::Vlan { id: vlan.id, name: vlan.name.clone() };
        with_instance!(self.host, &self.plugin, op, Some(self.netconf.clone()), None, Switch, |store, inst| {
            inst.metalhost_drivers_switch()
                .call_ensure_vlan(store, &v)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    pub async fn set_access_vlan(&self, port: &str, vlan: &Vlan) -> CallResult<()> {
        let op = "set-access-vlan";
        let v = switch::exports::metalhost::drivers::switch::Vlan { id: vlan.id, name: vlan.name.clone() };
        with_instance!(self.host, &self.plugin, op, Some(self.netconf.clone()), None, Switch, |store, inst| {
            inst.metalhost_drivers_switch()
                .call_set_access_vlan(store, port, &v)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    pub async fn clear_port(&self, port: &str) -> CallResult<()> {
        let op = "clear-port";
        with_instance!(self.host, &self.plugin, op, Some(self.netconf.clone()), None, Switch, |store, inst| {
            inst.metalhost_drivers_switch()
                .call_clear_port(store, port)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    pub async fn get_port_vlan(&self, port: &str) -> CallResult<Option<u16>> {
        let op = "get-port-vlan";
        with_instance!(self.host, &self.plugin, op, Some(self.netconf.clone()), None, Switch, |store, inst| {
            inst.metalhost_drivers_switch()
                .call_get_port_vlan(store, port)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    /// The switch's SSH host key fingerprint, once connected (to remember on first use).
    pub fn host_key_fingerprint(&self) -> Option<String> {
        self.netconf.host_key_fingerprint()
    }

    pub async fn close(self) {
        self.netconf.close().await;
    }
}

/// A loaded netboot plugin.
pub struct NetbootDriver<'a> {
    host: &'a PluginHost,
    plugin: Loaded,
}

impl NetbootDriver<'_> {
    pub async fn put_host(&self, entry: &BootEntry) -> CallResult<()> {
        let op = "put-host";
        let e = netboot::exports::metalhost::drivers::netboot::BootEntry {
            mac: entry.mac.clone(),
            ip: entry.ip.clone(),
            hostname: entry.hostname.clone(),
            kernel_url: entry.kernel_url.clone(),
            initrd_url: entry.initrd_url.clone(),
            kernel_args: entry.kernel_args.clone(),
        };
        with_instance!(self.host, &self.plugin, op, None, None, Netboot, |store, inst| {
            inst.metalhost_drivers_netboot()
                .call_put_host(store, &e)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }

    pub async fn remove_host(&self, mac: &str) -> CallResult<()> {
        let op = "remove-host";
        with_instance!(self.host, &self.plugin, op, None, None, Netboot, |store, inst| {
            inst.metalhost_drivers_netboot()
                .call_remove_host(store, mac)
                .await
                .map_err(|e| classify(&self.plugin, op, e))?
                .map_err(|e| driver(&self.plugin, op, e))
        })
    }
}

#[allow(dead_code)]
fn _assert_send(e: CallError) -> impl Send {
    e
}
