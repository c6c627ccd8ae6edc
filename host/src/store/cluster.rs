//! Several daemons on one pool (migration 5): each daemon heartbeats in `daemons`; a node's runner
//! runs on the one daemon that holds the node's lease (`lease_owner`, `lease_epoch`,
//! `lease_expires`).
//!
//! A lease is taken by one conditional UPDATE (free, expired, or already ours), which bumps the
//! epoch; the holder renews all its leases with its heartbeat. Every store call a runner makes is
//! fenced: it runs in one transaction with a check that the node's lease is still (owner, epoch),
//! holding the node's row (see `Store::call`), so a daemon that lost its lease, paused or cut off
//! past the TTL, cannot write for the node again. Its device calls are fenced by the lease's
//! [`LeaseClock`] (ARCHITECTURE.md, "Several daemons, one pool").
//! One daemon on SQLite is the same code with one name.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::db::{Db, params};
use super::events::{self, EventKind, NewEvent};
use super::{Result, StoreError};
use crate::domain::{NodeId, SwitchId, now_ms};

/// A node's lease as its holder knows it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub node: NodeId,
    pub owner: Arc<str>,
    pub epoch: i64,
    /// When the holder last knew the lease renewed, on its monotonic clock.
    pub clock: Arc<LeaseClock>,
}

/// When a lease was last renewed, as the monotonic instant taken just before the statement that
/// set its expiry (an acquire or a heartbeat) was sent. That statement set the expiry to its own
/// wall time plus the TTL, so `renewed + TTL` never ends later than the expiry other daemons see,
/// whatever the wall clock does and however long this daemon was frozen.
#[derive(Debug)]
pub struct LeaseClock {
    renewed: Mutex<Instant>,
}

impl LeaseClock {
    pub fn new(renewed: Instant) -> LeaseClock {
        LeaseClock { renewed: Mutex::new(renewed) }
    }

    /// Moves the renewal forward (never back: renewals may be reported out of order).
    pub fn renew(&self, at: Instant) {
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        *renewed = (*renewed).max(at);
    }

    /// How long the lease surely lasts from `now` (zero once it may have run out).
    pub fn left(&self, ttl: Duration, now: Instant) -> Duration {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        (renewed + ttl).saturating_duration_since(now)
    }
}

/// Takes the node's lease for `owner` if it is free, expired, or already `owner`'s; returns it,
/// or None when another live daemon holds it. Taking over an expired lease of another daemon is
/// recorded as an event on the node.
pub fn acquire(conn: &mut Db, node: NodeId, owner: &Arc<str>, ttl_ms: i64) -> Result<Option<Lease>> {
    let tx = conn.transaction()?;
    let sent = Instant::now();
    let now = now_ms();
    let (previous, _, expired_at) = lease_row(&tx, node, false)?;
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
    Ok(Some(Lease { node, owner: owner.clone(), epoch, clock: Arc::new(LeaseClock::new(sent)) }))
}

/// Gives the lease up when the runner is done (only the holder of this epoch can).
pub fn release(conn: &Db, lease: &Lease) -> Result<()> {
    conn.execute(
        "UPDATE nodes SET lease_owner = NULL, lease_expires = NULL WHERE id = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
        params![lease.node.0, lease.owner.as_ref(), lease.epoch],
    )?;
    Ok(())
}

