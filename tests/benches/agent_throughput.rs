//! Agent write throughput (issue 5): the real agent downloads an image from the real daemon over
//! loopback into a file, against `curl -s URL | dd of=FILE bs=4M` in the same run; plus what the
//! sha256 costs (sha256sum over the same bytes).

use std::process::Command;
use std::time::Instant;

use metalhost_tests::agent_lab::{plant_task, run_agent, task_state};
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};

const MIB: usize = 1 << 20;

fn secs(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn drop_page_cache_of(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
}

#[tokio::main]
async fn main() {
    let size_mib: usize = std::env::var("BENCH_IMAGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let d = Daemon::start();
    let (_, sw) = d.post("/v1/switches", &switch_body("sw", "pw")).await;
    let (_, node) = d.post("/v1/nodes", &node_body(1, sw["id"].as_i64().unwrap_or(1), "pw")).await;
    let dir = tempfile::tempdir().expect("tmp");
    let image = dir.path().join("image.raw");
    std::fs::write(&image, metalhost_tests::deploy_lab::incompressible(size_mib * MIB)).expect("image");
    let out = d.cli(&["image", "add", image.to_str().expect("utf8"), "--name", "big", "--json"]);
    assert!(out.status.success());
    let img: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let url = format!("{}/v1/images/{}/data", d.url, img["id"]);
    let disk = dir.path().join("disk.raw");
    let mac = node["mac"].as_str().expect("mac").to_owned();

    let mut agent_runs = Vec::new();
    let mut curl_runs = Vec::new();
    for _ in 0..3 {
        drop_page_cache_of(&disk);
        std::fs::write(&disk, []).expect("disk");
        let task = plant_task(&d, node["id"].as_i64().expect("id"), "deploy", img["id"].as_i64(), "{}", 600);
        agent_runs.push(secs(|| {
            let o = run_agent(&d, &mac, &disk, 600);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }));
        assert_eq!(task_state(&d, task).0, "succeeded");
        drop_page_cache_of(&disk);
        curl_runs.push(secs(|| {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "curl -s {ca} -H 'Authorization: Bearer {TOKEN}' '{url}' | dd of='{}' bs=4M iflag=fullblock conv=fsync status=none",
                    disk.display(),
                    ca = d.ca_file.as_ref().map(|f| format!("--cacert '{}'", f.display())).unwrap_or_default()
                ))
                .status()
                .expect("curl | dd");
            assert!(status.success());
        }));
    }
    // The agent's own sha256 (the sha2 crate, SHA-NI when the CPU has it) over the same bytes in memory.
    let data = std::fs::read(&image).expect("read image");
    let sha = secs(|| {
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(&data));
    });
    drop(data);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, c) = (median(agent_runs), median(curl_runs));
    let mb = size_mib as f64;
    println!("image {size_mib} MiB over loopback, median of 3");
    println!("agent (download + sha256 + write + fsync + report): {:.2} s = {:.0} MiB/s", a, mb / a);
    println!("baseline curl | dd bs=4M conv=fsync (no hash):      {:.2} s = {:.0} MiB/s", c, mb / c);
    println!("ratio agent/baseline throughput: {:.2} (target >= 0.9)", c / a);
    println!(
        "sha256 of the same bytes in memory (sha2 crate, as the agent hashes): {:.2} s = {:.0} MiB/s = {:.0}% of the agent's time",
        sha,
        mb / sha,
        100.0 * sha / a
    );
}
