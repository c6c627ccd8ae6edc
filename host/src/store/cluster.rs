//! Several daemons on one pool (migration 5): each daemon heartbeats in `daemons`; a node's runner
//! runs on the one daemon that holds the node's lease (`lease_owner`, `lease_epoch`,
//! `lease_expires`).
//!
//! A lease is taken by one conditional UPDATE (free, expired, or already ours), which bumps the
//! epoch; the holder renews all its leases with its heartbeat. Every store call a runner makes is
//! fenced: it runs only if the node's lease is still (owner, epoch) (see `Store::call`), so a
//! daemon that lost its lease, paused or cut off past the TTL, cannot write for the node again.
//! One daemon on SQLite is the same code with one name.

use super::db::{Db, params};
use super::events::{self, EventKind, NewEvent};
use super::{Result, StoreError};
use crate::domain::{NodeId, SwitchId, now_ms};

/// A node's lease as its holder knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node: NodeId,
    pub owner: std::sync::Arc<str>,
    pub epoch: i64,
}

/// Takes the node's lease for `owner` if it is free, expired, or already `owner`'s; returns it,
/// or None when another live daemon holds it. Taking over an expired lease of another daemon is
/// recorded as an event on the node.
pub fn acquire(conn: &mut Db, node: NodeId, owner: &std::sync::Arc<str>, ttl_ms: i64) -> Result<Option<Lease>> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let (previous, _, expired_at) = lease_row(&tx, node)?;
    let epoch: Option<i64> = tx.query_opt(
        "UPDATE nodes SET lease_owner = ?2, lease_epoch = lease_epoch + 1, lease_expires = ?3
         WHERE id = ?1 AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires < ?4)
         RETURNING lease_epoch",
        params![node.0, owner.as_ref(), now + ttl_ms, now],
        |r| r.get(0),
    )?;
    let Some(epoch) = epoch else {
        return Ok(None);
    };
    if let Some(previous) = previous.filter(|p| p != owner.as_ref()) {
        let ago = expired_at.map_or(0, |at| (now - at).max(0));
        let message = format!("daemon {owner} took over from daemon {previous} (its lease expired {ago} ms ago); lease epoch {epoch}");
        events::append(&tx, NewEvent::note(node, EventKind::Lease, &message))?;
    }
    tx.commit()?;
    Ok(Some(Lease { node, owner: owner.clone(), epoch }))
}

/// Gives the lease up when the runner is done (only the holder of this epoch can).
pub fn release(conn: &Db, lease: &Lease) -> Result<()> {
    conn.execute(
        "UPDATE nodes SET lease_owner = NULL, lease_expires = NULL WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
        params![lease.node.0, lease.owner.as_ref(), lease.epoch],
    )?;
    Ok(())
}

/// The fence: Ok only while the node's lease is still exactly `lease`.
pub fn check(conn: &Db, lease: &Lease) -> Result<()> {
    let now = now_ms();
    match lease_row(conn, lease.node)? {
        (Some(owner), epoch, expires) if owner == lease.owner.as_ref() && epoch == lease.epoch && expires.is_some_and(|at| at >= now) => Ok(()),
        (owner, epoch, _) => Err(StoreError::LeaseLost(format!(
            "daemon {} no longer holds node {}'s lease (epoch {}): now {} (epoch {epoch})",
            lease.owner,
            lease.node,
            lease.epoch,
            owner.map_or_else(|| "nobody".to_owned(), |o| format!("daemon {o}"))
        ))),
    }
}

/// The node's lease as stored: owner, epoch, expiry.
fn lease_row(conn: &Db, node: NodeId) -> Result<(Option<String>, i64, Option<i64>)> {
    conn.query_opt("SELECT lease_owner, lease_epoch, lease_expires FROM nodes WHERE id = ?1", params![node.0], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .ok_or_else(|| StoreError::NotFound(format!("node {node}")))
}

/// Who this daemon is, as it heartbeats.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: std::sync::Arc<str>,
    pub url: String,
    pub started_at: i64,
}

/// Records that `me` is alive and renews every lease it holds; returns how many it renewed.
pub fn heartbeat(conn: &Db, me: &Member, ttl_ms: i64) -> Result<usize> {
    let now = now_ms();
    conn.execute(
        "INSERT INTO daemons (name, url, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
        params![me.name.as_ref(), me.url, me.started_at, now],
    )?;
    conn.execute("UPDATE nodes SET lease_expires = ?2 WHERE lease_owner = ?1", params![me.name.as_ref(), now + ttl_ms])
}

/// Nodes a workflow drives whose lease is free, expired or `me`'s: the ones `me` should run.
pub fn orphans(conn: &Db, me: &str) -> Result<Vec<NodeId>> {
    conn.query_map(
        "SELECT id FROM nodes
         WHERE state IN ('deploying', 'wait-agent', 'activating', 'deleting', 'cleaning', 'inspecting') AND maintenance = 0
           AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_expires < ?2)
         ORDER BY id",
        params![me, now_ms()],
        |r| Ok(NodeId(r.get(0)?)),
    )
}

/// The advisory-lock class of switch locks ("mh").
const SWITCH_LOCK_CLASS: i32 = 0x6d68;

/// Takes the pool-wide lock on a switch's configuration, if no other daemon has it. On PostgreSQL
/// it is a session advisory lock: a daemon that dies drops it with its session. SQLite has one
/// daemon, whose in-process lock is enough.
pub fn try_lock_switch(conn: &Db, switch: SwitchId) -> Result<bool> {
    if !conn.is_postgres() {
        return Ok(true);
    }
    conn.query_row("SELECT pg_try_advisory_lock(?1, ?2)", params![SWITCH_LOCK_CLASS, switch.0], |r| r.get(0))
}