/// The fence: Ok only while the node's lease is still exactly `lease`. Inside a transaction on
/// PostgreSQL it holds the node's row until the end, so no other daemon takes the lease between
/// this check and the writes after it.
pub fn check(conn: &Db, lease: &Lease) -> Result<()> {
    let now = now_ms();
    let row = lease_row(conn, lease.node, true)?;
    match row {
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
/// With `lock`, the row stays locked until the transaction ends (PostgreSQL; SQLite has one writer).
fn lease_row(conn: &Db, node: NodeId, lock: bool) -> Result<(Option<String>, i64, Option<i64>)> {
    let sql = if lock && conn.is_postgres() {
        "SELECT lease_owner, lease_epoch, lease_expires FROM nodes WHERE id = ?1 FOR UPDATE"
    } else {
        "SELECT lease_owner, lease_epoch, lease_expires FROM nodes WHERE id = ?1"
    };
    conn.query_opt(sql, params![node.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.ok_or_else(|| StoreError::NotFound(format!("node {node}")))
}

/// Who this daemon is, as it heartbeats.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: std::sync::Arc<str>,
    pub url: String,
    pub started_at: i64,
}

/// What a heartbeat renewed, and the instant to renew the holders' clocks with.
#[derive(Debug)]
pub struct Renewal {
    pub sent: Instant,
    /// (node, epoch) of every lease renewed: a lease another daemon has taken since is not.
    pub leases: Vec<(NodeId, i64)>,
}

/// Records that `me` is alive and renews every lease and switch lock it holds.
pub fn heartbeat(conn: &Db, me: &Member, ttl_ms: i64) -> Result<Renewal> {
    let sent = Instant::now();
    let now = now_ms();
    conn.execute(
        "INSERT INTO daemons (name, url, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
        params![me.name.as_ref(), me.url, me.started_at, now],
    )?;
    conn.execute("UPDATE switch_locks SET expires = ?2 WHERE holder = ?1", params![me.name.as_ref(), now + ttl_ms])?;
    let leases = conn.query_map(
        "UPDATE nodes SET lease_expires = ?2 WHERE lease_owner = ?1 RETURNING id, lease_epoch",
        params![me.name.as_ref(), now + ttl_ms],
        |r| Ok((NodeId(r.get(0)?), r.get(1)?)),
    )?;
    Ok(Renewal { sent, leases })
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

/// Takes the pool-wide lock on a switch's configuration for daemon `me`, if no other daemon holds
/// it unexpired. The lock is a row that expires like a lease and that `me`'s heartbeat renews: a
/// daemon that dies, freezes or is cut off blocks the switch for one TTL at most (a database
/// session lock would last as long as its frozen session). Within a daemon an in-process lock
/// serialises the runners (provision/steps.rs), so `me` retaking its own row is fine.
pub fn try_lock_switch(conn: &Db, switch: SwitchId, me: &str, ttl_ms: i64) -> Result<bool> {
    let now = now_ms();
    let taken = conn.query_opt(
        "INSERT INTO switch_locks (switch_id, holder, expires) VALUES (?1, ?2, ?3)
         ON CONFLICT (switch_id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
         WHERE switch_locks.holder = excluded.holder OR switch_locks.expires < ?4
         RETURNING switch_id",
        params![switch.0, me, now + ttl_ms, now],
        |r| r.get::<i64>(0),
    )?;
    Ok(taken.is_some())
}

/// Gives the switch lock up (only `me`'s: one that expired and was taken stays the taker's).
pub fn unlock_switch(conn: &Db, switch: SwitchId, me: &str) -> Result<()> {
    conn.execute("DELETE FROM switch_locks WHERE switch_id = ?1 AND holder = ?2", params![switch.0, me])?;
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
        let events = events::query(&db, &events::EventQuery::of(NodeId(1))).expect("events");
        assert!(events.iter().any(|e| e.kind == "lease" && e.message.contains("daemon b took over from daemon a")), "{events:?}");
        release(&db, &lease_b).expect("release");
        assert!(check(&db, &lease_b).is_err(), "released");
    }

    #[test]
    fn a_heartbeat_renews_only_its_own_leases() {
        let mut db = db();
        let me = Member { name: "a".into(), url: "http://a".into(), started_at: 1 };
        let lease = acquire(&mut db, NodeId(1), &me.name, 1).expect("acquire").expect("free");
        assert_eq!(heartbeat(&db, &me, 60_000).expect("beat").leases, [(NodeId(1), lease.epoch)]);
        let other = Member { name: "b".into(), url: "http://b".into(), started_at: 2 };
        assert_eq!(heartbeat(&db, &other, 60_000).expect("beat").leases, []);
        let daemons = list(&db, 60_000).expect("list");
        assert_eq!(daemons.iter().map(|d| (d.name.as_str(), d.nodes, d.alive)).collect::<Vec<_>>(), [("a", 1, true), ("b", 0, true)]);
        assert_eq!(peers(&db, "a", 60_000).expect("peers"), ["http://b"]);
    }

    #[test]
    fn a_lease_clock_counts_down_from_its_last_renewal_and_never_goes_back() {
        let start = Instant::now();
        let clock = LeaseClock::new(start);
        let ttl = Duration::from_secs(6);
        assert_eq!(clock.left(ttl, start + Duration::from_secs(2)), Duration::from_secs(4));
        assert_eq!(clock.left(ttl, start + Duration::from_secs(9)), Duration::ZERO, "frozen past the TTL: nothing left");
        clock.renew(start + Duration::from_secs(3));
        clock.renew(start + Duration::from_secs(1));
        assert_eq!(clock.left(ttl, start + Duration::from_secs(4)), Duration::from_secs(5), "a late report of an older renewal is ignored");
    }

    #[test]
    fn a_switch_lock_is_one_daemons_until_it_expires_and_only_its_holder_unlocks_it() {
        let db = db();
        let sw = SwitchId(1);
        assert!(try_lock_switch(&db, sw, "a", 60_000).expect("lock"));
        assert!(try_lock_switch(&db, sw, "a", 60_000).expect("lock"), "a retakes its own");
        assert!(!try_lock_switch(&db, sw, "b", 60_000).expect("lock"), "a holds it");
        unlock_switch(&db, sw, "b").expect("unlock");
        assert!(!try_lock_switch(&db, sw, "b", 60_000).expect("lock"), "b cannot unlock a's lock");
        // a freezes: its heartbeat stops renewing the lock, which expires; b takes it.
        db.execute("UPDATE switch_locks SET expires = 1", params![]).expect("expire");
        assert!(try_lock_switch(&db, sw, "b", 60_000).expect("lock"));
        unlock_switch(&db, sw, "a").expect("a's late unlock");
        assert!(!try_lock_switch(&db, sw, "a", 60_000).expect("lock"), "a's late unlock left b's lock alone");
        let me = Member { name: "b".into(), url: "http://b".into(), started_at: 1 };
        heartbeat(&db, &me, 120_000).expect("beat");
        let expires: i64 = db.query_row("SELECT expires FROM switch_locks WHERE switch_id = 1", params![], |r| r.get(0)).expect("row");
        assert!(expires > now_ms() + 60_000, "b's heartbeat renewed its lock");
        unlock_switch(&db, sw, "b").expect("unlock");
        assert!(try_lock_switch(&db, sw, "a", 60_000).expect("lock"));
    }

    #[test]
    fn a_fenced_call_runs_in_one_transaction_with_its_savepoints() {
        let mut db = db();
        let lease = acquire(&mut db, NodeId(1), &"a".into(), 60_000).expect("acquire").expect("free");
        {
            let mut tx = db.transaction().expect("begin");
            check(&tx, &lease).expect("held");
            let inner = tx.transaction().expect("savepoint");
            inner.execute("UPDATE nodes SET name = 'inner' WHERE id = 1", params![]).expect("write");
            drop(inner);
            let inner = tx.transaction().expect("savepoint");
            inner.execute("UPDATE nodes SET cpus = 7 WHERE id = 1", params![]).expect("write");
            inner.commit().expect("release");
            tx.commit().expect("commit");
        }
        let (name, cpus): (String, i64) =
            db.query_row("SELECT name, cpus FROM nodes WHERE id = 1", params![], |r| Ok((r.get(0)?, r.get(1)?))).expect("row");
        assert_eq!((name.as_str(), cpus), ("n1", 7), "the rolled-back savepoint undid its write only");
        {
            let mut tx = db.transaction().expect("begin");
            let inner = tx.transaction().expect("savepoint");
            inner.execute("UPDATE nodes SET cpus = 9 WHERE id = 1", params![]).expect("write");
            inner.commit().expect("release");
        }
        let cpus: i64 = db.query_row("SELECT cpus FROM nodes WHERE id = 1", params![], |r| r.get(0)).expect("row");
        assert_eq!(cpus, 7, "the outer rollback undid the released savepoint");
        db.transaction().expect("a fresh transaction after all that").commit().expect("commit");
    }
}
