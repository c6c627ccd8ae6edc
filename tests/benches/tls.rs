//! What TLS costs (issue 31), in one run against a baseline: the same daemon build twice, one
//! serving TLS (the default) and one with `[tls] enabled = false`.
//! - The agent's image write (download, sha256, write, fsync, report) from each; goal: TLS's
//!   throughput at least 0.90 of plain HTTP's.
//! - `GET /v1/nodes/{id}` latency on one kept-alive connection to each (p50, p95).
//!
//! Runs are interleaved, so other load on the machine hits both alike. BENCH_IMAGE_MIB (default
//! 256) sets the image size, BENCH_RUNS (default 3) the image writes per daemon, BENCH_GETS
//! (default 2000) the GETs per daemon.

use std::time::Instant;

use metalhost_tests::agent_lab::{plant_task, run_agent, task_state};
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};

const MIB: usize = 1 << 20;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Side {
    label: &'static str,
    daemon: Daemon,
    node: i64,
    mac: String,
    image: i64,
}

async fn side(label: &'static str, config: &str, image: &std::path::Path) -> Side {
    let mut daemon = Daemon::start_with(config);
    daemon.skip_document_checks();
    let (_, sw) = daemon.post("/v1/switches", &switch_body("sw", "pw")).await;
    let (_, node) = daemon.post("/v1/nodes", &node_body(1, sw["id"].as_i64().unwrap_or(1), "pw")).await;
    let out = daemon.cli(&["image", "add", image.to_str().expect("utf8"), "--name", "big", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    Side {
        label,
        node: node["id"].as_i64().expect("id"),
        mac: node["mac"].as_str().expect("mac").to_owned(),
        image: img["id"].as_i64().expect("id"),
        daemon,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let (size_mib, runs, gets) = (env_or("BENCH_IMAGE_MIB", 256), env_or("BENCH_RUNS", 3), env_or("BENCH_GETS", 2000));
    let dir = tempfile::tempdir().expect("tmp");
    let image = dir.path().join("image.raw");
    std::fs::write(&image, metalhost_tests::deploy_lab::incompressible(size_mib * MIB)).expect("image");
    let sides = [side("tls", "", &image).await, side("plain", "[tls]\nenabled = false\n", &image).await];
    assert!(sides[0].daemon.url.starts_with("https://") && sides[1].daemon.url.starts_with("http://"));

    let disk = dir.path().join("disk.raw");
    let mut writes: [Vec<f64>; 2] = Default::default();
    for _ in 0..runs {
        for (i, s) in sides.iter().enumerate() {
            let _ = std::fs::remove_file(&disk);
            std::fs::write(&disk, []).expect("disk");
            let task = plant_task(&s.daemon, s.node, "deploy", Some(s.image), "{}", 600);
            let started = Instant::now();
            let out = run_agent(&s.daemon, &s.mac, &disk, 600);
            writes[i].push(started.elapsed().as_secs_f64());
            assert!(out.status.success(), "{}: {}", s.label, String::from_utf8_lossy(&out.stderr));
            assert_eq!(task_state(&s.daemon, task).0, "succeeded");
        }
    }

    // One client per daemon, one connection each (kept alive), warmed up first.
    let mut latencies: [Vec<f64>; 2] = Default::default();
    let clients: Vec<reqwest::Client> =
        sides.iter().map(|s| s.daemon.http_client_builder().pool_max_idle_per_host(1).build().expect("client")).collect();
    for (i, s) in sides.iter().enumerate() {
        for _ in 0..50 {
            let r = clients[i].get(format!("{}/v1/nodes/{}", s.daemon.url, s.node)).bearer_auth(TOKEN).send().await.expect("get");
            assert!(r.status().is_success());
            r.bytes().await.expect("body");
        }
    }
    for _ in 0..gets {
        for (i, s) in sides.iter().enumerate() {
            let started = Instant::now();
            let r = clients[i].get(format!("{}/v1/nodes/{}", s.daemon.url, s.node)).bearer_auth(TOKEN).send().await.expect("get");
            r.bytes().await.expect("body");
            latencies[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let [tls_w, plain_w] = writes.map(median);
    let [tls_l, plain_l] = latencies;
    let (tls_p50, plain_p50) = (percentile(tls_l.clone(), 0.5), percentile(plain_l.clone(), 0.5));
    let (tls_p95, plain_p95) = (percentile(tls_l, 0.95), percentile(plain_l, 0.95));
    let mb = size_mib as f64;
    println!("image {size_mib} MiB over loopback, agent download + sha256 + write + fsync + report; median of {runs}");
    println!("  over TLS:        {tls_w:.2} s = {:.0} MiB/s", mb / tls_w);
    println!("  over plain HTTP: {plain_w:.2} s = {:.0} MiB/s", mb / plain_w);
    println!("ratio image write throughput TLS / plain: {:.2} (goal >= 0.90)", plain_w / tls_w);
    println!("GET /v1/nodes/{{id}} on one kept-alive connection, {gets} each, interleaved:");
    println!("  over TLS:        p50 {tls_p50:.3} ms, p95 {tls_p95:.3} ms");
    println!("  over plain HTTP: p50 {plain_p50:.3} ms, p95 {plain_p95:.3} ms");
    println!("ratio GET latency TLS / plain: p50 {:.2}, p95 {:.2}", tls_p50 / plain_p50, tls_p95 / plain_p95);
}
