//! The adapter for `metalhost:drivers@0.1.0` (`wit/drivers.wit`, frozen): its power world spoken
//! to in the newest contract's terms (`power.rs`), and its shared types and `log` import mapped
//! onto the runtime's. Everything the runtime knows of 0.1.0's power world is in this file.
//!
//! A call 0.1.0 has no words for (a graceful action, a boot mode, a console) is refused here as
//! `unsupported`, before the plugin runs.

use crate::bindings::power::PowerManagerPre;
use crate::bindings::power::metalhost::drivers::types;
use crate::bindings::power2::metalhost::drivers::log as log2;
use crate::bindings::{power::metalhost::drivers::log, power2};
use crate::call::with_instance;
use crate::contract::Contract;
use crate::error::{CallError, CallResult, DriverError};
use crate::power::{BootDevice, BootMode, ConsoleAccess, Power, PowerAction, PowerCall, PowerState};
use crate::spec::PluginKind;
use crate::state::PluginState;

impl Power for PowerManagerPre<PluginState> {
    async fn get_power_state(&self, call: &PowerCall<'_>) -> CallResult<PowerState> {
        let (bmc, creds) = login(call);
        let state = with_instance!(&call.call, self, |store, inst| inst.metalhost_drivers_power().call_get_power_state(store, &bmc, &creds).await)?;
        Ok(match state {
            types::PowerState::On => PowerState::On,
            types::PowerState::Off => PowerState::Off,
        })
    }

    async fn set_power_state(&self, call: &PowerCall<'_>, action: PowerAction) -> CallResult<()> {
        let action = match action {
            PowerAction::On => types::PowerAction::On,
            PowerAction::Off => types::PowerAction::Off,
            PowerAction::Reboot => types::PowerAction::Reboot,
            PowerAction::GracefulOff | PowerAction::GracefulReboot => return Err(refused(call, "graceful power actions need")),
        };
        let (bmc, creds) = login(call);
        with_instance!(&call.call, self, |store, inst| inst.metalhost_drivers_power().call_set_power_state(store, &bmc, &creds, action).await)
    }

    /// 0.1.0 leaves the firmware boot mode as the BMC has it: asking for one is refused.
    async fn set_boot_device(&self, call: &PowerCall<'_>, device: BootDevice, persistent: bool, mode: Option<BootMode>) -> CallResult<()> {
        if mode.is_some() {
            return Err(refused(call, "a boot mode needs"));
        }
        let device = match device {
            BootDevice::Pxe => types::BootDevice::Pxe,
            BootDevice::Disk => types::BootDevice::Disk,
        };
        let (bmc, creds) = login(call);
        with_instance!(&call.call, self, |store, inst| {
            inst.metalhost_drivers_power().call_set_boot_device(store, &bmc, &creds, device, persistent).await
        })
    }

    async fn describe_console(&self, call: &PowerCall<'_>) -> CallResult<ConsoleAccess> {
        Err(refused(call, "a serial console needs"))
    }
}

fn login(call: &PowerCall<'_>) -> (types::BmcAddress, types::Credentials) {
    (
        types::BmcAddress { host: call.bmc.host.clone(), port: call.bmc.port },
        types::Credentials { username: call.creds.username.clone(), password: call.creds.password.clone() },
    )
}

fn refused(call: &PowerCall<'_>, what: &str) -> CallError {
    call.call.unsupported(format!("{what} a {} plugin; this one was built for {}", Contract::V0_2, Contract::V0_1))
}

/// 0.1.0's `driver-error`, shared by its three worlds.
impl From<types::DriverError> for DriverError {
    fn from(e: types::DriverError) -> DriverError {
        use power2::metalhost::drivers::types::DriverError as E;
        DriverError::from(match e {
            types::DriverError::Unreachable(m) => E::Unreachable(m),
            types::DriverError::AuthFailed(m) => E::AuthFailed(m),
            types::DriverError::CommandFailed(m) => E::CommandFailed(m),
            types::DriverError::ParseError(m) => E::ParseError(m),
            types::DriverError::NotFound(m) => E::NotFound(m),
            types::DriverError::Unsupported(m) => E::Unsupported(m),
            types::DriverError::InvalidConfig(m) => E::InvalidConfig(m),
        })
    }
}

impl From<types::PluginKind> for PluginKind {
    fn from(kind: types::PluginKind) -> PluginKind {
        use power2::metalhost::drivers::types::PluginKind as K;
        PluginKind::from(match kind {
            types::PluginKind::Power => K::Power,
            types::PluginKind::Switch => K::Switch,
            types::PluginKind::Netboot => K::Netboot,
        })
    }
}

/// 0.1.0's `log` import: the same line, through 0.2.0's (`state.rs`).
impl log::Host for PluginState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => log2::Level::Trace,
            log::Level::Debug => log2::Level::Debug,
            log::Level::Info => log2::Level::Info,
            log::Level::Warn => log2::Level::Warn,
            log::Level::Error => log2::Level::Error,
        };
        log2::Host::log(self, level, message).await
    }
}
