//! The native IPMI-over-LAN plugin (`ipmi-lan`, contract 0.2.0, no exec grant) loaded by the real
//! plugin runtime: cipher suite 3 against OpenIPMI's `ipmi_sim` (every operation read back from its
//! chassis hook), suite 17 against the lab BMC (`tests/lab/ipmi_bmc.py`), which `ipmitool -C 17`
//! proves first; then loss, a wrong password, and BMCs offering only 17 or only 3.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{
    Bmc, BootDevice, BootMode, Credentials, DriverError, PluginHost, PluginKind, PluginSpec, PowerAction, PowerDriver, PowerState,
};
use metalhost_tests::ipmi_bmc::{LabBmc, LabBmcOptions};
use metalhost_tests::ipmi_sim::{IpmiSim, free_udp_port};
use metalhost_tests::paths::plugin_spec;

async fn host_with(config: &[(&str, &str)]) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let spec = PluginSpec {
        call_timeout_s: 20,
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        ..plugin_spec("ipmi-lan", PluginKind::Power)
    };
    assert!(spec.exec.is_empty(), "the native plugin runs with no exec grant");
    let status = host.load(&[spec]).await;
    assert!(status[0].loaded, "ipmi-lan did not load: {:?}", status[0].error);
    (host, dir)
}

fn creds(password: &str) -> Credentials {
    Credentials { username: "admin".into(), password: password.into() }
}

fn ipmitool(port: u16, password: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", &port.to_string(), "-U", "admin", "-E", "-R", "2", "-N", "2"])
        .args(args)
        .env("IPMI_PASSWORD", password)
        .output()
        .expect("run ipmitool");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The lab BMC first, with the reference client: ipmitool must accept its suite 17 and drive
/// power and the boot device through it.
#[test]
fn ipmitool_c17_drives_the_lab_bmc() {
    let bmc = LabBmc::start(&LabBmcOptions { suites: "17".into(), ..Default::default() });
    let pw = "lab-bmc-pw";
    assert!(ipmitool(bmc.port, pw, &["chassis", "power", "status"]).contains("Chassis Power is off"));
    assert!(ipmitool(bmc.port, pw, &["chassis", "power", "on"]).contains("Up/On"));
    assert!(bmc.powered());
    assert!(ipmitool(bmc.port, pw, &["chassis", "power", "status"]).contains("Chassis Power is on"));
    assert!(ipmitool(bmc.port, pw, &["chassis", "bootdev", "pxe", "options=efiboot"]).contains("Set Boot Device to pxe"));
    assert_eq!(bmc.boot(), "pxe once efi");
    assert!(ipmitool(bmc.port, pw, &["chassis", "bootdev", "disk", "options=persistent"]).contains("Set Boot Device to disk"));
    assert_eq!(bmc.boot(), "disk persistent legacy");
    assert!(ipmitool(bmc.port, pw, &["chassis", "power", "off"]).contains("Down/Off"));
    assert!(!bmc.powered());
    assert!(bmc.calls().contains("session") && bmc.calls().contains("suite 17"), "{}", bmc.calls());
    let wrong = ipmitool(bmc.port, "not-the-password", &["chassis", "power", "status"]);
    assert!(wrong.contains("Unable to establish IPMI v2 / RMCP+ session"), "{wrong}");
}

async fn status(driver: &PowerDriver<'_>, bmc: &Bmc, creds: &Credentials) -> PowerState {
    driver.get_power_state(bmc, creds).await.unwrap_or_else(|e| panic!("status: {e}"))
}

#[tokio::test]
async fn suite_3_drives_ipmi_sim() {
    let sim = IpmiSim::start("admin", "s3cret-bmc");
    let (host, _dir) = host_with(&[]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = creds("s3cret-bmc");

    assert_eq!(status(&driver, &bmc, &creds).await, PowerState::Off);
    driver.set_power_state(&bmc, &creds, PowerAction::On).await.expect("on");
    assert!(sim.powered(), "the hook should record power on");
    assert_eq!(status(&driver, &bmc, &creds).await, PowerState::On);
    driver.set_power_state(&bmc, &creds, PowerAction::Off).await.expect("off");
    assert!(!sim.powered());
    driver.set_power_state(&bmc, &creds, PowerAction::Off).await.expect("off when off is fine");
    // Reboot from off powers on; from on it hard-resets (the hook records "set reset").
    driver.set_power_state(&bmc, &creds, PowerAction::Reboot).await.expect("reboot from off");
    assert!(sim.powered());
    driver.set_power_state(&bmc, &creds, PowerAction::Reboot).await.expect("reboot from on");
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(&driver, &bmc, &creds).await != PowerState::On {
        assert!(Instant::now() < deadline, "the node did not come back after a reset");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sim.calls().contains("set reset") || sim.calls().contains("set power 0"), "the reset should reach the chassis: {}", sim.calls());

    for (device, persistent, mode, expected) in [
        (BootDevice::Pxe, false, Some(BootMode::Uefi), "pxe"),
        (BootDevice::Disk, true, None, "default"),
        (BootDevice::Pxe, true, Some(BootMode::Legacy), "pxe"),
    ] {
        driver.set_boot_device_in(&bmc, &creds, device, persistent, mode).await.unwrap_or_else(|e| panic!("bootdev {device:?}: {e}"));
        assert_eq!(sim.boot_device().as_deref(), Some(expected), "{device:?} persistent={persistent}");
    }
}

#[tokio::test]
async fn suite_3_wrong_password_is_auth_failed() {
    let sim = IpmiSim::start("admin", "right-password");
    let (host, _dir) = host_with(&[]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let err = driver.get_power_state(&bmc, &creds("wrong-password")).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(_))), "{err}");
    assert!(!err.to_string().contains("wrong-password") && !err.to_string().contains("right-password"), "a password leaked: {err}");
    let err =
        driver.get_power_state(&bmc, &Credentials { username: "nobody".into(), password: "right-password".into() }).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(m)) if m.contains("unauthorized name")), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let (host, _dir) = host_with(&[("timeout-ms", "200"), ("retries", "1")]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: free_udp_port() };
    let err = driver.get_power_state(&bmc, &creds("x")).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::Unreachable(_))), "{err}");
}

