//! Each node's last inventory report (migration 4) and what it changes on the node: its facts, its
//! boot mode, its switch port when an LLDP neighbour is a registered switch; and the enlistment of
//! an unknown machine from its report. Each is one transaction; a refused report writes nothing.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::events::{self, EventKind, NewEvent};
use super::nodes::{self, Node};
use super::{Result, StoreError, switches};
use crate::domain::{MacAddr, NodeId, ProvisionState, SwitchPort, now_ms};
use crate::inventory::Facts;

/// A stored report: its JSON as the agent sent it (checked), and when (Unix ms).
pub struct Stored {
    pub report: String,
    pub reported_at: i64,
}

pub fn get(conn: &Connection, node: NodeId) -> Result<Option<Stored>> {
    Ok(conn
        .query_row("SELECT report, reported_at FROM node_inventory WHERE node_id = ?1", [node.0], |r| {
            Ok(Stored { report: r.get(0)?, reported_at: r.get(1)? })
        })
        .optional()?)
}

/// Refuses a report naming a MAC that another node has: it is that node's machine, or a lie.
fn check_macs(tx: &Transaction<'_>, this: Option<NodeId>, macs: &[MacAddr]) -> Result<()> {
    let other = this.map_or(-1, |id| id.0);
    for mac in macs {
        let holder: Option<String> =
            tx.query_row("SELECT name FROM nodes WHERE mac = ?1 AND id <> ?2", params![mac.to_string(), other], |r| r.get(0)).optional()?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("the report names MAC {mac}, which belongs to node {holder:?}")));
        }
    }
    Ok(())
}

fn save_report(tx: &Transaction<'_>, node: NodeId, report: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO node_inventory (node_id, report, reported_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET report = excluded.report, reported_at = excluded.reported_at",
        params![node.0, report, now_ms()],
    )?;
    Ok(())
}

/// The first neighbour that is a registered switch, and the port it names.
fn lldp_port(tx: &Transaction<'_>, facts: &Facts) -> Result<Option<(switches::Switch, SwitchPort)>> {
    for n in &facts.neighbours {
        if let Some(switch) = switches::find_by_chassis(tx, &n.chassis)? {
            return Ok(Some((switch, n.port.clone())));
        }
    }
    Ok(None)
}

/// Which node holds a switch port, other than `this`.
fn port_holder(tx: &Transaction<'_>, this: Option<NodeId>, switch: &switches::Switch, port: &SwitchPort) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT name FROM nodes WHERE switch_id = ?1 AND switch_port = ?2 AND id <> ?3",
            params![switch.id.0, port.as_str(), this.map_or(-1, |id| id.0)],
            |r| r.get(0),
        )
        .optional()?)
}

/// An inspection's report: kept, and the node's CPUs, RAM, disk and boot mode follow it; an LLDP
/// neighbour that is a registered switch gives the node its port (unless another node has it).
pub fn record(conn: &mut Connection, node: NodeId, report: &str, facts: &Facts) -> Result<Node> {
    let tx = conn.transaction()?;
    let before = nodes::get_by_id(&tx, node)?;
    if before.state != ProvisionState::Inspecting {
        return Err(StoreError::Conflict(format!("node {:?} is {}, not inspecting: report refused", before.name, before.state)));
    }
    check_macs(&tx, Some(node), &facts.macs)?;
    save_report(&tx, node, report)?;
    tx.execute(
        "UPDATE nodes SET cpus = ?2, ram_mb = ?3, disk_gb = ?4, boot_mode = ?5, updated_at = ?6 WHERE id = ?1",
        params![node.0, facts.cpus, facts.ram_mb, facts.disk_gb, facts.boot_mode.as_str(), now_ms()],
    )?;
    events::append(&tx, NewEvent::note(node, EventKind::Inventory, &format!("inspected: {}", facts.summary())))?;
    if let Some((switch, port)) = lldp_port(&tx, facts)? {
        let message = if switch.id == before.switch_id && port.as_str() == before.switch_port {
            format!("LLDP confirms switch {:?} port {port}", switch.name)
        } else if let Some(holder) = port_holder(&tx, Some(node), &switch, &port)? {
            format!("LLDP names switch {:?} port {port}, which is given to node {holder:?}: the port is left as it was", switch.name)
        } else {
            tx.execute(
                "UPDATE nodes SET switch_id = ?2, switch_port = ?3, updated_at = ?4 WHERE id = ?1",
                params![node.0, switch.id.0, port.as_str(), now_ms()],
            )?;
            format!("switch port from LLDP: switch {:?} port {port} (was switch {} port {})", switch.name, before.switch_id, before.switch_port)
        };
        events::append(&tx, NewEvent::note(node, EventKind::Inventory, &message))?;
    }
    let node = nodes::get_by_id(&tx, node)?;
    tx.commit()?;
    Ok(node)
}

/// Enlistment: a new `enrolled` node from an unknown machine's report, named after its boot NIC,
/// on the switch port LLDP names, else on the first switch with a stand-in port. Without any
/// switch registered there is nowhere to put it.
pub fn enlist(conn: &mut Connection, report: &str, facts: &Facts) -> Result<Node> {
    let tx = conn.transaction()?;
    check_macs(&tx, None, &facts.macs)?;
    let (switch, port, how) = match lldp_port(&tx, facts)? {
        Some((switch, port)) if port_holder(&tx, None, &switch, &port)?.is_none() => (switch, port, "from LLDP"),
        _ => {
            let first: Option<i64> = tx.query_row("SELECT id FROM switches ORDER BY id LIMIT 1", [], |r| r.get(0)).optional()?;
            let Some(first) = first else {
                return Err(StoreError::Unprocessable("no switch is registered: add the provisioning switch before enlisting machines".into()));
            };
            (switches::get_by_id(&tx, crate::domain::SwitchId(first))?, SwitchPort::unknown_for(&facts.boot_mac), "unknown")
        }
    };
    let name = format!("node-{}", facts.boot_mac.to_string().replace(':', ""));
    nodes::check_unique(&tx, None, Some(&name), Some(&facts.boot_mac), Some((switch.id, port.as_str())))?;
    let ip = facts.boot_ip.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
    let now = now_ms();
    // No BMC yet: empty address, user and driver are what `Node::needs_bmc` tells by.
    tx.execute(
        "INSERT INTO nodes (name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password,
                            power_driver, switch_id, switch_port, state, created_at, updated_at, boot_mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', 623, '', seal('nodes.bmc_password', ''), '', ?7, ?8, ?9, ?10, ?10, ?11)",
        params![
            name,
            facts.boot_mac.to_string(),
            ip,
            facts.cpus,
            facts.ram_mb,
            facts.disk_gb,
            switch.id.0,
            port.as_str(),
            ProvisionState::Enrolled.as_str(),
            now,
            facts.boot_mode.as_str()
        ],
    )?;
    let id = NodeId(tx.last_insert_rowid());
    let message = format!("enlisted by discovery: {}; switch {:?} port {port} ({how})", facts.summary(), switch.name);
    events::append(
        &tx,
        NewEvent { node: id, kind: EventKind::State, from: None, to: Some(ProvisionState::Enrolled), message: &message, duration_ms: None },
    )?;
    save_report(&tx, id, report)?;
    let node = nodes::get_by_id(&tx, id)?;
    tx.commit()?;
    Ok(node)
}
