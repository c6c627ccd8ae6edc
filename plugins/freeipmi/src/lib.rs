//! metalhost power plugin: drives a BMC with FreeIPMI (`ipmi-power`, `ipmi-config`) through the
//! host's `exec` grant.
//!
//! The credentials reach FreeIPMI in a config file the host writes (mode 0600) into the child's
//! private working dir, never on its command line. Quirks from the lab: `-h host:port`,
//! `-W opensesspriv` for LAN_2_0, and boot flags through `ipmi-config` (the boot-flag option of
//! `ipmi-chassis` silently sets the wrong device).

use std::cell::RefCell;

wit_bindgen::generate!({ world: "power-manager", path: "../../wit" });

use exports::metalhost::drivers::{plugin, power};
use metalhost::drivers::exec;
use metalhost::drivers::types::{BmcAddress, BootDevice, Credentials, DriverError, PluginInfo, PluginKind, PowerAction, PowerState};

const CONFIG_FILE: &str = "freeipmi.conf";

struct Settings {
    driver_type: String,
    privilege: String,
    timeout_ms: u32,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(defaults());
}

fn defaults() -> Settings {
    Settings { driver_type: "LAN_2_0".into(), privilege: "ADMIN".into(), timeout_ms: 15_000 }
}

fn host_arg(bmc: &BmcAddress) -> String {
    if bmc.host.contains(':') { format!("[{}]:{}", bmc.host, bmc.port) } else { format!("{}:{}", bmc.host, bmc.port) }
}

fn run(program: &str, bmc: &BmcAddress, creds: &Credentials, command: &[&str]) -> Result<String, DriverError> {
    let (driver_type, privilege, timeout) = SETTINGS.with(|s| {
        let s = s.borrow();
        (s.driver_type.clone(), s.privilege.clone(), s.timeout_ms)
    });
    let mut args: Vec<String> = vec![
        "-h".into(),
        host_arg(bmc),
        format!("--config-file={CONFIG_FILE}"),
        "-l".into(),
        privilege,
        "-D".into(),
        driver_type,
        "-W".into(),
        "opensesspriv".into(),
        "--session-timeout=4000".into(),
        "--retransmission-timeout=500".into(),
    ];
    args.extend(command.iter().map(|s| s.to_string()));
    let file = config_file(creds)?;
    let out = exec::run(program, &args, &[], &[(CONFIG_FILE.to_string(), file)], timeout).map_err(|e| match e {
        exec::ExecError::TimedOut(m) => DriverError::Unreachable(m),
        exec::ExecError::NotPermitted(m) | exec::ExecError::SpawnFailed(m) => DriverError::CommandFailed(m),
    })?;
    // ipmi-power reports per-host failures on stdout with exit status 1.
    let text = format!("{}\n{}", out.stdout, out.stderr);
    if out.status == 0 && !failed(&out.stdout) {
        return Ok(out.stdout);
    }
    Err(classify(program, &text, out.status))
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

struct FreeIpmi;

impl plugin::Guest for FreeIpmi {
    fn info() -> PluginInfo {
        PluginInfo { name: "freeipmi".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Power }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), DriverError> {
        let mut settings = defaults();
        for (key, value) in config {
            match key.as_str() {
                "driver-type" if matches!(value.as_str(), "LAN" | "LAN_2_0") => settings.driver_type = value,
                "privilege" if matches!(value.as_str(), "USER" | "OPERATOR" | "ADMIN") => settings.privilege = value,
                "timeout-ms" => settings.timeout_ms = value.parse().map_err(|_| DriverError::InvalidConfig(format!("timeout-ms {value:?} is not a number")))?,
                "driver-type" | "privilege" => return Err(DriverError::InvalidConfig(format!("invalid value {value:?} for {key}"))),
                _ => return Err(DriverError::InvalidConfig(format!("unknown key {key:?} (known: driver-type, privilege, timeout-ms)"))),
            }
        }
        SETTINGS.with(|s| *s.borrow_mut() = settings);
        Ok(())
    }
}

impl power::Guest for FreeIpmi {
    fn get_power_state(bmc: BmcAddress, creds: Credentials) -> Result<PowerState, DriverError> {
        parse_power(&run("ipmi-power", &bmc, &creds, &["--stat"])?)
    }

    fn set_power_state(bmc: BmcAddress, creds: Credentials, action: PowerAction) -> Result<(), DriverError> {
        let flag = match action {
            PowerAction::On => "--on",
            PowerAction::Off => "--off",
            PowerAction::Reboot => match Self::get_power_state(bmc.clone(), creds.clone())? {
                PowerState::On => "--cycle",
                PowerState::Off => "--on",
            },
        };
        run("ipmi-power", &bmc, &creds, &[flag]).map(|_| ())
    }

    fn set_boot_device(bmc: BmcAddress, creds: Credentials, device: BootDevice, persistent: bool) -> Result<(), DriverError> {
        let device = match device {
            BootDevice::Pxe => "Chassis_Boot_Flags:Boot_Device=PXE",
            BootDevice::Disk => "Chassis_Boot_Flags:Boot_Device=HARD-DRIVE",
        };
        let persistence = if persistent { "Chassis_Boot_Flags:Boot_Flags_Persistent=Yes" } else { "Chassis_Boot_Flags:Boot_Flags_Persistent=No" };
        run("ipmi-config", &bmc, &creds, &["--category=chassis", "--commit", &format!("--key-pair={device}"), &format!("--key-pair={persistence}")])
            .map(|_| ())
    }
}

export!(FreeIpmi);
