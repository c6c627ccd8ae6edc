//! The ipmitool and FreeIPMI power plugins, loaded by the real plugin runtime, against a real
//! OpenIPMI `ipmi_sim` BMC on loopback.

use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, BootDevice, Credentials, DriverError, PluginHost, PluginKind, PluginSpec, PowerAction, PowerState};
use metalhost_tests::ipmi_sim::{IpmiSim, free_udp_port};
use metalhost_tests::paths::plugin_spec;

fn spec(name: &str, programs: &[&str]) -> PluginSpec {
    PluginSpec { exec: programs.iter().map(|p| p.to_string()).collect(), call_timeout_s: 20, ..plugin_spec(name, PluginKind::Power) }
}

async fn host_with(plugin: &str) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let programs: &[&str] = if plugin == "ipmitool" { &["ipmitool"] } else { &["ipmi-power", "ipmi-config"] };
    let status = host.load(&[spec(plugin, programs)]).await;
    assert!(status[0].loaded, "{plugin} did not load: {:?}", status[0].error);
    (host, dir)
}

async fn lifecycle(plugin: &str) {
    let sim = IpmiSim::start("admin", "s3cret-bmc");
    let (host, _dir) = host_with(plugin).await;
    let driver = host.power(plugin).expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: "s3cret-bmc".into() };

    assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), PowerState::Off);
    driver.set_power_state(&bmc, &creds, PowerAction::On).await.expect("on");
    assert!(sim.powered(), "the hook should record power on");
    assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), PowerState::On);
    driver.set_power_state(&bmc, &creds, PowerAction::Off).await.expect("off");
    assert!(!sim.powered());
    assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), PowerState::Off);
    // Reboot from off powers on; from on it cycles (off, then ipmi_sim's timer powers on again).
    driver.set_power_state(&bmc, &creds, PowerAction::Reboot).await.expect("reboot from off");
    assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), PowerState::On);
    driver.set_power_state(&bmc, &creds, PowerAction::Reboot).await.expect("reboot from on");
    let deadline = Instant::now() + Duration::from_secs(5);
    while driver.get_power_state(&bmc, &creds).await.expect("status") != PowerState::On {
        assert!(Instant::now() < deadline, "the node did not come back after a cycle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = std::fs::read_to_string(sim.state_dir().join("calls.log")).unwrap_or_default();
    assert!(calls.contains("set power 0") || calls.contains("set reset"), "the cycle should reach the chassis: {calls}");

    for (device, persistent, expected) in [(BootDevice::Pxe, false, "pxe"), (BootDevice::Disk, true, "default"), (BootDevice::Pxe, true, "pxe")] {
        driver.set_boot_device(&bmc, &creds, device, persistent).await.expect("bootdev");
        assert_eq!(sim.boot_device().as_deref(), Some(expected), "{device:?} persistent={persistent}");
    }
}

async fn wrong_password_is_auth_failed(plugin: &str) {
    let sim = IpmiSim::start("admin", "right-password");
    let (host, _dir) = host_with(plugin).await;
    let driver = host.power(plugin).expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: "wrong-password".into() };
    let err = driver.get_power_state(&bmc, &creds).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(_))), "{plugin}: {err}");
    assert!(!err.to_string().contains("wrong-password"), "the password leaked into the error: {err}");
}

async fn nothing_listening_is_unreachable(plugin: &str) {
    let (host, _dir) = host_with(plugin).await;
    let driver = host.power(plugin).expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: free_udp_port() };
    let creds = Credentials { username: "admin".into(), password: "x".into() };
    let started = Instant::now();
    let err = driver.get_power_state(&bmc, &creds).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::Unreachable(_))), "{plugin}: {err}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}, past the call deadline", started.elapsed());
}

#[tokio::test]
async fn ipmitool_drives_ipmi_sim() {
    lifecycle("ipmitool").await;
}

#[tokio::test]
async fn freeipmi_drives_ipmi_sim() {
    lifecycle("freeipmi").await;
}

#[tokio::test]
async fn ipmitool_wrong_password() {
    wrong_password_is_auth_failed("ipmitool").await;
}

#[tokio::test]
async fn freeipmi_wrong_password() {
    wrong_password_is_auth_failed("freeipmi").await;
}

#[tokio::test]
async fn ipmitool_unreachable() {
    nothing_listening_is_unreachable("ipmitool").await;
}

#[tokio::test]
async fn freeipmi_unreachable() {
    nothing_listening_is_unreachable("freeipmi").await;
}

/// Passwords reach the tools through env or a 0600 file, never argv: watch every process the
/// plugins start while they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_argv() {
    let sim = IpmiSim::start("admin", "argv-canary-77");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    if text.contains("ipmitool") || text.contains("ipmi-power") || text.contains("ipmi-config") {
                        seen.push(text);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        seen
    });
    for plugin in ["ipmitool", "freeipmi"] {
        let (host, _dir) = host_with(plugin).await;
        let driver = host.power(plugin).expect("driver");
        let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
        let creds = Credentials { username: "admin".into(), password: "argv-canary-77".into() };
        for _ in 0..5 {
            driver.get_power_state(&bmc, &creds).await.expect("status");
            driver.set_boot_device(&bmc, &creds, BootDevice::Pxe, false).await.expect("bootdev");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");
    assert!(!seen.is_empty(), "the watcher should have seen the tools run");
    assert!(seen.iter().all(|c| !c.contains("argv-canary-77")), "a password reached argv: {seen:?}");
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// The hook's extension point later tests use to boot a real agent or VM: power-on starts
/// `on-power-on` detached with the boot device, power-off kills it.
#[tokio::test]
async fn power_on_starts_the_hook_child_and_power_off_kills_it() {
    let sim = IpmiSim::start("admin", "hook-pw");
    let marker = sim.dir().join("booted-from");
    sim.on_power_on(&format!("#!/bin/sh\necho \"$1\" > {}\nexec sleep 300\n", marker.display()));
    let (host, _dir) = host_with("ipmitool").await;
    let driver = host.power("ipmitool").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: "hook-pw".into() };

    driver.set_boot_device(&bmc, &creds, BootDevice::Pxe, true).await.expect("bootdev");
    driver.set_power_state(&bmc, &creds, PowerAction::On).await.expect("on");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&marker).map(|s| s.trim() != "pxe").unwrap_or(true) {
        assert!(Instant::now() < deadline, "on-power-on did not run with the boot device; log: {}", sim.hook_log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = std::fs::read_to_string(sim.state_dir().join("child.pid")).expect("child.pid").trim().to_owned();
    assert!(alive(&pid), "the child should run detached");

    driver.set_power_state(&bmc, &creds, PowerAction::Off).await.expect("off");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(&pid) {
        assert!(Instant::now() < deadline, "power off did not stop the child {pid}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sim.powered());
    assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), PowerState::Off);
}

/// FreeIPMI gets credentials in a config file whose syntax splits on whitespace: a password that
/// would not round-trip (or would add a directive) is refused, not mangled.
#[tokio::test]
async fn freeipmi_refuses_passwords_its_config_file_cannot_hold() {
    let (host, _dir) = host_with("freeipmi").await;
    let driver = host.power("freeipmi").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: free_udp_port() };
    for password in ["two words", "pw\nworkaround-flags x"] {
        let creds = Credentials { username: "admin".into(), password: password.into() };
        let err = driver.get_power_state(&bmc, &creds).await.expect_err("refused");
        assert!(matches!(err.driver(), Some(DriverError::Unsupported(_))), "{err}");
        assert!(!err.to_string().contains(password), "{err}");
    }
}
