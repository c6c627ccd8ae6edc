//! Scale (issue 33): figures at 10,000 nodes on one daemon, each printed with its baseline from the
//! same run and the ratio. Parts (BENCH_PARTS, comma separated; all by default):
//! - `enrol`: 10,000 enrolments through REST (16 clients) on one daemon on PostgreSQL vs one on
//!   SQLite (goal: rate ratio ≥ 0.80);
//! - `sweep`: the daemon's power-sync sweep of 10,000 ipmi-lan nodes against the compiled lab BMC
//!   (one `lab-bmc` process, one port per BMC) vs the same sweep straight through the PluginHost
//!   (goal: ≤ 5 s, and ≤ 2× the PluginHost sweep);
//! - `lists`: one page of 100 of 10,000 nodes (p95 over 200 pages at random cursors; goal ≤ 20 ms)
//!   against the same page on a pool of 100, and the whole list of 10,000 in one answer (goal
//!   ≤ 60 ms) against the same 10,000 read as ten pages of 1,000; the daemon's RSS at 10,000 idle;
//! - `deploys`: 250 process-agent deploys at once (small image; one emulated switch per 23 nodes):
//!   all active, the host's share of the deploy time (time not in a BMC, switch or agent step; goal
//!   ≤ 3 %) against the same share for 25 deploys at once, and the daemon's peak RSS.
//!
//! Run with `bench/scale.sh` (release daemon). BENCH_NODES, BENCH_BMCS scale it down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_plugin_host::{Bmc, Credentials, PluginHost, PluginKind, PluginSpec};
use metalhost_tests::compiled_bmc::CompiledBmc;
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use metalhost_tests::ipmi_bmc::LabBmcOptions;
use metalhost_tests::paths::{plugin_spec, plugin_wasm};
use metalhost_tests::postgres::PgServer;
use reqwest::StatusCode;

const CLIENTS: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "enrol,sweep,lists,deploys".to_owned());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    if parts.contains(&"enrol") {
        enrolment(env_usize("BENCH_NODES", 10_000)).await;
    }
    if parts.contains(&"sweep") {
        sweep(env_usize("BENCH_BMCS", 10_000)).await;
    }
    if parts.contains(&"lists") {
        lists(env_usize("BENCH_NODES", 10_000)).await;
    }
    if parts.contains(&"deploys") {
        deploys(env_usize("BENCH_DEPLOYS", 250)).await;
    }
}

// ---- lists at 10,000 nodes ------------------------------------------------------------------

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(at).copied().unwrap_or(f64::NAN)
}

/// Milliseconds to read `path` whole on a kept-alive client.
async fn timed_get(client: &reqwest::Client, daemon: &Daemon, path: &str, gzip: bool) -> (f64, usize) {
    let started = Instant::now();
    let mut request = client.get(format!("{}{path}", daemon.url)).bearer_auth(TOKEN);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("GET");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    let body = response.bytes().await.expect("body");
    (started.elapsed().as_secs_f64() * 1e3, body.len())
}

/// p95 of a page of 100 at random cursors in a pool of `nodes`.
async fn page_p95(daemon: &Daemon, nodes: usize) -> f64 {
    let client = daemon.http_client();
    let mut samples = Vec::new();
    for i in 0..220usize {
        // Spread over the pool without a random source: a stride coprime with most pool sizes.
        let after = (i * 7919) % nodes.saturating_sub(100).max(1);
        let (ms, _) = timed_get(&client, daemon, &format!("/v1/nodes?limit=100&after={after}"), false).await;
        if i >= 20 {
            samples.push(ms); // the first 20 warm the connection and the caches
        }
    }
    percentile(&mut samples, 0.95)
}

