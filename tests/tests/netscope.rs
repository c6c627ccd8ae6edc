//! A driver's programs reach its node's BMC and nothing else (issue 28): attacked as a hostile
//! plugin would, with real ipmitool against real `ipmi_sim` BMCs that share the node's
//! credentials, and a UDP listener of the test's own. Each attack first runs where it is allowed
//! (the target is the call's own BMC), so the attack is shown to work, then where it is not.

use std::net::UdpSocket;
use std::time::Duration;

use metalhost_plugin_host::{Bmc, CallResult, Credentials, ExecPolicy, PluginHost, PluginKind, PluginSpec, PowerAction, PowerState};
use metalhost_tests::console::{open, sol_programs};
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::{plugin_spec, plugin_wasm};
use serde_json::json;

const PASSWORD: &str = "shared-s3cret-pw";

fn escape(name: &str, mode: &str, target: u16) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        exec: vec!["ipmitool".to_owned()],
        call_timeout_s: 20,
        config: [("mode".to_owned(), mode.to_owned()), ("target".to_owned(), target.to_string())].into(),
        ..plugin_spec("escape-power", PluginKind::Power)
    }
}

async fn host_with(specs: &[PluginSpec]) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::with_exec_policy(dir.path(), &ExecPolicy::default()).expect("runtime");
    for status in host.load(specs).await {
        assert!(status.loaded, "{} did not load: {:?}", status.name, status.error);
        let confinement = status.confinement.expect("exec grants are confined");
        assert!(confinement.network_scope.is_some(), "this kernel should scope programs: {confinement:?}");
    }
    (host, dir)
}

async fn call(host: &PluginHost, name: &str, bmc_port: u16) -> CallResult<PowerState> {
    let bmc = Bmc { host: "127.0.0.1".into(), port: bmc_port };
    let creds = Credentials { username: "admin".into(), password: PASSWORD.into() };
    host.power(name).expect("loaded").get_power_state(&bmc, &creds).await
}

/// What the attack's tool said (the plugin always reports it as an error).
fn said(outcome: CallResult<PowerState>) -> String {
    outcome.expect_err("the attack plugin always reports an error").to_string()
}

#[tokio::test]
async fn a_granted_ipmitool_cannot_power_on_another_bmc() {
    let node_bmc = IpmiSim::start("admin", PASSWORD);
    let other = IpmiSim::start("admin", PASSWORD);
    let (host, _cache) = host_with(&[escape("other-bmc", "ipmitool-other-bmc", other.port)]).await;

    let text = said(call(&host, "other-bmc", node_bmc.port).await);
    assert!(text.contains("status=") && !text.contains("status=0"), "the attack should run its tool and fail: {text}");
    assert!(!other.powered(), "the other BMC was powered on through the node's call: {text}");
    assert!(!other.calls().contains("power"), "the other BMC saw a chassis call: {}", other.calls());
    assert!(!node_bmc.powered());

    // Control: with the other BMC as the call's own, the same plugin powers it on.
    let text = said(call(&host, "other-bmc", other.port).await);
    assert!(text.contains("status=0"), "{text}");
    assert!(other.powered(), "the control attack should power the BMC on: {text}");
}

#[tokio::test]
async fn the_bmc_password_never_reaches_a_listener_on_another_port() {
    let node_bmc = IpmiSim::start("admin", PASSWORD);
    let listener = UdpSocket::bind("127.0.0.1:0").expect("bind");
    listener.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let port = listener.local_addr().expect("addr").port();
    let (host, _cache) = host_with(&[escape("lan-password", "ipmitool-lan-password", port)]).await;

    let text = said(call(&host, "lan-password", node_bmc.port).await);
    assert!(text.contains("status="), "the attack should run its tool: {text}");
    let mut buf = [0u8; 2048];
    match listener.recv(&mut buf) {
        Ok(n) => panic!("the listener received {n} bytes from the node's call: {text}"),
        Err(e) => assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}"),
    }

    // Control: with the listener as the call's BMC, ipmitool's packets reach it.
    listener.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let control = tokio::spawn(async move {
        let (host, _cache) = host_with(&[escape("lan-password", "ipmitool-lan-password", port)]).await;
        said(call(&host, "lan-password", port).await)
    });
    let n = tokio::task::spawn_blocking(move || listener.recv(&mut buf)).await.expect("join");
    assert!(n.is_ok_and(|n| n > 0), "the control attack should reach the listener");
    control.abort();
}

