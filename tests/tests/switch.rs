//! The Juniper switch plugin through the plugin runtime, against the fake-switches emulator, both
//! models; each move checked by an independent NETCONF client (paramiko + lxml).

use std::time::{Duration, Instant};

use metalhost_plugin_host::{DriverError, PluginHost, PluginKind, PluginSpec, Vlan};
use metalhost_tests::fake_switch::{FakeSwitch, free_tcp_port};
use metalhost_tests::paths::plugin_spec;

const EX: &str = "juniper_generic";
const QFX: &str = "juniper_qfx_copper_generic";

fn target(port: u16, password: &str) -> metalhost_netconf::Target {
    metalhost_netconf::Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        expected_host_key: None,
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(10),
    }
}

async fn juniper(syntax: &str) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let spec = PluginSpec { config: [("syntax".to_owned(), syntax.to_owned())].into(), ..plugin_spec("juniper", PluginKind::Switch) };
    let status = host.load(&[spec]).await;
    assert!(status[0].loaded, "{:?}", status[0].error);
    (host, dir)
}

fn provisioning() -> Vlan {
    Vlan { id: 100, name: "provisioning".into() }
}

fn tenant() -> Vlan {
    Vlan { id: 200, name: "tenant".into() }
}

fn assert_no_crash(switch: &FakeSwitch) {
    assert!(!switch.log().contains("Traceback"), "the emulator crashed on a request: {}", switch.log());
}

async fn moves_between_networks(model: &str, syntax: &str, mode_leaf: &str) {
    let switch = FakeSwitch::start(model, "admin", "sw-pw-1");
    let (host, _dir) = juniper(syntax).await;
    let driver = host.switch("juniper").expect("driver");
    let session = driver.session(target(switch.port, "sw-pw-1"));
    let description = session.describe().await.expect("describe");
    assert!(description.model.contains(mode_leaf), "{description:?}");
    assert!(description.capabilities.iter().any(|c| c.contains("candidate")), "{description:?}");
    for vlan in [provisioning(), tenant()] {
        session.ensure_vlan(&vlan).await.expect("ensure vlan");
    }
    session.ensure_vlan(&tenant()).await.expect("ensure is idempotent");
    assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read"), None, "a fresh port has no VLAN");
    for (vlan, expected) in [(provisioning(), 100), (tenant(), 200), (provisioning(), 100)] {
        session.set_access_vlan("ge-0/0/3", &vlan).await.expect("move");
        let seen = switch.port_config("ge-0/0/3");
        assert_eq!(seen.members, [expected], "independent get-config after the move to {expected}: one member, replaced");
        assert_eq!(seen.mode, Some((mode_leaf.to_owned(), "access".to_owned())), "the {syntax} dialect");
        assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read back"), Some(expected));
    }
    session.set_access_vlan("ge-0/0/3", &provisioning()).await.expect("a move to where it is already is fine");
    session.clear_port("ge-0/0/3").await.expect("clear");
    assert_eq!(switch.port_config("ge-0/0/3"), Default::default());
    assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read"), None);
    session.clear_port("ge-0/0/3").await.expect("clearing twice is fine");
    session.close().await;
    assert_no_crash(&switch);
}

#[tokio::test]
async fn ex_legacy_moves_provisioning_tenant_provisioning() {
    moves_between_networks(EX, "legacy", "port-mode").await;
}

#[tokio::test]
async fn qfx_els_moves_provisioning_tenant_provisioning() {
    moves_between_networks(QFX, "els", "interface-mode").await;
}

/// The emulator crashes and drops the connection on an edit of a port it does not have: the
/// plugin must look the port up first and never send that edit.
async fn unknown_port_is_not_found(model: &str, syntax: &str) {
    let switch = FakeSwitch::start(model, "admin", "sw-pw-2");
    let (host, _dir) = juniper(syntax).await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "sw-pw-2"));
    session.ensure_vlan(&tenant()).await.expect("vlan");
    let err = session.set_access_vlan("ge-0/0/42", &tenant()).await.expect_err("no such port");
    assert!(matches!(err.driver(), Some(DriverError::NotFound(m)) if m.contains("ge-0/0/42")), "{err}");
    let err = session.get_port_vlan("ge-0/0/42").await.expect_err("no such port");
    assert!(matches!(err.driver(), Some(DriverError::NotFound(_))), "{err}");
    let err = session.clear_port("ge-0/0/42").await.expect_err("no such port");
    assert!(matches!(err.driver(), Some(DriverError::NotFound(_))), "{err}");
    let err = session.set_access_vlan("ge-0/0/3.0", &tenant()).await.expect_err("a unit is not a port");
    assert!(matches!(err.driver(), Some(DriverError::InvalidConfig(_))), "{err}");
    // The same session still works, and the switch never saw the bad edit.
    session.set_access_vlan("ge-0/0/2", &tenant()).await.expect("still works");
    assert_eq!(switch.port_vlan("ge-0/0/2"), Some(200));
    session.close().await;
    assert_no_crash(&switch);
}

#[tokio::test]
async fn ex_unknown_port_is_not_found() {
    unknown_port_is_not_found(EX, "legacy").await;
}

#[tokio::test]
async fn qfx_unknown_port_is_not_found() {
    unknown_port_is_not_found(QFX, "els").await;
}

