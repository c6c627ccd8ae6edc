//! The node pool: enrolment, updates, deletion and state transitions (each recorded as an event).

use std::net::IpAddr;

use super::db::{Db, Row, ToValue, Value, params};

use super::events::{self, EventKind, NewEvent};
use super::last_error::LastError;
pub use super::transitions::{Transition, transition};
use super::{Result, StoreError};
use crate::domain::{
    Bmc, BootMode, Hostname, InstanceId, MacAddr, NetworkKind, NodeId, NodeLabel, PowerState, ProvisionState, Secret, SwitchId, SwitchPort, Vlan,
    now_ms,
};
use crate::domain::{Key, ProjectId};

/// A node as stored. Holds the BMC password: never serialise this type to a client.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub mac: MacAddr,
    pub ip: IpAddr,
    pub cpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub bmc_address: String,
    pub bmc_port: u16,
    pub bmc_username: String,
    pub bmc_password: Secret,
    pub power_driver: String,
    pub switch_id: SwitchId,
    pub switch_port: String,
    pub state: ProvisionState,
    pub power_state: PowerState,
    pub network: NetworkKind,
    pub vlan: Option<Vlan>,
    pub maintenance: bool,
    pub last_error: Option<LastError>,
    pub instance_id: Option<InstanceId>,
    /// When the current transitional state must be over (Unix ms).
    pub state_deadline: Option<i64>,
    pub boot_mode: BootMode,
    /// The project the node is dedicated to: only its instances get it.
    pub project_id: Option<ProjectId>,
    /// Its current tenancy: a number each claim raises above every tenancy before it, which its
    /// events and console lines carry (migration 9).
    pub tenancy: i64,
}

impl Node {
    /// A node enlisted by discovery has no BMC yet: the operator gives it one with `node update`.
    pub fn needs_bmc(&self) -> bool {
        self.bmc_address.is_empty() || self.bmc_username.is_empty() || self.power_driver.is_empty()
    }

    /// Which node a driver call acts for.
    pub fn label(&self) -> NodeLabel {
        NodeLabel { id: self.id, name: self.name.clone(), instance: self.instance_id }
    }

    /// What a power or console call needs of this node.
    pub fn bmc(&self) -> Bmc {
        Bmc {
            node: self.label(),
            address: self.bmc_address.clone(),
            port: self.bmc_port,
            username: self.bmc_username.clone(),
            password: self.bmc_password.clone(),
            driver: self.power_driver.clone(),
            boot_mode: self.boot_mode,
        }
    }
}

/// Validated input for a new node.
pub struct NewNode {
    pub name: String,
    pub mac: MacAddr,
    pub ip: IpAddr,
    pub cpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub bmc_address: Hostname,
    pub bmc_port: u16,
    pub bmc_username: String,
    pub bmc_password: Secret,
    pub power_driver: String,
    pub switch_id: SwitchId,
    pub switch_port: SwitchPort,
    pub boot_mode: BootMode,
}

/// Validated changes to a node; `None` leaves a field as it is.
#[derive(Default)]
pub struct NodeUpdate {
    pub name: Option<String>,
    pub mac: Option<MacAddr>,
    pub ip: Option<IpAddr>,
    pub cpus: Option<u32>,
    pub ram_mb: Option<u64>,
    pub disk_gb: Option<u64>,
    pub bmc_address: Option<Hostname>,
    pub bmc_port: Option<u16>,
    pub bmc_username: Option<String>,
    pub bmc_password: Option<Secret>,
    pub power_driver: Option<String>,
    pub switch_id: Option<SwitchId>,
    pub switch_port: Option<SwitchPort>,
    pub maintenance: Option<bool>,
    pub boot_mode: Option<BootMode>,
}

impl NodeUpdate {
    /// Whether the update touches anything a running workflow depends on.
    fn changes_hardware(&self) -> bool {
        self.mac.is_some()
            || self.ip.is_some()
            || self.bmc_address.is_some()
            || self.bmc_port.is_some()
            || self.bmc_username.is_some()
            || self.bmc_password.is_some()
            || self.power_driver.is_some()
            || self.switch_id.is_some()
            || self.switch_port.is_some()
    }
}

const COLUMNS: &str = "id, name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password, \
     power_driver, switch_id, switch_port, state, power_state, network, vlan, maintenance, last_error, instance_id, \
     state_deadline, last_error_detail, boot_mode, project_id, tenancy";

/// The columns of a list: every one but the BMC password, which no list shows and unsealing
/// 10,000 of them was most of a list's time.
fn listed_columns() -> String {
    COLUMNS.replacen("bmc_password", "NULL AS bmc_password", 1)
}

