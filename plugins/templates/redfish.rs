//! {{name}}: a metalhost power plugin for Redfish BMCs (contract metalhost:drivers@0.2.0). It has
//! no `exec` grant: it speaks HTTP(S) to the node's BMC through the host's `http` capability,
//! which reaches that BMC only, with the TLS trust the operator set in `network = { ... }`.
//!
//! The rules the conformance suite (`metalhost plugin test --kind power`, against sushy-emulator)
//! checks: every operation read back from the emulator; a refused login is `auth-failed`, a BMC
//! that does not answer `unreachable`, an untrusted certificate a TLS `invalid-config`; nothing
//! but the call's BMC is reached; the password is in no log line or error.

use std::time::{Duration, Instant};

use metalhost_plugin_sdk::http::{Request, Response};
use metalhost_plugin_sdk::power2::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};
use serde_json::{Value, json};

struct {{struct}} {
    /// `/redfish/v1/Systems/<id>`; found when the BMC has exactly one system.
    system_id: Option<String>,
    power_wait: Duration,
}

impl Plugin for {{struct}} {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let plugin = {{struct}} { system_id: config.get("system-id"), power_wait: Duration::from_secs(config.parse("power-wait-s")?.unwrap_or(25)) };
        config.finish()?;
        Ok(plugin)
    }
}

/// One request with Basic auth; 401 is `auth-failed`, 404 `not-found`, any other failure
/// `command-failed` with the BMC's `@Message.ExtendedInfo`.
fn send(creds: &Credentials, request: Request) -> Result<Response, DriverError> {
    let response = request.basic_auth(&creds.username, &creds.password).header("accept", "application/json").send()?;
    let said = || {
        let doc: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let info = &doc["error"]["@Message.ExtendedInfo"];
        let messages: Vec<&str> = info.as_array().map(|a| a.iter().filter_map(|i| i["Message"].as_str()).collect()).unwrap_or_default();
        if messages.is_empty() { response.text().chars().take(300).collect() } else { messages.join("; ") }
    };
    match response.status {
        200..=299 => Ok(response),
        401 => Err(DriverError::AuthFailed(format!("the BMC refused the credentials: {}", said()))),
        404 => Err(DriverError::NotFound(said())),
        status => Err(DriverError::CommandFailed(format!("HTTP {status}: {}", said()))),
    }
}

fn get(creds: &Credentials, path: &str) -> Result<(Value, Option<String>), DriverError> {
    let response = send(creds, Request::get(path))?;
    let doc = serde_json::from_slice(&response.body).map_err(|e| DriverError::ParseError(format!("GET {path}: {e}")))?;
    Ok((doc, response.header("etag").map(str::to_owned)))
}

fn is_on(system: &Value) -> Result<bool, DriverError> {
    match system["PowerState"].as_str() {
        Some("On" | "PoweringOff") => Ok(true),
        Some("Off" | "PoweringOn") => Ok(false),
        other => Err(DriverError::ParseError(format!("PowerState {other:?}"))),
    }
}

impl {{struct}} {
    fn system(&self, creds: &Credentials) -> Result<String, DriverError> {
        if let Some(id) = &self.system_id {
            return Ok(format!("/redfish/v1/Systems/{id}"));
        }
        let (systems, _) = get(creds, "/redfish/v1/Systems")?;
        match systems["Members"].as_array().map(Vec::as_slice) {
            Some([one]) => one["@odata.id"].as_str().map(str::to_owned).ok_or_else(|| DriverError::ParseError("a member without @odata.id".into())),
            _ => Err(DriverError::InvalidConfig("the BMC does not have exactly one system: set system-id".into())),
        }
    }

    /// Resets, then polls until the BMC reports the state (BMCs apply a reset seconds later).
    fn reset(&self, creds: &Credentials, path: &str, reset_type: &str, on: bool) -> Result<(), DriverError> {
        let target = format!("{path}/Actions/ComputerSystem.Reset");
        send(creds, Request::post(&target).json(json!({ "ResetType": reset_type }).to_string()))?;
        let deadline = Instant::now() + self.power_wait;
        while is_on(&get(creds, path)?.0)? != on {
            if Instant::now() > deadline {
                return Err(DriverError::CommandFailed(format!("the system did not reach the state within {} s", self.power_wait.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }
}

impl PowerManager for {{struct}} {
    fn get_power_state(&self, _bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        let path = self.system(creds)?;
        Ok(if is_on(&get(creds, &path)?.0)? { PowerState::On } else { PowerState::Off })
    }

    fn set_power_state(&self, _bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let path = self.system(creds)?;
        let on = is_on(&get(creds, &path)?.0)?;
        match (action, on) {
            (PowerAction::On, true) | (PowerAction::Off | PowerAction::GracefulOff, false) => Ok(()),
            // Reboot of an off node powers it on: the contract says so.
            (PowerAction::On | PowerAction::Reboot | PowerAction::GracefulReboot, false) => self.reset(creds, &path, "On", true),
            (PowerAction::Off, true) => self.reset(creds, &path, "ForceOff", false),
            (PowerAction::Reboot, true) => self.reset(creds, &path, "ForceRestart", true),
            (PowerAction::GracefulOff, true) => send(creds, Request::post(&format!("{path}/Actions/ComputerSystem.Reset")).json(r#"{"ResetType":"GracefulShutdown"}"#)).map(|_| ()),
            (PowerAction::GracefulReboot, true) => send(creds, Request::post(&format!("{path}/Actions/ComputerSystem.Reset")).json(r#"{"ResetType":"GracefulRestart"}"#)).map(|_| ()),
        }
    }

    fn set_boot_device(&self, _bmc: &BmcAddress, creds: &Credentials, device: BootDevice, persistent: bool, mode: Option<BootMode>) -> Result<(), DriverError> {
        let path = self.system(creds)?;
        let (_, etag) = get(creds, &path)?;
        let mut boot = json!({
            "BootSourceOverrideTarget": match device { BootDevice::Pxe => "Pxe", BootDevice::Disk => "Hdd" },
            "BootSourceOverrideEnabled": if persistent { "Continuous" } else { "Once" },
        });
        if let Some(mode) = mode {
            boot["BootSourceOverrideMode"] = json!(match mode { BootMode::Uefi => "UEFI", BootMode::Legacy => "Legacy" });
        }
        let mut request = Request::patch(&path).json(json!({ "Boot": boot }).to_string());
        if let Some(etag) = etag {
            request = request.header("if-match", &etag);
        }
        send(creds, request).map(|_| ())
    }
}

metalhost_plugin_sdk::export_power2!({{struct}});
