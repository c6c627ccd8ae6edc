//! The `fake-switches` Juniper NETCONF emulator on a free loopback port (the conformance suite's
//! launcher, `metalhost_conformance::sims`), and an independent checker of its configuration.
//! Stopped by PID on drop.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::process::{Child, Command, Stdio};

use metalhost_conformance::sims::fake_switch as sim;

use crate::paths;

/// The emulator's host key: one RSA key hard-coded in fake-switches (`ssh-keyscan` + `ssh-keygen -l` give it),
/// so a client's fingerprint can be checked against a value computed by OpenSSH, not by us.
pub const HOST_KEY_FINGERPRINT: &str = "SHA256:v4cRr7ClTTn6CxGK/qsnWEhL7L4H+y3qHDbCyB3xeug";

pub struct FakeSwitch {
    inner: sim::FakeSwitch,
    pub username: String,
    pub password: String,
    pub model: String,
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
    sim::free_tcp_port().expect("probe a free tcp port")
}

impl FakeSwitch {
    /// `model`: `juniper_generic` (EX, legacy syntax) or `juniper_qfx_copper_generic` (ELS).
    /// Returns once the switch answers with an SSH banner.
    pub fn start(model: &str, username: &str, password: &str) -> FakeSwitch {
        Self::start_program(".lab/venv/bin/fake-switches", model, username, password)
    }

    /// The same emulator through `tests/lab/fake-switches-rfc6241`, which releases the locks of a
    /// session that ends (RFC 6241 section 7.5): the plain emulator keeps them forever.
    pub fn start_releasing_locks(model: &str, username: &str, password: &str) -> FakeSwitch {
        Self::start_program("tests/lab/fake-switches-rfc6241", model, username, password)
    }

    fn start_program(program: &str, model: &str, username: &str, password: &str) -> FakeSwitch {
        let program = paths::workspace_root().join(program);
        let inner = sim::FakeSwitch::start(&program, model, username, password).unwrap_or_else(|e| panic!("{e}"));
        FakeSwitch { inner, username: username.into(), password: password.into(), model: model.into() }
    }

    /// Another client (paramiko, `tests/lab/nc_hold_lock.py`) takes the candidate configuration's
    /// lock and keeps it until killed; returns once the lock is granted.
    pub fn hold_lock(&self) -> LockHolder {
        let python = paths::workspace_root().join(".lab/venv/bin/python");
        let script = paths::workspace_root().join("tests/lab/nc_hold_lock.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &self.port.to_string(), &self.username])
            .env("NC_PASSWORD", &self.password)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run nc_hold_lock.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read nc_hold_lock.py");
        assert_eq!(line.trim(), "locked", "nc_hold_lock.py did not get the lock");
        LockHolder { child }
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
}

/// A client holding the switch's candidate lock; killed (SIGKILL, no unlock) by `kill` or on drop.
pub struct LockHolder {
    child: Child,
}

impl LockHolder {
    /// Kills the client as a crash would: its session ends without an unlock.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Deref for FakeSwitch {
    type Target = sim::FakeSwitch;
    fn deref(&self) -> &sim::FakeSwitch {
        &self.inner
    }
}
