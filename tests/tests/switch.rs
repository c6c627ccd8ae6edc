//! The Juniper switch plugin through the plugin runtime, against the fake-switches emulator, both
//! models; each move checked by an independent NETCONF client.

use std::time::{Duration, Instant};

use metalhost_plugin_host::{DriverError, PluginHost, PluginKind, PluginSpec, Vlan};
use metalhost_tests::fake_switch::{FakeSwitch, free_tcp_port};
use metalhost_tests::paths::plugin_wasm;

fn target(port: u16, password: &str) -> metalhost_netconf::Target {
    metalhost_netconf::Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        expected_host_key: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    }
}

async fn juniper(syntax: &str) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let spec = PluginSpec {
        name: "juniper".into(),
        kind: PluginKind::Switch,
        path: plugin_wasm("juniper"),
        sha256: None,
        exec: vec![],
        dirs: vec![],
        memory_mb: 64,
        call_timeout_s: 30,
        config: [("syntax".to_owned(), syntax.to_owned())].into(),
    };
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

async fn moves_between_networks(model: &str, syntax: &str) {
    let switch = FakeSwitch::start(model, "admin", "sw-pw-1");
    let (host, _dir) = juniper(syntax).await;
    let driver = host.switch("juniper").expect("driver");
    let session = driver.session(target(switch.port, "sw-pw-1"));
    let description = session.describe().await.expect("describe");
    assert!(description.model.contains(if syntax == "els" { "interface-mode" } else { "port-mode" }), "{description:?}");
    assert!(!description.capabilities.is_empty());
    for vlan in [provisioning(), tenant()] {
        session.ensure_vlan(&vlan).await.expect("ensure vlan");
    }
    session.ensure_vlan(&tenant()).await.expect("ensure is idempotent");
    for (vlan, expected) in [(provisioning(), 100), (tenant(), 200), (provisioning(), 100)] {
        session.set_access_vlan("ge-0/0/3", &vlan).await.expect("move");
        assert_eq!(switch.port_vlan("ge-0/0/3"), Some(expected), "independent get-config after the move to {expected}");
        assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read back"), Some(expected));
    }
    session.clear_port("ge-0/0/3").await.expect("clear");
    assert_eq!(switch.port_vlan("ge-0/0/3"), None);
    // A port the switch does not have: a clear error, and the session (and switch) survive.
    let err = session.set_access_vlan("ge-0/0/42", &tenant()).await.expect_err("no such port");
    assert!(matches!(err.driver(), Some(DriverError::NotFound(m)) if m.contains("ge-0/0/42")), "{err}");
    session.set_access_vlan("ge-0/0/2", &tenant()).await.expect("still works");
    assert_eq!(switch.port_vlan("ge-0/0/2"), Some(200));
    session.close().await;
}

#[tokio::test]
async fn ex_legacy_moves_provisioning_tenant_provisioning() {
    moves_between_networks("juniper_generic", "legacy").await;
}

#[tokio::test]
async fn qfx_els_moves_provisioning_tenant_provisioning() {
    moves_between_networks("juniper_qfx_copper_generic", "els").await;
}

#[tokio::test]
async fn wrong_password_gives_an_auth_error() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "right-pw");
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(switch.port, "wrong-pw"));
    let err = session.get_port_vlan("ge-0/0/1").await.expect_err("auth");
    assert!(matches!(err.driver(), Some(DriverError::AuthFailed(_))), "{err}");
}

#[tokio::test]
async fn a_switch_that_is_not_listening_fails_clearly_in_time() {
    let (host, _dir) = juniper("legacy").await;
    let session = host.switch("juniper").expect("driver").session(target(free_tcp_port(), "x"));
    let started = Instant::now();
    let err = session.ensure_vlan(&tenant()).await.expect_err("unreachable");
    assert!(matches!(err.driver(), Some(DriverError::Unreachable(_))), "{err}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn two_ports_one_after_the_other_both_end_up_right() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "pw2");
    let (host, _dir) = juniper("legacy").await;
    let driver = host.switch("juniper").expect("driver");
    let a = driver.session(target(switch.port, "pw2"));
    let b = driver.session(target(switch.port, "pw2"));
    a.ensure_vlan(&tenant()).await.expect("vlan");
    a.set_access_vlan("ge-0/0/1", &tenant()).await.expect("a");
    b.ensure_vlan(&provisioning()).await.expect("vlan");
    b.set_access_vlan("ge-0/0/4", &provisioning()).await.expect("b");
    a.close().await;
    b.close().await;
    assert_eq!((switch.port_vlan("ge-0/0/1"), switch.port_vlan("ge-0/0/4")), (Some(200), Some(100)));
}