fn from_row(row: &Row<'_>) -> Result<Node> {
    node_from_row(row, true)
}

/// A listed node: its `bmc_password` is empty (never unsealed), so it must not reach a driver.
fn listed_from_row(row: &Row<'_>) -> Result<Node> {
    node_from_row(row, false)
}

fn node_from_row(row: &Row<'_>, unseal: bool) -> Result<Node> {
    Ok(Node {
        id: NodeId(row.get(0)?),
        name: row.get(1)?,
        mac: row.parse(2)?,
        ip: row.parse(3)?,
        cpus: row.get(4)?,
        ram_mb: row.get(5)?,
        disk_gb: row.get(6)?,
        bmc_address: row.get(7)?,
        bmc_port: row.get(8)?,
        bmc_username: row.get(9)?,
        bmc_password: if unseal { row.unseal(10, "nodes.bmc_password")? } else { Secret::new(String::new()) },
        power_driver: row.get(11)?,
        switch_id: SwitchId(row.get(12)?),
        switch_port: row.get(13)?,
        state: row.parse(14)?,
        power_state: row.parse(15)?,
        network: row.parse(16)?,
        vlan: row
            .get::<Option<i64>>(17)?
            .map(Vlan::new)
            .transpose()
            .map_err(|e| super::StoreError::Db(super::DbError::Column { index: 17, message: e.to_string() }))?,
        maintenance: row.get(18)?,
        last_error: LastError::from_columns(row.get(19)?, row.get(22)?),
        instance_id: row.get::<Option<i64>>(20)?.map(InstanceId),
        state_deadline: row.get(21)?,
        boot_mode: row.parse(23)?,
        project_id: row.get(24)?,
        tenancy: row.get(25)?,
    })
}

/// The explicit uniqueness and reference checks, shared by insert and update, so a rejected request
/// gets a precise message and writes nothing.
pub(super) fn check_unique(tx: &Db, this: Option<NodeId>, name: Option<&str>, mac: Option<&MacAddr>, port: Option<(SwitchId, &str)>) -> Result<()> {
    let other = this.map_or(-1, |id| id.0);
    if let Some(mac) = mac {
        let holder: Option<String> =
            tx.query_opt("SELECT name FROM nodes WHERE mac = ?1 AND id <> ?2", params![mac.to_string(), other], |r| r.get(0))?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("MAC {mac} is already enrolled as node {holder:?}")));
        }
    }
    if let Some(name) = name {
        let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM nodes WHERE name = ?1 AND id <> ?2)", params![name, other], |r| r.get(0))?;
        if taken {
            return Err(StoreError::Conflict(format!("a node named {name:?} already exists")));
        }
    }
    if let Some((switch_id, port)) = port {
        let exists: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM switches WHERE id = ?1)", params![switch_id.0], |r| r.get(0))?;
        if !exists {
            return Err(StoreError::Unprocessable(format!("switch {switch_id} does not exist")));
        }
        let holder: Option<String> =
            tx.query_opt("SELECT name FROM nodes WHERE switch_id = ?1 AND switch_port = ?2 AND id <> ?3", params![switch_id.0, port, other], |r| {
                r.get(0)
            })?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("port {port} of switch {switch_id} is already given to node {holder:?}")));
        }
    }
    Ok(())
}

/// Enrols a node: its row and its `enrolled` event in one transaction. The insert is tried first
/// and the unique columns and the switch are left to the constraints (on PostgreSQL every
/// statement is a round trip from the store's connection: two here, plus BEGIN and COMMIT); only
/// a refused insert runs [`check_unique`], after the rollback, for the precise message.
pub fn insert(conn: &mut Db, new: NewNode) -> Result<Node> {
    let tried = insert_row(conn, &new);
    match tried {
        Err(StoreError::Db(e)) if e.is_constraint() => {
            check_unique(conn, None, Some(&new.name), Some(&new.mac), Some((new.switch_id, new.switch_port.as_str())))?;
            Err(StoreError::Db(e))
        }
        other => other,
    }
}

