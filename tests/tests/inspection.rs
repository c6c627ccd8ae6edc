//! Inspection and enlistment with the real agent as a process on this machine (so what it reports
//! is this machine's hardware, read here independently), the real daemon, ipmi_sim BMCs and the
//! fake-switches emulator; and the discovery endpoint's refusals of bad reports.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use metalhost_tests::daemon::{Daemon, switch_body};
use metalhost_tests::deploy_lab::{BMC_PASSWORD, DeployLab, Options};
use metalhost_tests::paths;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// This machine's CPUs as /proc/cpuinfo lists them.
fn cpus_here() -> u64 {
    let text = std::fs::read_to_string("/proc/cpuinfo").expect("cpuinfo");
    text.lines().filter(|l| l.starts_with("processor")).count() as u64
}

fn mem_total_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: u64 =
        text.lines().find_map(|l| l.strip_prefix("MemTotal:")).expect("MemTotal").trim().trim_end_matches("kB").trim().parse().expect("kB");
    kib / 1024
}

/// The MACs of this machine's NICs, but lo and all-zero ones.
fn macs_here() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .expect("sys class net")
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
        .collect()
}

fn report_macs(report: &Value) -> BTreeSet<String> {
    report["nics"].as_array().expect("nics").iter().map(|n| n["mac"].as_str().unwrap_or("").to_owned()).collect()
}

