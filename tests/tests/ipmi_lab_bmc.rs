//! The compiled lab BMC (`lab-bmc`, tests/src/compiled_bmc), proven first against the reference
//! client: `ipmitool -I lanplus` with cipher suites 17 and 3 reads and sets power and the boot
//! device through it, and a wrong password fails the handshake. Then the daemon's own plugin
//! (`ipmi-lan`) against many BMCs of one process.

use metalhost_plugin_host::{Bmc, Credentials, PluginHost, PluginKind, PluginSpec, PowerAction, PowerState};
use metalhost_tests::compiled_bmc::CompiledBmc;
use metalhost_tests::ipmi_bmc::LabBmcOptions;
use metalhost_tests::paths::plugin_spec;

const PASSWORD: &str = "compiled-bmc-pw";

/// ipmitool with the password in its environment (`-E`), never on its command line.
fn ipmitool(suite: &str, port: u16, password: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", suite, "-H", "127.0.0.1", "-p", &port.to_string(), "-U", "admin", "-E", "-R", "1", "-N", "1"])
        .args(args)
        .env("IPMI_PASSWORD", password)
        .output()
        .expect("run ipmitool");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn drive_with_ipmitool(suite: &str) {
    let bmc = CompiledBmc::start(&LabBmcOptions { suites: suite.into(), password: PASSWORD.into(), ..Default::default() }, 1);
    let run = |args: &[&str]| {
        let (ok, out) = ipmitool(suite, bmc.port, PASSWORD, args);
        assert!(ok, "ipmitool -C {suite} {args:?}: {out}");
        out
    };
    assert!(run(&["chassis", "power", "status"]).contains("Chassis Power is off"));
    assert!(run(&["chassis", "power", "on"]).contains("Up/On"));
    assert!(run(&["chassis", "power", "status"]).contains("Chassis Power is on"));
    assert!(run(&["chassis", "bootdev", "pxe"]).contains("Set Boot Device to pxe"));
    assert!(run(&["chassis", "bootparam", "get", "5"]).contains("Force PXE"));
    assert!(run(&["chassis", "power", "cycle"]).contains("Cycle"));
    assert!(run(&["chassis", "power", "off"]).contains("Down/Off"));
    assert!(run(&["chassis", "power", "status"]).contains("Chassis Power is off"));
    assert!(run(&["mc", "info"]).contains("Device ID"));
}

#[test]
fn ipmitool_c17_drives_the_compiled_bmc() {
    drive_with_ipmitool("17");
}

#[test]
fn ipmitool_c3_drives_the_compiled_bmc() {
    drive_with_ipmitool("3");
}

#[test]
fn a_wrong_password_fails_the_handshake() {
    let bmc = CompiledBmc::start(&LabBmcOptions { password: PASSWORD.into(), ..Default::default() }, 1);
    for suite in ["17", "3"] {
        let (ok, out) = ipmitool(suite, bmc.port, "not-the-password", &["chassis", "power", "status"]);
        assert!(!ok, "-C {suite} with a wrong password: {out}");
        assert!(!out.contains("Chassis Power is"), "{out}");
        // The right one still works afterwards.
        let (ok, out) = ipmitool(suite, bmc.port, PASSWORD, &["chassis", "power", "status"]);
        assert!(ok && out.contains("Chassis Power is off"), "{out}");
    }
}

#[test]
fn a_suite_the_bmc_does_not_offer_is_refused() {
    let bmc = CompiledBmc::start(&LabBmcOptions { suites: "17".into(), password: PASSWORD.into(), ..Default::default() }, 1);
    let (ok, out) = ipmitool("3", bmc.port, PASSWORD, &["chassis", "power", "status"]);
    assert!(!ok, "{out}");
}

/// The daemon's native plugin against many BMCs of one process: every one answers, each keeps
/// its own power state.
#[tokio::test]
async fn the_ipmi_lan_plugin_drives_many_compiled_bmcs() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let spec = PluginSpec { call_timeout_s: 20, ..plugin_spec("ipmi-lan", PluginKind::Power) };
    assert!(host.load(&[spec]).await[0].loaded);
    let driver = host.power("ipmi-lan").expect("ipmi-lan");
    let creds = Credentials { username: "admin".into(), password: PASSWORD.into() };
    for suites in ["17,3", "3"] {
        let farm = CompiledBmc::start(&LabBmcOptions { suites: suites.into(), password: PASSWORD.into(), bmcs: 200, ..Default::default() }, 2);
        let ports = farm.ports();
        assert_eq!(ports.len(), 200);
        let bmcs: Vec<Bmc> = ports.iter().map(|port| Bmc { host: "127.0.0.1".into(), port: *port }).collect();
        driver.set_power_state(&bmcs[7], &creds, PowerAction::On).await.expect("power on");
        let states = futures::future::join_all(bmcs.iter().map(|b| driver.get_power_state(b, &creds))).await;
        for (i, state) in states.into_iter().enumerate() {
            let want = if i == 7 { PowerState::On } else { PowerState::Off };
            assert_eq!(state.expect("power status"), want, "BMC {i} (suites {suites})");
        }
        let wrong = Credentials { username: "admin".into(), password: "wrong".into() };
        assert!(driver.get_power_state(&bmcs[0], &wrong).await.is_err());
    }
}
