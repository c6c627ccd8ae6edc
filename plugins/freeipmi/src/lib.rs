//! metalhost power plugin: drives a BMC with FreeIPMI (`ipmi-power`, `ipmi-config`) through the
//! host's `exec` grant.
//!
//! The credentials reach FreeIPMI in a config file the host writes (mode 0600) into the child's
//! private working dir, never on its command line. Quirks from the lab: `-h host:port`,
//! `-W opensesspriv` for LAN_2_0, and boot flags through `ipmi-config` (the boot-flag option of
//! `ipmi-chassis` silently sets the wrong device).

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

const CONFIG_FILE: &str = "freeipmi.conf";

struct FreeIpmi {
    driver_type: String,
    privilege: String,
    timeout_ms: u32,
}

impl FreeIpmi {
    fn run(&self, program: &str, bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
        let host = if bmc.host.contains(':') { format!("[{}]:{}", bmc.host, bmc.port) } else { format!("{}:{}", bmc.host, bmc.port) };
        let out = Command::new(program)
            .args(["-h", &host, &format!("--config-file={CONFIG_FILE}"), "-l", &self.privilege, "-D", &self.driver_type])
            .args(["-W", "opensesspriv", "--session-timeout=4000", "--retransmission-timeout=500"])
            .args(command.iter().copied())
            .file(CONFIG_FILE, &config_file(creds)?)
            .timeout_ms(self.timeout_ms)
            .run()?;
        // ipmi-power reports per-host failures on stdout with exit status 1.
        if out.success() && !failed(&out.stdout) {
            return Ok(out.stdout);
        }
        Err(classify(program, &format!("{}\n{}", out.stdout, out.stderr), out.status))
    }
}

/// The credentials as a FreeIPMI config file. Its syntax splits on whitespace and knows `#`
/// comments and `\` continuations, so such characters could not round-trip (or could inject
/// directives): those credentials are refused rather than mangled.
fn config_file(creds: &Credentials) -> Result<String, DriverError> {
    let unsafe_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '#' | '\\' | '"');
    if creds.username.chars().any(unsafe_char) || creds.password.chars().any(unsafe_char) {
        return Err(DriverError::Unsupported(
            "the freeipmi plugin cannot pass a username or password holding whitespace, '#', '\\' or '\"' (use the ipmitool plugin)".into(),
        ));
    }
    Ok(format!("username {}\npassword {}\n", creds.username, creds.password))
}

fn failed(stdout: &str) -> bool {
    ["invalid", "timeout", "error", "failed"].iter().any(|w| stdout.to_ascii_lowercase().contains(w))
}

fn classify(program: &str, text: &str, status: i32) -> DriverError {
    let message = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    let lower = text.to_ascii_lowercase();
    if ["password invalid", "username invalid", "privilege level", "k_g invalid", "authentication"].iter().any(|n| lower.contains(n)) {
        DriverError::AuthFailed(message)
    } else if ["connection timeout", "session timeout", "hostname invalid", "unreachable"].iter().any(|n| lower.contains(n)) {
        DriverError::Unreachable(message)
    } else {
        DriverError::CommandFailed(format!("{program} exited with {status}: {message}"))
    }
}

/// `127.0.0.1:9001: on` → on.
fn parse_power(stdout: &str) -> Result<PowerState, DriverError> {
    let state = stdout.lines().filter_map(|l| l.rsplit(": ").next()).map(str::trim).find(|s| *s == "on" || *s == "off");
    match state {
        Some("on") => Ok(PowerState::On),
        Some("off") => Ok(PowerState::Off),
        _ => Err(DriverError::ParseError(format!("unexpected ipmi-power output: {:?}", stdout.trim()))),
    }
}

impl Plugin for FreeIpmi {
    const NAME: &'static str = "freeipmi";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let plugin = FreeIpmi {
            driver_type: config.one_of("driver-type", &["LAN", "LAN_2_0"])?.unwrap_or_else(|| "LAN_2_0".into()),
            privilege: config.one_of("privilege", &["USER", "OPERATOR", "ADMIN"])?.unwrap_or_else(|| "ADMIN".into()),
            timeout_ms: config.parse("timeout-ms")?.unwrap_or(15_000),
        };
        config.finish()?;
        Ok(plugin)
    }
}

impl PowerManager for FreeIpmi {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        parse_power(&self.run("ipmi-power", bmc, creds, &["--stat"])?)
    }

    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let flag = match action {
            PowerAction::On => "--on",
            PowerAction::Off => "--off",
            PowerAction::Reboot => match self.get_power_state(bmc, creds)? {
                PowerState::On => "--cycle",
                PowerState::Off => "--on",
            },
        };
        self.run("ipmi-power", bmc, creds, &[flag]).map(|_| ())
    }

    fn set_boot_device(&self, bmc: &BmcAddress, creds: &Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError> {
        let device = match device {
            BootDevice::Pxe => "Chassis_Boot_Flags:Boot_Device=PXE",
            BootDevice::Disk => "Chassis_Boot_Flags:Boot_Device=HARD-DRIVE",
        };
        let persistence = if persistent { "Chassis_Boot_Flags:Boot_Flags_Persistent=Yes" } else { "Chassis_Boot_Flags:Boot_Flags_Persistent=No" };
        let (device, persistence) = (format!("--key-pair={device}"), format!("--key-pair={persistence}"));
        self.run("ipmi-config", bmc, creds, &["--category=chassis", "--commit", &device, &persistence]).map(|_| ())
    }
}

metalhost_plugin_sdk::export_power!(FreeIpmi);
