//! metalhost power plugin: drives a BMC with `ipmitool -I lanplus` through the host's `exec` grant.
//!
//! The password reaches ipmitool in `IPMI_PASSWORD` (`-E`), never on its command line. `-C 3` avoids
//! a 10 s cipher-suite probe per call; `-v` makes ipmitool say why a session failed, which is how
//! an unreachable BMC is told from a refused password.

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct Ipmitool {
    interface: String,
    cipher_suite: u8,
    timeout_ms: u32,
}

impl Ipmitool {
    fn run(&self, bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
        let out = Command::new("ipmitool")
            .args(["-v", "-I", &self.interface, "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-E"])
            .args(["-C", &self.cipher_suite.to_string(), "-N", "1", "-R", "2"])
            .args(command.iter().copied())
            .env("IPMI_PASSWORD", &creds.password)
            .timeout_ms(self.timeout_ms)
            .run()?;
        if out.success() { Ok(out.stdout) } else { Err(classify(&out.stderr, out.status)) }
    }
}

/// Maps ipmitool's verbose stderr to a typed error carrying the tool's own message.
fn classify(stderr: &str, status: i32) -> DriverError {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("IANA PEN")).map(str::trim).filter(|l| !l.is_empty()).collect();
    let message = lines.join("; ");
    let has = |needle: &str| stderr.contains(needle);
    // No answer to the very first request: nothing is listening (checked before the auth words,
    // since this message mentions "Authentication Capabilities").
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

fn parse_power(stdout: &str) -> Result<PowerState, DriverError> {
    let line = stdout.lines().find(|l| l.starts_with("Chassis Power is")).unwrap_or("").trim();
    match line.strip_prefix("Chassis Power is ") {
        Some("on") => Ok(PowerState::On),
        Some("off") => Ok(PowerState::Off),
        _ => Err(DriverError::ParseError(format!("unexpected ipmitool output: {:?}", stdout.trim()))),
    }
}

impl Plugin for Ipmitool {
    const NAME: &'static str = "ipmitool";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let plugin = Ipmitool {
            interface: config.one_of("interface", &["lan", "lanplus"])?.unwrap_or_else(|| "lanplus".into()),
            cipher_suite: config.parse("cipher-suite")?.unwrap_or(3),
            timeout_ms: config.parse("timeout-ms")?.unwrap_or(15_000),
        };
        config.finish()?;
        Ok(plugin)
    }
}

impl PowerManager for Ipmitool {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        parse_power(&self.run(bmc, creds, &["chassis", "power", "status"])?)
    }

    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let verb = match action {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            // A cycle needs the node on; an off node just needs powering on.
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

metalhost_plugin_sdk::export_power!(Ipmitool);