async fn lists(count: usize) {
    println!("== lists at {count} nodes vs at 100 nodes, one daemon each on SQLite");
    let mut big = Daemon::start_with("");
    big.skip_document_checks();
    enrol(&big, count).await;
    let mut small = Daemon::start_with("");
    small.skip_document_checks();
    enrol(&small, 100).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = big.pid().and_then(rss_mib).unwrap_or(f64::NAN);
    let (p95_big, p95_small) = (page_p95(&big, count).await, page_p95(&small, 100).await);
    println!("  one page of 100, p95: {p95_big:.1} ms of {count} nodes, {p95_small:.1} ms of 100 nodes");
    println!("ratio page p95 at {count} nodes to at 100: {:.2}; p95 {p95_big:.1} ms (goal <= 20 ms)", p95_big / p95_small);
    let client = big.http_client();
    let mut whole = Vec::new();
    let mut whole_gzip = Vec::new();
    let mut paged = Vec::new();
    let mut bytes = (0, 0);
    for _ in 0..7 {
        let (ms, len) = timed_get(&client, &big, "/v1/nodes", false).await;
        whole.push(ms);
        let (ms_gz, len_gz) = timed_get(&client, &big, "/v1/nodes", true).await;
        whole_gzip.push(ms_gz);
        bytes = (len, len_gz);
        let mut pages_ms = 0.0;
        for page in 0..count.div_ceil(1000) {
            let after = if page == 0 { 0 } else { page * 1000 };
            pages_ms += timed_get(&client, &big, &format!("/v1/nodes?limit=1000&after={after}"), false).await.0;
        }
        paged.push(pages_ms);
    }
    let (whole, whole_gzip, paged) = (percentile(&mut whole, 0.5), percentile(&mut whole_gzip, 0.5), percentile(&mut paged, 0.5));
    println!(
        "  all {count} nodes in one answer: {whole:.1} ms ({} bytes), gzip {whole_gzip:.1} ms ({} bytes); as ten pages of 1000: {paged:.1} ms",
        bytes.0, bytes.1
    );
    println!("ratio all in one answer to ten pages: {:.2}; whole list {whole:.1} ms (goal <= 60 ms)", whole / paged);
    let after = big.pid().and_then(rss_mib).unwrap_or(f64::NAN);
    println!("daemon RSS at {count} nodes: {idle:.0} MiB idle, {after:.0} MiB after the lists");
}

// ---- 250 deploys at once ------------------------------------------------------------------------