/// Power and boot device through the lab BMC, read back from its state.
async fn lifecycle(driver: &PowerDriver<'_>, lab: &LabBmc, creds: &Credentials) {
    let bmc = Bmc { host: "127.0.0.1".into(), port: lab.port };
    assert_eq!(status(driver, &bmc, creds).await, PowerState::Off);
    driver.set_power_state(&bmc, creds, PowerAction::On).await.expect("on");
    assert!(lab.powered());
    assert_eq!(status(driver, &bmc, creds).await, PowerState::On);
    driver.set_power_state(&bmc, creds, PowerAction::Reboot).await.expect("reboot from on");
    assert!(lab.calls().contains("chassis control 3"), "reboot of an on node is a hard reset: {}", lab.calls());
    driver.set_power_state(&bmc, creds, PowerAction::Off).await.expect("off");
    assert!(!lab.powered());
    driver.set_power_state(&bmc, creds, PowerAction::Reboot).await.expect("reboot from off");
    assert!(lab.powered(), "reboot of an off node powers it on");
    driver.set_boot_device_in(&bmc, creds, BootDevice::Pxe, false, Some(BootMode::Uefi)).await.expect("bootdev pxe");
    assert_eq!(lab.boot(), "pxe once efi");
    // No mode: the EFI bit the BMC has is kept.
    driver.set_boot_device_in(&bmc, creds, BootDevice::Disk, true, None).await.expect("bootdev disk");
    assert_eq!(lab.boot(), "disk persistent efi");
    driver.set_boot_device_in(&bmc, creds, BootDevice::Disk, true, Some(BootMode::Legacy)).await.expect("bootdev disk legacy");
    assert_eq!(lab.boot(), "disk persistent legacy");
}

