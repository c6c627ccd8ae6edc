//! Several daemons on one PostgreSQL pool (issue 19), for tests/cluster.rs and the cluster
//! benchmark: three real daemons with their own data dirs, a real PostgreSQL server
//! (crate::postgres), two fake-switches emulators, and the process-agent lab (one ipmi_sim BMC per
//! node whose power-on starts the real agent, which knows every daemon).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::deploy_lab::{BMC_PASSWORD, SWITCH_PASSWORD};
use crate::fake_switch::FakeSwitch;
use crate::ipmi_sim::IpmiSim;
use crate::paths;
use crate::postgres::PgServer;

pub const DISK_BYTES: usize = 4 << 20;
pub const LEASE_TTL_S: u64 = 6;

pub struct Node {
    pub name: String,
    pub mac: String,
    pub disk: PathBuf,
    /// Which of the lab's switches, and which port on it.
    pub switch: usize,
    pub port: String,
    _sim: Option<IpmiSim>,
}

pub struct Cluster {
    pub daemons: Vec<Daemon>,
    pub switches: Vec<FakeSwitch>,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database of the pool.
    pub db: String,
}

pub struct Setup {
    pub nodes: usize,
    /// Seconds each agent waits after power-on before it starts (keeps nodes mid-deploy).
    pub agent_delay_s: u64,
    /// No BMCs, no agents: only the claims matter.
    pub bare: bool,
    /// BMCs whose power-on starts no agent: nodes wait for one until their deadline.
    pub no_agents: bool,
    /// How many daemons share the pool.
    pub daemons: usize,
    /// One daemon on SQLite instead (the baseline of the cluster benchmark).
    pub sqlite: bool,
    /// How long a node waits for its agent.
    pub agent_timeout_s: u64,
    /// The deadline of each driver-only state (deploying, activating, deleting).
    pub step_timeout_s: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { nodes: 3, agent_delay_s: 0, bare: false, no_agents: false, daemons: 3, sqlite: false, agent_timeout_s: 120, step_timeout_s: 90 }
    }
}

impl Node {
    /// The node's BMC (none in a bare lab).
    pub fn bmc(&self) -> &IpmiSim {
        self._sim.as_ref().expect("a lab with BMCs")
    }
}

impl Cluster {
    pub async fn start(setup: Setup) -> Cluster {
        let server = PgServer::shared();
        let db = server.create_database();
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("secrets.key");
        // The emulator has ports ae1..ae23: enough switches for every node, and at least two.
        let switch_count = setup.nodes.div_ceil(23).max(2);
        let switches: Vec<FakeSwitch> =
            (0..switch_count).map(|_| FakeSwitch::start_releasing_locks("juniper_generic", "admin", SWITCH_PASSWORD)).collect();
        let mut daemons = Vec::new();
        for i in 0..setup.daemons {
            let database = if setup.sqlite { String::new() } else { server.database_config(&db) };
            let config = format!(
                "{database}\n[cluster]\nname = \"d{i}\"\nlease_ttl_s = {LEASE_TTL_S}\n\n[secrets]\nkey_file = \"{key}\"\n{lab}",
                key = key.display(),
                lab = crate::deploy_lab::lab_config(30, setup.step_timeout_s, setup.agent_timeout_s),
            );
            daemons.push(Daemon::start_with(&config));
        }
        let urls: Vec<String> = daemons.iter().map(|d| d.url.clone()).collect();
        // The daemons share the secrets key's directory, so one CA: the agent trusts it for all.
        let pin = daemons[0].ca_fingerprint.as_ref().map(|f| format!(" --ca-sha256 sha256:{f}")).unwrap_or_default();
        let mut switch_ids = Vec::new();
        for (i, sw) in switches.iter().enumerate() {
            let (status, body) = daemons[i % daemons.len()]
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
                let api: Vec<&str> = (0..urls.len()).map(|k| urls[(i + k) % urls.len()].as_str()).collect();
                let delay = if setup.no_agents {
                    "exec sleep 100000\n".to_owned()
                } else if setup.agent_delay_s > 0 {
                    format!("sleep {}\n", setup.agent_delay_s)
                } else {
                    String::new()
                };
                sim.on_power_on(&format!(
                    "#!/bin/sh\n[ \"$1\" = pxe ] || exec sleep 100000\n{delay}exec {} --api {}{pin} --mac {mac} --disk {} >>{} 2>&1\n",
                    paths::host_binary("metalhost-agent").display(),
                    api.join(","),
                    disk.display(),
                    dir.path().join(format!("agent{i}.log")).display()
                ));
                let port = sim.port;
                (Some(sim), port)
            };
            let name = format!("node{i}");
            let (switch, port) = ((i - 1) % switches.len(), format!("ae{}", (i - 1) / switches.len() + 1));
            let (status, body) = daemons[i % daemons.len()]
                .post(
                    "/v1/nodes",
                    &json!({"name": name, "mac": mac, "ip": format!("10.98.0.{}", 10 + i), "cpus": 8, "ram_mb": 16384,
                            "disk_gb": 100, "bmc_address": "127.0.0.1", "bmc_port": bmc_port, "bmc_username": "admin",
                            "bmc_password": BMC_PASSWORD, "power_driver": "ipmitool", "switch_id": switch_ids[switch],
                            "switch_port": port}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            nodes.push(Node { name, mac, disk, switch, port, _sim: sim });
        }
        Cluster { daemons, switches, nodes, dir, db }
    }

    /// Uploads the image through daemon 0 only.
    pub fn upload(&self, bytes: &[u8]) {
        let path = self.dir.path().join("os.img");
        std::fs::write(&path, bytes).expect("image");
        let out = self.daemons[0].cli(&["image", "add", path.to_str().expect("utf8"), "--name", "os", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits until every other daemon has copied the upload from daemon 0 (their heartbeats do).
    pub async fn wait_image_everywhere(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.daemons[1..].iter().all(|d| d.log().contains("fetched the image from a peer daemon")) {
            assert!(Instant::now() < deadline, "the image was not copied to every daemon:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Any live daemon's view of every node.
    pub async fn nodes(&self) -> Vec<Value> {
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

    pub async fn wait_all(&self, state: &str, timeout: Duration) -> Vec<Value> {
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

    /// Terminates every PostgreSQL session of daemon `index` (named by its `application_name`);
    /// returns how many there were.
    pub fn cut_sessions_of(&self, index: usize) -> usize {
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'metalhost d{index}'",
            self.db
        );
        let out = PgServer::shared().psql("postgres", &sql).expect("terminate");
        out.trim().parse().unwrap_or(0)
    }

    /// One query's answer from the pool's database, as psql prints it.
    pub fn sql(&self, query: &str) -> String {
        PgServer::shared().psql(&self.db, query).expect("query").trim().to_owned()
    }

    /// Sends `signal` (STOP, CONT) to daemon `index`.
    pub fn signal(&self, index: usize, signal: &str) {
        signal_pid(self.daemons[index].pid().expect("running"), signal);
    }

    pub fn logs(&self) -> String {
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

    pub async fn daemon_list(&self, via: usize) -> Vec<Value> {
        let (status, list) = self.daemons[via].get("/v1/daemons").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list.as_array().cloned().unwrap_or_default()
    }

    /// The disk of every node starts with the image, byte for byte.
    pub fn check_disks(&self, bytes: &[u8]) {
        for n in &self.nodes {
            let disk = std::fs::read(&n.disk).expect("disk");
            assert!(disk.starts_with(bytes), "{}'s disk does not hold the image", n.name);
        }
    }
}

/// Sends `signal` (STOP, CONT, ...) to a process this lab started.
pub fn signal_pid(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
