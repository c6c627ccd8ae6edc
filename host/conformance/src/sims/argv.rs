//! Watches the argv of every process this one starts (the plugin's exec children) while a suite
//! runs, as any local user could through /proc/PID/cmdline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct ArgvWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<BTreeSet<String>>>,
}

impl ArgvWatch {
    /// Children of this process other than `exclude` (the simulators the suite started).
    pub fn start(exclude: Vec<u32>) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let me = std::process::id();
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !flag.load(Ordering::Relaxed) {
                for pid in children(me) {
                    if exclude.contains(&pid) {
                        continue;
                    }
                    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_owned();
                        if !text.is_empty() {
                            seen.insert(text);
                        }
                    }
                }
                // Tools like ipmitool live for tens of milliseconds.
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        ArgvWatch { stop, thread: Some(thread) }
    }

    /// Every distinct command line seen.
    pub fn finish(mut self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for ArgvWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}