/// Deploys on every node of a fresh lab at once; (host share of the deploy time, seconds for all,
/// peak daemon RSS in MiB).
async fn deploy_all(nodes: usize) -> (f64, f64, f64) {
    use metalhost_tests::deploy_lab::{DeployLab, Options, image};
    let lab = DeployLab::start(Options { nodes, disk_bytes: 2 << 20, agent_timeout_s: 900, step_timeout_s: 900, ..Options::default() }).await;
    lab.upload("os", &image(1 << 20, 5));
    let pid = lab.daemon.pid();
    let peak = Arc::new(std::sync::Mutex::new(0.0f64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = pid.and_then(rss_mib)
                    && let Ok(mut p) = peak.lock()
                {
                    *p = p.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    let body = serde_json::json!({"image": "os"});
    let answers = futures::future::join_all((0..nodes).map(|_| lab.daemon.post("/v1/instances", &body))).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED), "{:?}", answers.iter().find(|(s, _)| *s != StatusCode::CREATED));
    for node in &lab.nodes {
        let n = lab.wait_node(&node.name, &["active"], Duration::from_secs(1800)).await;
        assert_eq!(n["state"], "active", "{n}");
    }
    let all = started.elapsed().as_secs_f64();
    sampler.abort();
    let (mut deploy_ms, mut step_ms) = (0.0, 0.0);
    for node in &lab.nodes {
        let (_, events) = lab.daemon.get(&format!("/v1/nodes/{}/events", node.name)).await;
        let events = events.as_array().expect("events").clone();
        let at = |state: &str| events.iter().find(|e| e["to_state"] == state).and_then(|e| metalhost_tests::daemon::time_ms(&e["at"]));
        let (Some(start), Some(end)) = (at("deploying"), at("active")) else { panic!("{}: no deploying/active events", node.name) };
        deploy_ms += (end - start) as f64;
        step_ms += events.iter().filter(|e| e["kind"] == "step").filter_map(|e| e["duration_ms"].as_i64()).sum::<i64>() as f64;
    }
    let share = ((deploy_ms - step_ms) / deploy_ms).max(0.0);
    let peak = peak.lock().map(|p| *p).unwrap_or(f64::NAN);
    (share, all, peak)
}

async fn deploys(count: usize) {
    let base = (count / 10).max(1);
    println!("== {count} process-agent deploys at once (1 MiB image) vs {base} at once");
    let (share_base, all_base, rss_base) = deploy_all(base).await;
    let (share, all, rss) = deploy_all(count).await;
    println!("  {base} at once: all active in {all_base:.1} s, host share {:.2} %, daemon peak RSS {rss_base:.0} MiB", share_base * 100.0);
    println!("  {count} at once: all active in {all:.1} s, host share {:.2} %, daemon peak RSS {rss:.0} MiB", share * 100.0);
    println!("ratio host share {count} to {base} at once: {:.2}; host share {:.2} % (goal <= 3 %)", share / share_base, share * 100.0);
}

// ---- enrolment on PostgreSQL vs SQLite ------------------------------------------------------

async fn enrolment(count: usize) {
    println!("== enrolment on PostgreSQL vs SQLite, one daemon: {count} nodes through REST, {CLIENTS} clients");
    let sqlite = {
        let mut daemon = Daemon::start_with("");
        daemon.skip_document_checks();
        enrol(&daemon, count).await
    };
    let server = PgServer::shared();
    let postgres = {
        let database = server.create_database();
        let mut daemon = Daemon::start_with(&server.database_config(&database));
        daemon.skip_document_checks();
        enrol(&daemon, count).await
    };
    println!("  SQLite:     {sqlite:.0} enrolments/s");
    println!("  PostgreSQL: {postgres:.0} enrolments/s");
    println!("ratio PostgreSQL to SQLite, enrolment rate: {:.2} (goal >= 0.80)", postgres / sqlite);
}

/// Enrols `count` nodes; the rate per second.
async fn enrol(daemon: &Daemon, count: usize) -> f64 {
    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    let switch = sw["id"].as_i64().expect("id");
    let client = daemon.http_client();
    let url = format!("{}/v1/nodes", daemon.url);
    let started = Instant::now();
    let results: Vec<StatusCode> =
        futures::stream::iter(0..count)
            .map(|i| {
                let body = node_body(u32::try_from(i + 1).expect("count"), switch, "bmc-pw");
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client.post(url).bearer_auth(TOKEN).json(&body).send().await.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await;
    let took = started.elapsed();
    assert!(results.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");
    count as f64 / took.as_secs_f64()
}

// ---- power sweep against the compiled lab BMC --------------------------------------------------

/// The daemon's defaults (config/sections.rs), used by both sweeps.
const SYNC_CONCURRENCY: usize = 16;

async fn sweep(bmcs: usize) {
    let threads = env_usize("BENCH_BMC_THREADS", 2);
    println!("== power sweep of {bmcs} ipmi-lan BMCs against the compiled lab BMC (one process, {threads} threads)");
    let farm =
        CompiledBmc::start(&LabBmcOptions { bmcs: u32::try_from(bmcs).expect("bmcs"), password: "sweep-pw".into(), ..Default::default() }, threads);
    let ports = farm.ports();
    assert_eq!(ports.len(), bmcs, "lab-bmc bound {} ports", ports.len());

    // Baseline: the same calls straight through the PluginHost, as many in flight as the daemon's sweep.
    let (host, _dir) = {
        let dir = tempfile::tempdir().expect("tmp");
        let host = PluginHost::new(dir.path()).expect("runtime");
        let spec = PluginSpec { call_timeout_s: 60, ..plugin_spec("ipmi-lan", PluginKind::Power) };
        assert!(host.load(&[spec]).await[0].loaded, "ipmi-lan did not load");
        (Arc::new(host), dir)
    };
    let (received, cpu) = (farm.received(), farm.cpu_seconds());
    let started = Instant::now();
    let answered: usize = futures::stream::iter(ports.iter().copied())
        .map(|port| {
            let host = host.clone();
            async move {
                let bmc = Bmc { host: "127.0.0.1".into(), port };
                let creds = Credentials { username: "admin".into(), password: "sweep-pw".into() };
                usize::from(host.power("ipmi-lan").expect("driver").get_power_state(&bmc, &creds).await.is_ok())
            }
        })
        .buffer_unordered(SYNC_CONCURRENCY)
        .fold(0, |a, b| async move { a + b })
        .await;
    let direct = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(250)); // the BMC's counter is written every 100 ms
    let datagrams = farm.received() - received;
    let bmc_cpu = farm.cpu_seconds() - cpu;
    println!(
        "  through the PluginHost, {SYNC_CONCURRENCY} in flight: {direct:.2} s, {answered}/{bmcs} answered, {:.0} BMCs/s; BMC side {datagrams} datagrams ({:.1} per status), {bmc_cpu:.1} s CPU",
        bmcs as f64 / direct,
        datagrams as f64 / bmcs as f64
    );
    drop(host);

    // The daemon: as many nodes, each with its own BMC, and its own power-sync loop at its
    // defaults (concurrency 16, jitter 250 ms), a sweep every 5 s; timed from its log line.
    let config = format!(
        "[power_sync]\ninterval_s = 5\n[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{}\"\n",
        plugin_wasm("ipmi-lan").display()
    );
    let mut daemon = Daemon::start_with(&config);
    daemon.skip_document_checks();
    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw-bench")).await;
    assert_eq!(status, StatusCode::CREATED);
    let sw = sw["id"].as_i64().expect("id");
    let client = daemon.http_client();
    let url = format!("{}/v1/nodes", daemon.url);
    let enrolled: Vec<StatusCode> =
        futures::stream::iter(ports.iter().enumerate())
            .map(|(i, port)| {
                let mut body = node_body(u32::try_from(i + 1).expect("count"), sw, "sweep-pw");
                body["bmc_port"] = serde_json::json!(port);
                body["power_driver"] = serde_json::json!("ipmi-lan");
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client.post(url).bearer_auth(TOKEN).json(&body).send().await.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
            })
            .buffer_unordered(CLIENTS)
            .collect()
            .await;
    assert!(enrolled.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");
    // The first full sweep finds every node's power for the first time (10,000 writes and
    // events); the next one is the steady state (reads only).
    let deadline = Instant::now() + Duration::from_secs(600);
    let sweeps = loop {
        let found = full_sweeps(&daemon.log(), bmcs);
        if found.len() >= 2 {
            break found;
        }
        assert!(Instant::now() < deadline, "no two full power-sync sweeps logged in 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rss = daemon.pid().and_then(rss_mib);
    for (what, (checked, failed, drifted, ms)) in [("first (every power state new)", sweeps[0]), ("steady (nothing changed)", sweeps[1])] {
        let wall = ms as f64 / 1e3;
        println!(
            "  through the daemon, {what}: {wall:.2} s, {}/{checked} answered, {drifted} changed, {:.0} BMCs/s",
            checked - failed,
            checked as f64 / wall.max(1e-3)
        );
    }
    if let Some(rss) = rss {
        println!("  daemon RSS with {bmcs} nodes after the sweeps: {rss:.0} MiB");
    }
    let steady = sweeps[1].3 as f64 / 1e3;
    println!(
        "ratio daemon sweep to PluginHost sweep: {:.2} steady, {:.2} first (goal <= 2); steady sweep {steady:.2} s (goal <= 5 s)",
        steady / direct,
        sweeps[0].3 as f64 / 1e3 / direct
    );
}

/// `(checked, failed, drifted, elapsed_ms)` of each logged sweep that checked `nodes` nodes.
fn full_sweeps(log: &str, nodes: usize) -> Vec<(usize, usize, usize, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    let count = |line: &str, name: &str| field(line, name).and_then(|v| usize::try_from(v).ok());
    log.lines()
        .filter(|l| l.contains("power sync sweep"))
        .filter_map(|l| {
            let checked = count(l, "checked")?;
            (checked == nodes).then_some((checked, count(l, "failed")?, count(l, "drifted")?, field(l, "elapsed_ms")?))
        })
        .collect()
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
