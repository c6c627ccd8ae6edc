//! Several daemons on one PostgreSQL pool (issue 19): three real daemons, the process-agent lab
//! (one ipmi_sim BMC per node starting the real agent) across two fake-switches emulators, and a
//! real PostgreSQL server. The image is uploaded to one daemon only: the others fetch it from it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use metalhost_tests::cluster_lab::{Cluster, LEASE_TTL_S, Setup, tail};
use metalhost_tests::deploy_lab::image;
use metalhost_tests::postgres::PgServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Twelve instances created at once through the three daemons: every node ends active, no node
/// holds two instances, every disk holds the same image (uploaded to daemon 0 only, fetched by
/// the others from it and checked), and `daemon list` shows three live daemons.
#[tokio::test]
async fn twelve_nodes_deploy_through_three_daemons() {
    let lab = Cluster::start(Setup { nodes: 12, ..Setup::default() }).await;
    let bytes = image(2 << 20, 9);
    lab.upload(&bytes);
    // A peer's request to a daemon that lacks the image is answered at once, never passed on
    // (two daemons lacking it would otherwise wait for each other).
    let peer_ask = lab.daemons[1]
        .http_client()
        .get(format!("{}/v1/images/1/data", lab.daemons[1].url))
        .bearer_auth(metalhost_tests::daemon::TOKEN)
        .header("x-metalhost-peer", "1")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("answer");
    assert_eq!(peer_ask.status(), StatusCode::NOT_FOUND);
    let bodies: Vec<Value> = (0..12).map(|i| json!({"image": "os", "name": format!("inst{i}")})).collect();
    let creates = bodies.iter().enumerate().map(|(i, body)| lab.daemons[i % 3].post("/v1/instances", body));
    let answers = futures::future::join_all(creates).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED), "{answers:?}");
    let nodes = lab.wait_all("active", Duration::from_secs(240)).await;
    let instances: HashSet<i64> = nodes.iter().filter_map(|n| n["instance_id"].as_i64()).collect();
    assert_eq!(instances.len(), 12, "twelve distinct instances on twelve nodes: {nodes:?}");
    lab.check_disks(&bytes);
    let fetched: usize = lab.daemons[1..].iter().map(|d| d.log().matches("fetched the image from a peer daemon").count()).sum();
    assert!(fetched >= 1, "daemons 1 and 2 served the image after fetching it:\n{}", lab.logs());

    for (i, d) in lab.daemons.iter().enumerate() {
        assert!(d.log().contains("runner{node="), "daemon d{i} drove no node: the creates were spread over all three");
    }
    let list = lab.daemon_list(2).await;
    assert_eq!(list.iter().filter(|d| d["alive"] == true).count(), 3, "{list:?}");
    let out = lab.daemons[1].cli(&["daemon", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && ["d0", "d1", "d2"].iter().all(|d| text.contains(d)), "{text}");
    // Each switch's ports were changed by more than one daemon, one at a time (pool-wide lock):
    // every node's port ended on the tenant VLAN.
    for n in &lab.nodes {
        assert_eq!(lab.switches[n.switch].port_vlan(&n.port), Some(200), "{}'s port {}", n.name, n.port);
    }
}

