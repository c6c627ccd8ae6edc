//! A node deployed end to end through the daemon with its BMC on Redfish (sushy-emulator, HTTPS,
//! Basic auth, the 0.2.0 plugin) instead of IPMI: the process-agent lab's flow, where a watcher
//! plays the server — when the emulator reports the node on with a PXE boot override, it starts the
//! real agent, as ipmi_sim's chassis hook does for the IPMI lab; powered off, the agent dies.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metalhost_conformance::sims::sushy::{self, Sushy};
use metalhost_tests::daemon::Daemon;
use metalhost_tests::deploy_lab::image;
use metalhost_tests::fake_switch::FakeSwitch;
use metalhost_tests::paths::{self, plugin_wasm};
use serde_json::json;

const BMC_PASSWORD: &str = "redfish-lab-pw";
const SWITCH_PASSWORD: &str = "redfish-lab-switch-pw";

/// Polls the emulator and runs the agent while the node is on and was told to boot PXE.
fn server(sushy: Arc<Sushy>, agent: Vec<String>, stop: Arc<AtomicBool>, log: std::path::PathBuf) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut running: Option<Child> = None;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(system) = sushy.system(BMC_PASSWORD) {
                let power = system["PowerState"].as_str().unwrap_or("?").to_owned();
                let target = system["Boot"]["BootSourceOverrideTarget"].as_str().unwrap_or("?").to_owned();
                let state = format!("{power}/{target}");
                if seen.last() != Some(&state) {
                    seen.push(state);
                }
                let alive = running.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
                if power == "On" && target == "Pxe" && running.is_none() {
                    let out = std::fs::File::options().create(true).append(true).open(&log).expect("agent log");
                    let child =
                        Command::new(&agent[0]).args(&agent[1..]).stdin(Stdio::null()).stdout(out.try_clone().expect("log")).stderr(out).spawn();
                    running = Some(child.expect("start the agent"));
                } else if power == "Off"
                    && alive
                    && let Some(mut child) = running.take()
                {
                    let _ = child.kill();
                    let _ = child.wait();
                } else if power == "Off" {
                    running = None;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Some(mut child) = running {
            let _ = child.kill();
            let _ = child.wait();
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_redfish_bmc_deploys_end_to_end() {
    let sushy = Arc::new(Sushy::start(&sushy::default_program(), "admin", BMC_PASSWORD).unwrap_or_else(|e| panic!("{e}")));
    let switch = FakeSwitch::start("juniper_generic", "admin", SWITCH_PASSWORD);
    let config = format!(
        "[agent]\npoll_interval_s = 1\nheartbeat_interval_s = 1\nheartbeat_timeout_s = 20\n\
         [network]\nprovisioning_vlan = 100\ntenant_vlan = 200\n\
         [deploy]\nagent_poweroff = false\nstep_timeout_s = 90\nagent_timeout_s = 90\nclean_timeout_s = 90\n{}\
         \n[[plugin]]\nname = \"redfish\"\nkind = \"power\"\npath = \"{}\"\ncall_timeout_s = 40\nnetwork = {{ ca = \"{}\" }}\n",
        paths::lab_plugins_toml(),
        plugin_wasm("redfish").display(),
        sushy.ca.cert.display()
    );
    let daemon = Daemon::start_with(&config);
    let (status, sw) = daemon
        .post("/v1/switches", &json!({"name": "tor1", "address": "127.0.0.1", "port": switch.port, "username": "admin", "password": SWITCH_PASSWORD, "driver": "juniper"}))
        .await;
    assert_eq!(status, 201, "{sw}");
    let mac = "52:54:00:00:88:01";
    let (status, node) = daemon
        .post(
            "/v1/nodes",
            &json!({"name": "rf1", "mac": mac, "ip": "10.99.0.41", "cpus": 8, "ram_mb": 16384, "disk_gb": 100,
                    "bmc_address": "127.0.0.1", "bmc_port": sushy.port, "bmc_username": "admin", "bmc_password": BMC_PASSWORD,
                    "power_driver": "redfish", "switch_id": sw["id"], "switch_port": "ge-0/0/1"}),
        )
        .await;
    assert_eq!(status, 201, "{node}");
    assert_eq!(node["state"], "available", "{node}");

    let dir = tempfile::tempdir().expect("tmp");
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0xAAu8; 16 << 20]).expect("disk");
    let mut agent = vec![paths::host_binary("metalhost-agent").display().to_string()];
    agent.extend(daemon.agent_api_args());
    agent.extend(["--mac".into(), mac.into(), "--disk".into(), disk.display().to_string()]);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = server(sushy.clone(), agent, stop.clone(), dir.path().join("agent.log"));

    let bytes = image(3 << 20, 5);
    let img = dir.path().join("os.img");
    std::fs::write(&img, &bytes).expect("image");
    let out = daemon.cli(&["image", "add", img.to_str().expect("utf8"), "--name", "os", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = daemon.cli(&["instance", "create", "--image", "os", "--name", "rfweb", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let node = daemon.wait_node("rf1", &["active"], Duration::from_secs(240)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");
    assert_eq!(
        node["state"],
        "active",
        "{node}\nemulator states: {seen:?}\nagent: {}",
        std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
    );
    assert!(std::fs::read(&disk).expect("disk")[..bytes.len()] == bytes[..], "the image is not on the disk");
    assert_eq!(switch.port_vlan("ge-0/0/1"), Some(200), "the port is on the tenant VLAN");
    let system = sushy.system(BMC_PASSWORD).expect("emulator");
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Hdd", "boots from disk: {system}");
    assert_eq!(system["PowerState"], "On", "{system}");
    assert!(seen.iter().any(|s| s == "On/Pxe"), "the node was powered on into PXE: {seen:?}");
}
