//! Enrolment benchmark: 10,000 nodes through the REST API of the real daemon, then one list of all
//! of them, against raw rusqlite inserts of the same rows measured in the same run; and the same
//! enrolment with `[metrics] enabled = false`, for what metrics cost on this path (issue 18).
//!
//! Run with `bench/enroll.sh` (release build of the daemon).

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use reqwest::StatusCode;

const NODES: u32 = 10_000;
const CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() {
    let nodes: u32 = std::env::var("BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(NODES);
    let mut unmetered = Daemon::start_with("[metrics]\nenabled = false\n");
    unmetered.skip_document_checks();
    let without_metrics = enrol_all(&unmetered, nodes).await;
    drop(unmetered);
    let mut daemon = Daemon::start();
    daemon.skip_document_checks();
    let enrol = enrol_all(&daemon, nodes).await;

    let mut list_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (status, list) = daemon.get("/v1/nodes").await;
        list_times.push(t.elapsed());
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().map(Vec::len), Some(nodes as usize));
    }
    list_times.sort();

    let raw = raw_inserts(&daemon, nodes);
    let api_rate = f64::from(nodes) / enrol.as_secs_f64();
    let raw_rate = f64::from(nodes) / raw.as_secs_f64();
    println!("enrolment: {nodes} nodes in {:.2} s = {api_rate:.0} nodes/s ({CONCURRENCY} concurrent clients)", enrol.as_secs_f64());
    println!("list all {nodes}: median {:.1} ms, max {:.1} ms (5 runs)", ms(list_times[2]), ms(list_times[4]));
    println!("raw rusqlite: {nodes} single-row transactions in {:.2} s = {raw_rate:.0} rows/s", raw.as_secs_f64());
    println!("ratio enrolment rate / raw insert rate: {:.2}", api_rate / raw_rate);
    let unmetered_rate = f64::from(nodes) / without_metrics.as_secs_f64();
    println!(
        "metrics cost: enrolment {api_rate:.0} nodes/s with metrics, {unmetered_rate:.0} without; ratio with/without {:.3}",
        api_rate / unmetered_rate
    );
    println!("targets: >= 2000 nodes/s -> {}; list < 200 ms -> {}", pass(api_rate >= 2000.0), pass(list_times[2] < Duration::from_millis(200)));
}

/// Enrols `nodes` nodes on a fresh switch, `CONCURRENCY` requests at a time; every one must succeed.
async fn enrol_all(daemon: &Daemon, nodes: u32) -> Duration {
    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw-bench")).await;
    assert_eq!(status, StatusCode::CREATED);
    let sw = sw["id"].as_i64().expect("id");
    let started = Instant::now();
    let results: Vec<StatusCode> = futures::stream::iter(0..nodes)
        .map(|i| {
            let body = node_body(i + 1, sw, "pw-bench");
            async move { daemon.post("/v1/nodes", &body).await.0 }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(results.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The same rows inserted straight into a fresh database with the daemon's own schema and pragmas,
/// one transaction per row, as the daemon does.
fn raw_inserts(daemon: &Daemon, nodes: u32) -> Duration {
    let source = rusqlite::Connection::open(daemon.data_path().join("metalhost.db")).expect("open daemon db");
    let schema: Vec<String> = source
        .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        .expect("schema")
        .query_map([], |r| r.get(0))
        .expect("schema rows")
        .collect::<Result<_, _>>()
        .expect("schema sql");
    let dir = tempfile::tempdir().expect("tmp");
    let mut db = rusqlite::Connection::open(dir.path().join("raw.db")).expect("raw db");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.pragma_update(None, "synchronous", "NORMAL").expect("sync");
    db.pragma_update(None, "foreign_keys", "ON").expect("fk");
    for sql in &schema {
        db.execute(sql, []).expect("create");
    }
    db.execute("INSERT INTO switches (id, name, address, port, username, password, driver, created_at) VALUES (1, 's', '127.0.0.1', 830, 'a', 'p', 'juniper', 0)", []).expect("switch");
    let started = Instant::now();
    for i in 1..=nodes {
        let body = node_body(i, 1, "pw-bench");
        let tx = db.transaction().expect("tx");
        tx.execute(
            "INSERT INTO nodes (name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password,
                                power_driver, switch_id, switch_port, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, 8, 16384, 200, '127.0.0.1', 623, 'admin', 'pw-bench', 'ipmitool', 1, ?4, 'enrolled', 0, 0)",
            rusqlite::params![body["name"].as_str(), body["mac"].as_str(), body["ip"].as_str(), body["switch_port"].as_str()],
        )
        .expect("insert");
        tx.commit().expect("commit");
    }
    started.elapsed()
}
