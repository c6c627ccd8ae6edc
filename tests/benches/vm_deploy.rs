//! Issue 7's figure: the time from `instance create` to the deployed OS booting on a real QEMU VM,
//! through the daemon (median of RUNS, broken down by step from the node events), against the pure
//! boot path of the same VM without the daemon (`bench/boot_path.sh`: the same bootstrap, image and
//! VM, a plain HTTP server and a busybox stand-in for the agent), measured in the same run.
//! Target: the daemon's overhead is at most 10% of the total.
//!
//! usage: bench/vm_deploy.sh [RUNS]   (default 3)

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use metalhost_tests::paths;
use metalhost_tests::vm_lab::{self, OS_MARKER, VmLab, VmOptions, in_lab_netns};

const AGENT_STEP: &str = "agent writes the image";
const REBOOT_STEP: &str = "reboot from disk";

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    vm_lab::prepare();

    eprintln!("[bench] baseline: bench/boot_path.sh {runs} (no daemon)");
    let baseline = Command::new(paths::workspace_root().join("bench/boot_path.sh"))
        .arg(runs.to_string())
        .env("BOOTSTRAP_DIR", paths::bootstrap_dir())
        .current_dir(paths::workspace_root())
        .output()
        .expect("run bench/boot_path.sh");
    let baseline_text = String::from_utf8_lossy(&baseline.stdout).into_owned();
    assert!(baseline.status.success(), "boot_path.sh failed:\n{}", String::from_utf8_lossy(&baseline.stderr));
    let pure = median_of_line(&baseline_text, "whole boot path").expect("whole boot path in boot_path.sh output");

    let (tx, rx) = std::sync::mpsc::channel();
    in_lab_netns(1, move || async move {
        let lab = VmLab::start(VmOptions { vms: 1, skip_clean: true, ..VmOptions::default() }).await;
        let (_, gz) = lab.demo_os_gz();
        lab.upload("demo-os", &gz);
        let vm = &lab.nodes[0];
        let mut samples = Vec::new();
        let mut stages = Vec::new();
        for run in 1..=runs {
            let since = unix_ms();
            let started = Instant::now();
            let console_offset = std::fs::metadata(&vm.serial).map(|m| m.len()).unwrap_or(0);
            let console = watch_console(vm.serial.clone(), console_offset, started);
            let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "demo-os", "name": format!("bench{run}")})).await;
            assert_eq!(status, 201, "{body}");
            let n = lab.daemon.wait_node(&vm.name, &["active"], Duration::from_secs(600)).await;
            assert_eq!(n["state"], "active", "{n}\n{}", lab.post_mortem());
            let to_active = started.elapsed().as_secs_f64();
            vm.wait_os_boots(run, Duration::from_secs(180)).await;
            let to_os = started.elapsed().as_secs_f64();
            let events = lab.events(&vm.name).await;
            let steps = step_durations(&events, since);
            let seen = console.join().expect("console watcher");
            let reported = events
                .iter()
                .find(|e| e["to_state"] == "activating" && metalhost_tests::daemon::time_ms(&e["at"]).unwrap_or(0) >= since)
                .and_then(|e| metalhost_tests::daemon::time_ms(&e["at"]))
                .map(|at| (at - since) as f64 / 1000.0)
                .expect("the wait-agent -> activating event");
            let [init, dhcp, agent, os] = seen.map(|t| t.expect("every console marker appeared"));
            stages.push([init, dhcp - init, agent - dhcp, reported - agent, to_active - reported, os - to_active]);
            eprintln!("[bench] run {run}: create -> active {to_active:.2} s, -> {OS_MARKER} {to_os:.2} s");
            samples.push((to_active, to_os, steps));
            let (status, body) = lab.daemon.delete(&format!("/v1/instances/bench{run}")).await;
            assert!(status.is_success(), "{body}");
            lab.daemon.wait_node(&vm.name, &["available"], Duration::from_secs(120)).await;
        }
        tx.send((samples, stages)).expect("send");
    });
    let (samples, stages) = rx.recv().expect("samples");

    println!("{baseline_text}");
    println!("through the daemon, {runs} runs (seconds; median [min-max])");
    let mut names: Vec<String> = Vec::new();
    for (_, _, steps) in &samples {
        for (name, _) in steps {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    for name in &names {
        let col: Vec<f64> = samples.iter().map(|(_, _, s)| step_time(s, name)).collect();
        println!("  step {:<54} {}", name, stats(&col));
    }
    println!("  the same runs by stage, from the console markers and the node events:");
    for (i, name) in STAGES.iter().enumerate() {
        let col: Vec<f64> = stages.iter().map(|s: &[f64; 6]| s[i]).collect();
        println!("    {name:<57} {}", stats(&col));
    }
    let active: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let os: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let outside: Vec<f64> = samples.iter().map(|(a, _, s)| a - s.iter().map(|(_, t)| t).sum::<f64>()).collect();
    // What metalhost itself spends: every step but the agent's and the reboot (BMC + firmware), plus bookkeeping.
    let host_side: Vec<f64> = samples
        .iter()
        .zip(&outside)
        .map(|((_, _, s), o)| s.iter().filter(|(n, _)| n != AGENT_STEP && n != REBOOT_STEP).map(|(_, t)| t).sum::<f64>() + o)
        .collect();
    println!("  {:<59} {}", "daemon bookkeeping (create -> active minus steps)", stats(&outside));
    println!("  {:<59} {}", "create -> active", stats(&active));
    println!("  {:<59} {}", format!("create -> \"{OS_MARKER}\" on the console"), stats(&os));
    let daemon = median(&os);
    println!();
    println!("pure boot path {pure:.2} s, through the daemon {daemon:.2} s: ratio {:.3}", daemon / pure);
    println!("daemon overhead: {:.1}% of the total (target <= 10%)", 100.0 * (daemon - pure).max(0.0) / daemon);
    println!(
        "time in metalhost's own steps (switch, BMC boot/power calls, netboot entries, bookkeeping): {:.2} s, {:.1}% of the total",
        median(&host_side),
        100.0 * median(&host_side) / daemon
    );
}

/// What the console shows, in order: the bootstrap's /init, its DHCP lease, the agent downloaded,
/// and the deployed OS booted from disk.
const CONSOLE_MARKERS: [&str; 4] = ["[bootstrap] up at", "[bootstrap] dhcp:", "[bootstrap] agent downloaded", OS_MARKER];

const STAGES: [&str; 6] = [
    "create -> bootstrap /init (switch, BMC, firmware, iPXE)",
    "DHCP in the initramfs",
    "agent download",
    "agent: image write + verify + report",
    "activate (netboot, switch, boot device, reboot)",
    "disk boot (reboot -> deployed OS marker)",
];

/// Watches a serial log from `offset` on its own thread (the file does not care which netns reads
/// it) and notes when each of `CONSOLE_MARKERS` first appears, in seconds since `started`.
fn watch_console(path: std::path::PathBuf, offset: u64, started: Instant) -> std::thread::JoinHandle<[Option<f64>; 4]> {
    std::thread::spawn(move || {
        let mut seen = [None; 4];
        let deadline = started + Duration::from_secs(600);
        while seen.iter().any(Option::is_none) && Instant::now() < deadline {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let fresh = String::from_utf8_lossy(bytes.get(offset as usize..).unwrap_or(&[])).into_owned();
            for (slot, marker) in seen.iter_mut().zip(CONSOLE_MARKERS) {
                if slot.is_none() && fresh.contains(marker) {
                    *slot = Some(started.elapsed().as_secs_f64());
                }
            }
            // Polling a file qemu appends to: there is nothing to block on.
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    })
}

/// Step durations (seconds) by step name in the order they ran, from the events at or after `since_ms`.
fn step_durations(events: &[Value], since_ms: i64) -> Vec<(String, f64)> {
    let mut steps: Vec<(String, f64)> = Vec::new();
    for e in events.iter().filter(|e| e["kind"] == "step" && metalhost_tests::daemon::time_ms(&e["at"]).unwrap_or(0) >= since_ms) {
        let message = e["message"].as_str().unwrap_or("?");
        let name = message.strip_suffix(": ok").unwrap_or(message);
        let seconds = e["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        match steps.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += seconds,
            None => steps.push((name.to_owned(), seconds)),
        }
    }
    steps
}

fn step_time(steps: &[(String, f64)], name: &str) -> f64 {
    steps.iter().find(|(n, _)| n == name).map(|(_, s)| *s).unwrap_or(0.0)
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn stats(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:6.2}  [{min:.2}-{max:.2}]", median(values))
}

/// The median column of the boot_path.sh line starting with `label`.
fn median_of_line(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    line.split_whitespace().rev().nth(1)?.parse().ok()
}