/// The daemon holding the most nodes is SIGKILLed mid-deploy: the other two take its nodes over
/// within the lease TTL and finish every deploy; the events say who took over; restarted, the
/// killed daemon rejoins and takes nothing it no longer holds.
#[tokio::test]
async fn a_killed_daemons_nodes_are_taken_over() {
    let mut lab = Cluster::start(Setup { nodes: 6, agent_delay_s: 4, ..Setup::default() }).await;
    let bytes = image(1 << 20, 3);
    lab.upload(&bytes);
    // Killing the daemon that took the upload must not lose the image: the others copy it first.
    lab.wait_image_everywhere().await;
    let body = json!({"image": "os"});
    let creates = (0..6).map(|i| lab.daemons[i % 3].post("/v1/instances", &body));
    assert!(futures::future::join_all(creates).await.iter().all(|(s, _)| *s == StatusCode::CREATED));
    // Wait until every node is leased, then kill the busiest daemon while the agents still sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    let busiest = loop {
        let list = lab.daemon_list(0).await;
        let held: HashMap<String, u64> =
            list.iter().map(|d| (d["name"].as_str().unwrap_or("").to_owned(), d["nodes"].as_u64().unwrap_or(0))).collect();
        if held.values().sum::<u64>() == 6 {
            let (name, _) = held.iter().max_by_key(|(_, n)| **n).expect("a daemon");
            break name.trim_start_matches('d').parse::<usize>().expect("index");
        }
        assert!(Instant::now() < deadline, "leases never covered every node: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let killed_at = Instant::now();
    lab.daemons[busiest].kill();
    let nodes = lab.wait_all("active", Duration::from_secs(180)).await;
    let took = killed_at.elapsed();
    let instances: HashSet<i64> = nodes.iter().filter_map(|n| n["instance_id"].as_i64()).collect();
    assert_eq!(instances.len(), 6, "one instance per node: {nodes:?}");
    lab.check_disks(&bytes);
    let survivor = (busiest + 1) % 3;
    let mut takeovers = Vec::new();
    for n in &nodes {
        let (_, events) = lab.daemons[survivor].get(&format!("/v1/nodes/{}/events", n["id"])).await;
        takeovers.extend(
            events.as_array().into_iter().flatten().filter(|e| e["kind"] == "lease").filter_map(|e| e["message"].as_str().map(str::to_owned)),
        );
    }
    assert!(!takeovers.is_empty(), "no takeover was recorded");
    assert!(takeovers.iter().all(|m| m.contains(&format!("took over from daemon d{busiest}"))), "{takeovers:?}");
    eprintln!("takeover: every deploy finished {:.1} s after the kill; events: {takeovers:?}", took.as_secs_f64());
    // Restarted, it rejoins: alive, holding nothing (all nodes are settled and others finished them).
    lab.daemons[busiest].spawn_again();
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_S / 3 + 1)).await;
    let list = lab.daemon_list(busiest).await;
    let me = list.iter().find(|d| d["name"] == format!("d{busiest}")).expect("listed");
    assert_eq!((me["alive"].as_bool(), me["nodes"].as_u64()), (Some(true), Some(0)), "{list:?}");
    assert!(lab.nodes().await.iter().all(|n| n["state"] == "active"));
}

/// A daemon frozen past its lease TTL (SIGSTOP: as cut off as a daemon can be) loses its nodes to
/// the others; woken, its runners find their writes fenced and stop. Its PostgreSQL sessions are
/// also killed meanwhile: it reconnects. Nothing is lost: every deploy ends active, once.
#[tokio::test]
async fn a_daemon_cut_off_past_its_lease_is_fenced() {
    let lab = Cluster::start(Setup { nodes: 3, agent_delay_s: 3, ..Setup::default() }).await;
    let bytes = image(1 << 20, 5);
    lab.upload(&bytes);
    // All three through daemon 1: it holds every lease.
    for _ in 0..3 {
        let (status, body) = lab.daemons[1].post("/v1/instances", &json!({"image": "os"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    lab.signal(1, "STOP");
    PgServer::shared().cut_connections(&lab.db);
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_S + 4)).await;
    lab.signal(1, "CONT");
    let nodes = lab.wait_all("active", Duration::from_secs(180)).await;
    assert_eq!(nodes.iter().filter_map(|n| n["instance_id"].as_i64()).collect::<HashSet<_>>().len(), 3);
    lab.check_disks(&bytes);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = lab.daemons[1].log();
    assert!(log.contains("another daemon drives the node") || log.contains("no longer holds"), "the woken daemon was fenced:\n{}", tail(&log, 80));
    let (_, list) = lab.daemons[1].get("/v1/daemons").await;
    assert!(list.as_array().is_some_and(|l| l.iter().any(|d| d["name"] == "d1" && d["alive"] == true)), "it rejoined: {list}");
}

/// Fifty creates spread over the three daemons at once, ten free nodes: exactly ten accepted,
/// each on its own node (claims skip rows other daemons have locked).
#[tokio::test]
async fn fifty_creates_on_ten_nodes_accept_exactly_ten() {
    let lab = Cluster::start(Setup { nodes: 10, bare: true, ..Setup::default() }).await;
    lab.upload(&image(4096, 1));
    let body = json!({"image": "os"});
    let creates = (0..50).map(|i| lab.daemons[i % 3].post("/v1/instances", &body));
    let answers = futures::future::join_all(creates).await;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    let refused = answers.iter().filter(|(s, b)| *s == StatusCode::CONFLICT && b.to_string().contains("no available node")).count();
    assert_eq!((created.len(), refused), (10, 40), "{answers:?}");
    let nodes: HashSet<&str> = created.iter().filter_map(|b| b["node_name"].as_str()).collect();
    assert_eq!(nodes.len(), 10, "each instance on its own node: {created:?}");
}
