//! The process-agent lab for deploy/destroy tests: one ipmi_sim BMC per node whose power-on with
//! boot device PXE starts the real metalhost-agent (MAC and a file as its disk), one fake-switches
//! Juniper switch, and the real daemon with the real plugins.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::fake_switch::FakeSwitch;
use crate::ipmi_sim::IpmiSim;
use crate::paths;

pub const BMC_PASSWORD: &str = "lab-bmc-pw";
pub const SWITCH_PASSWORD: &str = "lab-switch-pw";
pub const DISK_BYTES: usize = 16 << 20;
/// The emulated switch's ports a big lab uses (ae1..ae23).
const PORTS_PER_SWITCH: usize = 23;

pub struct LabNode {
    pub id: i64,
    pub name: String,
    pub mac: String,
    pub port: String,
    pub sim: IpmiSim,
    pub disk: PathBuf,
}

pub struct DeployLab {
    pub daemon: Daemon,
    pub switch: FakeSwitch,
    /// Labs of more nodes than one emulated switch has ports: the 24th node on is cabled to these.
    pub more_switches: Vec<FakeSwitch>,
    pub nodes: Vec<LabNode>,
    pub dir: tempfile::TempDir,
}

pub struct Options {
    pub nodes: usize,
    /// The deadline of each driver-only state, inside which transient failures are retried.
    pub step_timeout_s: u64,
    pub agent_timeout_s: u64,
    pub extra_config: String,
    /// False: the BMC powers on but no agent ever starts.
    pub agents: bool,
    /// Point the switch record at a port nobody listens on.
    pub dead_switch: bool,
    /// Run the emulator through the launcher that releases a dead session's locks.
    pub switch_releases_locks: bool,
    /// `[network] tenant_vlans`: the VLANs projects get.
    pub tenant_vlans: String,
    /// Each node's disk (a file), in bytes.
    pub disk_bytes: usize,
    /// The CA fingerprint agents are told to trust instead of the daemon's (a TLS test).
    pub agent_ca_sha256: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 1,
            step_timeout_s: 60,
            agent_timeout_s: 60,
            extra_config: String::new(),
            agents: true,
            dead_switch: false,
            switch_releases_locks: false,
            tenant_vlans: "201-299".into(),
            disk_bytes: DISK_BYTES,
            agent_ca_sha256: None,
        }
    }
}

/// The daemon config of a process-agent lab: quick agent polls, the lab's VLANs, short retries, the
/// given deadlines, and the lab's plugins (shared with `cluster_lab.rs`).
pub fn lab_config(heartbeat_timeout_s: u64, step_timeout_s: u64, agent_timeout_s: u64) -> String {
    format!(
        r#"
[agent]
poll_interval_s = 1
heartbeat_interval_s = 1
heartbeat_timeout_s = {heartbeat_timeout_s}

[network]
provisioning_vlan = 100
tenant_vlan = 200

[deploy]
agent_poweroff = false
step_timeout_s = {step_timeout_s}
retry_initial_ms = 200
retry_max_ms = 2000
agent_timeout_s = {agent_timeout_s}
clean_timeout_s = {agent_timeout_s}
{plugins}"#,
        plugins = paths::lab_plugins_toml(),
    )
}