fn insert_row(conn: &mut Db, new: &NewNode) -> Result<Node> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let node = tx.query_row(
        &format!(
            "INSERT INTO nodes (name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password,
                                power_driver, switch_id, switch_port, state, created_at, updated_at, boot_mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16)
             RETURNING {COLUMNS}"
        ),
        params![
            new.name,
            new.mac.to_string(),
            new.ip.to_string(),
            new.cpus,
            new.ram_mb,
            new.disk_gb,
            new.bmc_address.as_str(),
            new.bmc_port,
            new.bmc_username,
            tx.seal("nodes.bmc_password", new.bmc_password.expose())?,
            new.power_driver,
            new.switch_id.0,
            new.switch_port.as_str(),
            ProvisionState::Enrolled.as_str(),
            now,
            new.boot_mode.as_str()
        ],
        from_row,
    )?;
    events::append(
        &tx,
        NewEvent { node: node.id, kind: EventKind::State, from: None, to: Some(ProvisionState::Enrolled), message: "enrolled", duration_ms: None },
    )?;
    tx.commit()?;
    Ok(node)
}

pub fn list(conn: &Db) -> Result<Vec<Node>> {
    conn.query_map(&format!("SELECT {COLUMNS} FROM nodes ORDER BY id"), params![], from_row)
}

/// Which nodes a list wants (`GET /v1/nodes`): a page after a cursor, and filters.
#[derive(Debug, Default, Clone)]
pub struct NodeQuery {
    /// Only nodes with a larger id (the last id of the previous page).
    pub after: Option<i64>,
    /// At most this many.
    pub limit: Option<i64>,
    pub state: Option<ProvisionState>,
    pub power: Option<PowerState>,
    pub maintenance: Option<bool>,
    /// Nodes of these projects only (their instances' or dedicated to them): a user's, or an
    /// admin's project filter.
    pub projects: Option<Vec<ProjectId>>,
    /// Part of the name or of the MAC, case-insensitive.
    pub text: Option<String>,
}

/// The WHERE clause `query` asks for, apart from its page bound, and the values it binds; `None`
/// when no node can pass (an empty project list). One builder for the page and its counts.
fn where_clause(query: &NodeQuery) -> Option<(String, Vec<super::db::Value>)> {
    use super::db::{ToValue, Value};
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let bind = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    if let Some(after) = query.after {
        let mark = bind(&mut values, after.to_value());
        clauses.push(format!("id > {mark}"));
    }
    if let Some(state) = query.state {
        let mark = bind(&mut values, state.as_str().to_value());
        clauses.push(format!("state = {mark}"));
    }
    if let Some(power) = query.power {
        let mark = bind(&mut values, power.to_string().to_value());
        clauses.push(format!("power_state = {mark}"));
    }
    if let Some(maintenance) = query.maintenance {
        let mark = bind(&mut values, maintenance.to_value());
        clauses.push(format!("maintenance = {mark}"));
    }
    if let Some(projects) = &query.projects {
        if projects.is_empty() {
            return None;
        }
        let marks: Vec<String> = projects.iter().map(|p| bind(&mut values, p.to_value())).collect();
        let marks = marks.join(", ");
        clauses.push(format!("(project_id IN ({marks}) OR instance_id IN (SELECT id FROM instances WHERE project_id IN ({marks})))"));
    }
    if let Some(text) = query.text.as_deref().filter(|t| !t.is_empty()) {
        // LIKE's own characters are taken literally.
        let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let mark = bind(&mut values, Value::Text(format!("%{escaped}%")));
        clauses.push(format!("(LOWER(name) LIKE {mark} ESCAPE '\\' OR LOWER(mac) LIKE {mark} ESCAPE '\\')"));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    Some((filter, values))
}

/// One page of nodes in id order, as `query` asks; one statement, filters in SQL. Listed nodes
/// carry no BMC password (nothing is unsealed for a list): for showing, never for a driver call.
pub fn query(conn: &Db, query: &NodeQuery) -> Result<Vec<Node>> {
    use super::db::ToValue;
    let Some((filter, mut values)) = where_clause(query) else { return Ok(Vec::new()) };
    let limit = match query.limit {
        Some(limit) => {
            values.push(limit.to_value());
            format!(" LIMIT ?{}", values.len())
        }
        None => String::new(),
    };
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.query_map(&format!("SELECT {} FROM nodes {filter} ORDER BY id{limit}", listed_columns()), &params, listed_from_row)
}

/// How many nodes pass `query`'s filters in each state (its page bound and cursor ignored): the
/// web view's counts beside one page. One statement.
pub fn count_states(conn: &Db, query: &NodeQuery) -> Result<Vec<(ProvisionState, u64)>> {
    use super::db::ToValue;
    let whole = NodeQuery { after: None, limit: None, ..query.clone() };
    let Some((filter, values)) = where_clause(&whole) else { return Ok(Vec::new()) };
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.query_map(&format!("SELECT state, COUNT(*) FROM nodes {filter} GROUP BY state"), &params, |row| {
        Ok((row.parse::<ProvisionState>(0)?, row.get::<u64>(1)?))
    })
}

/// Dedicates a node to a project, or to none.
pub fn dedicate(conn: &Db, id: NodeId, project: Option<ProjectId>) -> Result<()> {
    conn.execute("UPDATE nodes SET project_id = ?2 WHERE id = ?1", params![id.0, project])?;
    Ok(())
}

pub fn list_in_state(conn: &Db, state: ProvisionState) -> Result<Vec<Node>> {
    conn.query_map(&format!("SELECT {COLUMNS} FROM nodes WHERE state = ?1 ORDER BY id"), params![state.as_str()], from_row)
}

pub fn get(conn: &Db, key: &Key) -> Result<Node> {
    let found = match key {
        Key::Id(id) => conn.query_opt(&format!("SELECT {COLUMNS} FROM nodes WHERE id = ?1"), params![id], from_row)?,
        Key::Name(name) => conn.query_opt(&format!("SELECT {COLUMNS} FROM nodes WHERE name = ?1"), params![name], from_row)?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("node {key}")))
}

