//! A node's state changes: each checked against the states it may come from, recorded as an event,
//! with the deadline of a transitional state and the failure record of `error`.

use super::db::{Db, params};
use super::events::{self, EventKind, NewEvent};
use super::last_error::LastError;
use super::nodes::{Node, get_locked, update_returning};
use super::{Result, StoreError};
use crate::domain::{NodeId, ProvisionState, now_ms};

/// Moves a node to `to` if it is in one of `from`, recording the change as an event.
/// `deadline` is when a transitional state must be over. `last_error` is kept only in `error`
/// and `enrolled`: `error` when given, else the message as text.
pub struct Transition<'a> {
    pub node: NodeId,
    pub from: &'a [ProvisionState],
    pub to: ProvisionState,
    pub message: &'a str,
    pub deadline: Option<i64>,
    pub error: Option<&'a LastError>,
}

impl<'a> Transition<'a> {
    /// Into a stable state (no deadline), from one of `from`.
    pub fn settle(node: NodeId, from: &'a [ProvisionState], to: ProvisionState, message: &'a str) -> Self {
        Transition { node, from, to, message, deadline: None, error: None }
    }

    /// Into a transitional state, from one of `from`, which must be over by `deadline` (Unix ms).
    pub fn until(node: NodeId, from: &'a [ProvisionState], to: ProvisionState, message: &'a str, deadline: i64) -> Self {
        Transition { node, from, to, message, deadline: Some(deadline), error: None }
    }

    /// From any state into `error`, keeping the failure as the node's `last_error`.
    pub fn failed(node: NodeId, message: &'a str, error: &'a LastError) -> Self {
        Transition { node, from: &[], to: ProvisionState::Error, message, deadline: None, error: Some(error) }
    }

    /// The record kept as `last_error` when the node lands in `enrolled` or `error`.
    pub fn with_error(self, error: Option<&'a LastError>) -> Self {
        Transition { error, ..self }
    }
}

pub fn transition(conn: &Db, t: Transition<'_>) -> Result<Node> {
    let node = get_locked(conn, t.node)?;
    if !t.from.is_empty() && !t.from.contains(&node.state) {
        return Err(StoreError::Conflict(format!(
            "node {:?} is {}, not {}",
            node.name,
            node.state,
            t.from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
        )));
    }
    if node.state != t.to && !node.state.can_become(t.to) {
        return Err(StoreError::Conflict(format!("node {:?} cannot go from {} to {}", node.name, node.state, t.to)));
    }
    // last_error survives only in `error` (and in `enrolled`, where it says why validation failed).
    let last_error = match t.to {
        ProvisionState::Error | ProvisionState::Enrolled => Some(t.error.cloned().unwrap_or_else(|| LastError::text(t.message))),
        _ => None,
    };
    let changed = update_returning(
        conn,
        t.node,
        "state = ?2, state_deadline = ?3, last_error = ?4, last_error_detail = ?5, updated_at = ?6",
        params![
            t.node.0,
            t.to.as_str(),
            t.deadline,
            last_error.as_ref().map(ToString::to_string),
            last_error.as_ref().map(LastError::to_json),
            now_ms()
        ],
    )?;
    if node.state != t.to || last_error.is_some() {
        events::append(
            conn,
            NewEvent { node: t.node, kind: EventKind::State, from: Some(node.state), to: Some(t.to), message: t.message, duration_ms: None },
        )?;
    }
    Ok(changed)
}