impl DeployLab {
    pub async fn start(opts: Options) -> DeployLab {
        let switch = if opts.switch_releases_locks {
            FakeSwitch::start_releasing_locks("juniper_generic", "admin", SWITCH_PASSWORD)
        } else {
            FakeSwitch::start("juniper_generic", "admin", SWITCH_PASSWORD)
        };
        let config = format!("{}\n{}", opts.extra_config, lab_config(20, opts.step_timeout_s, opts.agent_timeout_s))
            .replace("tenant_vlan = 200\n", &format!("tenant_vlan = 200\ntenant_vlans = {:?}\n", opts.tenant_vlans));
        let daemon = Daemon::start_with(&config);
        let dir = tempfile::tempdir().expect("tmp");
        let switch_port = if opts.dead_switch { crate::fake_switch::free_tcp_port() } else { switch.port };
        let (status, sw) = daemon
            .post(
                "/v1/switches",
                &json!({"name": "tor1", "address": "127.0.0.1", "port": switch_port, "username": "admin",
                        "password": SWITCH_PASSWORD, "driver": "juniper"}),
            )
            .await;
        assert_eq!(status, 201, "{sw}");
        // One emulated switch has ae1..ae23 for big labs: more nodes, more switches.
        let mut more_switches = Vec::new();
        let mut switch_ids = vec![sw["id"].clone()];
        for n in 1..opts.nodes.div_ceil(PORTS_PER_SWITCH) {
            let extra = FakeSwitch::start("juniper_generic", "admin", SWITCH_PASSWORD);
            let (status, body) = daemon
                .post(
                    "/v1/switches",
                    &json!({"name": format!("tor{}", n + 1), "address": "127.0.0.1", "port": extra.port, "username": "admin",
                            "password": SWITCH_PASSWORD, "driver": "juniper"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            switch_ids.push(body["id"].clone());
            more_switches.push(extra);
        }
        let mut nodes = Vec::new();
        for i in 1..=opts.nodes {
            let sim = IpmiSim::start("admin", BMC_PASSWORD);
            let mac = format!("52:54:00:{:02x}:77:{:02x}", i / 256, i % 256);
            let disk = dir.path().join(format!("disk{i}.raw"));
            std::fs::write(&disk, vec![0xAAu8; opts.disk_bytes]).expect("disk");
            let agent = paths::host_binary("metalhost-agent");
            let script = if opts.agents {
                format!(
                    "#!/bin/sh\n[ \"$1\" = pxe ] || exec sleep 100000\nexec {} {} --mac {mac} --disk {} >>{} 2>&1\n",
                    agent.display(),
                    match &opts.agent_ca_sha256 {
                        Some(pin) => format!("--api {} --ca-sha256 {pin}", daemon.url),
                        None => daemon.agent_api_args().join(" "),
                    },
                    disk.display(),
                    dir.path().join(format!("agent{i}.log")).display()
                )
            } else {
                "#!/bin/sh\nexec sleep 100000\n".to_owned()
            };
            sim.on_power_on(&script);
            // The emulator has ge-0/0/1..4; bigger labs use its ae1..ae23 ports.
            let port = if opts.nodes <= 4 { format!("ge-0/0/{i}") } else { format!("ae{}", (i - 1) % PORTS_PER_SWITCH + 1) };
            let switch_id = &switch_ids[(i - 1) / PORTS_PER_SWITCH];
            let name = format!("node{i}");
            let (status, node) = daemon
                .post(
                    "/v1/nodes",
                    &json!({"name": name, "mac": mac, "ip": format!("10.99.{}.{}", i / 200, 10 + i % 200), "cpus": 8, "ram_mb": 16384,
                            "disk_gb": 100, "bmc_address": "127.0.0.1", "bmc_port": sim.port, "bmc_username": "admin",
                            "bmc_password": BMC_PASSWORD, "power_driver": "ipmitool", "switch_id": switch_id, "switch_port": port}),
                )
                .await;
            assert_eq!(status, 201, "{node}");
            assert_eq!(node["state"], "available", "{node}");
            nodes.push(LabNode { id: node["id"].as_i64().expect("id"), name, mac, port, sim, disk });
        }
        DeployLab { daemon, switch, more_switches, nodes, dir }
    }

    /// Uploads an image through the CLI; returns its JSON.
    pub fn upload(&self, name: &str, bytes: &[u8]) -> Value {
        let path = self.dir.path().join(format!("{name}.img"));
        std::fs::write(&path, bytes).expect("image");
        let out = self.daemon.cli(&["image", "add", path.to_str().expect("utf8"), "--name", name, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// Waits until the node is in one of `states` (or `error`), and returns it.
    pub async fn wait_node(&self, node: &str, states: &[&str], timeout: Duration) -> Value {
        self.daemon.wait_node(node, states, timeout).await
    }
}

/// A deterministic image of `len` bytes.
/// `len` bytes of xorshift output: an image no compression shrinks, for throughput benchmarks.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

pub fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + usize::from(seed) * 7) % 253) as u8).collect()
}
