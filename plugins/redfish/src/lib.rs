//! metalhost power plugin for Redfish BMCs (contract 0.2.0): no `exec` grant; it speaks HTTP(S)
//! to the node's BMC through the host's `http` capability, which reaches that BMC only, with the
//! TLS trust the operator configured for the plugin.
//!
//! Power is `ComputerSystem.Reset` (On, ForceOff, ForceRestart, GracefulShutdown,
//! GracefulRestart), then polling `PowerState` until the BMC reports the result: BMCs apply a
//! reset seconds later. Boot is a PATCH of `Boot` (`Pxe`/`Hdd`, `Once`/`Continuous`, the mode),
//! with `If-Match` when the BMC gives an ETag. Basic auth on every request (no session: a session
//! would outlive the call's sandbox and must be deleted, which a failed call cannot promise).

mod client;
pub mod model;

use std::time::{Duration, Instant};

use metalhost_plugin_sdk::power2::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};
use serde_json::json;

use crate::client::Client;

struct Redfish {
    /// The system's id under `/redfish/v1/Systems`; found when the BMC has exactly one.
    system_id: Option<String>,
    /// How long `on`/`off`/`reboot` wait for the BMC to report the new state.
    power_wait: Duration,
    poll: Duration,
    request_timeout_ms: u32,
}

impl Plugin for Redfish {
    const NAME: &'static str = "redfish";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let system_id = config.get("system-id");
        if let Some(id) = &system_id
            && (id.is_empty() || id.contains(['/', '?', '#']))
        {
            return Err(DriverError::InvalidConfig(format!("system-id {id:?} is not a Redfish id")));
        }
        let plugin = Redfish {
            system_id,
            power_wait: Duration::from_secs(config.parse("power-wait-s")?.unwrap_or(25)),
            poll: Duration::from_millis(config.parse("poll-ms")?.unwrap_or(500)),
            request_timeout_ms: config.parse("request-timeout-ms")?.unwrap_or(10_000),
        };
        config.finish()?;
        Ok(plugin)
    }
}

impl Redfish {
    fn client<'a>(&self, creds: &'a Credentials) -> Client<'a> {
        Client { creds, timeout_ms: self.request_timeout_ms }
    }

    /// The system's path: the configured id, or the only member of the Systems collection.
    fn system_path(&self, client: &Client) -> Result<String, DriverError> {
        if let Some(id) = &self.system_id {
            return Ok(format!("/redfish/v1/Systems/{id}"));
        }
        let systems = client.get("/redfish/v1/Systems")?;
        match model::members(&systems.body).as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(DriverError::NotFound("the BMC lists no system under /redfish/v1/Systems".into())),
            many => Err(DriverError::InvalidConfig(format!(
                "the BMC has {} systems ({}): set system-id in the plugin config",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    fn reset(&self, client: &Client, path: &str, system: &serde_json::Value, reset_type: &str) -> Result<(), DriverError> {
        let (target, allowed) = model::reset_action(system, path);
        if !allowed.is_empty() && !allowed.iter().any(|a| a == reset_type) {
            return Err(DriverError::Unsupported(format!("the BMC does not offer ResetType {reset_type} (it offers {})", allowed.join(", "))));
        }
        let body = json!({ "ResetType": reset_type });
        match client.post(&target, &body) {
            // Some BMCs refuse a reset while a previous one settles: once more, a moment later.
            Err(DriverError::CommandFailed(m)) if m.contains("HTTP 409") => {
                std::thread::sleep(self.poll.max(Duration::from_secs(1)));
                client.post(&target, &body).map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// Polls until the system reports `on`, within `power-wait-s`.
    fn wait_for(&self, client: &Client, path: &str, on: bool) -> Result<(), DriverError> {
        let deadline = Instant::now() + self.power_wait;
        loop {
            if model::power_state(&client.get(path)?.body)? == on {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DriverError::CommandFailed(format!(
                    "the BMC accepted the reset but the system was not {} within {} s",
                    if on { "on" } else { "off" },
                    self.power_wait.as_secs()
                )));
            }
            std::thread::sleep(self.poll);
        }
    }
}

impl PowerManager for Redfish {
    fn get_power_state(&self, _bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        let client = self.client(creds);
        let path = self.system_path(&client)?;
        Ok(if model::power_state(&client.get(&path)?.body)? { PowerState::On } else { PowerState::Off })
    }

    fn set_power_state(&self, _bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let client = self.client(creds);
        let path = self.system_path(&client)?;
        let system = client.get(&path)?.body;
        let on = model::power_state(&system)?;
        match (action, on) {
            (PowerAction::On, true) | (PowerAction::Off, false) | (PowerAction::GracefulOff, false) => Ok(()),
            // Reboot of an off node powers it on (the contract says so).
            (PowerAction::On | PowerAction::Reboot | PowerAction::GracefulReboot, false) => {
                self.reset(&client, &path, &system, "On")?;
                self.wait_for(&client, &path, true)
            }
            (PowerAction::Off, true) => {
                self.reset(&client, &path, &system, "ForceOff")?;
                self.wait_for(&client, &path, false)
            }
            (PowerAction::Reboot, true) => {
                self.reset(&client, &path, &system, "ForceRestart")?;
                self.wait_for(&client, &path, true)
            }
            (PowerAction::GracefulOff, true) => self.reset(&client, &path, &system, "GracefulShutdown"),
            (PowerAction::GracefulReboot, true) => self.reset(&client, &path, &system, "GracefulRestart"),
        }
    }

    fn set_boot_device(
        &self,
        _bmc: &BmcAddress,
        creds: &Credentials,
        device: BootDevice,
        persistent: bool,
        mode: Option<BootMode>,
    ) -> Result<(), DriverError> {
        let client = self.client(creds);
        let path = self.system_path(&client)?;
        let etag = client.get(&path)?.etag;
        let mut boot = json!({
            "BootSourceOverrideTarget": match device { BootDevice::Pxe => "Pxe", BootDevice::Disk => "Hdd" },
            "BootSourceOverrideEnabled": if persistent { "Continuous" } else { "Once" },
        });
        if let Some(mode) = mode {
            boot["BootSourceOverrideMode"] = json!(match mode {
                BootMode::Uefi => "UEFI",
                BootMode::Legacy => "Legacy",
            });
        }
        client.patch(&path, &json!({ "Boot": boot }), etag.as_deref()).map(|_| ())
    }
}

metalhost_plugin_sdk::export_power2!(Redfish);
