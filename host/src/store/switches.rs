//! The switch registry.

use super::db::{Db, Row, params};

use super::{Result, StoreError};
use crate::domain::{ChassisId, Hostname, Key, Secret, SwitchAccess, SwitchId, now_ms};

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

impl Switch {
    /// What a switch call needs: where, the login, the plugin, the key to trust.
    pub fn access(&self) -> SwitchAccess {
        SwitchAccess {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
            driver: self.driver.clone(),
            host_key: self.host_key.clone(),
        }
    }
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

const COLUMNS: &str = "id, name, address, port, username, password, driver, description, host_key, host_key_pinned, chassis_id";

fn from_row(row: &Row<'_>) -> Result<Switch> {
    Ok(Switch {
        id: SwitchId(row.get(0)?),
        name: row.get(1)?,
        address: row.get(2)?,
        port: row.get(3)?,
        username: row.get(4)?,
        password: row.unseal(5, "switches.password")?,
        driver: row.get(6)?,
        description: row.get(7)?,
        host_key: row.get(8)?,
        host_key_pinned: row.get(9)?,
        chassis_id: row.get(10)?,
    })
}

pub fn insert(conn: &mut Db, new: NewSwitch) -> Result<Switch> {
    let tx = conn.transaction()?;
    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM switches WHERE name = ?1)", params![&new.name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("a switch named {:?} already exists", new.name)));
    }
    if let Some(chassis) = &new.chassis_id {
        let holder: Option<String> = tx.query_opt("SELECT name FROM switches WHERE chassis_id = ?1", params![chassis.as_str()], |r| r.get(0))?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("switch {holder:?} already has chassis id {chassis}")));
        }
    }
    let id = tx.query_row(
        "INSERT INTO switches (name, address, port, username, password, driver, description, host_key, host_key_pinned, created_at, chassis_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         RETURNING id",
        params![
            new.name,
            new.address.as_str(),
            new.port,
            new.username,
            tx.seal("switches.password", new.password.expose())?,
            new.driver,
            new.description,
            new.pinned_host_key,
            new.pinned_host_key.is_some(),
            now_ms(),
            new.chassis_id.as_ref().map(ChassisId::as_str)
        ],
        |r| r.get(0),
    )?;
    let switch = get_by_id(&tx, SwitchId(id))?;
    tx.commit()?;
    Ok(switch)
}

pub fn list(conn: &Db) -> Result<Vec<Switch>> {
    conn.query_map(&format!("SELECT {COLUMNS} FROM switches ORDER BY id"), params![], from_row)
}

pub fn get(conn: &Db, key: &Key) -> Result<Switch> {
    let found = match key {
        Key::Id(id) => conn.query_opt(&format!("SELECT {COLUMNS} FROM switches WHERE id = ?1"), params![id], from_row)?,
        Key::Name(name) => conn.query_opt(&format!("SELECT {COLUMNS} FROM switches WHERE name = ?1"), params![name], from_row)?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("switch {key}")))
}

pub fn get_by_id(conn: &Db, id: SwitchId) -> Result<Switch> {
    get(conn, &Key::Id(id.0))
}

/// Sets (or with None leaves) the LLDP chassis id; another switch with the same id is a conflict.
pub fn set_chassis_id(conn: &mut Db, key: &Key, chassis: Option<ChassisId>) -> Result<Switch> {
    let tx = conn.transaction()?;
    let switch = get(&tx, key)?;
    if let Some(chassis) = chassis {
        let holder: Option<String> =
            tx.query_opt("SELECT name FROM switches WHERE chassis_id = ?1 AND id <> ?2", params![chassis.as_str(), switch.id.0], |r| r.get(0))?;
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
pub fn find_by_chassis(conn: &Db, chassis: &ChassisId) -> Result<Option<Switch>> {
    conn.query_opt(&format!("SELECT {COLUMNS} FROM switches WHERE chassis_id = ?1"), params![chassis.as_str()], from_row)
}

pub fn delete(conn: &mut Db, key: &Key) -> Result<()> {
    let tx = conn.transaction()?;
    let switch = get(&tx, key)?;
    let users: Vec<String> = tx.query_map("SELECT name FROM nodes WHERE switch_id = ?1 ORDER BY id LIMIT 6", params![switch.id.0], |r| r.get(0))?;
    if !users.is_empty() {
        let more = if users.len() > 5 { ", ..." } else { "" };
        let shown = users.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        return Err(StoreError::Conflict(format!("switch {:?} is still used by nodes: {shown}{more}; move or delete them first", switch.name)));
    }
    tx.execute("DELETE FROM switches WHERE id = ?1", params![switch.id.0])?;
    tx.commit()?;
    Ok(())
}

/// Records the host key seen on first use. A pinned key is never overwritten.
pub fn learn_host_key(conn: &Db, id: SwitchId, fingerprint: &str) -> Result<()> {
    conn.execute("UPDATE switches SET host_key = ?2 WHERE id = ?1 AND host_key IS NULL", params![id.0, fingerprint])?;
    Ok(())
}
