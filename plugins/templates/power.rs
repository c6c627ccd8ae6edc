//! {{name}}: a metalhost power plugin. As generated it drives a BMC with `ipmitool` (granted as
//! `exec = ["ipmitool"]`); replace the tool, its arguments and `classify` with your BMC's own.
//!
//! The rules the conformance suite (`metalhost plugin test --kind power`) checks: the password
//! goes to the tool in its environment or a file, never on its argv; a BMC that does not answer
//! is `unreachable`, a refused login `auth-failed`; only granted programs run.

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct {{struct}} {
    timeout_ms: u32,
}

impl {{struct}} {
    /// Runs one ipmitool command against the BMC; the password travels in IPMI_PASSWORD (`-E`).
    fn run(&self, bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
        let out = Command::new("ipmitool")
            .args(["-v", "-I", "lanplus", "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-E"])
            .args(["-C", "3", "-N", "1", "-R", "2"])
            .args(command.iter().copied())
            .env("IPMI_PASSWORD", &creds.password)
            .timeout_ms(self.timeout_ms)
            .run()?;
        if out.success() { Ok(out.stdout) } else { Err(classify(&out.stderr, out.status)) }
    }
}

/// The tool's failure as a typed error, keeping its message.
fn classify(stderr: &str, status: i32) -> DriverError {
    let message = stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.contains("IANA PEN")).collect::<Vec<_>>().join("; ");
    let has = |needle: &str| stderr.contains(needle);
    if has("Get Auth Capabilities error") || has("Get Channel Authentication Capabilities") || has("No response") {
        DriverError::Unreachable(message)
    } else if has("RAKP") || has("unauthorized name") || has("password") || has("Invalid user name") {
        DriverError::AuthFailed(message)
    } else if has("Unable to establish") {
        DriverError::Unreachable(message)
    } else {
        DriverError::CommandFailed(format!("ipmitool exited with {status}: {message}"))
    }
}

impl Plugin for {{struct}} {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let plugin = {{struct}} { timeout_ms: config.parse("timeout-ms")?.unwrap_or(15_000) };
        // Unknown keys are refused, so a typo in the operator's config fails the load.
        config.finish()?;
        Ok(plugin)
    }
}

impl PowerManager for {{struct}} {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        let stdout = self.run(bmc, creds, &["chassis", "power", "status"])?;
        match stdout.lines().find_map(|l| l.trim().strip_prefix("Chassis Power is ")) {
            Some("on") => Ok(PowerState::On),
            Some("off") => Ok(PowerState::Off),
            _ => Err(DriverError::ParseError(format!("unexpected output: {:?}", stdout.trim()))),
        }
    }

    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let verb = match action {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            // Reboot powers an off node on, and cycles an on one.
            PowerAction::Reboot => match self.get_power_state(bmc, creds)? {
                PowerState::On => "cycle",
                PowerState::Off => "on",
            },
        };
        self.run(bmc, creds, &["chassis", "power", verb]).map(|_| ())
    }

    fn set_boot_device(&self, bmc: &BmcAddress, creds: &Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError> {
        let device = match device {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        };
        let persistence: &[&str] = if persistent { &["options=persistent"] } else { &[] };
        self.run(bmc, creds, &[&["chassis", "bootdev", device], persistence].concat()).map(|_| ())
    }
}

metalhost_plugin_sdk::export_power!({{struct}});
