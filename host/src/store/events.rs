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
    pub const ALL: &[EventKind] = &[
        EventKind::State,
        EventKind::Step,
        EventKind::Retry,
        EventKind::Power,
        EventKind::Maintenance,
        EventKind::BootDevice,
        EventKind::Inventory,
        EventKind::Lease,
    ];

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

/// Which of a node's events to read, and how many.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub node: NodeId,
    /// Only those recorded in this tenancy of the node (a tenant's view).
    pub tenancy: Option<i64>,
    pub kind: Option<EventKind>,
    /// Only events with a larger id (the last of the previous page, oldest first).
    pub after: Option<i64>,
    /// Only events with a smaller id (the last of the previous page, newest first).
    pub before: Option<i64>,
    /// Newest first rather than oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: Option<i64>,
}

impl EventQuery {
    /// Every event of `node`, oldest first.
    pub fn of(node: NodeId) -> Self {
        EventQuery { node, tenancy: None, kind: None, after: None, before: None, newest_first: false, limit: None }
    }
}

/// A node's events as `query` asks: one statement, filters and the page bound in SQL.
pub fn query(conn: &Db, query: &EventQuery) -> Result<Vec<Event>> {
    use super::db::{ToValue, Value};
    let mut values: Vec<Value> = vec![query.node.0.to_value()];
    let mut clauses = vec!["node_id = ?1".to_owned()];
    // A clause only for each filter given: PostgreSQL must know every parameter's type, so no
    // `?N IS NULL OR ...`.
    let mut bind = |clause: &str, value: Value| {
        values.push(value);
        clauses.push(format!("{clause} ?{}", values.len()));
    };
    if let Some(t) = query.tenancy {
        bind("tenancy =", t.to_value());
    }
    if let Some(kind) = query.kind {
        bind("kind =", kind.as_str().to_value());
    }
    if let Some(after) = query.after {
        bind("id >", after.to_value());
    }
    if let Some(before) = query.before {
        bind("id <", before.to_value());
    }
    let order = if query.newest_first { "DESC" } else { "ASC" };
    let limit = match query.limit {
        Some(l) => {
            values.push(l.to_value());
            format!(" LIMIT ?{}", values.len())
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT id, node_id, at, kind, from_state, to_state, message, duration_ms FROM node_events WHERE {} ORDER BY id {order}{limit}",
        clauses.join(" AND ")
    );
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.query_map(&sql, &params, |row| {
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
