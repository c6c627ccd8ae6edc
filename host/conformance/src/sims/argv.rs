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
    /// Descendants of this process outside `exclude`'s subtrees (the simulators the suite started):
    /// an exec'd program is the child of a fork of this process that cloned it into its network
    /// scope (ARCHITECTURE.md, plugin-host), and that fork, still this program, is left out.
    pub fn start(exclude: Vec<u32>) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let me = std::process::id();
        let own = std::fs::read("/proc/self/cmdline").unwrap_or_default();
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !flag.load(Ordering::Relaxed) {
                for pid in descendants(me, &exclude) {
                    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
                        && cmdline != own
                    {
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

fn descendants(root: u32, exclude: &[u32]) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        if let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, _) in parents.iter().filter(|(pid, ppid)| *ppid == parent && !exclude.contains(pid)) {
            out.push(pid);
            frontier.push(pid);
        }
    }
    out
}