/// A commit the switch refuses (an access VLAN it does not have) is discarded and unlocked:
/// the port keeps its old VLAN, and the next change goes through.
#[tokio::test]
async fn a_refused_commit_is_discarded_and_unlocked() {
    let switch = FakeSwitch::start(EX, "admin", "sw-pw-3");
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "sw-pw-3"));
    session.ensure_vlan(&provisioning()).await.expect("vlan");
    session.set_access_vlan("ge-0/0/1", &provisioning()).await.expect("move");
    let missing = Vlan { id: 300, name: "missing".into() };
    let err = session.set_access_vlan("ge-0/0/1", &missing).await.expect_err("the switch has no VLAN 300");
    assert!(matches!(err.driver(), Some(DriverError::CommandFailed(m)) if m.contains("No vlan matches vlan tag 300")), "{err}");
    assert_eq!(switch.port_vlan("ge-0/0/1"), Some(100), "the refused change must not stick");
    // Unlocked and clean: a new session (the emulator's lock outlives sessions) can change things.
    session.close().await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "sw-pw-3"));
    session.ensure_vlan(&missing).await.expect("lock is free again");
    session.set_access_vlan("ge-0/0/1", &missing).await.expect("move");
    assert_eq!(switch.port_vlan("ge-0/0/1"), Some(300));
    // A VLAN name that exists with another id is not silently renumbered.
    let err = session.ensure_vlan(&Vlan { id: 301, name: "missing".into() }).await.expect_err("name taken");
    assert!(matches!(err.driver(), Some(DriverError::CommandFailed(m)) if m.contains("already has id")), "{err}");
    session.close().await;
    assert_no_crash(&switch);
}

/// The emulator silently drops the other dialect's mode leaf; the read-back must catch it.
#[tokio::test]
async fn the_wrong_syntax_is_caught_by_the_read_back() {
    let switch = FakeSwitch::start(QFX, "admin", "sw-pw-4");
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "sw-pw-4"));
    session.ensure_vlan(&tenant()).await.expect("vlan");
    let err = session.set_access_vlan("ge-0/0/4", &tenant()).await.expect_err("port-mode on an ELS switch");
    assert!(matches!(err.driver(), Some(DriverError::CommandFailed(m)) if m.contains("read-back") && m.contains("syntax")), "{err}");
    session.close().await;
}

/// The runtime calls `configure` when it loads a plugin: bad config refuses the load.
#[tokio::test]
async fn unknown_plugin_config_is_refused_at_load() {
    for (config, expected) in [(&[("syntax", "els"), ("colour", "blue")][..], "unknown key \"colour\""), (&[("syntax", "qfx")][..], "syntax must be")]
    {
        let dir = tempfile::tempdir().expect("tmp");
        let host = PluginHost::new(dir.path()).expect("runtime");
        let spec =
            PluginSpec { config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..plugin_spec("juniper", PluginKind::Switch) };
        let status = host.load(&[spec]).await;
        let error = status[0].error.clone().unwrap_or_default();
        assert!(!status[0].loaded && error.contains("invalid-config") && error.contains(expected), "{error}");
    }
}

#[tokio::test]
async fn wrong_password_gives_an_auth_error() {
    let switch = FakeSwitch::start(EX, "admin", "right-pw");
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "wrong-pw"));
    let err = session.get_port_vlan("ge-0/0/1").await.expect_err("auth");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(_))), "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
}

#[tokio::test]
async fn a_switch_that_is_not_listening_fails_clearly_in_time() {
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(free_tcp_port(), "x"));
    let started = Instant::now();
    let err = session.ensure_vlan(&tenant()).await.expect_err("unreachable");
    assert!(matches!(err.driver(), Some(DriverError::Unreachable(m)) if m.contains("127.0.0.1")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// Two nodes on one switch, each with its own session, their changes taking turns (the daemon
/// serialises changes per switch): both ports end up right, and neither move undoes the other.
async fn two_ports_on_one_switch(model: &str, syntax: &str) {
    let switch = FakeSwitch::start(model, "admin", "pw2");
    let (host, _dir) = juniper(syntax).await;
    let driver = host.switch("juniper").expect("driver");
    let a = driver.session(target(switch.port, "pw2"));
    let b = driver.session(target(switch.port, "pw2"));
    a.ensure_vlan(&tenant()).await.expect("vlan");
    b.ensure_vlan(&provisioning()).await.expect("vlan");
    a.set_access_vlan("ge-0/0/1", &provisioning()).await.expect("a");
    b.set_access_vlan("ge-0/0/4", &provisioning()).await.expect("b");
    a.set_access_vlan("ge-0/0/1", &tenant()).await.expect("a to tenant");
    b.set_access_vlan("ge-0/0/4", &tenant()).await.expect("b to tenant");
    a.set_access_vlan("ge-0/0/1", &provisioning()).await.expect("a back");
    a.close().await;
    b.close().await;
    assert_eq!((switch.port_vlan("ge-0/0/1"), switch.port_vlan("ge-0/0/4")), (Some(100), Some(200)));
    assert_no_crash(&switch);
}

#[tokio::test]
async fn ex_two_ports_on_one_switch_both_end_up_right() {
    two_ports_on_one_switch(EX, "legacy").await;
}

#[tokio::test]
async fn qfx_two_ports_on_one_switch_both_end_up_right() {
    two_ports_on_one_switch(QFX, "els").await;
}
