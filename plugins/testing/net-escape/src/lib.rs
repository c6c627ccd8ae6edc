//! A 0.2.0 power plugin that tries to reach something other than its BMC, for the tests that the
//! host refuses it. Config `mode` picks the attempt `get-power-state` makes; the outcome comes
//! back as `command-failed` text `<mode>: <what the host said>` (or `reached ...` if it got through):
//! `http-host` (another host, same port), `http-port` (the BMC host, another port), `http-scheme`
//! (plain http to the BMC), `udp-port` (a datagram to another port), `wasi-tcp` and `wasi-udp`
//! (WASI sockets straight to the BMC, bypassing the capabilities), `http-bmc` (the BMC itself).
//! `describe-console` describes `ipmitool sol activate` aimed at config `console-host` and
//! `console-port` (default: the BMC's own): another BMC, for the tests that the host refuses it.

use metalhost_plugin_sdk::power2::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct Escape {
    mode: String,
    console_host: Option<String>,
    console_port: Option<String>,
}

impl Plugin for Escape {
    const NAME: &'static str = "net-escape";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let mode = config.get("mode").unwrap_or_else(|| "http-bmc".into());
        let console_host = config.get("console-host");
        let console_port = config.get("console-port");
        config.finish()?;
        Ok(Escape { mode, console_host, console_port })
    }
}

fn http(target: &str) -> String {
    match http::Request::get(target).timeout_ms(3000).send_raw() {
        Ok(r) => format!("reached {target}: HTTP {}", r.status),
        Err(e) => format!("{e:?}"),
    }
}

impl PowerManager for Escape {
    fn get_power_state(&self, bmc: &BmcAddress, _creds: &Credentials) -> Result<PowerState, DriverError> {
        let other_port = bmc.port.wrapping_add(1);
        let outcome = match self.mode.as_str() {
            "http-host" => http(&format!("https://127.0.0.2:{}/redfish/v1", bmc.port)),
            "http-port" => http(&format!("https://{}:{other_port}/redfish/v1", bmc.host)),
            "http-scheme" => http(&format!("http://{}:{}/redfish/v1", bmc.host, bmc.port)),
            "udp-port" => match datagram::exchange_on(other_port, b"ping", 500, 1) {
                Ok(replies) => format!("reached port {other_port}: {} replies", replies.len()),
                Err(e) => format!("{e:?}"),
            },
            "wasi-tcp" => match std::net::TcpStream::connect((bmc.host.as_str(), bmc.port)) {
                Ok(_) => format!("reached {}:{} over a WASI socket", bmc.host, bmc.port),
                Err(e) => format!("wasi socket refused: {e}"),
            },
            "wasi-udp" => match std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"ping", (bmc.host.as_str(), bmc.port))) {
                Ok(_) => format!("sent to {}:{} over a WASI socket", bmc.host, bmc.port),
                Err(e) => format!("wasi socket refused: {e}"),
            },
            _ => http("/redfish/v1"),
        };
        Err(DriverError::CommandFailed(format!("{}: {outcome}", self.mode)))
    }

    fn set_power_state(&self, _: &BmcAddress, _: &Credentials, _: PowerAction) -> Result<(), DriverError> {
        Ok(())
    }

    fn set_boot_device(&self, _: &BmcAddress, _: &Credentials, _: BootDevice, _: bool, _: Option<BootMode>) -> Result<(), DriverError> {
        Ok(())
    }

    fn describe_console(&self, bmc: &BmcAddress, creds: &Credentials) -> Result<ConsoleAccess, DriverError> {
        let host = self.console_host.clone().unwrap_or_else(|| bmc.host.clone());
        let port = self.console_port.clone().unwrap_or_else(|| bmc.port.to_string());
        let args = ["-I", "lanplus", "-H", &host, "-p", &port, "-U", &creds.username, "-E", "-C", "3", "sol", "activate"];
        Ok(ConsoleAccess::Command(ConsoleCommand {
            program: "ipmitool".into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: vec![("IPMI_PASSWORD".into(), creds.password.clone())],
            quit: "\r~.".into(),
        }))
    }
}

metalhost_plugin_sdk::export_power2!(Escape);
