//! The audit trail: every change made through the API and every console attach, with who made
//! it, to what, its outcome (the HTTP status) and when. Append-only.

use super::Result;
use super::db::{Db, params};
use crate::domain::{UserId, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    #[schema(value_type = Option<i64>)]
    pub user_id: Option<UserId>,
    /// The user's name, or `anonymous` for a request without a valid token.
    pub actor: String,
    /// The operation (its OpenAPI operation id).
    pub action: String,
    /// The request's method and path.
    pub object: String,
    /// The HTTP status it was answered with.
    pub outcome: u16,
    /// The client's address.
    pub address: Option<String>,
}

pub struct NewEntry {
    pub user_id: Option<UserId>,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: u16,
    pub address: Option<String>,
}

pub fn append(conn: &Db, entry: &NewEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO audit (at, user_id, actor, action, object, outcome, address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now_ms(), entry.user_id, entry.actor, entry.action, entry.object, entry.outcome, entry.address],
    )?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn list(conn: &Db, limit: i64) -> Result<Vec<AuditEntry>> {
    conn.query_map("SELECT id, at, user_id, actor, action, object, outcome, address FROM audit ORDER BY id DESC LIMIT ?1", params![limit], |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at: r.get(1)?,
            user_id: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            object: r.get(5)?,
            outcome: r.get(6)?,
            address: r.get(7)?,
        })
    })
}