/// A node to show, not to drive: its BMC password is not unsealed (empty).
pub fn get_listed(conn: &Db, id: NodeId) -> Result<Node> {
    conn.query_opt(&format!("SELECT {} FROM nodes WHERE id = ?1", listed_columns()), params![id.0], listed_from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("node {id}")))
}

pub fn get_by_id(conn: &Db, id: NodeId) -> Result<Node> {
    get(conn, &Key::Id(id.0))
}

pub fn find_by_macs(conn: &Db, macs: &[MacAddr]) -> Result<Option<Node>> {
    for mac in macs {
        if let Some(node) = conn.query_opt(&format!("SELECT {COLUMNS} FROM nodes WHERE mac = ?1"), params![mac.to_string()], from_row)? {
            return Ok(Some(node));
        }
    }
    Ok(None)
}

pub fn update(conn: &mut Db, key: &Key, change: NodeUpdate) -> Result<Node> {
    let tx = conn.transaction()?;
    let node = get(&tx, key)?;
    if change.changes_hardware() && (node.state.is_transitional() || node.state == ProvisionState::Active) {
        return Err(StoreError::Conflict(format!(
            "node {:?} is {}: its MAC, IP, BMC, driver and switch port cannot change until it is available again",
            node.name, node.state
        )));
    }
    let switch_id = change.switch_id.unwrap_or(node.switch_id);
    let port_changes = change.switch_id.is_some() || change.switch_port.is_some();
    let port = change.switch_port.as_ref().map_or(node.switch_port.as_str(), |p| p.as_str());
    check_unique(&tx, Some(node.id), change.name.as_deref(), change.mac.as_ref(), port_changes.then_some((switch_id, port)))?;
    let mut changes: Vec<(&str, Value)> = Vec::new();
    if let Some(v) = change.name {
        changes.push(("name", v.to_value()));
    }
    if let Some(v) = change.mac {
        changes.push(("mac", v.to_string().to_value()));
    }
    if let Some(v) = change.ip {
        changes.push(("ip", v.to_string().to_value()));
    }
    if let Some(v) = change.cpus {
        changes.push(("cpus", v.to_value()));
    }
    if let Some(v) = change.ram_mb {
        changes.push(("ram_mb", v.to_value()));
    }
    if let Some(v) = change.disk_gb {
        changes.push(("disk_gb", v.to_value()));
    }
    if let Some(v) = change.bmc_address {
        changes.push(("bmc_address", v.as_str().to_owned().to_value()));
    }
    if let Some(v) = change.bmc_port {
        changes.push(("bmc_port", v.to_value()));
    }
    if let Some(v) = change.bmc_username {
        changes.push(("bmc_username", v.to_value()));
    }
    if let Some(v) = change.bmc_password {
        changes.push(("bmc_password", tx.seal("nodes.bmc_password", v.expose())?.to_value()));
    }
    if let Some(v) = change.power_driver {
        changes.push(("power_driver", v.to_value()));
    }
    if let Some(v) = change.switch_id {
        changes.push(("switch_id", v.0.to_value()));
    }
    if let Some(v) = change.switch_port {
        changes.push(("switch_port", v.as_str().to_owned().to_value()));
    }
    if let Some(v) = change.boot_mode {
        changes.push(("boot_mode", v.as_str().to_value()));
    }
    if let Some(v) = change.maintenance {
        changes.push(("maintenance", v.to_value()));
        if v != node.maintenance {
            let message = if v { "maintenance on: no automatic actions" } else { "maintenance off" };
            events::append(&tx, NewEvent::note(node.id, EventKind::Maintenance, message))?;
        }
    }
    if !changes.is_empty() {
        changes.push(("updated_at", now_ms().to_value()));
        let assignments: Vec<String> = changes.iter().enumerate().map(|(i, (column, _))| format!("{column} = ?{}", i + 2)).collect();
        let sql = format!("UPDATE nodes SET {} WHERE id = ?1", assignments.join(", "));
        let mut values: Vec<&dyn ToValue> = vec![&node.id.0];
        values.extend(changes.iter().map(|(_, v)| v as &dyn ToValue));
        tx.execute(&sql, values.as_slice())?;
    }
    let node = get_by_id(&tx, node.id)?;
    tx.commit()?;
    Ok(node)
}

