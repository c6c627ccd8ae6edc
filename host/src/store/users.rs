//! Users, their project roles, and their API tokens. A token is random, shown once when it is made,
//! and kept only as its SHA-256: a copy of the database lets nobody in. User 1 (`admin`, made by
//! migration 9) is who the config's operator token signs in as.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::db::{Db, Row, params};
use super::{Result, StoreError};
use crate::domain::tenancy::{Caller, Role};
use crate::domain::{Key, ProjectId, Secret, TokenId, UserId, now_ms};

/// The user the operator token of the config signs in as (migration 9).
pub const OPERATOR_USER: UserId = UserId(1);
/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "mht_";

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    #[schema(value_type = i64)]
    pub id: UserId,
    pub name: String,
    /// A system administrator: nodes, switches, plugins, public images, projects and users.
    pub admin: bool,
    /// Its role in each project.
    pub projects: Vec<Membership>,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Membership {
    #[schema(value_type = i64)]
    pub project_id: ProjectId,
    pub project: String,
    /// reader or member.
    pub role: String,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    #[schema(value_type = i64)]
    pub id: TokenId,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub user: String,
    pub description: String,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

fn memberships(conn: &Db, user: UserId) -> Result<Vec<Membership>> {
    conn.query_map(
        "SELECT m.project_id, p.name, m.role FROM memberships m JOIN projects p ON p.id = m.project_id WHERE m.user_id = ?1 ORDER BY p.id",
        params![user],
        |r| Ok(Membership { project_id: r.get(0)?, project: r.get(1)?, role: r.get(2)? }),
    )
}

pub fn create(conn: &mut Db, name: &str, admin: bool) -> Result<User> {
    let tx = conn.transaction()?;
    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)", params![name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("a user named {name:?} already exists")));
    }
    let id: i64 =
        tx.query_row("INSERT INTO users (name, admin, created_at) VALUES (?1, ?2, ?3) RETURNING id", params![name, admin, now_ms()], |r| r.get(0))?;
    let user = get(&tx, &Key::Id(id))?;
    tx.commit()?;
    Ok(user)
}

pub fn get(conn: &Db, key: &Key) -> Result<User> {
    let sql = "SELECT id, name, admin, created_at FROM users";
    let rows = match key {
        Key::Id(id) => {
            conn.query_map(&format!("{sql} WHERE id = ?1"), params![id], |r| Ok((r.get::<UserId>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        }
        Key::Name(n) => {
            conn.query_map(&format!("{sql} WHERE name = ?1"), params![n], |r| Ok((r.get::<UserId>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        }
    };
    let (id, name, admin, created_at) = rows.into_iter().next().ok_or_else(|| StoreError::NotFound(format!("user {key}")))?;
    Ok(User { id, name, admin, created_at, projects: memberships(conn, id)? })
}

pub fn list(conn: &Db) -> Result<Vec<User>> {
    let rows: Vec<(UserId, String, bool, i64)> =
        conn.query_map("SELECT id, name, admin, created_at FROM users ORDER BY id", params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    rows.into_iter().map(|(id, name, admin, created_at)| Ok(User { id, name, admin, created_at, projects: memberships(conn, id)? })).collect()
}

/// Deletes a user and its tokens; the operator token's user stays.
pub fn remove(conn: &Db, key: &Key) -> Result<User> {
    let user = get(conn, key)?;
    if user.id == OPERATOR_USER {
        return Err(StoreError::Conflict(format!("user {:?} is the one the config's operator token signs in as: it cannot be deleted", user.name)));
    }
    conn.execute("DELETE FROM users WHERE id = ?1", params![user.id])?;
    Ok(user)
}

/// The caller a user signs in as: its admin flag and roles.
pub fn caller(conn: &Db, id: UserId) -> Result<Caller> {
    let user = get(conn, &Key::Id(id.0))?;
    let roles = user.projects.iter().filter_map(|m| m.role.parse::<Role>().ok().map(|r| (m.project_id, r))).collect();
    Ok(Caller { user: user.id, name: user.name, admin: user.admin, roles })
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a token for `user`, valid until `expires_at` (Unix ms). The token is returned this once.
pub fn issue_token(conn: &Db, user: UserId, description: &str, expires_at: i64) -> Result<(TokenInfo, Secret)> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let id: i64 = conn.query_row(
        "INSERT INTO tokens (user_id, hash, description, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![user, token_hash(&token), description, now_ms(), expires_at],
        |r| r.get(0),
    )?;
    Ok((token_info(conn, TokenId(id))?, Secret::new(token)))
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.user_id, u.name, t.description, t.created_at, t.expires_at, t.revoked_at FROM tokens t JOIN users u ON u.id = t.user_id";

fn token_from_row(r: &Row<'_>) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user_id: r.get(1)?,
        user: r.get(2)?,
        description: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

pub fn token_info(conn: &Db, id: TokenId) -> Result<TokenInfo> {
    conn.query_opt(&format!("{TOKEN_SELECT} WHERE t.id = ?1"), params![id], token_from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("token {id}")))
}

/// Tokens of one user, or everybody's.
pub fn tokens(conn: &Db, user: Option<UserId>) -> Result<Vec<TokenInfo>> {
    match user {
        Some(user) => conn.query_map(&format!("{TOKEN_SELECT} WHERE t.user_id = ?1 ORDER BY t.id"), params![user], token_from_row),
        None => conn.query_map(&format!("{TOKEN_SELECT} ORDER BY t.id"), params![], token_from_row),
    }
}

/// Revokes a token at once (kept, marked, so the audit trail still names it).
pub fn revoke_token(conn: &Db, id: TokenId) -> Result<TokenInfo> {
    conn.execute("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![id, now_ms()])?;
    token_info(conn, id)
}

/// Why a presented token does not sign anybody in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
}

/// The user a presented token signs in as, if it is known, not revoked and not expired.
pub fn sign_in(conn: &Db, token: &str) -> Result<std::result::Result<Caller, TokenRefusal>> {
    let found: Option<(UserId, i64, Option<i64>)> =
        conn.query_opt("SELECT user_id, expires_at, revoked_at FROM tokens WHERE hash = ?1", params![token_hash(token)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(match found {
        None => Err(TokenRefusal::Unknown),
        Some((_, _, Some(_))) => Err(TokenRefusal::Revoked),
        Some((_, expires, None)) if expires <= now_ms() => Err(TokenRefusal::Expired),
        Some((user, _, None)) => Ok(caller(conn, user)?),
    })
}
