//! The append-only node event log: every state change, workflow step and power drift.

use rusqlite::{Connection, params};

use super::Result;
use crate::domain::{NodeId, ProvisionState, now_ms};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub id: i64,
    pub node_id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// `state`, `step`, `power`, `network`, ...
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: String,
    pub duration_ms: Option<i64>,
}

pub struct NewEvent<'a> {
    pub node: NodeId,
    pub kind: &'a str,
    pub from: Option<ProvisionState>,
    pub to: Option<ProvisionState>,
    pub message: &'a str,
    pub duration_ms: Option<i64>,
}

impl<'a> NewEvent<'a> {
    pub fn note(node: NodeId, kind: &'a str, message: &'a str) -> Self {
        NewEvent { node, kind, from: None, to: None, message, duration_ms: None }
    }
}

pub fn append(conn: &Connection, event: NewEvent<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO node_events (node_id, at, kind, from_state, to_state, message, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event.node.0,
        now_ms(),
        event.kind,
        event.from.map(|s| s.as_str()),
        event.to.map(|s| s.as_str()),
        event.message,
        event.duration_ms
    ])?;
    Ok(())
}

pub fn list(conn: &Connection, node: NodeId) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, node_id, at, kind, from_state, to_state, message, duration_ms
         FROM node_events WHERE node_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([node.0], |row| {
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
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
