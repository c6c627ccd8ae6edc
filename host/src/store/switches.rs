//! The switch registry.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Result, StoreError};
use crate::domain::{ChassisId, Hostname, Secret, SwitchId, now_ms};

/// A switch as stored. Holds its password: never serialise this type to a client.
#[derive(Debug, Clone)]
pub struct Switch {
    pub id: SwitchId,
    pub name: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub driver: String,
    pub description: String,
    /// The SSH host key fingerprint: pinned by the operator, or learned on first use.
    pub host_key: Option<String>,
    pub host_key_pinned: bool,
    /// The LLDP chassis id it announces, by which inspection recognises it.
    pub chassis_id: Option<String>,
}

pub struct NewSwitch {
    pub name: String,
    pub address: Hostname,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub driver: String,
    pub description: String,
    pub pinned_host_key: Option<String>,
    pub chassis_id: Option<ChassisId>,
}

/// A row looked up by id or by name, as the CLI and the URL paths allow.
#[derive(Debug, Clone)]
pub enum Key {
    Id(i64),
    Name(String),
}

impl Key {
    pub fn parse(s: &str) -> Key {
        s.parse().map(Key::Id).unwrap_or_else(|_| Key::Name(s.to_owned()))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Id(id) => write!(f, "{id}"),
            Key::Name(name) => write!(f, "{name:?}"),
        }
    }
}

const COLUMNS: &str =
    "id, name, address, port, username, unseal('switches.password', password), driver, description, host_key, host_key_pinned, chassis_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Switch> {
    Ok(Switch {
        id: SwitchId(row.get(0)?),
        name: row.get(1)?,
        address: row.get(2)?,
        port: row.get(3)?,
        username: row.get(4)?,
        password: Secret::new(row.get::<_, String>(5)?),
        driver: row.get(6)?,
        description: row.get(7)?,
        host_key: row.get(8)?,
        host_key_pinned: row.get(9)?,
        chassis_id: row.get(10)?,
    })
}

pub fn insert(conn: &mut Connection, new: NewSwitch) -> Result<Switch> {
    let tx = conn.transaction()?;
    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM switches WHERE name = ?1)", [&new.name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("a switch named {:?} already exists", new.name)));
    }
    if let Some(chassis) = &new.chassis_id {
        let holder: Option<String> = tx.query_row("SELECT name FROM switches WHERE chassis_id = ?1", [chassis.as_str()], |r| r.get(0)).optional()?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("switch {holder:?} already has chassis id {chassis}")));
        }
    }
    tx.execute(
        "INSERT INTO switches (name, address, port, username, password, driver, description, host_key, host_key_pinned, created_at, chassis_id)
         VALUES (?1, ?2, ?3, ?4, seal('switches.password', ?5), ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new.name,
            new.address.as_str(),
            new.port,
            new.username,
            new.password.expose(),
            new.driver,
            new.description,
            new.pinned_host_key,
            new.pinned_host_key.is_some(),
            now_ms(),
            new.chassis_id.as_ref().map(ChassisId::as_str)
        ],
    )?;
    let id = tx.last_insert_rowid();
    let switch = get_by_id(&tx, SwitchId(id))?;
    tx.commit()?;
    Ok(switch)
}

pub fn list(conn: &Connection) -> Result<Vec<Switch>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM switches ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, key: &Key) -> Result<Switch> {
    let found = match key {
        Key::Id(id) => conn.query_row(&format!("SELECT {COLUMNS} FROM switches WHERE id = ?1"), [id], from_row).optional()?,
        Key::Name(name) => conn.query_row(&format!("SELECT {COLUMNS} FROM switches WHERE name = ?1"), [name], from_row).optional()?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("switch {key}")))
}

pub fn get_by_id(conn: &Connection, id: SwitchId) -> Result<Switch> {
    get(conn, &Key::Id(id.0))
}

/// Sets (or with None leaves) the LLDP chassis id; another switch with the same id is a conflict.
pub fn set_chassis_id(conn: &mut Connection, key: &Key, chassis: Option<ChassisId>) -> Result<Switch> {
    let tx = conn.transaction()?;
    let switch = get(&tx, key)?;
    if let Some(chassis) = chassis {
        let holder: Option<String> = tx
            .query_row("SELECT name FROM switches WHERE chassis_id = ?1 AND id <> ?2", params![chassis.as_str(), switch.id.0], |r| r.get(0))
            .optional()?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("switch {holder:?} already has chassis id {chassis}")));
        }
        tx.execute("UPDATE switches SET chassis_id = ?2 WHERE id = ?1", params![switch.id.0, chassis.as_str()])?;
    }
    let switch = get_by_id(&tx, switch.id)?;
    tx.commit()?;
    Ok(switch)
}

/// The switch that announces this LLDP chassis id, if one is registered with it.
pub fn find_by_chassis(conn: &Connection, chassis: &ChassisId) -> Result<Option<Switch>> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM switches WHERE chassis_id = ?1"), [chassis.as_str()], from_row).optional()?)
}

pub fn delete(conn: &mut Connection, key: &Key) -> Result<()> {
    let tx = conn.transaction()?;
    let switch = get(&tx, key)?;
    let users: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM nodes WHERE switch_id = ?1 ORDER BY id LIMIT 6")?;
        let rows = stmt.query_map([switch.id.0], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if !users.is_empty() {
        let more = if users.len() > 5 { ", ..." } else { "" };
        let shown = users.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        return Err(StoreError::Conflict(format!("switch {:?} is still used by nodes: {shown}{more}; move or delete them first", switch.name)));
    }
    tx.execute("DELETE FROM switches WHERE id = ?1", [switch.id.0])?;
    tx.commit()?;
    Ok(())
}

/// Records the host key seen on first use. A pinned key is never overwritten.
pub fn learn_host_key(conn: &Connection, id: SwitchId, fingerprint: &str) -> Result<()> {
    conn.execute("UPDATE switches SET host_key = ?2 WHERE id = ?1 AND host_key IS NULL", params![id.0, fingerprint])?;
    Ok(())
}
