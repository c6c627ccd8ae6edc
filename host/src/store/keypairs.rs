//! SSH key pairs a user registered by name (migration 10), to name on `instance create` instead
//! of pasting the key. Each user sees and uses only its own; the public half is all that is kept.

use super::db::{Db, Row, params};
use super::{Result, StoreError};
use crate::domain::{UserId, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyPair {
    pub name: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

fn from_row(row: &Row<'_>) -> Result<KeyPair> {
    Ok(KeyPair { name: row.get(0)?, public_key: row.get(1)?, created_at: row.get(2)? })
}

/// Registers `public_key` (already checked: domain/identity.rs) as `name` for `user`.
pub fn add(conn: &Db, user: UserId, name: &str, public_key: &str) -> Result<KeyPair> {
    let taken: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM keypairs WHERE user_id = ?1 AND name = ?2)", params![user, name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("you already have a key pair named {name:?}")));
    }
    conn.execute("INSERT INTO keypairs (user_id, name, public_key, created_at) VALUES (?1, ?2, ?3, ?4)", params![user, name, public_key, now_ms()])?;
    get(conn, user, name)
}

pub fn get(conn: &Db, user: UserId, name: &str) -> Result<KeyPair> {
    conn.query_opt("SELECT name, public_key, created_at FROM keypairs WHERE user_id = ?1 AND name = ?2", params![user, name], from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("key pair {name:?}")))
}

pub fn list(conn: &Db, user: UserId) -> Result<Vec<KeyPair>> {
    conn.query_map("SELECT name, public_key, created_at FROM keypairs WHERE user_id = ?1 ORDER BY name", params![user], from_row)
}

pub fn remove(conn: &Db, user: UserId, name: &str) -> Result<()> {
    if conn.execute("DELETE FROM keypairs WHERE user_id = ?1 AND name = ?2", params![user, name])? == 0 {
        return Err(StoreError::NotFound(format!("key pair {name:?}")));
    }
    Ok(())
}
