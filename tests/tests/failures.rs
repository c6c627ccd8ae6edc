//! Typed failures and retries through the real daemon, plugins and peers: a BMC that stops
//! answering and a switch whose candidate configuration another session holds are retried until
//! the deploy completes; a wrong BMC password fails at once with its kind; API statuses follow the
//! failure's kind.

use std::time::{Duration, Instant};

use metalhost_netconf::{Session, Target};
use metalhost_tests::deploy_lab::{DeployLab, Options, SWITCH_PASSWORD, image};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;
const OUTAGE: Duration = Duration::from_secs(5);

async fn events(lab: &DeployLab, node: &str) -> Vec<Value> {
    let (status, list) = lab.daemon.get(&format!("/v1/nodes/{node}/events")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().expect("events").clone()
}

fn messages(events: &[Value], kind: &str) -> Vec<String> {
    events.iter().filter(|e| e["kind"] == kind).map(|e| e["message"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until the node has a `retry` event, and returns its messages.
async fn first_retries(lab: &DeployLab, node: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let retries = messages(&events(lab, node).await, "retry");
        if !retries.is_empty() {
            return retries;
        }
        assert!(Instant::now() < deadline, "no retry event within {within:?}: {:?}\n{}", events(lab, node).await, lab.daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_silent_for_five_seconds_is_retried_and_the_deploy_completes() {
    let mut lab = DeployLab::start(Options::default()).await;
    lab.upload("os", &image(MIB, 11));
    // The BMC stops answering as the deploy starts: its first BMC step meets silence.
    lab.nodes[0].sim.stop();
    let silent_since = Instant::now();
    let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "os", "name": "patient"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retries = first_retries(&lab, "node1", Duration::from_secs(30)).await;
    assert!(retries[0].starts_with("boot device -> pxe: attempt 1 failed") && retries[0].contains("unreachable"), "{retries:?}");
    tokio::time::sleep(OUTAGE.saturating_sub(silent_since.elapsed())).await;
    lab.nodes[0].sim.start_again().expect("ipmi_sim back on its port");

    let n = lab.wait_node("node1", &["active"], Duration::from_secs(90)).await;
    assert_eq!(n["state"], "active", "{n}\n{}", lab.daemon.log());
    assert!(n["last_error"].is_null(), "{n}");
    let all = events(&lab, "node1").await;
    let steps = messages(&all, "step");
    assert!(steps.iter().any(|s| s.starts_with("boot device -> pxe: ok after")), "{steps:?}");
    assert!(steps.iter().any(|s| s == "agent writes the image: ok"), "{steps:?}");
    let retries = messages(&all, "retry");
    // One attempt of ipmitool takes seconds (its own retries), so the BMC may be back during the second.
    assert!(retries.iter().all(|r| r.contains("unreachable") || r.contains("deadline")), "{retries:?}");
    let (_, instance) = lab.daemon.get("/v1/instances/patient").await;
    assert_eq!(instance["state"], "active", "{instance}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_locked_by_another_session_for_five_seconds_is_retried_and_the_deploy_completes() {
    let lab = DeployLab::start(Options::default()).await;
    lab.upload("os", &image(MIB, 12));
    // An engineer's session holds the candidate configuration, as `configure exclusive` would.
    let target = Target {
        address: "127.0.0.1".into(),
        port: lab.switch.port,
        username: "admin".into(),
        password: SWITCH_PASSWORD.into(),
        expected_host_key: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
    };
    let mut engineer = Session::connect(&target).await.expect("connect");
    let reply = engineer.rpc("<lock><target><candidate/></target></lock>").await.expect("lock");
    assert!(reply.contains("<ok"), "{reply}");
    let locked_since = Instant::now();

    let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "os"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retries = first_retries(&lab, "node1", Duration::from_secs(30)).await;
    assert!(retries[0].starts_with("switch port -> provisioning: attempt 1 failed") && retries[0].contains("switch-locked"), "{retries:?}");
    tokio::time::sleep(OUTAGE.saturating_sub(locked_since.elapsed())).await;
    let reply = engineer.rpc("<unlock><target><candidate/></target></unlock>").await.expect("unlock");
    assert!(reply.contains("<ok"), "{reply}");
    engineer.close().await.expect("close");

    let n = lab.wait_node("node1", &["active"], Duration::from_secs(90)).await;
    assert_eq!(n["state"], "active", "{n}\n{}", lab.daemon.log());
    assert_eq!(lab.switch.port_vlan("ge-0/0/1"), Some(200), "the port reached the tenant VLAN");
    let all = events(&lab, "node1").await;
    assert!(messages(&all, "step").iter().any(|s| s.starts_with("switch port -> provisioning: ok after")), "{all:?}");
    assert!(messages(&all, "retry").iter().all(|r| r.contains("switch-locked")), "{all:?}");
    // The plugin's own log lines sit in the runner's and the driver call's spans, under the node.
    let log = lab.daemon.log();
    let committed = log.lines().find(|l| l.contains("committed: ")).unwrap_or_default();
    assert!(committed.contains("runner{node=1") && committed.contains("plugin_call{"), "{committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_killed_session_is_released_and_the_deploy_completes() {
    // The plain emulator would keep a dead session's lock forever; a real switch (and the
    // launcher) releases it when the session ends.
    let lab = DeployLab::start(Options { switch_releases_locks: true, ..Options::default() }).await;
    lab.upload("os", &image(MIB, 14));
    let mut engineer = lab.switch.hold_lock();
    let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "os"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retries = first_retries(&lab, "node1", Duration::from_secs(30)).await;
    assert!(retries[0].contains("switch-locked"), "{retries:?}");
    engineer.kill();
    let n = lab.wait_node("node1", &["active"], Duration::from_secs(90)).await;
    assert_eq!(n["state"], "active", "{n}\n{}", lab.switch.log());
    assert!(lab.switch.log().contains("session ended holding the candidate lock"), "{}", lab.switch.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bmc_password_fails_at_once_with_auth_failed_and_statuses_follow_the_kind() {
    let mut lab = DeployLab::start(Options::default()).await;
    lab.upload("os", &image(MIB, 13));
    let (status, body) = lab.daemon.patch("/v1/nodes/node1", &json!({"bmc_password": "not-the-password"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The CLI follows the deploy; without a terminal its progress is one line per change.
    let started = Instant::now();
    let out = lab.daemon.cli(&["instance", "create", "--image", "os", "--name", "locked-out", "--wait"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains('\r'), "no carriage returns without a terminal: {stderr:?}");
    assert!(stderr.lines().any(|l| l.starts_with("deploying")), "{stderr}");
    let failed = stderr.lines().find(|l| l.contains("instance failed")).unwrap_or_default();
    assert!(failed.contains("boot device -> pxe: plugin \"ipmitool\" set-boot-device: auth-failed: "), "one clear line: {stderr}");
    assert!(took < Duration::from_secs(30), "a permanent failure is not retried until the deadline: {took:?}");

    let (_, n) = lab.daemon.get("/v1/nodes/node1").await;
    assert_eq!(n["state"], "error", "{n}");
    let error = &n["last_error"];
    assert_eq!(
        (&error["step"], &error["plugin"], &error["operation"], &error["kind"]),
        (&json!("boot device -> pxe"), &json!("ipmitool"), &json!("set-boot-device"), &json!("auth-failed")),
        "{n}"
    );
    assert!(!error["message"].as_str().unwrap_or_default().is_empty(), "{n}");
    assert!(messages(&events(&lab, "node1").await, "retry").is_empty(), "auth-failed is never retried");
    let (_, instance) = lab.daemon.get("/v1/instances/locked-out").await;
    assert_eq!(instance["last_error"]["kind"], "auth-failed", "{instance}");
    let out = lab.daemon.cli(&["node", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("set-boot-device: auth-failed: "), "the table shows one line");

    // Statuses by kind, on the failed node (operator actions are allowed outside a workflow).
    let power = |action: &str| json!({"action": action});
    let (status, body) = lab.daemon.call(Method::PUT, "/v1/nodes/node1/power", Some(&power("on"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("auth-failed")), "{body}");
    lab.daemon.patch("/v1/nodes/node1", &json!({"bmc_password": lab.nodes[0].sim.password.clone()})).await;
    let (status, body) = lab.daemon.get("/v1/nodes/node1/power").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    lab.nodes[0].sim.stop();
    let (status, body) = lab.daemon.get("/v1/nodes/node1/power").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("unreachable")), "{body}");
    let (status, body) = lab.daemon.patch("/v1/nodes/node1", &json!({"switch_port": "ge-0/0/9"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = lab.daemon.call(Method::PUT, "/v1/nodes/node1/network", Some(&json!({"network": "tenant"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not-found")), "{body}");
    let (status, body) = lab.daemon.patch("/v1/nodes/node1", &json!({"power_driver": "no-such-plugin"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = lab.daemon.call(Method::PUT, "/v1/nodes/node1/power", Some(&power("off"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not-loaded")), "{body}");
    let (status, body) = lab.daemon.call(Method::PUT, "/v1/nodes/node1/power", Some(&power("cycle"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown action is refused at the edge: {body}");
}
