//! Several daemons on one pool (issue 19), in one run, each figure against its single-daemon
//! SQLite baseline measured in the same run:
//! 1. 10,000 enrolments through the REST API, then `GET /v1/nodes`: SQLite with one daemon vs
//!    PostgreSQL with three (enrolments spread round robin, 16 concurrent clients).
//! 2. N process-agent nodes deployed at once (default 100): wall time and the host's overhead share,
//!    PostgreSQL with three daemons vs SQLite with one.
//! 3. Takeover: the daemon holding the most leases is SIGKILLed; the time until the others hold
//!    all its nodes (median of 5; lease TTL 6 s, heartbeat every 2 s).
//! 4. The same after a freeze (SIGSTOP, woken once the others hold its nodes, when its runners
//!    stop by their fence), as a multiple of the TTL.
//!
//! Run with `bench/cluster.sh` (release daemon). BENCH_NODES, BENCH_DEPLOY_NODES scale it down.

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_tests::cluster_lab::{Cluster, Setup};
use metalhost_tests::daemon::{Daemon, node_body, switch_body, time_ms};
use metalhost_tests::deploy_lab::image;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let enrol_count = env_usize("BENCH_NODES", 10_000);
    let deploy_count = env_usize("BENCH_DEPLOY_NODES", 100);
    // BENCH_PARTS=23 skips the enrolments, and so on.
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "123".to_owned());
    if parts.contains('1') {
        enrolments(enrol_count).await;
    }
    if parts.contains('2') {
        deploys(deploy_count).await;
    }
    for (part, how) in [('3', Stop::Kill), ('4', Stop::Freeze)] {
        if parts.contains(part) {
            println!("== {part}. takeover after a {how:?} (lease TTL 6 s)");
            let mut times = takeovers(5, how).await;
            times.sort();
            let shown: Vec<String> = times.iter().map(|t| format!("{:.1}", t.as_secs_f64())).collect();
            println!("takeover: median {:.1} s over {} rounds ({} s each)", times[times.len() / 2].as_secs_f64(), times.len(), shown.join(", "));
            println!("ratio median takeover after a {how:?} to lease TTL: {:.2}", times[times.len() / 2].as_secs_f64() / 6.0);
        }
    }
}

async fn enrolments(enrol_count: usize) {
    println!("== 1. {enrol_count} enrolments and a list of them");
    let sqlite = {
        let lab = Cluster::start(Setup { nodes: 0, daemons: 1, sqlite: true, ..Setup::default() }).await;
        enrol(&lab.daemons, enrol_count).await
    };
    let postgres = {
        let lab = Cluster::start(Setup { nodes: 0, daemons: 3, ..Setup::default() }).await;
        enrol(&lab.daemons, enrol_count).await
    };
    for (what, (rate, list)) in [("SQLite, 1 daemon", sqlite), ("PostgreSQL, 3 daemons", postgres)] {
        println!("{what:>22}: {rate:.0} enrolments/s; GET /v1/nodes ({enrol_count} nodes) median {:.0} ms", list.as_secs_f64() * 1000.0);
    }
    println!(
        "ratio PostgreSQL/3 to SQLite/1: enrolment rate {:.2}, list time {:.2}",
        postgres.0 / sqlite.0,
        postgres.1.as_secs_f64() / sqlite.1.as_secs_f64()
    );
}

async fn deploys(deploy_count: usize) {
    println!("== 2. {deploy_count} process-agent nodes deployed at once");
    // Many agents share two cores here: give them time (the figure is the wall time, not a deadline).
    let single = deploy(Setup { nodes: deploy_count, daemons: 1, sqlite: true, agent_timeout_s: 900, ..Setup::default() }).await;
    let pool = deploy(Setup { nodes: deploy_count, daemons: 3, agent_timeout_s: 900, ..Setup::default() }).await;
    for (what, (wall, share)) in [("SQLite, 1 daemon", single), ("PostgreSQL, 3 daemons", pool)] {
        println!("{what:>22}: all active in {:.1} s; host overhead share {:.1}%", wall.as_secs_f64(), share * 100.0);
    }
    println!("ratio PostgreSQL/3 to SQLite/1: wall time {:.2}", pool.0.as_secs_f64() / single.0.as_secs_f64());
}

