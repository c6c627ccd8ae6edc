//! Several daemons on one PostgreSQL pool (issue 19): three real daemons, the process-agent lab
//! (one ipmi_sim BMC per node starting the real agent) across two fake-switches emulators, and a
//! real PostgreSQL server. The image is uploaded to one daemon only: the others fetch it from it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use metalhost_tests::daemon::Daemon;
use metalhost_tests::deploy_lab::{BMC_PASSWORD, SWITCH_PASSWORD, image};
use metalhost_tests::fake_switch::FakeSwitch;
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths;
use metalhost_tests::postgres::PgServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DISK_BYTES: usize = 4 << 20;
const LEASE_TTL_S: u64 = 6;

struct Node {
    name: String,
    disk: PathBuf,
    _sim: Option<IpmiSim>,
}

struct Cluster {
    daemons: Vec<Daemon>,
    switches: Vec<FakeSwitch>,
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    db: String,
}

struct Setup {
    nodes: usize,
    /// Seconds each agent waits after power-on before it starts (keeps nodes mid-deploy).
    agent_delay_s: u64,
    /// No BMCs, no agents: only the claims matter.
    bare: bool,
}

impl Cluster {
    async fn start(setup: Setup) -> Cluster {
        let server = PgServer::shared();
        let db = server.create_database();
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("secrets.key");
        let switches: Vec<FakeSwitch> = (0..2).map(|_| FakeSwitch::start_releasing_locks("juniper_generic", "admin", SWITCH_PASSWORD)).collect();
        let mut daemons = Vec::new();
        for i in 0..3 {
            let config = format!(
                r#"database = "{url}"
database_password_file = "{pw}"

[cluster]
name = "d{i}"
lease_ttl_s = {LEASE_TTL_S}

[secrets]
key_file = "{key}"

[agent]
poll_interval_s = 1
heartbeat_interval_s = 1
heartbeat_timeout_s = 30

[network]
provisioning_vlan = 100
tenant_vlan = 200

[deploy]
agent_poweroff = false
step_timeout_s = 90
retry_initial_ms = 200
retry_max_ms = 2000
agent_timeout_s = 120
clean_timeout_s = 120
{plugins}"#,
                url = server.url(&db),
                pw = server.password_file().display(),
                key = key.display(),
                plugins = paths::lab_plugins_toml(),
            );
            daemons.push(Daemon::start_with(&config));
        }
        let urls: Vec<String> = daemons.iter().map(|d| d.url.clone()).collect();
        let mut switch_ids = Vec::new();
        for (i, sw) in switches.iter().enumerate() {
            let (status, body) = daemons[i]
                .post(
                    "/v1/switches",
                    &json!({"name": format!("tor{i}"), "address": "127.0.0.1", "port": sw.port, "username": "admin",
                            "password": SWITCH_PASSWORD, "driver": "juniper"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            switch_ids.push(body["id"].clone());
        }
        let mut nodes = Vec::new();
        for i in 1..=setup.nodes {
            let mac = format!("52:54:00:00:88:{i:02x}");
            let disk = dir.path().join(format!("disk{i}.raw"));
            std::fs::write(&disk, vec![0xAAu8; DISK_BYTES]).expect("disk");
            let (sim, bmc_port) = if setup.bare {
                (None, 9)
            } else {
                let sim = IpmiSim::start("admin", BMC_PASSWORD);
                // The agent knows every daemon, starting with a different one per node.
                let api: Vec<&str> = (0..3).map(|k| urls[(i + k) % 3].as_str()).collect();
                let delay = if setup.agent_delay_s > 0 { format!("sleep {}\n", setup.agent_delay_s) } else { String::new() };
                sim.on_power_on(&format!(
                    "#!/bin/sh\n[ \"$1\" = pxe ] || exec sleep 100000\n{delay}exec {} --api {} --mac {mac} --disk {} >>{} 2>&1\n",
                    paths::host_binary("metalhost-agent").display(),
                    api.join(","),
                    disk.display(),
                    dir.path().join(format!("agent{i}.log")).display()
                ));
                let port = sim.port;
                (Some(sim), port)
            };
            let name = format!("node{i}");
            let (status, body) = daemons[i % 3]
                .post(
                    "/v1/nodes",
                    &json!({"name": name, "mac": mac, "ip": format!("10.98.0.{}", 10 + i), "cpus": 8, "ram_mb": 16384,
                            "disk_gb": 100, "bmc_address": "127.0.0.1", "bmc_port": bmc_port, "bmc_username": "admin",
                            "bmc_password": BMC_PASSWORD, "power_driver": "ipmitool", "switch_id": switch_ids[i % 2],
                            "switch_port": format!("ae{i}")}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            nodes.push(Node { name, disk, _sim: sim });
        }
        Cluster { daemons, switches, nodes, dir, db }
    }

    /// Uploads the image through daemon 0 only.
    fn upload(&self, bytes: &[u8]) {
        let path = self.dir.path().join("os.img");
        std::fs::write(&path, bytes).expect("image");
        let out = self.daemons[0].cli(&["image", "add", path.to_str().expect("utf8"), "--name", "os", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Any live daemon's view of every node.
    async fn nodes(&self) -> Vec<Value> {
        for d in &self.daemons {
            if d.pid().is_some() {
                let (status, list) = d.get("/v1/nodes").await;
                if status == StatusCode::OK {
                    return list.as_array().cloned().unwrap_or_default();
                }
            }
        }
        panic!("no daemon answers");
    }

    async fn wait_all(&self, state: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.nodes().await;
            if nodes.iter().all(|n| n["state"] == state) {
                return nodes;
            }
            let stuck: Vec<String> = nodes
                .iter()
                .map(|n| {
                    if n["state"] == "error" { format!("{}=error: {}", n["name"], n["last_error"]) } else { format!("{}={}", n["name"], n["state"]) }
                })
                .collect();
            assert!(nodes.iter().all(|n| n["state"] != "error") && Instant::now() < deadline, "not all {state}: {stuck:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn logs(&self) -> String {
        if let Ok(dir) = std::env::var("CLUSTER_LOG_DIR") {
            for (i, d) in self.daemons.iter().enumerate() {
                let _ = std::fs::write(format!("{dir}/d{i}.log"), d.log());
            }
            for i in 1..=self.nodes.len() {
                let _ = std::fs::copy(self.dir.path().join(format!("agent{i}.log")), format!("{dir}/agent{i}.log"));
            }
        }
        self.daemons.iter().enumerate().map(|(i, d)| format!("--- d{i} log (tail)\n{}", tail(&d.log(), 60))).collect()
    }

    async fn daemon_list(&self, via: usize) -> Vec<Value> {
        let (status, list) = self.daemons[via].get("/v1/daemons").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array().cloned().unwrap_or_default()
    }

    /// The disk of every node starts with the image, byte for byte.
    fn check_disks(&self, bytes: &[u8]) {
        for n in &self.nodes {
            let disk = std::fs::read(&n.disk).expect("disk");
            assert!(disk.starts_with(bytes), "{}'s disk does not hold the image", n.name);
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Twelve instances created at once through the three daemons: every node ends active, no node
/// holds two instances, every disk holds the same image (uploaded to daemon 0 only, fetched by
/// the others from it and checked), and `daemon list` shows three live daemons.
#[tokio::test]
async fn twelve_nodes_deploy_through_three_daemons() {
    let lab = Cluster::start(Setup { nodes: 12, agent_delay_s: 0, bare: false }).await;
    let bytes = image(2 << 20, 9);
    lab.upload(&bytes);
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
    for (i, n) in lab.nodes.iter().enumerate() {
        let sw = &lab.switches[(i + 1) % 2];
        assert_eq!(sw.port_vlan(&format!("ae{}", i + 1)), Some(200), "{}'s port", n.name);
    }
}

/// The daemon holding the most nodes is SIGKILLed mid-deploy: the other two take its nodes over
/// within the lease TTL and finish every deploy; the events say who took over; restarted, the
/// killed daemon rejoins and takes nothing it no longer holds.
#[tokio::test]
async fn a_killed_daemons_nodes_are_taken_over() {
    let mut lab = Cluster::start(Setup { nodes: 6, agent_delay_s: 4, bare: false }).await;
    let bytes = image(1 << 20, 3);
    lab.upload(&bytes);
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
    let lab = Cluster::start(Setup { nodes: 3, agent_delay_s: 3, bare: false }).await;
    let bytes = image(1 << 20, 5);
    lab.upload(&bytes);
    // All three through daemon 1: it holds every lease.
    for _ in 0..3 {
        let (status, body) = lab.daemons[1].post("/v1/instances", &json!({"image": "os"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let pid = lab.daemons[1].pid().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    PgServer::shared().cut_connections(&lab.db);
    tokio::time::sleep(Duration::from_secs(LEASE_TTL_S + 4)).await;
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
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
    let lab = Cluster::start(Setup { nodes: 10, agent_delay_s: 0, bare: true }).await;
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
