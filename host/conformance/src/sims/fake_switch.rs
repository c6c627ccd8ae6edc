//! The `fake-switches` Juniper NETCONF emulator on a free loopback port.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

pub struct FakeSwitch {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

/// A TCP port nobody listens on right now.
pub fn free_tcp_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Setup(format!("probe a free tcp port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Setup(format!("probe a free tcp port: {e}")))
}

impl FakeSwitch {
    /// `model`: `juniper_generic` (EX, legacy syntax) or `juniper_qfx_copper_generic` (ELS).
    /// Returns once the emulator answers with an SSH banner. The probed port can be taken by
    /// someone else before the emulator binds it: then it exits and we try another.
    pub fn start(program: &Path, model: &str, username: &str, password: &str) -> Result<FakeSwitch, Error> {
        let program = if program.components().count() > 1 { Some(program.to_owned()) } else { super::which(&program.to_string_lossy()) };
        let program = program.filter(|p| p.is_file()).ok_or(Error::MissingTool {
            tool: "fake-switches".into(),
            kind: "switch",
            hint: "run scripts/setup, or point --fake-switches / METALHOST_FAKE_SWITCHES at it",
        })?;
        let mut last = String::new();
        for _ in 0..3 {
            let mut switch = Self::spawn(&program, model, username, password, free_tcp_port()?)?;
            match switch.wait_for_ssh(Duration::from_secs(30)) {
                Ok(()) => return Ok(switch),
                Err(why) => last = format!("{why}: {}", switch.log()),
            }
        }
        Err(Error::NotReady { what: format!("fake-switches {model}"), detail: last })
    }

    fn spawn(program: &Path, model: &str, username: &str, password: &str, port: u16) -> Result<FakeSwitch, Error> {
        let log = tempfile::NamedTempFile::new().map_err(|e| Error::Setup(format!("fake-switches log: {e}")))?;
        let out = |log: &tempfile::NamedTempFile| log.reopen().map_err(|e| Error::Setup(format!("fake-switches log: {e}")));
        // The emulator only takes its password on the command line: this is a throwaway test password.
        let child = Command::new(program)
            .args(["--model", model, "--listen-host", "127.0.0.1", "--listen-port", &port.to_string()])
            .args(["--username", username, "--password", password, "--hostname", "sw-conformance"])
            .stdin(Stdio::null())
            .stdout(out(&log)?)
            .stderr(out(&log)?)
            .spawn()
            .map_err(|source| Error::Start { what: format!("fake-switches ({})", program.display()), source })?;
        Ok(FakeSwitch { child, port, log })
    }

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
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