/// net-escape (0.2.0) granted ipmitool for consoles, describing a console on another BMC.
fn console_daemon(other: &IpmiSim) -> Daemon {
    Daemon::start_with(&format!(
        "[[plugin]]\nname = \"console-elsewhere\"\nkind = \"power\"\npath = \"{}\"\nconsole = [\"ipmitool\"]\n\
         config = {{ mode = \"http-bmc\", console-port = \"{}\" }}\n",
        plugin_wasm("net-escape").display(),
        other.port
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_described_on_another_bmc_is_refused_before_anything_runs() {
    let node_bmc = IpmiSim::start("admin", PASSWORD);
    let other = IpmiSim::start("admin", PASSWORD);
    let daemon = console_daemon(&other);
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let mut body = node_body(1, switch["id"].as_i64().expect("id"), PASSWORD);
    body["bmc_port"] = json!(node_bmc.port);
    body["power_driver"] = json!("console-elsewhere");
    let (status, node) = daemon.post("/v1/nodes", &body).await;
    assert!(status.is_success(), "{node}");

    let (status, message) = open(&daemon, "node1", "", Some(TOKEN)).await.expect_err("refused");
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("refuses") && message.contains(&format!("port {}", other.port)), "{message}");
    assert!(sol_programs(other.port).is_empty(), "a console program ran against the other BMC");
    assert!(!other.powered() && other.calls().is_empty(), "the other BMC was touched: {}", other.calls());
    // The daemon says what it refused, with the arguments, without the password.
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("console refused")).expect("the refusal is logged");
    assert!(line.contains(&other.port.to_string()) && line.contains("sol"), "{line}");
    assert!(!log.contains(PASSWORD), "the password reached the daemon's log");

    // A workflow's console recorder meets the same refusal once, and gives up: it is no
    // transient failure.
    let (status, body) = daemon.post("/v1/nodes/node1/inspect", &json!({})).await;
    assert!(status.is_success(), "{status} {body}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = daemon.log();
    assert_eq!(log.matches("console not recorded").count(), 1, "the recorder retried:\n{log}");
    assert_eq!(log.matches("console refused").count(), 2, "{log}");
    assert!(sol_programs(other.port).is_empty());
    assert!(!other.powered() && other.calls().is_empty(), "the other BMC was touched: {}", other.calls());
}

/// Honest plugins keep working: the ipmitool plugin powers its own BMC, also when the node's BMC
/// is given by name (the plugin is told the address the daemon resolved; its program may not ask
/// DNS itself).
#[tokio::test]
async fn the_ipmitool_plugin_drives_its_own_bmc_by_address_or_by_name() {
    let sim = IpmiSim::start("admin", PASSWORD);
    let spec = PluginSpec { exec: vec!["ipmitool".to_owned()], ..plugin_spec("ipmitool", PluginKind::Power) };
    let (host, _cache) = host_with(&[spec]).await;
    let creds = Credentials { username: "admin".into(), password: PASSWORD.into() };
    let driver = host.power("ipmitool").expect("loaded");
    for name in ["127.0.0.1", "localhost"] {
        let bmc = Bmc { host: name.into(), port: sim.port };
        let action = if sim.powered() { PowerAction::Off } else { PowerAction::On };
        driver.set_power_state(&bmc, &creds, action).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = if action == PowerAction::On { PowerState::On } else { PowerState::Off };
        assert_eq!(driver.get_power_state(&bmc, &creds).await.expect("status"), expected, "{name}");
    }
}
