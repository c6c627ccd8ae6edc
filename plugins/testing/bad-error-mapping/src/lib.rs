//! A power plugin with one bug on purpose, for `metalhost plugin test`: it maps every ipmitool
//! failure to `unreachable`, so a wrong password would send operators chasing a network fault.
//! Everything else is right.

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct BadErrorMapping;

fn run(bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-E", "-C", "3", "-N", "1", "-R", "2"])
        .args(command.iter().copied())
        .env("IPMI_PASSWORD", &creds.password)
        .timeout_ms(15_000)
        .run()?;
    // The bug: no look at why it failed.
    if out.success() { Ok(out.stdout) } else { Err(DriverError::Unreachable(out.stderr.trim().to_owned())) }
}

impl Plugin for BadErrorMapping {
    const NAME: &'static str = "bad-error-mapping";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(config: Config) -> Result<Self, DriverError> {
        config.finish()?;
        Ok(BadErrorMapping)
    }
}

impl PowerManager for BadErrorMapping {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        let out = run(bmc, creds, &["chassis", "power", "status"])?;
        if out.contains("is on") { Ok(PowerState::On) } else { Ok(PowerState::Off) }
    }

    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let verb = match action {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::Reboot if self.get_power_state(bmc, creds)? == PowerState::On => "cycle",
            PowerAction::Reboot => "on",
        };
        run(bmc, creds, &["chassis", "power", verb]).map(|_| ())
    }

    fn set_boot_device(&self, bmc: &BmcAddress, creds: &Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError> {
        let device = if device == BootDevice::Pxe { "pxe" } else { "disk" };
        let options: &[&str] = if persistent { &["options=persistent"] } else { &[] };
        run(bmc, creds, &[&["chassis", "bootdev", device], options].concat()).map(|_| ())
    }
}

metalhost_plugin_sdk::export_power!(BadErrorMapping);
