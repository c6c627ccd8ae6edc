//! Fenced to the wire (issue 27): three daemons on one PostgreSQL pool, the process-agent lab
//! (one ipmi_sim BMC per node whose power-on starts the real agent) and fake-switches emulators.
//! A daemon that lost a node's lease sends the node's BMC nothing; a lost database session fails
//! no deploy; a frozen daemon blocks a switch for one lease TTL at most.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use metalhost_tests::cluster_lab::{Cluster, LEASE_TTL_S, Setup, signal_pid, tail};
use metalhost_tests::deploy_lab::image;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn events(lab: &Cluster, via: usize, node: &Value) -> Vec<Value> {
    let (status, list) = lab.daemons[via].get(&format!("/v1/nodes/{}/events", node["id"])).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

/// Daemon d1 drives a node whose BMC does not answer (ipmi_sim stopped), so it is retrying the
/// boot device. d1 is frozen for the lease TTL and more; the BMC comes back, and another daemon
/// takes the node over and powers it on. From the moment d1 wakes, the BMC's chassis log gets
/// nothing more while the node waits for its (delayed) agent: d1's retry loop met its fence. The
/// node ends active once, and its events show one fenced stop.
#[tokio::test]
async fn a_frozen_daemon_sends_the_bmc_nothing_after_it_wakes() {
    let lab = Cluster::start(Setup { nodes: 1, agent_delay_s: 12, ..Setup::default() }).await;
    let bytes = image(1 << 20, 7);
    lab.upload(&bytes);
    lab.wait_image_everywhere().await;
    let bmc = lab.nodes[0].bmc();
    signal_pid(bmc.pid(), "STOP");
    let (status, body) = lab.daemons[1].post("/v1/instances", &json!({"image": "os"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // d1 is retrying a BMC that does not answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab.daemons[1].log().contains("attempt 1 failed") {
        assert!(Instant::now() < deadline, "d1 never retried the silent BMC:\n{}", tail(&lab.daemons[1].log(), 40));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.signal(1, "STOP");
    let frozen = Instant::now();
    signal_pid(bmc.pid(), "CONT");
    // Another daemon takes the node over once d1's lease expires, and boots it into the agent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let node = &lab.nodes().await[0];
        let owner = lab.sql("SELECT lease_owner FROM nodes");
        if node["state"] == "wait-agent" && owner != "d1" && frozen.elapsed() >= Duration::from_secs(LEASE_TTL_S + 3) {
            break;
        }
        assert!(node["state"] != "error" && Instant::now() < deadline, "no takeover: {node} (lease owner {owner})\n{}", lab.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls_before = bmc.calls();
    lab.signal(1, "CONT");
    let woke = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lab.daemons[1].log().contains("stopped by its fence") {
        assert!(Instant::now() < deadline, "d1 did not stop by its fence:\n{}", tail(&lab.daemons[1].log(), 60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_after = bmc.calls();
    let node = &lab.nodes().await[0];
    assert_eq!(node["state"], "wait-agent", "the window ended before the agent could have finished: {node}");
    assert_eq!(
        calls_after.strip_prefix(calls_before.as_str()).unwrap_or(&calls_after),
        "",
        "the BMC got calls in the {:.1} s after d1 woke (before: {calls_before})",
        woke.elapsed().as_secs_f64()
    );
    let nodes = lab.wait_all("active", Duration::from_secs(120)).await;
    lab.check_disks(&bytes);
    let events = events(&lab, 0, &nodes[0]).await;
    let actives = events.iter().filter(|e| e["kind"] == "state" && e["to_state"] == "active").count();
    let fenced: Vec<&Value> =
        events.iter().filter(|e| e["kind"] == "lease" && e["message"].as_str().is_some_and(|m| m.starts_with("fenced:"))).collect();
    assert_eq!(actives, 1, "active once: {events:?}");
    assert_eq!(fenced.len(), 1, "one fenced stop: {events:?}");
    assert!(fenced[0]["message"].as_str().is_some_and(|m| m.contains("daemon d1")), "{fenced:?}");
}

/// Twelve deploys driven by d1, whose PostgreSQL sessions are all terminated five times while
/// they run: d1 reconnects and its runners retry the calls that met a closed session; every
/// deploy ends active.
#[tokio::test]
async fn lost_database_sessions_fail_no_deploy() {
    let lab = Cluster::start(Setup { nodes: 12, agent_delay_s: 2, ..Setup::default() }).await;
    let bytes = image(1 << 20, 11);
    lab.upload(&bytes);
    let body = json!({"image": "os"});
    let creates = (0..12).map(|_| lab.daemons[1].post("/v1/instances", &body));
    let answers = futures::future::join_all(creates).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED), "{answers:?}");
    let mut cut = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cut += lab.cut_sessions_of(1);
    }
    assert!(cut >= 5, "d1's sessions were terminated five times ({cut} sessions)");
    let nodes = lab.wait_all("active", Duration::from_secs(240)).await;
    assert_eq!(nodes.iter().filter_map(|n| n["instance_id"].as_i64()).collect::<HashSet<_>>().len(), 12);
    lab.check_disks(&bytes);
    let log = lab.daemons[1].log();
    assert!(log.contains("connected again"), "d1 reconnected:\n{}", tail(&log, 40));
    eprintln!(
        "sessions cut: {cut}; store calls retried by d1's runners: {}",
        log.matches("store call failed").count() + log.matches("trying again").count()
    );
}

/// d1 is frozen while it holds a switch's pool-wide lock (its port move waits on the switch, which
/// is paused at that moment). Another daemon moves a port on the same switch within the lease TTL
/// and a margin: the lock expired with d1's heartbeat, instead of lasting as long as the freeze.
#[tokio::test]
async fn a_frozen_switch_lock_holder_blocks_the_switch_one_ttl_at_most() {
    let lab = Cluster::start(Setup { nodes: 3, no_agents: true, ..Setup::default() }).await;
    lab.upload(&image(4096, 2));
    // node1 and node3 are on switch 0; node2 (switch 1) is kept out of the way.
    let (status, body) = lab.daemons[0].patch("/v1/nodes/node2", &json!({"maintenance": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    lab.switches[0].pause();
    let (status, first) = lab.daemons[1].post("/v1/instances", &json!({"image": "os"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while lab.sql("SELECT holder FROM switch_locks") != "d1" {
        assert!(Instant::now() < deadline, "d1 never took the switch lock:\n{}", lab.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.signal(1, "STOP");
    let frozen = Instant::now();
    lab.switches[0].resume();
    let (status, second) = lab.daemons[2].post("/v1/instances", &json!({"image": "os"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let other = lab.nodes.iter().find(|n| n.name == second["node_name"]).expect("the second instance's node");
    assert_eq!(other.switch, 0, "{second}");
    // Freeze d1 for three TTLs at most; the other daemon's port move must land well before.
    let limit = Duration::from_secs(3 * LEASE_TTL_S);
    while lab.switches[0].port_vlan(&other.port) != Some(100) {
        assert!(frozen.elapsed() < limit, "the switch stayed blocked {} s by a frozen daemon:\n{}", limit.as_secs(), lab.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let blocked = frozen.elapsed();
    lab.signal(1, "CONT");
    eprintln!("figure: a frozen holder blocked the switch {:.1} s (lease TTL {LEASE_TTL_S} s)", blocked.as_secs_f64());
    assert!(blocked < Duration::from_secs(LEASE_TTL_S + 5), "blocked {:.1} s, more than the TTL and a margin", blocked.as_secs_f64());
}
