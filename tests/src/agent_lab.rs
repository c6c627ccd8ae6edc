//! Puts a node in the state where it expects an agent, with a task waiting, by writing to the
//! daemon's database the way the deploy workflow would; used to test the agent API on its own.

use std::path::Path;
use std::process::{Command, Output};

use crate::daemon::Daemon;
use crate::paths;

/// Marks `node` as waiting for its agent and queues a task for it; returns the task id.
pub fn plant_task(d: &Daemon, node: i64, kind: &str, image: Option<i64>, payload: &str, deadline_s: i64) -> i64 {
    let db = rusqlite::Connection::open(d.data_path().join("metalhost.db")).expect("open db");
    db.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
    let now = now_ms();
    let state = if kind == "clean" { "cleaning" } else { "wait-agent" };
    db.execute("UPDATE nodes SET state = ?2 WHERE id = ?1", rusqlite::params![node, state]).expect("node state");
    db.execute(
        "INSERT INTO tasks (node_id, kind, state, payload, image_id, deadline, created_at, updated_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6)",
        rusqlite::params![node, kind, payload, image, now + deadline_s * 1000, now],
    )
    .expect("insert task");
    db.last_insert_rowid()
}

/// (state, message) of a task.
pub fn task_state(d: &Daemon, task: i64) -> (String, Option<String>) {
    let db = rusqlite::Connection::open(d.data_path().join("metalhost.db")).expect("open db");
    db.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
    db.query_row("SELECT state, message FROM tasks WHERE id = ?1", [task], |r| Ok((r.get(0)?, r.get(1)?))).expect("task row")
}

/// The failure kind the daemon recorded for a task (migration 6), if any.
pub fn task_failure_kind(d: &Daemon, task: i64) -> Option<String> {
    let db = rusqlite::Connection::open(d.data_path().join("metalhost.db")).expect("open db");
    db.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
    db.query_row("SELECT failure_kind FROM tasks WHERE id = ?1", [task], |r| r.get(0)).expect("task row")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs the real agent for `mac` against the daemon, with `disk` as its only disk, until it exits.
pub fn run_agent(d: &Daemon, mac: &str, disk: &Path, timeout_s: u64) -> Output {
    run_agent_at(&d.url, d.ca_fingerprint.as_deref(), mac, disk, timeout_s)
}

/// As [`run_agent`], against `api` (a proxy in front of the daemon, say), trusting the CA with
/// sha256 `ca` when given.
pub fn run_agent_at(api: &str, ca: Option<&str>, mac: &str, disk: &Path, timeout_s: u64) -> Output {
    let pin = ca.map(|c| vec!["--ca-sha256".to_owned(), format!("sha256:{c}")]).unwrap_or_default();
    Command::new("timeout")
        .arg(timeout_s.to_string())
        .arg(paths::host_binary("metalhost-agent"))
        .args(pin)
        .args(["--api", api, "--mac", mac, "--disk"])
        .arg(disk)
        .arg("--once")
        .output()
        .expect("run metalhost-agent")
}
