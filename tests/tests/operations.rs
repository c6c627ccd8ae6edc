//! Operator actions through the daemon and the CLI, with real plugins and peers: plugin list,
//! node power and boot device, switch check, port moves, and the periodic power sync.

use std::time::{Duration, Instant};

use metalhost_tests::deploy_lab::{DeployLab, Options};
use serde_json::{Value, json};

fn cli(lab: &DeployLab, args: &[&str]) -> (bool, String, String) {
    let out = lab.daemon.cli(args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_list_power_and_boot_device() {
    let lab = DeployLab::start(Options {
        extra_config: "[[plugin]]\nname = \"broken\"\nkind = \"power\"\npath = \"/nonexistent/broken.wasm\"\n".into(),
        ..Options::default()
    })
    .await;
    let (ok, out, err) = cli(&lab, &["plugin", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    let by_name = |n: &str| list.as_array().expect("list").iter().find(|p| p["name"] == n).cloned().expect("plugin");
    let ipmitool = by_name("ipmitool");
    assert_eq!((ipmitool["loaded"].as_bool(), ipmitool["kind"].as_str(), ipmitool["version"].as_str()), (Some(true), Some("power"), Some("0.1.0")));
    assert_eq!(ipmitool["sha256"].as_str().map(str::len), Some(64));
    assert!(ipmitool["grants"]["exec"]["ipmitool"].as_str().unwrap_or_default().starts_with('/'), "{ipmitool}");
    let broken = by_name("broken");
    assert_eq!(broken["loaded"], false);
    assert!(broken["error"].as_str().unwrap_or_default().contains("/nonexistent/broken.wasm"), "{broken}");
    let (ok, table, _) = cli(&lab, &["plugin", "list"]);
    assert!(ok && table.contains("juniper") && table.contains("LOADED"), "{table}");

    let node = &lab.nodes[0];
    let (ok, out, err) = cli(&lab, &["node", "power", "node1", "on", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"on\""), "{out}");
    assert!(node.sim.powered());
    let (_, n) = lab.daemon.get("/v1/nodes/node1").await;
    assert_eq!(n["power_state"], "on");
    let (ok, out, _) = cli(&lab, &["node", "power", "node1", "status"]);
    assert!(ok && out.contains("on"), "{out}");
    let (ok, _, err) = cli(&lab, &["node", "power", "node1", "off"]);
    assert!(ok, "{err}");
    assert!(!node.sim.powered());
    let (ok, _, err) = cli(&lab, &["node", "boot-device", "node1", "pxe"]);
    assert!(ok, "{err}");
    assert_eq!(node.sim.boot_device().as_deref(), Some("pxe"));
    let (ok, _, err) = cli(&lab, &["node", "boot-device", "node1", "disk", "--once"]);
    assert!(ok, "{err}");
    assert_eq!(node.sim.boot_device().as_deref(), Some("default"));
    // A BMC that rejects the password: a clear error naming the plugin.
    lab.daemon.patch("/v1/nodes/node1", &json!({"bmc_password": "not-the-password"})).await;
    let (ok, _, err) = cli(&lab, &["node", "power", "node1", "status"]);
    assert!(!ok && err.contains("ipmitool") && err.contains("auth-failed"), "{err}");
    assert!(!err.contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_check_and_concurrent_port_moves_on_one_switch() {
    let lab = DeployLab::start(Options { nodes: 3, ..Options::default() }).await;
    let (ok, out, err) = cli(&lab, &["switch", "check", "tor1", "--json"]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["reachable"], true);
    assert!(report["model"].as_str().unwrap_or_default().contains("juniper"));
    assert!(report["capabilities"].as_array().is_some_and(|c| !c.is_empty()));
    let (_, sw) = lab.daemon.get("/v1/switches/tor1").await;
    assert!(sw["host_key"].as_str().unwrap_or_default().starts_with("SHA256:"), "first-use key remembered: {sw}");

    // Three nodes on the same switch moved at once: the daemon serialises them; all end up right.
    let moves = [("node1", "tenant", Some(300)), ("node2", "tenant", None), ("node3", "provisioning", None)];
    let requests: Vec<(String, Value)> =
        moves.iter().map(|(n, net, vlan)| (format!("/v1/nodes/{n}/network"), json!({"network": net, "vlan": vlan}))).collect();
    let answers = futures::future::join_all(requests.iter().map(|(path, body)| lab.daemon.call(reqwest::Method::PUT, path, Some(body)))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(lab.switch.port_vlan("ge-0/0/1"), Some(300));
    assert_eq!(lab.switch.port_vlan("ge-0/0/2"), Some(200));
    assert_eq!(lab.switch.port_vlan("ge-0/0/3"), Some(100));
    let (_, n1) = lab.daemon.get("/v1/nodes/node1").await;
    assert_eq!((n1["network"].as_str(), n1["vlan"].as_i64()), (Some("tenant"), Some(300)));
    let (ok, out, _) = cli(&lab, &["node", "network", "node1", "provisioning"]);
    assert!(ok && out.contains("provisioning"), "{out}");
    assert_eq!(lab.switch.port_vlan("ge-0/0/1"), Some(100));
    // A switch that is down: a clear failure, and the recorded network does not change.
    drop(lab.switch);
    let (status, body) = lab.daemon.call(reqwest::Method::PUT, "/v1/nodes/node2/network", Some(&json!({"network": "provisioning"}))).await;
    assert_eq!(status, 504, "a switch that does not answer is a gateway timeout: {body}");
    assert_eq!(body["error"]["code"], "unreachable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("unreachable"), "{body}");
    let (_, n2) = lab.daemon.get("/v1/nodes/node2").await;
    assert_eq!(n2["vlan"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_sync_records_drift() {
    let lab =
        DeployLab::start(Options { extra_config: "[power_sync]\ninterval_s = 1\nconcurrency = 4\njitter_ms = 50\n".into(), ..Options::default() })
            .await;
    // Power the node on behind the daemon's back.
    let status = std::process::Command::new("ipmitool")
        .args([
            "-I",
            "lanplus",
            "-H",
            "127.0.0.1",
            "-p",
            &lab.nodes[0].sim.port.to_string(),
            "-U",
            "admin",
            "-E",
            "-C",
            "3",
            "chassis",
            "power",
            "on",
        ])
        .env("IPMI_PASSWORD", metalhost_tests::deploy_lab::BMC_PASSWORD)
        .status()
        .expect("ipmitool");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, n) = lab.daemon.get("/v1/nodes/node1").await;
        if n["power_state"] == "on" {
            break;
        }
        assert!(Instant::now() < deadline, "power sync did not notice: {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, events) = lab.daemon.get("/v1/nodes/node1/events").await;
    assert!(
        events.as_array().expect("events").iter().any(|e| e["kind"] == "power" && e["message"].as_str().unwrap_or_default().contains("power sync")),
        "{events}"
    );
}