#[tokio::test]
async fn suite_17_drives_the_lab_bmc() {
    let lab = LabBmc::start(&LabBmcOptions::default());
    let (host, _dir) = host_with(&[]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    lifecycle(&driver, &lab, &creds("lab-bmc-pw")).await;
    let calls = lab.calls();
    assert!(calls.contains("suite 17") && !calls.contains("suite 3"), "both offered: 17 is preferred: {calls}");
}

#[tokio::test]
async fn every_third_datagram_lost() {
    let lab = LabBmc::start(&LabBmcOptions { drop_every: 3, ..Default::default() });
    let (host, _dir) = host_with(&[("timeout-ms", "150"), ("retries", "4")]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    lifecycle(&driver, &lab, &creds("lab-bmc-pw")).await;
    assert!(lab.received() > 30, "the BMC saw {} datagrams", lab.received());
}

/// The reply to a hard reset is lost: the plugin resends the same packet (same session sequence
/// number), the BMC's replay check discards it, and the node is reset once, not twice.
#[tokio::test]
async fn a_reset_whose_reply_is_lost_runs_once() {
    let lab = LabBmc::start(&LabBmcOptions { lose_reset_reply: true, ..Default::default() });
    let (host, _dir) = host_with(&[("timeout-ms", "150"), ("retries", "2")]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let (bmc, pw) = (Bmc { host: "127.0.0.1".into(), port: lab.port }, creds("lab-bmc-pw"));
    driver.set_power_state(&bmc, &pw, PowerAction::On).await.expect("on");
    driver.set_power_state(&bmc, &pw, PowerAction::Reboot).await.expect("reboot, its reply lost");
    let calls = lab.calls();
    assert_eq!(calls.lines().filter(|l| *l == "chassis control 3").count(), 1, "one reset, not one per retransmission: {calls}");
    assert!(calls.contains("reply to chassis control 3 lost") && calls.contains("duplicate sequence number"), "{calls}");
    assert!(lab.powered());
}

#[tokio::test]
async fn suite_17_wrong_password_and_user_are_auth_failed() {
    let lab = LabBmc::start(&LabBmcOptions { suites: "17".into(), ..Default::default() });
    let (host, _dir) = host_with(&[]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: lab.port };
    let err = driver.get_power_state(&bmc, &creds("wrong-password")).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(m)) if m.contains("wrong password") && m.contains("suite 17")), "{err}");
    assert!(!err.to_string().contains("wrong-password") && !err.to_string().contains("lab-bmc-pw"), "a password leaked: {err}");
    let err = driver.get_power_state(&bmc, &Credentials { username: "root".into(), password: "lab-bmc-pw".into() }).await.expect_err("must fail");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(m)) if m.contains("unauthorized name") && m.contains("0x0d")), "{err}");
}

#[tokio::test]
async fn a_bmc_offering_only_17_or_only_3() {
    let pw = creds("lab-bmc-pw");
    for (offered, config, used) in [("17", &[][..], "suite 17"), ("3", &[][..], "suite 3"), ("3", &[("cipher-suites", "3,17")][..], "suite 3")] {
        let lab = LabBmc::start(&LabBmcOptions { suites: offered.into(), ..Default::default() });
        let (host, _dir) = host_with(config).await;
        let driver = host.power("ipmi-lan").expect("driver");
        let bmc = Bmc { host: "127.0.0.1".into(), port: lab.port };
        assert_eq!(status(&driver, &bmc, &pw).await, PowerState::Off);
        assert!(lab.calls().contains(used), "offered {offered}: {}", lab.calls());
    }
    // A BMC with only 17 and a plugin told to use only 3: unsupported, naming both sides.
    let lab = LabBmc::start(&LabBmcOptions { suites: "17".into(), ..Default::default() });
    let (host, _dir) = host_with(&[("cipher-suites", "3")]).await;
    let driver = host.power("ipmi-lan").expect("driver");
    let bmc = Bmc { host: "127.0.0.1".into(), port: lab.port };
    let err = driver.get_power_state(&bmc, &pw).await.expect_err("no common suite");
    assert!(matches!(err.driver(), Some(DriverError::Unsupported(m)) if m.contains("[3]") && m.contains("[17]")), "{err}");
}
