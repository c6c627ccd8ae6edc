//! The README's first command works: `scripts/demo` runs the QEMU lab end to end (a VM netboots,
//! the agent writes the OS, the VM boots it from disk, the instance is destroyed and the disk
//! cleaned) and leaves no namespace behind.

use std::process::Command;

use metalhost_tests::paths::workspace_root;

#[test]
fn scripts_demo_runs_the_vm_lab_end_to_end() {
    let out = Command::new(workspace_root().join("scripts/demo")).output().expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "[8/8]",
        "metalhost-demo-os: booted mac=52:54:00:00:d0:01",
        // The default power driver is ipmi-lan, whose console the daemon records over SOL.
        "serial metalhost-demo-os: booted mac=52:54:00:00:d0:01",
        "\"members\": [200]",
        "instance web1 destroyed",
        "first MiB of vm1's disk after cleaning: 0 non-zero bytes",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in the demo's output:\n{stdout}\nstderr:\n{stderr}");
    }
    let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns");
    let pid_suffix = stdout.split("deleting mhdemo").nth(1).map(|s| s.trim().to_owned()).unwrap_or_default();
    assert!(!pid_suffix.is_empty(), "the demo did not say which netns it made");
    assert!(!String::from_utf8_lossy(&netns.stdout).contains(&format!("mhdemo{pid_suffix}")), "the demo left its netns behind");
}
