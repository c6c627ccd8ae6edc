//! The `fake-switches` Juniper NETCONF emulator on a free loopback port, and an independent
//! checker of its configuration. Stopped by PID on drop.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths;

pub struct FakeSwitch {
    child: Child,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub model: String,
    _log: tempfile::NamedTempFile,
}

/// A TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl FakeSwitch {
    /// `model`: `juniper_generic` (EX, legacy syntax) or `juniper_qfx_copper_generic` (ELS).
    pub fn start(model: &str, username: &str, password: &str) -> FakeSwitch {
        let venv = paths::workspace_root().join(".lab/venv/bin/fake-switches");
        assert!(venv.exists(), "fake-switches is not installed: run scripts/setup");
        let log = tempfile::NamedTempFile::new().expect("log");
        let port = free_tcp_port();
        let child = Command::new(venv)
            .args(["--model", model, "--listen-host", "127.0.0.1", "--listen-port", &port.to_string()])
            .args(["--username", username, "--password", password, "--hostname", "sw-test"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start fake-switches");
        let switch = FakeSwitch { child, port, username: username.into(), password: password.into(), model: model.into(), _log: log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "fake-switches did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        switch
    }

    /// The access VLAN of `port` in the running config, read by an independent NETCONF client.
    pub fn port_vlan(&self, port: &str) -> Option<u16> {
        let python = paths::workspace_root().join(".lab/venv/bin/python");
        let script = paths::workspace_root().join("tests/lab/nc_port_vlan.py");
        let out = Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &self.port.to_string(), &self.username, port])
            .env("NC_PASSWORD", &self.password)
            .output()
            .expect("run nc_port_vlan.py");
        assert!(out.status.success(), "checker failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._log.path()).unwrap_or_default()
    }
}

impl Drop for FakeSwitch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
