//! metalhost power plugin speaking IPMI 2.0 over LAN (RMCP+, cipher suites 17 and 3) itself, on
//! contract 0.2.0: no `exec` grant and no tool; every datagram goes through the host's `datagram`
//! capability, which reaches the call's BMC only (ARCHITECTURE.md, plugins).
//!
//! `codec/` is the wire format, pure and unit-tested on the host target; `session.rs` the RMCP+
//! handshake and retransmission over a [`session::Transport`]; `power.rs` the operations. This file
//! is the glue: config, the datagram transport, and the mapping to the contract's errors.

pub mod codec;
pub mod power;
pub mod session;

use std::time::Duration;

use metalhost_plugin_sdk::power2::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin, datagram};

use crate::codec::commands::BootTarget;
use crate::codec::suite::Suite;
use crate::power::{Action, Driver};
use crate::session::{Options, SessionError, Transport};

struct IpmiLan {
    driver: Driver,
    /// `sol-program`: the console grant's name for ipmitool (default `ipmitool`).
    sol_program: String,
}

/// `cipher-suites = "17,3"`: the suites to use, most preferred first; only 3 and 17 are spoken.
fn parse_suites(text: &str) -> Result<Vec<Suite>, DriverError> {
    let mut suites = Vec::new();
    for part in text.split(',').map(str::trim) {
        let suite = part
            .parse()
            .ok()
            .and_then(Suite::from_id)
            .ok_or_else(|| DriverError::InvalidConfig(format!("cipher-suites: {part:?} is not 3 or 17")))?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    Ok(suites)
}

impl Plugin for IpmiLan {
    const NAME: &'static str = "ipmi-lan";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let prefer = match config.get("cipher-suites") {
            Some(text) => parse_suites(&text)?,
            None => vec![Suite::Seventeen, Suite::Three],
        };
        let options = Options { timeout_ms: config.parse("timeout-ms")?.unwrap_or(1000), retries: config.parse("retries")?.unwrap_or(3), prefer };
        if options.timeout_ms == 0 {
            return Err(DriverError::InvalidConfig("timeout-ms must be at least 1".into()));
        }
        let driver = Driver {
            options,
            power_wait: Duration::from_secs(config.parse("power-wait-s")?.unwrap_or(20)),
            poll: Duration::from_millis(config.parse("poll-ms")?.unwrap_or(200)),
        };
        let sol_program = config.get("sol-program").unwrap_or_else(|| "ipmitool".to_owned());
        config.finish()?;
        Ok(IpmiLan { driver, sol_program })
    }
}

/// The host's `datagram` capability: one fresh socket per exchange, the call's BMC only.
struct Datagrams;

impl Transport for Datagrams {
    fn exchange(&mut self, payload: &[u8], timeout_ms: u32) -> Result<Option<Vec<u8>>, SessionError> {
        match datagram::exchange(payload, timeout_ms, 1) {
            Ok(mut replies) => Ok(replies.pop()),
            Err(datagram::DatagramError::Unreachable(m)) => Err(SessionError::Unreachable(m)),
            Err(datagram::DatagramError::NotPermitted(m)) => Err(SessionError::Unsupported(format!("the host refused the datagram: {m}"))),
            Err(datagram::DatagramError::InvalidRequest(m)) => Err(SessionError::Parse(format!("the host refused the datagram: {m}"))),
        }
    }

    fn fill_random(&mut self, buf: &mut [u8]) -> Result<(), SessionError> {
        getrandom::fill(buf).map_err(|e| SessionError::Unsupported(format!("no random numbers for the RMCP+ handshake: {e}")))
    }
}

/// Errors name the BMC so an operator can tell which one; never the password.
fn driver_error(bmc: &BmcAddress, e: SessionError) -> DriverError {
    let at = format!("IPMI BMC {}:{}", bmc.host, bmc.port);
    match e {
        SessionError::Unreachable(m) => DriverError::Unreachable(format!("{at}: {m}")),
        SessionError::AuthFailed(m) => DriverError::AuthFailed(format!("{at}: {m}")),
        SessionError::CommandFailed(m) => DriverError::CommandFailed(format!("{at}: {m}")),
        SessionError::Parse(m) => DriverError::ParseError(format!("{at}: {m}")),
        SessionError::Unsupported(m) => DriverError::Unsupported(format!("{at}: {m}")),
    }
}