/// Enrols `count` nodes round robin over `daemons`; the rate, and the median of 5 full lists.
async fn enrol(daemons: &[Daemon], count: usize) -> (f64, Duration) {
    let (status, sw) = daemons[0].post("/v1/switches", &switch_body("bench-sw", "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{sw}");
    let switch = sw["id"].as_i64().expect("id");
    let client = daemons[0].http_client();
    let started = Instant::now();
    let results: Vec<StatusCode> = futures::stream::iter(0..count)
        .map(|i| {
            let url = format!("{}/v1/nodes", daemons[i % daemons.len()].url);
            let body = node_body(u32::try_from(i + 1).expect("count"), switch, "bmc-pw");
            let client = client.clone();
            async move {
                client
                    .post(url)
                    .bearer_auth(metalhost_tests::daemon::TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(results.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");
    let mut lists = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let list: Value = client
            .get(format!("{}/v1/nodes", daemons[i % daemons.len()].url))
            .bearer_auth(metalhost_tests::daemon::TOKEN)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        lists.push(t.elapsed());
        assert_eq!(list.as_array().map(Vec::len), Some(count));
    }
    lists.sort();
    (count as f64 / took.as_secs_f64(), lists[2])
}

/// Deploys every node of a fresh lab at once (creates spread over its daemons); the wall time and
/// the host's overhead share (deploy time outside BMC, switch and agent steps).
async fn deploy(setup: Setup) -> (Duration, f64) {
    let count = setup.nodes;
    let lab = Cluster::start(setup).await;
    lab.upload(&image(4 << 20, 9));
    let started = Instant::now();
    let body = json!({"image": "os"});
    let answers = futures::future::join_all((0..count).map(|i| lab.daemons[i % lab.daemons.len()].post("/v1/instances", &body))).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED), "{answers:?}");
    lab.wait_all("active", Duration::from_secs(900)).await;
    let wall = started.elapsed();
    let (mut overhead, mut total) = (0.0, 0.0);
    for n in &lab.nodes {
        let (_, events) = lab.daemons[0].get(&format!("/v1/nodes/{}/events", n.name)).await;
        let events = events.as_array().cloned().unwrap_or_default();
        let at = |state: &str| events.iter().find(|e| e["to_state"] == state).and_then(|e| time_ms(&e["at"]));
        let (Some(start), Some(end)) = (at("deploying"), at("active")) else { continue };
        let steps: i64 = events.iter().filter(|e| e["kind"] == "step").filter_map(|e| e["duration_ms"].as_i64()).sum();
        total += (end - start) as f64;
        overhead += ((end - start - steps) as f64).max(0.0);
    }
    (wall, if total > 0.0 { overhead / total } else { 0.0 })
}

/// Kills the busiest daemon `rounds` times (restarting it in between); each time, how long until
/// the other daemons hold every lease it held. Nodes wait for agents that never come, so their
/// leases stay taken for the whole measurement.
/// How the busiest daemon stops.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL, then started again.
    Kill,
    /// SIGSTOP, then SIGCONT once the others hold its nodes.
    Freeze,
}

async fn takeovers(rounds: usize, how: Stop) -> Vec<Duration> {
    let mut lab = Cluster::start(Setup { nodes: 6, no_agents: true, agent_timeout_s: 900, ..Setup::default() }).await;
    lab.upload(&image(4096, 2));
    let body = json!({"image": "os"});
    for i in 0..6 {
        let (status, answer) = lab.daemons[i % 3].post("/v1/instances", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let mut times = Vec::new();
    for _ in 0..rounds {
        let (busiest, held) = wait_all_leased(&lab, 6).await;
        let killed_at = Instant::now();
        match how {
            Stop::Kill => lab.daemons[busiest].kill(),
            Stop::Freeze => lab.signal(busiest, "STOP"),
        }
        let survivor = (busiest + 1) % 3;
        loop {
            let list = lab.daemon_list(survivor).await;
            let others: u64 = list.iter().filter(|d| d["name"] != format!("d{busiest}")).filter_map(|d| d["nodes"].as_u64()).sum();
            if others == 6 {
                break;
            }
            assert!(killed_at.elapsed() < Duration::from_secs(60), "no takeover of {held} nodes: {list:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        times.push(killed_at.elapsed());
        match how {
            Stop::Kill => lab.daemons[busiest].spawn_again(),
            Stop::Freeze => lab.signal(busiest, "CONT"),
        }
    }
    times
}

/// Waits until the daemons hold `count` leases in all; the busiest daemon and how many it holds.
async fn wait_all_leased(lab: &Cluster, count: u64) -> (usize, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alive = lab.daemons.iter().position(|d| d.pid().is_some()).expect("a live daemon");
        let list = lab.daemon_list(alive).await;
        let held: Vec<(usize, u64)> = list
            .iter()
            .filter(|d| d["alive"] == true)
            .filter_map(|d| Some((d["name"].as_str()?.trim_start_matches('d').parse().ok()?, d["nodes"].as_u64()?)))
            .collect();
        if held.iter().map(|(_, n)| n).sum::<u64>() == count
            && let Some(&(busiest, n)) = held.iter().max_by_key(|(_, n)| *n)
            && n > 0
        {
            return (busiest, n);
        }
        assert!(Instant::now() < deadline, "leases never covered every node: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
