//! The lab's RMCP+ test BMC (`tests/lab/ipmi_bmc.py`, cipher suites 3 and 17, which ipmi_sim
//! lacks) on a free loopback port, stopped by PID on drop. The password reaches it in its
//! environment, never its argv.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::paths::workspace_root;

/// How to run the BMC.
#[derive(Debug, Clone)]
pub struct LabBmcOptions {
    pub username: String,
    pub password: String,
    /// Cipher suites offered, e.g. "17,3", "17", "3".
    pub suites: String,
    /// Drop every Nth datagram received (0: none).
    pub drop_every: u32,
    /// Run the first hard reset but lose its reply (a retransmitted reset must not run again).
    pub lose_reset_reply: bool,
    /// How many BMCs on consecutive ports (benchmarks); 1 keeps its state in `state_dir`.
    pub bmcs: u32,
    /// First port; 0 picks a free one (only with one BMC).
    pub port: u16,
}

impl Default for LabBmcOptions {
    fn default() -> Self {
        LabBmcOptions {
            username: "admin".into(),
            password: "lab-bmc-pw".into(),
            suites: "17,3".into(),
            drop_every: 0,
            lose_reset_reply: false,
            bmcs: 1,
            port: 0,
        }
    }
}

pub struct LabBmc {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The python with `cryptography` (scripts/setup): the lab venv if present, else python3.
fn python() -> PathBuf {
    let venv = workspace_root().join(".lab/venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

impl LabBmc {
    pub fn start(opts: &LabBmcOptions) -> LabBmc {
        let dir = tempfile::tempdir().expect("tmp");
        let mut child = Command::new(python())
            .arg(workspace_root().join("tests/lab/ipmi_bmc.py"))
            .args(["--port", &opts.port.to_string(), "--user", &opts.username, "--suites", &opts.suites])
            .args(["--drop-every", &opts.drop_every.to_string(), "--bmcs", &opts.bmcs.to_string()])
            .args(opts.lose_reset_reply.then_some("--lose-reset-reply"))
            .arg("--state-dir")
            .arg(dir.path())
            .env_clear()
            .env("IPMI_BMC_PASSWORD", &opts.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/lab/ipmi_bmc.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read ready line");
        let port = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("ipmi_bmc.py did not start: {line:?}"));
        LabBmc { child, port, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default().trim().to_owned()
    }

    pub fn powered(&self) -> bool {
        self.read("power") == "1"
    }

    /// "pxe once efi", "disk persistent legacy", or "none".
    pub fn boot(&self) -> String {
        self.read("boot")
    }

    pub fn calls(&self) -> String {
        self.read("calls.log")
    }

    /// The ports of all its BMCs (with `bmcs` > 1 and port 0).
    pub fn ports(&self) -> Vec<u16> {
        if self.read("ports").is_empty() {
            return vec![self.port];
        }
        self.read("ports").lines().filter_map(|l| l.parse().ok()).collect()
    }

    /// Datagrams received so far (dropped ones included).
    pub fn received(&self) -> u64 {
        self.read("received").parse().unwrap_or(0)
    }
}

impl Drop for LabBmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
