//! metalhost's NETCONF client (russh) against the fake-switches Juniper emulator, and against
//! peers that do not answer.

use std::time::{Duration, Instant};

use metalhost_netconf::{Error, Framing, Session, Target, stats};
use metalhost_tests::fake_switch::{FakeSwitch, HOST_KEY_FINGERPRINT, free_tcp_port};

fn target(port: u16, password: &str, key: Option<String>) -> Target {
    Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        expected_host_key: key,
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(3),
    }
}

async fn hello_and_get_config(model: &str) {
    let switch = FakeSwitch::start(model, "admin", "nc-Secret-1");
    let before = stats::totals();
    let mut session = Session::connect(&target(switch.port, "nc-Secret-1", None)).await.expect("connect");
    let caps = session.server_capabilities();
    assert!(caps.iter().any(|c| c == "urn:ietf:params:xml:ns:netconf:capability:candidate:1.0"), "{caps:?}");
    assert!(caps.iter().any(|c| c == "http://xml.juniper.net/netconf/junos/1.0"), "{caps:?}");
    assert_eq!(session.framing(), Framing::EndOfMessage, "the emulator announces no base:1.1");
    for _ in 0..3 {
        // Several in a row: each reply must match its request's message-id, or rpc() fails.
        let reply = session.rpc("<get-config><source><running/></source></get-config>").await.expect("get-config");
        assert!(reply.starts_with("<rpc-reply") && reply.contains("<data"), "{reply}");
        assert!(!reply.contains("]]>]]>"), "framing leaked into the message: {reply}");
    }
    let timings = session.timings();
    assert_eq!(timings.rpc_count, 3);
    assert!(timings.connect > Duration::ZERO && timings.rpc_total > Duration::ZERO, "{timings:?}");
    // Process-wide counters (other tests run in parallel, so at least ours).
    let counted = stats::totals() - before;
    assert!(counted.sessions >= 1 && counted.rpcs >= 3 && counted.rpc >= timings.rpc_total, "{counted:?}");
    session.close().await.expect("close");
    assert!(!switch.log().contains("Traceback"), "the emulator crashed: {}", switch.log());
}

#[tokio::test]
async fn hello_capabilities_and_get_config_ex() {
    hello_and_get_config("juniper_generic").await;
}

#[tokio::test]
async fn hello_capabilities_and_get_config_qfx() {
    hello_and_get_config("juniper_qfx_copper_generic").await;
}

#[tokio::test]
async fn rpc_errors_come_back_as_replies() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "pw-err");
    let mut session = Session::connect(&target(switch.port, "pw-err", None)).await.expect("connect");
    let reply = session.rpc("<validate><source><candidate/></source></validate>").await.expect("reply");
    assert!(reply.contains("<rpc-error>"), "{reply}");
    // The session survives an rpc-error.
    let reply = session.rpc("<get-config><source><running/></source></get-config>").await.expect("still usable");
    assert!(reply.contains("<data"), "{reply}");
    session.close().await.expect("close");
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_that_does_not_leak_it() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "right");
    let wrong = target(switch.port, "wrong-pw-123", None);
    let err = Session::connect(&wrong).await.err().expect("must fail");
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{wrong:?}")] {
        assert!(!shown.contains("wrong-pw-123"), "{shown}");
    }
}

#[tokio::test]
async fn nothing_listening_is_unreachable_within_the_deadline() {
    let started = Instant::now();
    let err = Session::connect(&target(free_tcp_port(), "x", None)).await.err().expect("must fail");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// A peer that accepts TCP but never speaks SSH (a hung switch) must not hang us.
#[tokio::test]
async fn a_silent_peer_times_out_within_the_connect_deadline() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let accept = tokio::spawn(async move {
        let (socket, _) = silent.accept().await.expect("accept");
        // Hold the connection open without a word.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let mut t = target(port, "x", None);
    t.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = Session::connect(&t).await.err().expect("must fail");
    let elapsed = started.elapsed();
    assert!(matches!(&err, Error::Timeout { during, .. } if during.contains("ssh handshake")), "{err}");
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    accept.abort();
}

/// A switch that stops answering in the middle of a session: the RPC fails with a timeout after
/// the read deadline, and the session refuses further use (a late reply must not be taken for
/// the answer to a later request).
#[tokio::test]
async fn a_frozen_switch_times_out_the_rpc_within_the_read_deadline() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "pw-freeze");
    let mut t = target(switch.port, "pw-freeze", None);
    t.read_timeout = Duration::from_secs(1);
    let mut session = Session::connect(&t).await.expect("connect");
    switch.pause();
    let started = Instant::now();
    let err = session.rpc("<get-config><source><running/></source></get-config>").await.expect_err("frozen");
    let elapsed = started.elapsed();
    switch.resume();
    assert!(matches!(&err, Error::Timeout { during, .. } if during.contains("rpc-reply")), "{err}");
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    let again = session.rpc("<get-config><source><running/></source></get-config>").await.expect_err("unusable");
    assert!(matches!(again, Error::Transport { .. }), "{again}");
}

#[tokio::test]
async fn host_keys_are_trusted_on_first_use_then_pinned() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "pw-hostkey");
    let first = Session::connect(&target(switch.port, "pw-hostkey", None)).await.expect("first use");
    let seen = first.host_key_fingerprint().to_owned();
    first.close().await.expect("close");
    // The emulator's fixed key, as OpenSSH prints it: our fingerprint format is the standard one.
    assert_eq!(seen, HOST_KEY_FINGERPRINT);
    // Stable across sessions.
    let second = Session::connect(&target(switch.port, "pw-hostkey", None)).await.expect("second");
    assert_eq!(second.host_key_fingerprint(), seen);
    second.close().await.expect("close");
    // The same key again is accepted when pinned...
    let pinned = Session::connect(&target(switch.port, "pw-hostkey", Some(seen.clone()))).await.expect("pinned");
    pinned.close().await.expect("close");
    // ...and a different expected key is refused before authentication, naming both.
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
