//! A power plugin with one bug on purpose, for `metalhost plugin test`: it hands ipmitool the
//! BMC password with `-P`, where any local user can read it in /proc/PID/cmdline while it runs.
//! Everything else is right.

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct ArgvPassword;

fn run(bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
    let out = Command::new("ipmitool")
        // The bug: `-P password` instead of `-E` with IPMI_PASSWORD in the environment.
        .args(["-v", "-I", "lanplus", "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-P", &creds.password])
        .args(["-C", "3", "-N", "1", "-R", "2"])
        .args(command.iter().copied())
        .timeout_ms(15_000)
        .run()?;
    if out.success() { Ok(out.stdout) } else { Err(classify(&out.stderr)) }
}

fn classify(stderr: &str) -> DriverError {
    let message = stderr.trim().to_owned();
    if stderr.contains("Get Auth Capabilities error") || stderr.contains("No response") {
        DriverError::Unreachable(message)
    } else if stderr.contains("RAKP") || stderr.contains("password") {
        DriverError::AuthFailed(message)
    } else {
        DriverError::CommandFailed(message)
    }
}

impl Plugin for ArgvPassword {
    const NAME: &'static str = "argv-password";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(config: Config) -> Result<Self, DriverError> {
        config.finish()?;
        Ok(ArgvPassword)
    }
}

impl PowerManager for ArgvPassword {
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

metalhost_plugin_sdk::export_power!(ArgvPassword);
