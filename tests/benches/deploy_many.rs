//! Provision 20 nodes at once in the process-agent lab (issue 6): each node's deploy time, the
//! total, and the host's overhead share (time not spent in a BMC, switch or agent step).

use std::time::{Duration, Instant};

use metalhost_tests::deploy_lab::{DeployLab, Options, image};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let lab = DeployLab::start(Options { nodes: count, ..Options::default() }).await;
    lab.upload("os", &image(4 << 20, 9));
    let started = Instant::now();
    let body = json!({"image": "os"});
    let answers = futures::future::join_all((0..count).map(|_| lab.daemon.post("/v1/instances", &body))).await;
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    let mut rows = Vec::new();
    for node in &lab.nodes {
        let n = lab.wait_node(&node.name, &["active"], Duration::from_secs(600)).await;
        assert_eq!(n["state"], "active", "{n}");
    }
    let total = started.elapsed();
    let mut overhead_sum = 0.0;
    let mut deploy_sum = 0.0;
    for node in &lab.nodes {
        let (_, events) = lab.daemon.get(&format!("/v1/nodes/{}/events", node.name)).await;
        let events = events.as_array().expect("events").clone();
        let start = events.iter().find(|e| e["to_state"] == "deploying").and_then(|e| metalhost_tests::daemon::time_ms(&e["at"])).expect("deploying");
        let end = events.iter().find(|e| e["to_state"] == "active").and_then(|e| metalhost_tests::daemon::time_ms(&e["at"])).expect("active");
        let steps: i64 = events.iter().filter(|e| e["kind"] == "step").filter_map(|e| e["duration_ms"].as_i64()).sum();
        let deploy_ms = (end - start) as f64;
        let overhead = (deploy_ms - steps as f64).max(0.0);
        overhead_sum += overhead;
        deploy_sum += deploy_ms;
        rows.push((node.name.clone(), deploy_ms, overhead));
    }
    for (name, deploy, overhead) in &rows {
        println!("{name:>7}: deploy {:.2} s, host overhead {:.0} ms", deploy / 1000.0, overhead);
    }
    println!("{count} nodes at once: total {:.2} s; mean deploy {:.2} s", total.as_secs_f64(), deploy_sum / count as f64 / 1000.0);
    println!("host overhead share (time outside BMC, switch and agent steps): {:.1}%", 100.0 * overhead_sum / deploy_sum);
}
