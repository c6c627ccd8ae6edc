//! The power interface in the newest contract's terms (0.2.0, whose types are the runtime's own):
//! what `PowerDriver` asks of every power plugin. A 0.2.0 plugin is called as it is (here); a 0.1.0
//! one through its adapter (`v0_1.rs`), which converts each call into 0.1.0's words and delegates.

use crate::bindings::power2::{self, metalhost::drivers::types};
use crate::call::{Call, with_instance};
use crate::error::CallResult;
use crate::spec::PluginKind;
use crate::state::PluginState;

pub(crate) use types::{BmcAddress, BootDevice, BootMode, ConsoleAccess, Credentials, PowerAction, PowerState};

/// One power call: where it runs, and the BMC and login it is about, in the contract's words.
pub(crate) struct PowerCall<'a> {
    pub call: Call<'a>,
    pub bmc: BmcAddress,
    pub creds: Credentials,
}

/// The `power` interface of `wit/drivers-0.2.0.wit`, as the host calls it.
pub(crate) trait Power {
    async fn get_power_state(&self, call: &PowerCall<'_>) -> CallResult<PowerState>;

    async fn set_power_state(&self, call: &PowerCall<'_>, action: PowerAction) -> CallResult<()>;

    async fn set_boot_device(&self, call: &PowerCall<'_>, device: BootDevice, persistent: bool, mode: Option<BootMode>) -> CallResult<()>;

    async fn describe_console(&self, call: &PowerCall<'_>) -> CallResult<ConsoleAccess>;
}

/// A loaded power plugin, ready to instantiate: which contract it speaks decides who translates.
#[derive(Clone)]
pub(crate) enum PowerPre {
    V0_2(power2::PowerManagerPre<PluginState>),
    /// Called through the adapter in `v0_1.rs`.
    V0_1(crate::bindings::power::PowerManagerPre<PluginState>),
}

impl Power for PowerPre {
    async fn get_power_state(&self, call: &PowerCall<'_>) -> CallResult<PowerState> {
        match self {
            PowerPre::V0_2(pre) => pre.get_power_state(call).await,
            PowerPre::V0_1(pre) => pre.get_power_state(call).await,
        }
    }

    async fn set_power_state(&self, call: &PowerCall<'_>, action: PowerAction) -> CallResult<()> {
        match self {
            PowerPre::V0_2(pre) => pre.set_power_state(call, action).await,
            PowerPre::V0_1(pre) => pre.set_power_state(call, action).await,
        }
    }

    async fn set_boot_device(&self, call: &PowerCall<'_>, device: BootDevice, persistent: bool, mode: Option<BootMode>) -> CallResult<()> {
        match self {
            PowerPre::V0_2(pre) => pre.set_boot_device(call, device, persistent, mode).await,
            PowerPre::V0_1(pre) => pre.set_boot_device(call, device, persistent, mode).await,
        }
    }

    async fn describe_console(&self, call: &PowerCall<'_>) -> CallResult<ConsoleAccess> {
        match self {
            PowerPre::V0_2(pre) => pre.describe_console(call).await,
            PowerPre::V0_1(pre) => pre.describe_console(call).await,
        }
    }
}

/// A 0.2.0 plugin: the call goes to its export as it is.
impl Power for power2::PowerManagerPre<PluginState> {
    async fn get_power_state(&self, call: &PowerCall<'_>) -> CallResult<PowerState> {
        with_instance!(&call.call, self, |store, inst| inst.metalhost_drivers_power().call_get_power_state(store, &call.bmc, &call.creds).await)
    }

    async fn set_power_state(&self, call: &PowerCall<'_>, action: PowerAction) -> CallResult<()> {
        with_instance!(&call.call, self, |store, inst| inst
            .metalhost_drivers_power()
            .call_set_power_state(store, &call.bmc, &call.creds, action)
            .await)
    }

    async fn set_boot_device(&self, call: &PowerCall<'_>, device: BootDevice, persistent: bool, mode: Option<BootMode>) -> CallResult<()> {
        with_instance!(&call.call, self, |store, inst| {
            inst.metalhost_drivers_power().call_set_boot_device(store, &call.bmc, &call.creds, device, persistent, mode).await
        })
    }

    async fn describe_console(&self, call: &PowerCall<'_>) -> CallResult<ConsoleAccess> {
        with_instance!(&call.call, self, |store, inst| inst.metalhost_drivers_power().call_describe_console(store, &call.bmc, &call.creds).await)
    }
}

impl From<types::PluginKind> for PluginKind {
    fn from(kind: types::PluginKind) -> PluginKind {
        match kind {
            types::PluginKind::Power => PluginKind::Power,
            types::PluginKind::Switch => PluginKind::Switch,
            types::PluginKind::Netboot => PluginKind::Netboot,
        }
    }
}

// The crate's plain-data request types (no wasmtime in them) are the 0.2.0 ones, case for case.

impl From<crate::PowerAction> for PowerAction {
    fn from(action: crate::PowerAction) -> PowerAction {
        match action {
            crate::PowerAction::On => PowerAction::On,
            crate::PowerAction::Off => PowerAction::Off,
            crate::PowerAction::Reboot => PowerAction::Reboot,
            crate::PowerAction::GracefulOff => PowerAction::GracefulOff,
            crate::PowerAction::GracefulReboot => PowerAction::GracefulReboot,
        }
    }
}

impl From<crate::BootDevice> for BootDevice {
    fn from(device: crate::BootDevice) -> BootDevice {
        match device {
            crate::BootDevice::Pxe => BootDevice::Pxe,
            crate::BootDevice::Disk => BootDevice::Disk,
        }
    }
}

impl From<crate::BootMode> for BootMode {
    fn from(mode: crate::BootMode) -> BootMode {
        match mode {
            crate::BootMode::Uefi => BootMode::Uefi,
            crate::BootMode::Legacy => BootMode::Legacy,
        }
    }
}

impl From<PowerState> for crate::PowerState {
    fn from(state: PowerState) -> crate::PowerState {
        match state {
            PowerState::On => crate::PowerState::On,
            PowerState::Off => crate::PowerState::Off,
        }
    }
}
