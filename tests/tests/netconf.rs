//! metalhost's NETCONF client (russh) against the fake-switches Juniper emulator.

use std::time::{Duration, Instant};

use metalhost_netconf::{Error, Framing, Session, Target};
use metalhost_tests::fake_switch::{FakeSwitch, free_tcp_port};

fn target(port: u16, password: &str, key: Option<String>) -> Target {
    Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        expected_host_key: key,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn hello_capabilities_and_get_config() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "nc-Secret-1");
    let mut session = Session::connect(&target(switch.port, "nc-Secret-1", None)).await.expect("connect");
    assert!(session.server_capabilities().iter().any(|c| c.contains("candidate")), "{:?}", session.server_capabilities());
    assert_eq!(session.framing(), Framing::EndOfMessage, "the emulator speaks only base:1.0");
    assert!(session.host_key_fingerprint().starts_with("SHA256:"));
    let reply = session.rpc("<get-config><source><running/></source></get-config>").await.expect("get-config");
    assert!(reply.contains("<rpc-reply") && reply.contains("<data"), "{reply}");
    let second = session.rpc("<get-config><source><running/></source></get-config>").await.expect("again");
    assert!(second.contains("message-id=\"102\""), "{second}");
    session.close().await.expect("close");
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "right");
    let err = Session::connect(&target(switch.port, "wrong-pw-123", None)).await.err().expect("must fail");
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw-123"));
}

#[tokio::test]
async fn nothing_listening_is_unreachable_within_the_deadline() {
    let started = Instant::now();
    let err = Session::connect(&target(free_tcp_port(), "x", None)).await.err().expect("must fail");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn host_keys_are_pinned_or_trusted_on_first_use() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "pw-hostkey");
    let first = Session::connect(&target(switch.port, "pw-hostkey", None)).await.expect("first use");
    let seen = first.host_key_fingerprint().to_owned();
    first.close().await.expect("close");
    // The same key again is accepted when pinned...
    let again = Session::connect(&target(switch.port, "pw-hostkey", Some(seen.clone()))).await.expect("pinned");
    again.close().await.expect("close");
    // ...and a different expected key is refused, naming both.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let err = Session::connect(&target(switch.port, "pw-hostkey", Some(wrong.clone()))).await.err().expect("refused");
    match &err {
        Error::HostKeyMismatch { expected, actual, .. } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &seen);
        }
        other => panic!("expected a host key mismatch, got {other}"),
    }
}
