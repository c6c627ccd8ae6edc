//! The compiled lab BMC: the RMCP+ responder of `tests/lab/ipmi_bmc.py` in Rust, serving thousands
//! of BMCs (one UDP port each on 127.0.0.1) from one process, so that a sweep or a mass deploy
//! measures the daemon rather than the BMCs. `protocol.rs` is one BMC (pure: datagram in,
//! datagram out), `serve.rs` the sockets, `src/bin/lab-bmc.rs` the program, and [`CompiledBmc`]
//! starts that program and stops it by PID on drop. The password reaches it in its environment,
//! never its argv.

pub mod protocol;
pub mod serve;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::ipmi_bmc::LabBmcOptions;
use crate::paths::host_binary;

/// A running `lab-bmc` process.
pub struct CompiledBmc {
    child: Child,
    /// The first BMC's port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl CompiledBmc {
    /// Starts `opts.bmcs` BMCs with the account and suites of `opts` (the Python BMC's options;
    /// its fault injections are not offered here) on `threads` worker threads.
    pub fn start(opts: &LabBmcOptions, threads: usize) -> CompiledBmc {
        assert!(opts.drop_every == 0 && !opts.lose_reset_reply, "the compiled lab BMC injects no faults: use tests/lab/ipmi_bmc.py");
        let dir = tempfile::tempdir().expect("tmp");
        let mut child = Command::new(host_binary("lab-bmc"))
            .args(["--port", &opts.port.to_string(), "--user", &opts.username, "--suites", &opts.suites])
            .args(["--bmcs", &opts.bmcs.to_string(), "--threads", &threads.to_string()])
            .arg("--state-dir")
            .arg(dir.path())
            .env_clear()
            .env("IPMI_BMC_PASSWORD", &opts.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lab-bmc (built with the workspace's binaries)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read ready line");
        let port = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("lab-bmc did not start: {line:?}"));
        CompiledBmc { child, port, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The ports of all its BMCs.
    pub fn ports(&self) -> Vec<u16> {
        self.read("ports").lines().filter_map(|l| l.parse().ok()).collect()
    }

    /// Datagrams received so far (updated every 100 ms).
    pub fn received(&self) -> u64 {
        self.read("received").trim().parse().unwrap_or(0)
    }

    /// CPU time the process used so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
        ticks as f64 / 100.0
    }
}

impl Drop for CompiledBmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