pub fn unlock_switch(conn: &Db, switch: SwitchId) -> Result<()> {
    if conn.is_postgres() {
        conn.query_row("SELECT pg_advisory_unlock(?1, ?2)", params![SWITCH_LOCK_CLASS, switch.0], |r| r.get::<bool>(0))?;
    }
    Ok(())
}

/// A daemon of the pool, for `GET /v1/daemons`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DaemonView {
    pub name: String,
    /// Where its API is (its `public_url`).
    pub url: String,
    /// Heard from within the lease TTL.
    pub alive: bool,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: i64,
    /// Nodes whose unexpired lease it holds.
    pub nodes: u64,
}

pub fn list(conn: &Db, ttl_ms: i64) -> Result<Vec<DaemonView>> {
    let now = now_ms();
    conn.query_map(
        "SELECT d.name, d.url, d.started_at, d.heartbeat_at,
                (SELECT COUNT(*) FROM nodes n WHERE n.lease_owner = d.name AND n.lease_expires >= ?1)
         FROM daemons d ORDER BY d.name",
        params![now],
        |r| {
            let heartbeat_at: i64 = r.get(3)?;
            Ok(DaemonView {
                name: r.get(0)?,
                url: r.get(1)?,
                started_at: r.get(2)?,
                heartbeat_at,
                alive: now - heartbeat_at <= ttl_ms,
                nodes: r.get(4)?,
            })
        },
    )
}

/// The URLs of the other live daemons (to fetch an image this one lacks).
pub fn peers(conn: &Db, me: &str, ttl_ms: i64) -> Result<Vec<String>> {
    conn.query_map(
        "SELECT url FROM daemons WHERE name <> ?1 AND heartbeat_at >= ?2 ORDER BY heartbeat_at DESC",
        params![me, now_ms() - ttl_ms],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::seal::SealKey;

    fn db() -> Db {
        let mut db = Db::sqlite(rusqlite::Connection::open_in_memory().expect("db"), SealKey::throwaway());
        crate::store::migrations::apply(&mut db).expect("migrations");
        db.batch(
            "INSERT INTO switches (id, name, address, port, username, password, driver, created_at) VALUES (1, 'sw', '127.0.0.1', 830, 'u', 'p', 'juniper', 0);
             INSERT INTO nodes (id, name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password, power_driver,
                                switch_id, switch_port, state, created_at, updated_at)
               VALUES (1, 'n1', '52:54:00:00:00:01', '10.0.0.1', 1, 1, 1, '127.0.0.1', 623, 'u', 'p', 'ipmitool', 1, 'ge-0/0/1', 'deploying', 0, 0);",
        )
        .expect("rows");
        db
    }

    #[test]
    fn one_holder_at_a_time_and_a_lost_lease_fences_its_old_holder() {
        let mut db = db();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let lease_a = acquire(&mut db, NodeId(1), &a, 60_000).expect("acquire").expect("free");
        assert_eq!(lease_a.epoch, 1);
        assert!(acquire(&mut db, NodeId(1), &b, 60_000).expect("acquire").is_none(), "a holds it");
        check(&db, &lease_a).expect("a still holds it");
        assert_eq!(orphans(&db, "b").expect("orphans"), vec![], "nothing for b while a's lease runs");
        // a stops heartbeating: its lease runs out, b takes the node over with a new epoch.
        db.execute("UPDATE nodes SET lease_expires = 1 WHERE id = 1", params![]).expect("expire");
        assert_eq!(orphans(&db, "b").expect("orphans"), vec![NodeId(1)]);
        let lease_b = acquire(&mut db, NodeId(1), &b, 60_000).expect("acquire").expect("expired");
        assert_eq!(lease_b.epoch, 2);
        assert!(matches!(check(&db, &lease_a), Err(StoreError::LeaseLost(m)) if m.contains("now daemon b (epoch 2)")));
        // a's late release changes nothing; b's works.
        release(&db, &lease_a).expect("release");
        check(&db, &lease_b).expect("b holds it");
        let events = events::list(&db, NodeId(1)).expect("events");
        assert!(events.iter().any(|e| e.kind == "lease" && e.message.contains("daemon b took over from daemon a")), "{events:?}");
        release(&db, &lease_b).expect("release");
        assert!(check(&db, &lease_b).is_err(), "released");
    }

    #[test]
    fn a_heartbeat_renews_only_its_own_leases() {
        let mut db = db();
        let me = Member { name: "a".into(), url: "http://a".into(), started_at: 1 };
        acquire(&mut db, NodeId(1), &me.name, 1).expect("acquire").expect("free");
        assert_eq!(heartbeat(&db, &me, 60_000).expect("beat"), 1);
        let other = Member { name: "b".into(), url: "http://b".into(), started_at: 2 };
        assert_eq!(heartbeat(&db, &other, 60_000).expect("beat"), 0);
        let daemons = list(&db, 60_000).expect("list");
        assert_eq!(daemons.iter().map(|d| (d.name.as_str(), d.nodes, d.alive)).collect::<Vec<_>>(), [("a", 1, true), ("b", 0, true)]);
        assert_eq!(peers(&db, "a", 60_000).expect("peers"), ["http://b"]);
    }
}