impl PowerManager for IpmiLan {
    fn get_power_state(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<PowerState, DriverError> {
        match self.driver.power_is_on(&mut Datagrams, &creds.username, &creds.password) {
            Ok(true) => Ok(PowerState::On),
            Ok(false) => Ok(PowerState::Off),
            Err(e) => Err(driver_error(bmc, e)),
        }
    }

    fn set_power_state(&self, bmc: &BmcAddress, creds: &Credentials, action: PowerAction) -> Result<(), DriverError> {
        let action = match action {
            PowerAction::On => Action::On,
            PowerAction::Off => Action::Off,
            PowerAction::Reboot => Action::Reboot,
            PowerAction::GracefulOff => Action::GracefulOff,
            PowerAction::GracefulReboot => Action::GracefulReboot,
        };
        self.driver.set_power(&mut Datagrams, &creds.username, &creds.password, action).map_err(|e| driver_error(bmc, e))
    }

    fn set_boot_device(
        &self,
        bmc: &BmcAddress,
        creds: &Credentials,
        device: BootDevice,
        persistent: bool,
        mode: Option<BootMode>,
    ) -> Result<(), DriverError> {
        let target = match device {
            BootDevice::Pxe => BootTarget::Pxe,
            BootDevice::Disk => BootTarget::Disk,
        };
        let efi = mode.map(|m| matches!(m, BootMode::Uefi));
        self.driver.set_boot(&mut Datagrams, &creds.username, &creds.password, target, persistent, efi).map_err(|e| driver_error(bmc, e))
    }

    /// Serial over LAN through `ipmitool sol activate` (the program the operator granted for
    /// consoles), on the suite this driver negotiates, which also proves the credentials first;
    /// a SOL payload left active by a dead session is freed first.
    fn describe_console(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<ConsoleAccess, DriverError> {
        let suite = self.driver.prepare_console(&mut Datagrams, &creds.username, &creds.password).map_err(|e| driver_error(bmc, e))?;
        Ok(ConsoleAccess::Command(sol_command(&self.sol_program, bmc, creds, suite)))
    }
}

/// `ipmitool -E` reads the password from `IPMI_PASSWORD`, so it never reaches argv. `~.` after a
/// carriage return is ipmitool's escape: it deactivates the SOL payload before exiting, so the
/// BMC frees its console at once.
fn sol_command(program: &str, bmc: &BmcAddress, creds: &Credentials, suite: Suite) -> ConsoleCommand {
    let args = ["-I", "lanplus", "-H", &bmc.host, "-p", &bmc.port.to_string(), "-U", &creds.username, "-E", "-C", &suite.id().to_string(), "sol", "activate"];
    ConsoleCommand {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: vec![("IPMI_PASSWORD".to_owned(), creds.password.clone())],
        quit: "\r~.".to_owned(),
    }
}

metalhost_plugin_sdk::export_power2!(IpmiLan);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_command_keeps_the_password_out_of_argv() {
        let bmc = BmcAddress { host: "10.0.0.9".into(), port: 6230 };
        let creds = Credentials { username: "admin".into(), password: "s3cret-pw".into() };
        let cmd = sol_command("ipmitool", &bmc, &creds, Suite::Three);
        assert_eq!(cmd.program, "ipmitool");
        assert!(cmd.args.iter().all(|a| !a.contains("s3cret-pw")), "{:?}", cmd.args);
        assert_eq!(cmd.args.join(" "), "-I lanplus -H 10.0.0.9 -p 6230 -U admin -E -C 3 sol activate");
        assert_eq!(cmd.env, [("IPMI_PASSWORD".to_owned(), "s3cret-pw".to_owned())]);
        assert_eq!(cmd.quit, "\r~.");
    }

    #[test]
    fn suite_preference_parses() {
        assert_eq!(parse_suites("3, 17").expect("suites"), [Suite::Three, Suite::Seventeen]);
        assert!(matches!(parse_suites("17,2"), Err(DriverError::InvalidConfig(_))));
    }
}
