//! The bootstrap image boots under real QEMU (TCG), gets a DHCP lease, downloads "the agent" from
//! the real daemon's `/v1/agent/binary`, and runs it. The agent here is a script that prints a
//! marker and powers off, so this checks the boot chain without the deploy flow.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metalhost_tests::daemon::Daemon;
use metalhost_tests::paths::workspace_root;

#[test]
fn the_bootstrap_boots_fetches_the_agent_and_runs_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("bootstrap");
    let built = Command::new(workspace_root().join("bootstrap/build.sh")).arg(&out).output().expect("build.sh");
    assert!(built.status.success(), "bootstrap build failed: {}", String::from_utf8_lossy(&built.stderr));

    let agent = dir.path().join("fake-agent");
    std::fs::write(&agent, "#!/bin/sh\necho \"METALHOST-AGENT-RAN args=$*\"\npoweroff -f\n").expect("agent");
    let d = Daemon::start_with(&format!("[agent]\nbinary = \"{}\"\n", agent.display()));
    // The bootstrap fetches the agent from the plain-HTTP boot port (busybox has no TLS).
    let port = d.boot_url.rsplit(':').next().expect("port").to_owned();

    // User-mode networking with restrict=on: the guest reaches only the daemon, through guestfwd.
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-kernel"])
        .arg(out.join("vmlinuz"))
        .arg("-initrd")
        .arg(out.join("initrd.gz"))
        .args(["-append", "console=ttyS0 quiet panic=-1 metalhost.api=https://10.0.2.100 metalhost.boot=http://10.0.2.100"])
        .arg("-netdev")
        .arg(format!("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 {port}"))
        .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu (apt install qemu-system-x86)");
    let mut stdout = qemu.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut console = Vec::new();
        let _ = stdout.read_to_end(&mut console);
        String::from_utf8_lossy(&console).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let exited = loop {
        if let Ok(Some(status)) = qemu.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let console = reader.join().unwrap_or_default();
    assert!(exited.is_some(), "the VM did not finish within the deadline; console:\n{console}");
    assert!(console.contains("[bootstrap] up at"), "console:\n{console}");
    assert!(console.contains("bound 10.0.2."), "no DHCP lease; console:\n{console}");
    assert!(console.contains("METALHOST-AGENT-RAN args=--api https://10.0.2.100"), "the agent did not run; console:\n{console}");
}
