//! The append-only node event log: every state change, workflow step, retry and power drift.

use super::db::{Db, params};

use super::Result;
use crate::domain::{EventId, NodeId, ProvisionState, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    #[schema(value_type = i64)]
    pub id: EventId,
    #[schema(value_type = i64)]
    pub node_id: NodeId,
    /// Stored as Unix milliseconds; RFC 3339 UTC on the wire.
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// An [`EventKind`] name.
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: String,
    pub duration_ms: Option<i64>,
}

/// What an event records; its name is what the log stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A provision state change.
    State,
    /// A workflow step, with its duration and outcome.
    Step,
    /// A transient failure inside a step, and when the step tries again.
    Retry,
    /// A power state read from or set on the BMC that differs from the last one.
    Power,
    /// Maintenance turned on or off.
    Maintenance,
    /// An operator set the boot device.
    BootDevice,
    /// An inventory report changed the node's facts or its switch port (inspection, enlistment).
    Inventory,
    /// A daemon took over a node whose lease another daemon let expire (store/cluster.rs).
    Lease,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Step => "step",
            EventKind::Retry => "retry",
            EventKind::Power => "power",
            EventKind::Maintenance => "maintenance",
            EventKind::BootDevice => "boot-device",
            EventKind::Inventory => "inventory",
            EventKind::Lease => "lease",
        }
    }
}

pub struct NewEvent<'a> {
    pub node: NodeId,
    pub kind: EventKind,
    pub from: Option<ProvisionState>,
    pub to: Option<ProvisionState>,
    pub message: &'a str,
    pub duration_ms: Option<i64>,
}

impl<'a> NewEvent<'a> {
    pub fn note(node: NodeId, kind: EventKind, message: &'a str) -> Self {
        NewEvent { node, kind, from: None, to: None, message, duration_ms: None }
    }
}

pub fn append(conn: &Db, event: NewEvent<'_>) -> Result<()> {
    conn.execute(
        // Stamped with the node's tenancy of the moment: its tenant sees its own events only.
        "INSERT INTO node_events (node_id, at, kind, from_state, to_state, message, duration_ms, tenancy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT tenancy FROM nodes WHERE id = ?1))",
        params![
            event.node.0,
            now_ms(),
            event.kind.as_str(),
            event.from.map(|s| s.as_str()),
            event.to.map(|s| s.as_str()),
            event.message,
            event.duration_ms
        ],
    )?;
    Ok(())
}

/// A node's events; with `tenancy`, only those recorded in that tenancy of the node.
pub fn list_of(conn: &Db, node: NodeId, tenancy: Option<i64>) -> Result<Vec<Event>> {
    // Two statements rather than `?2 IS NULL OR ...`: PostgreSQL must know each parameter's type.
    let (sql, tenancy) = match tenancy {
        Some(t) => (
            "SELECT id, node_id, at, kind, from_state, to_state, message, duration_ms
                     FROM node_events WHERE node_id = ?1 AND tenancy = ?2 ORDER BY id",
            t,
        ),
        None => (
            "SELECT id, node_id, at, kind, from_state, to_state, message, duration_ms
                  FROM node_events WHERE node_id = ?1 AND ?2 = ?2 ORDER BY id",
            0,
        ),
    };
    conn.query_map(sql, params![node.0, tenancy], |row| {
        Ok(Event {
            id: row.get(0)?,
            node_id: row.get(1)?,
            at: row.get(2)?,
            kind: row.get(3)?,
            from_state: row.get(4)?,
            to_state: row.get(5)?,
            message: row.get(6)?,
            duration_ms: row.get(7)?,
        })
    })
}