/// Checks a report against this machine.
fn assert_is_this_machine(report: &Value) {
    assert_eq!(report["cpu"]["count"].as_u64(), Some(cpus_here()), "{report:#}");
    let mib = report["memory_bytes"].as_u64().expect("memory") >> 20;
    // Installed memory is at least what the kernel has left for itself (MemTotal), and not much more.
    let total = mem_total_mib();
    assert!(mib >= total && mib <= total + total / 4 + 512, "memory {mib} MiB vs MemTotal {total} MiB");
    let here = macs_here();
    let reported = report_macs(report);
    assert!(!reported.is_empty() && reported.is_subset(&here), "reported NICs {reported:?}, this machine {here:?}");
    let efi = Path::new("/sys/firmware/efi").is_dir();
    assert_eq!(report["boot_mode"], if efi { "uefi" } else { "bios" });
    for disk in report["disks"].as_array().expect("disks") {
        let name = disk["name"].as_str().expect("disk name");
        let sectors: u64 = std::fs::read_to_string(format!("/sys/block/{name}/size")).expect("disk size").trim().parse().expect("sectors");
        assert_eq!(disk["size_bytes"].as_u64(), Some(sectors * 512), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspecting_a_node_reports_its_hardware_and_puts_it_back_powered_off() {
    let lab = DeployLab::start(Options { extra_config: "[inspection]\nlldp_wait_s = 1\n".into(), ..Options::default() }).await;
    let node = &lab.nodes[0];
    let (status, _) = lab.daemon.get(&format!("/v1/nodes/{}/inventory", node.name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no inventory before the first inspection");

    let started = Instant::now();
    let out = lab.daemon.cli(&["node", "inspect", &node.name, "--wait", "--json"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(n["state"], "available", "{n}\n{}", lab.daemon.log());
    eprintln!("inspection of {} (process agent): {} ms", node.name, took.as_millis());

    let (status, inventory) = lab.daemon.get(&format!("/v1/nodes/{}/inventory", node.name)).await;
    assert_eq!(status, StatusCode::OK, "{inventory}");
    let report = &inventory["report"];
    assert_is_this_machine(report);
    // The node's facts follow the report.
    assert_eq!(n["cpus"].as_u64(), Some(cpus_here()));
    assert_eq!(n["ram_mb"].as_u64(), report["memory_bytes"].as_u64().map(|b| b >> 20));
    let largest = report["disks"].as_array().expect("disks").iter().filter_map(|d| d["size_bytes"].as_u64()).max().unwrap_or(0);
    assert_eq!(n["disk_gb"].as_u64(), Some((largest >> 30).max(1)));
    assert_eq!(n["boot_mode"], report["boot_mode"]);

    // The workflow: booted from PXE, the agent's task, powered off at the end, state events both ways.
    assert!(!node.sim.powered(), "the node must be off after inspection");
    assert_eq!(node.sim.boot_device().as_deref(), Some("pxe"));
    let (_, events) = lab.daemon.get(&format!("/v1/nodes/{}/events", node.name)).await;
    let messages: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["message"].as_str()).collect();
    for expected in ["boot device -> pxe: ok", "agent inspects the hardware: ok", "power off: ok", "inspected: back to available"] {
        assert!(messages.iter().any(|m| m.contains(expected)), "no {expected:?} in {messages:#?}");
    }
    let states: Vec<(String, String)> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "state")
        .map(|e| (e["from_state"].as_str().unwrap_or("").to_owned(), e["to_state"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(states.contains(&("available".into(), "inspecting".into())) && states.contains(&("inspecting".into(), "available".into())), "{states:?}");

    // An instance cannot take a node while it is inspected; a node in use cannot be inspected.
    let (status, body) = lab.daemon.post(&format!("/v1/nodes/{}/inspect", node.name), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "inspecting");
    let (status, body) = lab.daemon.post(&format!("/v1/nodes/{}/inspect", node.name), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a second inspection while one runs: {body}");
    let n = lab.wait_node(&node.name, &["available"], Duration::from_secs(90)).await;
    assert_eq!(n["state"], "available", "{n}");
}

/// A daemon with one switch, discovery on or off, and a short LLDP wait.
async fn discovery_daemon(enabled: bool) -> (Daemon, Value) {
    let d = Daemon::start_with(&format!("[discovery]\nenabled = {enabled}\n"));
    let (status, sw) = d.post("/v1/switches", &switch_body("tor1", "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    (d, sw)
}

/// The real agent for a MAC no node has, its console lines in a file; killed by PID on drop.
struct Agent {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Agent {
    fn start(d: &Daemon, mac: &str) -> Agent {
        let log = tempfile::NamedTempFile::new().expect("log");
        let child = std::process::Command::new(paths::host_binary("metalhost-agent"))
            .args(d.agent_api_args())
            .args(["--mac", mac, "--once"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start the agent");
        Agent { child, log }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits until the agent printed `words`; returns its whole output.
    async fn wait_for(&self, words: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if text.contains(words) {
                return text;
            }
            assert!(Instant::now() < deadline, "the agent did not print {words:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discovery_off_an_unknown_machine_creates_nothing() {
    let (d, _) = discovery_daemon(false).await;
    let agent = Agent::start(&d, "52:54:00:00:88:01");
    let text = agent.wait_for("discovery is off", Duration::from_secs(60)).await;
    assert!(text.contains("lookup: 404"), "{text}");
    // It goes on looking itself up (an operator may enrol it) and offers itself only once.
    agent.wait_for("lookup: 404, no node expecting an agent has MACs 52:54:00:00:88:01\n[agent] lookup: 404", Duration::from_secs(30)).await;
    assert_eq!(agent.text().matches("inspecting this machine for enlistment").count(), 1);
    let (_, nodes) = d.get("/v1/nodes").await;
    assert_eq!(nodes, json!([]), "discovery is off: no node may appear");
    // The boot script sends an unknown MAC nowhere.
    let script = reqwest::get(format!("{}/v1/boot/boot.ipxe", d.boot_url)).await.expect("script").text().await.expect("text");
    assert!(script.contains("no boot entry") && !script.contains("kernel "), "{script}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discovery_on_an_unknown_machine_is_enlisted_and_completed_by_the_operator() {
    let (d, sw) = discovery_daemon(true).await;
    let script = reqwest::get(format!("{}/v1/boot/boot.ipxe", d.boot_url)).await.expect("script").text().await.expect("text");
    assert!(
        script.contains(&format!("kernel {}/v1/bootstrap/vmlinuz", d.boot_url)) && script.contains(&format!("metalhost.api={}", d.url)),
        "{script}"
    );

    let started = Instant::now();
    let mut agent = Agent::start(&d, "52:54:00:00:88:02");
    let status = tokio::task::spawn_blocking(move || {
        let status = agent.child.wait();
        (agent, status)
    });
    let (agent, status) = tokio::time::timeout(Duration::from_secs(90), status).await.expect("the agent ends after enlisting").expect("join");
    let text = agent.text();
    assert!(status.expect("wait").success(), "{text}");
    assert!(text.contains("enlisted as node node-"), "{text}");
    eprintln!("enlistment (process agent, 5 s LLDP listen): {} ms", started.elapsed().as_millis());

    let (_, nodes) = d.get("/v1/nodes").await;
    let nodes = nodes.as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{nodes:#?}");
    let n = &nodes[0];
    assert_eq!(n["state"], "enrolled", "{n}");
    assert_eq!(n["cpus"].as_u64(), Some(cpus_here()));
    assert!(macs_here().contains(n["mac"].as_str().unwrap_or("")), "{n}");
    assert_eq!(n["switch_id"], sw["id"]);
    let error = metalhost_tests::daemon::failure_line(&n["last_error"]);
    assert!(error.contains("BMC credentials") && error.contains("switch port") && error.contains("metalhost node update"), "{error}");
    let name = n["name"].as_str().expect("name").to_owned();
    let (status, inventory) = d.get(&format!("/v1/nodes/{name}/inventory")).await;
    assert_eq!(status, StatusCode::OK);
    assert_is_this_machine(&inventory["report"]);

    // Inspecting it before it has a BMC is refused; the operator completes it and it is available.
    let (status, body) = d.post(&format!("/v1/nodes/{name}/inspect"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let sim = metalhost_tests::ipmi_sim::IpmiSim::start("admin", BMC_PASSWORD);
    let port = sim.port.to_string();
    let out = d.cli_with_env(
        &[
            "node",
            "update",
            &name,
            "--bmc-address",
            "127.0.0.1",
            "--bmc-port",
            &port,
            "--bmc-username",
            "admin",
            "--power-driver",
            "ipmitool",
            "--switch-port",
            "ge-0/0/3",
            "--json",
        ],
        &[("METALHOST_BMC_PASSWORD", BMC_PASSWORD)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let updated: Value = serde_json::from_slice(&out.stdout).expect("json");
    // No power plugin is loaded in this daemon: complete, but enrolled until one is.
    let error = metalhost_tests::daemon::failure_line(&updated["last_error"]);
    assert!(error.contains("power driver \"ipmitool\"") && !error.contains("BMC credentials"), "{updated}");

    // The same machine again: its MACs now belong to a node, so it is refused.
    let (status, body) = d.call_with_token(Method::POST, "/v1/agent/discover", Some(&inventory["report"]), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("belongs to node"), "{body}");
}

/// A plausible report for a machine with one NIC.
fn report(mac: &str) -> Value {
    json!({
        "cpu": {"count": 4, "model": "Test CPU"},
        "memory_bytes": 8u64 << 30,
        "disks": [{"name": "sda", "size_bytes": 500u64 << 30, "model": null, "serial": null, "rotational": false, "wwn": null}],
        "nics": [{"name": "eth0", "mac": mac, "driver": "e1000", "link": true, "speed_mbps": 1000, "ipv4": "10.99.0.150"}],
        "system": {"vendor": "Acme", "product": "X1", "serial": "S1"},
        "boot_mode": "uefi",
        "lldp": [{"interface": "eth0", "chassis_id": "00:1c:73:aa:bb:01", "port_id": "ge-0/0/9", "system_name": "tor1"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_refused_and_write_nothing() {
    let d = Daemon::start_with("[discovery]\nenabled = true\n");
    let (status, sw) =
        d.post("/v1/switches", &json!({"name": "tor1", "address": "127.0.0.1", "port": 830, "username": "admin", "password": "pw", "driver": "juniper", "chassis_id": "00-1C-73-AA-BB-01"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    assert_eq!(sw["chassis_id"], "00:1c:73:aa:bb:01", "the chassis id is kept normalised");
    // A switch registered before its chassis id was known gets one later; two cannot share one.
    let (status, _) = d.post("/v1/switches", &switch_body("tor2", "pw")).await;
    assert_eq!(status, StatusCode::CREATED);
    let out = d.cli(&["switch", "update", "tor2", "--chassis-id", "00:1C:73:AA:BB:02", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tor2: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(tor2["chassis_id"], "00:1c:73:aa:bb:02");
    let (status, body) = d.patch("/v1/switches/tor2", &json!({"chassis_id": "00:1c:73:aa:bb:01"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let http = d.http_client();
    let post_raw = |body: Vec<u8>| {
        let request = http.post(format!("{}/v1/agent/discover", d.url)).header("content-type", "application/json").body(body);
        async move {
            let response = request.send().await.expect("send");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let mut huge = report("52:54:00:00:66:01");
    huge["cpu"]["model"] = json!("x".repeat(70 * 1024));
    let mut zero_cpus = report("52:54:00:00:66:01");
    zero_cpus["cpu"]["count"] = json!(0);
    let mut bad_mac = report("52:54:00:00:66:01");
    bad_mac["nics"][0]["mac"] = json!("52:54:00:zz:00:01");
    let mut extra_field = report("52:54:00:00:66:01");
    extra_field["bmc_password"] = json!("sneaky");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("oversized", serde_json::to_vec(&huge).expect("json"), "more than 65536"),
        ("not JSON", b"{\"cpu\": ".to_vec(), "invalid inventory report"),
        ("wrong shape", br#"{"cpu": "many"}"#.to_vec(), "invalid inventory report"),
        ("unknown field", serde_json::to_vec(&extra_field).expect("json"), "unknown field"),
        ("no CPUs", serde_json::to_vec(&zero_cpus).expect("json"), "cpu.count"),
        ("bad MAC", serde_json::to_vec(&bad_mac).expect("json"), "invalid MAC"),
    ];
    for (what, body, words) in cases {
        let (status, text) = post_raw(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert!(text.contains(words), "{what}: {text}");
    }
    let (_, nodes) = d.get("/v1/nodes").await;
    assert_eq!(nodes, json!([]), "a refused report writes nothing");

    // A good one: enlisted on the port its LLDP neighbour names, on the switch with that chassis id.
    let (status, enlisted) = d.call_with_token(Method::POST, "/v1/agent/discover", Some(&report("52:54:00:00:66:01")), None).await;
    assert_eq!(status, StatusCode::CREATED, "{enlisted}");
    let (_, n) = d.get(&format!("/v1/nodes/{}", enlisted["node_id"])).await;
    assert_eq!((n["switch_id"].clone(), n["switch_port"].as_str()), (sw["id"].clone(), Some("ge-0/0/9")), "{n}");
    assert_eq!((n["cpus"].as_u64(), n["ram_mb"].as_u64(), n["disk_gb"].as_u64()), (Some(4), Some(8192), Some(500)), "{n}");
    assert_eq!((n["boot_mode"].as_str(), n["ip"].as_str(), n["state"].as_str()), (Some("uefi"), Some("10.99.0.150"), Some("enrolled")));
    let error = metalhost_tests::daemon::failure_line(&n["last_error"]);
    assert!(error.contains("BMC credentials") && !error.contains("switch port"), "{error}");

    // A second machine claiming the first one's MAC beside its own: refused, nothing written.
    let mut liar = report("52:54:00:00:66:02");
    liar["nics"]
        .as_array_mut()
        .expect("nics")
        .push(json!({"name": "eth1", "mac": "52:54:00:00:66:01", "driver": null, "link": false, "speed_mbps": null, "ipv4": null}));
    let (status, body) = d.call_with_token(Method::POST, "/v1/agent/discover", Some(&liar), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, nodes) = d.get("/v1/nodes").await;
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
    // Inventory posts need a node token.
    let (status, _) = d.call_with_token(Method::POST, "/v1/agent/inventory", Some(&report("52:54:00:00:66:03")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
