//! The `fake-switches` Juniper NETCONF emulator on a free loopback port, and an independent
//! checker of its configuration. Stopped by PID on drop.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths;

/// The emulator's host key: one RSA key hard-coded in fake-switches (LAB.md part 2 section 2),
/// so a client's fingerprint can be checked against a value computed by OpenSSH, not by us.
pub const HOST_KEY_FINGERPRINT: &str = "SHA256:v4cRr7ClTTn6CxGK/qsnWEhL7L4H+y3qHDbCyB3xeug";

pub struct FakeSwitch {
    child: Child,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub model: String,
    log: tempfile::NamedTempFile,
}

/// What the running config says about one port, as read by the independent checker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortConfig {
    /// `ethernet-switching vlan members`, in document order.
    pub members: Vec<u16>,
    /// The mode leaf present (`port-mode` or `interface-mode`) and its value.
    pub mode: Option<(String, String)>,
}

/// A TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl FakeSwitch {
    /// `model`: `juniper_generic` (EX, legacy syntax) or `juniper_qfx_copper_generic` (ELS).
    /// Returns once the switch answers with an SSH banner.
    pub fn start(model: &str, username: &str, password: &str) -> FakeSwitch {
        // The port is probed free and then handed to the emulator, so another process can take
        // it in between: then the emulator exits with "Address already in use" and we try again.
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut switch = Self::spawn(model, username, password, free_tcp_port());
            match switch.wait_for_ssh(Duration::from_secs(30)) {
                Ok(()) => return switch,
                Err(why) => last_log = format!("{why}\n{}", switch.log()),
            }
        }
        panic!("fake-switches {model} did not start: {last_log}");
    }

    fn spawn(model: &str, username: &str, password: &str, port: u16) -> FakeSwitch {
        let program = paths::workspace_root().join(".lab/venv/bin/fake-switches");
        assert!(program.exists(), "fake-switches is not installed: run scripts/setup");
        let log = tempfile::NamedTempFile::new().expect("log");
        // The emulator only takes its test password on the command line.
        let child = Command::new(program)
            .args(["--model", model, "--listen-host", "127.0.0.1", "--listen-port", &port.to_string()])
            .args(["--username", username, "--password", password, "--hostname", "sw-test"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start fake-switches");
        FakeSwitch { child, port, username: username.into(), password: password.into(), model: model.into(), log }
    }

    /// Waits until the port sends an SSH identification line, or the process dies.
    fn wait_for_ssh(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("fake-switches exited with {status}"));
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut banner = [0u8; 8];
                if stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no SSH banner on port {} within {within:?}", self.port));
            }
            // Polling a port: nothing to block on until the emulator binds it.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the emulator (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes `pause` (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// The port's switching config in the running datastore, read by an independent NETCONF
    /// client (paramiko + lxml, `tests/lab/nc_port_config.py`).
    pub fn port_config(&self, port: &str) -> PortConfig {
        let python = paths::workspace_root().join(".lab/venv/bin/python");
        let script = paths::workspace_root().join("tests/lab/nc_port_config.py");
        let out = Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &self.port.to_string(), &self.username, port])
            .env("NC_PASSWORD", &self.password)
            .output()
            .expect("run nc_port_config.py");
        assert!(out.status.success(), "checker failed: {}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("checker output is JSON");
        let members = json["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m.as_u64().and_then(|m| u16::try_from(m).ok()).expect("numeric member"))
            .collect();
        let mode = json["mode"].as_object().expect("mode").iter().next().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()));
        PortConfig { members, mode }
    }

    /// The access VLAN of `port` in the running config (None when it has none), read by the
    /// independent checker. Panics when the port has more than one VLAN member.
    pub fn port_vlan(&self, port: &str) -> Option<u16> {
        let config = self.port_config(port);
        assert!(config.members.len() <= 1, "port {port} has several VLAN members: {config:?}");
        config.members.first().copied()
    }

    /// What the emulator printed so far (tracebacks when a request crashed it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for FakeSwitch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