pub fn delete(conn: &mut Db, key: &Key) -> Result<()> {
    let tx = conn.transaction()?;
    let node = get(&tx, key)?;
    if let Some(instance) = node.instance_id {
        return Err(StoreError::Conflict(format!("node {:?} holds instance {instance}: delete the instance first", node.name)));
    }
    if node.state.is_transitional() {
        return Err(StoreError::Conflict(format!("node {:?} is {}: wait until it settles", node.name, node.state)));
    }
    tx.execute("DELETE FROM nodes WHERE id = ?1", params![node.id.0])?;
    tx.commit()?;
    Ok(())
}

/// The node, its row locked as [`lock`] does, in one statement.
pub(super) fn get_locked(conn: &Db, id: NodeId) -> Result<Node> {
    let lock = if conn.is_postgres() { " FOR UPDATE" } else { "" };
    conn.query_opt(&format!("SELECT {COLUMNS} FROM nodes WHERE id = ?1{lock}"), params![id.0], from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("node {}", Key::Id(id.0))))
}

/// `UPDATE nodes SET {assignments} WHERE id = ?1`, answering the node as changed (one statement,
/// not an update and a read).
/// `values` binds `?1` (the node's id, `id`) and the assignments' placeholders.
pub(super) fn update_returning(conn: &Db, id: NodeId, assignments: &str, values: &[&dyn ToValue]) -> Result<Node> {
    conn.query_opt(&format!("UPDATE nodes SET {assignments} WHERE id = ?1 RETURNING {COLUMNS}"), values, from_row)?
        .ok_or_else(|| StoreError::NotFound(format!("node {}", Key::Id(id.0))))
}

/// On PostgreSQL, locks the node's row until the caller's transaction ends, so two daemons' read,
/// check, write sequences on one node cannot interleave. SQLite has one writer at a time already.
pub fn lock(conn: &Db, id: NodeId) -> Result<()> {
    if conn.is_postgres() {
        conn.query_map("SELECT id FROM nodes WHERE id = ?1 FOR UPDATE", params![id.0], |_| Ok(()))?;
    }
    Ok(())
}

/// Records a power state read from or set on the BMC; a change is an event.
pub fn set_power_state(conn: &Db, id: NodeId, power: PowerState, why: &str) -> Result<bool> {
    let node = get_by_id(conn, id)?;
    if node.power_state == power {
        return Ok(false);
    }
    conn.execute("UPDATE nodes SET power_state = ?2, updated_at = ?3 WHERE id = ?1", params![id.0, power.as_str(), now_ms()])?;
    let message = format!("power {} -> {power}: {why}", node.power_state);
    events::append(conn, NewEvent::note(id, EventKind::Power, &message))?;
    Ok(true)
}

/// Records which network (and VLAN) the node's port is on now.
pub fn set_network(conn: &Db, id: NodeId, network: NetworkKind, vlan: Option<Vlan>) -> Result<()> {
    conn.execute(
        "UPDATE nodes SET network = ?2, vlan = ?3, updated_at = ?4 WHERE id = ?1",
        params![id.0, network.as_str(), vlan.map(Vlan::id), now_ms()],
    )?;
    Ok(())
}

/// How many nodes are in each (state, power state): the pool's gauges at a metrics scrape.
pub fn count_by_state(conn: &mut Db) -> Result<Vec<(ProvisionState, PowerState, u64)>> {
    conn.query_map("SELECT state, power_state, COUNT(*) FROM nodes GROUP BY state, power_state", params![], |row| {
        Ok((row.parse::<ProvisionState>(0)?, row.parse::<PowerState>(1)?, row.get::<u64>(2)?))
    })
}
