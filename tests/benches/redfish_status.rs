//! Redfish power status through the daemon (REST → power plugin → host `http` → sushy-emulator)
//! against `curl` of the same Redfish URL against the same emulator, measured in the same run.
//!
//! Run with `bench/redfish_status.sh` (release build of the daemon and the plugins).

use std::process::Command;
use std::time::{Duration, Instant};

use metalhost_conformance::sims::sushy::{self, SYSTEM_ID, Sushy};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::paths::plugin_wasm;
use reqwest::StatusCode;

const ROUNDS: usize = 200;
const PASSWORD: &str = "bench-redfish-pw";

fn median_p99(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(ROUNDS);
    let sushy = Sushy::start(&sushy::default_program(), "admin", PASSWORD).expect("sushy-emulator");
    // The system id is configured, so the plugin sends exactly the one GET curl sends.
    let config = format!(
        "[[plugin]]\nname = \"redfish\"\nkind = \"power\"\npath = \"{}\"\nnetwork = {{ ca = \"{}\" }}\nconfig = {{ system-id = \"{SYSTEM_ID}\" }}\n",
        plugin_wasm("redfish").display(),
        sushy.ca.cert.display()
    );
    let daemon = Daemon::start_with(&config);
    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw-bench")).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut body = node_body(1, sw["id"].as_i64().expect("id"), PASSWORD);
    body["bmc_port"] = serde_json::json!(sushy.port);
    body["power_driver"] = serde_json::json!("redfish");
    let (status, node) = daemon.post("/v1/nodes", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");

    let url = format!("{}{}", sushy.url(), sushy.system_path());
    let curl_config = format!("user = \"admin:{PASSWORD}\"\n");
    let config_file = sushy.dir().join("curl.conf");
    std::fs::write(&config_file, curl_config).expect("curl config");
    let curl = || {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "--cacert"])
            .arg(&sushy.ca.cert)
            .arg("-K")
            .arg(&config_file)
            .arg(&url)
            .output()
            .expect("curl")
    };

    for _ in 0..10 {
        assert_eq!(daemon.get("/v1/nodes/node1/power").await.0, StatusCode::OK);
        assert!(String::from_utf8_lossy(&curl().stdout).starts_with("200"));
    }
    let (mut through_daemon, mut curl_wall, mut curl_own) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let (status, answer) = daemon.get("/v1/nodes/node1/power").await;
        through_daemon.push(t.elapsed());
        assert_eq!(status, StatusCode::OK, "{answer}");
        let t = Instant::now();
        let out = curl();
        curl_wall.push(t.elapsed());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, total) = text.split_once(' ').expect("curl -w");
        assert_eq!(code, "200");
        curl_own.push(Duration::from_secs_f64(total.parse().expect("time_total")));
    }
    let (dm, dp) = median_p99(through_daemon);
    let (cm, cp) = median_p99(curl_wall);
    let (om, op) = median_p99(curl_own);
    println!("redfish power status, {rounds} rounds against one sushy-emulator (HTTPS, Basic auth, bcrypt):");
    println!("  through the daemon (GET /v1/nodes/node1/power: REST, fresh wasm sandbox, host http, store): median {dm:.2} ms, p99 {dp:.2} ms");
    println!("  curl of the same URL, process wall time: median {cm:.2} ms, p99 {cp:.2} ms");
    println!("  curl of the same URL, its own time_total: median {om:.2} ms, p99 {op:.2} ms");
    println!("  ratio daemon/curl (median): {:.2}x wall, {:.2}x time_total", dm / cm, dm / om);
}
