//! metalhost power plugin: drives a BMC with `ipmitool -I lanplus` through the host's `exec` grant.
//!
//! The password reaches ipmitool in `IPMI_PASSWORD` (`-E`), never on its command line. `-C 3` avoids
//! a 10 s cipher-suite probe per call; `-v` makes ipmitool say why a session failed, which is how
//! an unreachable BMC is told from a refused password.

use std::cell::RefCell;

wit_bindgen::generate!({ world: "power-manager", path: "../../wit" });

use exports::metalhost::drivers::{plugin, power};
use metalhost::drivers::exec;
use metalhost::drivers::types::{BmcAddress, BootDevice, Credentials, DriverError, PluginInfo, PluginKind, PowerAction, PowerState};

struct Settings {
    interface: String,
    cipher_suite: String,
    timeout_ms: u32,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings { interface: "lanplus".into(), cipher_suite: "3".into(), timeout_ms: 15_000 });
}

fn run(bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
    let (interface, cipher, timeout) = SETTINGS.with(|s| {
        let s = s.borrow();
        (s.interface.clone(), s.cipher_suite.clone(), s.timeout_ms)
    });
    let port = bmc.port.to_string();
    let mut args: Vec<String> = ["-v", "-I", &interface, "-H", &bmc.host, "-p", &port, "-U", &creds.username, "-E", "-C", &cipher, "-N", "1", "-R", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(command.iter().map(|s| s.to_string()));
    let env = vec![("IPMI_PASSWORD".to_string(), creds.password.clone())];
    let out = exec::run("ipmitool", &args, &env, &[], timeout).map_err(|e| match e {
        exec::ExecError::TimedOut(m) => DriverError::Unreachable(m),
        exec::ExecError::NotPermitted(m) | exec::ExecError::SpawnFailed(m) => DriverError::CommandFailed(m),
    })?;
    if out.status == 0 {
        return Ok(out.stdout);
    }
    Err(classify(&out.stderr, out.status))
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

struct Ipmitool;

impl plugin::Guest for Ipmitool {
    fn info() -> PluginInfo {
        PluginInfo { name: "ipmitool".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Power }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), DriverError> {
        let mut settings = Settings { interface: "lanplus".into(), cipher_suite: "3".into(), timeout_ms: 15_000 };
        for (key, value) in config {
            match key.as_str() {
                "interface" if matches!(value.as_str(), "lan" | "lanplus") => settings.interface = value,
                "cipher-suite" if value.parse::<u8>().is_ok() => settings.cipher_suite = value,
                "timeout-ms" => settings.timeout_ms = value.parse().map_err(|_| DriverError::InvalidConfig(format!("timeout-ms {value:?} is not a number")))?,
                "interface" | "cipher-suite" => return Err(DriverError::InvalidConfig(format!("invalid value {value:?} for {key}"))),
                _ => return Err(DriverError::InvalidConfig(format!("unknown key {key:?} (known: interface, cipher-suite, timeout-ms)"))),
            }
        }
        SETTINGS.with(|s| *s.borrow_mut() = settings);
        Ok(())
    }
}

impl power::Guest for Ipmitool {
    fn get_power_state(bmc: BmcAddress, creds: Credentials) -> Result<PowerState, DriverError> {
        parse_power(&run(&bmc, &creds, &["chassis", "power", "status"])?)
    }

    fn set_power_state(bmc: BmcAddress, creds: Credentials, action: PowerAction) -> Result<(), DriverError> {
        let verb = match action {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            // A cycle needs the node on; an off node just needs powering on.
            PowerAction::Reboot => match Self::get_power_state(bmc.clone(), creds.clone())? {
                PowerState::On => "cycle",
                PowerState::Off => "on",
            },
        };
        run(&bmc, &creds, &["chassis", "power", verb]).map(|_| ())
    }

    fn set_boot_device(bmc: BmcAddress, creds: Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError> {
        let device = match device {
            BootDevice::Pxe => "pxe",
            BootDevice::Disk => "disk",
        };
        let mut command = vec!["chassis", "bootdev", device];
        if persistent {
            command.push("options=persistent");
        }
        run(&bmc, &creds, &command).map(|_| ())
    }
}

export!(Ipmitool);
