//! A packet capture with the real `tcpdump` (issue 31): started in the caller's network namespace
//! on every interface, stopped by PID, and searched for what must never cross the wire in clear.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Captures whole packets on every interface of this thread's network namespace.
    pub fn start() -> Capture {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("capture.pcap");
        let child = Command::new("tcpdump")
            .args(["-i", "any", "-s", "0", "-U", "-n", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tcpdump (apt install tcpdump: scripts/setup)");
        // tcpdump creates the file once it listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(file.exists(), "tcpdump did not start capturing");
        Capture { child: Some(child), file, _dir: dir }
    }

    /// Stops the capture (SIGINT, so tcpdump writes what it holds) and returns what it holds.
    pub fn stop(&mut self) -> Captured {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let bytes = std::fs::metadata(&self.file).expect("the capture").len();
        Captured { file: self.file.clone(), bytes }
    }
}

/// A finished capture file.
pub struct Captured {
    file: PathBuf,
    pub bytes: u64,
}

impl Captured {
    /// Which of `needles` occur in the capture (ASCII case ignored when asked). Searched by
    /// Python's bytes.find: tens of MiB, many needles, in a debug-built test would take minutes.
    pub fn found(&self, needles: &[&[u8]], ignore_case: bool) -> Vec<bool> {
        let script = "import sys\n\
                      data = open(sys.argv[1], 'rb').read()\n\
                      if sys.argv[2] == '1': data = data.lower()\n\
                      for h in sys.argv[3:]:\n\
                      \x20   n = bytes.fromhex(h)\n\
                      \x20   print(1 if (n.lower() if sys.argv[2] == '1' else n) in data else 0)\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&self.file)
            .arg(if ignore_case { "1" } else { "0" })
            .args(needles.iter().map(hex::encode))
            .output()
            .expect("run python3");
        assert!(out.status.success(), "searching the capture: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim() == "1").collect()
    }

    pub fn contains(&self, needle: &[u8], ignore_case: bool) -> bool {
        self.found(&[needle], ignore_case).first().copied().unwrap_or(false)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
