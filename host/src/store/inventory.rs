//! Each node's last inventory report (migration 4) and what it changes on the node: its facts, its
//! boot mode, its switch port when an LLDP neighbour is a registered switch; and the enlistment of
//! an unknown machine from its report. Each is one transaction; a refused report writes nothing.

use super::db::{Db, params};

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

pub fn get(conn: &Db, node: NodeId) -> Result<Option<Stored>> {
    conn.query_opt("SELECT report, reported_at FROM node_inventory WHERE node_id = ?1", params![node.0], |r| {
        Ok(Stored { report: r.get(0)?, reported_at: r.get(1)? })
    })
}

/// Refuses a report naming a MAC that another node has: it is that node's machine, or a lie.
fn check_macs(tx: &Db, this: Option<NodeId>, macs: &[MacAddr]) -> Result<()> {
    let other = this.map_or(-1, |id| id.0);
    for mac in macs {
        let holder: Option<String> =
            tx.query_opt("SELECT name FROM nodes WHERE mac = ?1 AND id <> ?2", params![mac.to_string(), other], |r| r.get(0))?;
        if let Some(holder) = holder {
            return Err(StoreError::Conflict(format!("the report names MAC {mac}, which belongs to node {holder:?}")));
        }
    }
    Ok(())
}

fn save_report(tx: &Db, node: NodeId, report: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO node_inventory (node_id, report, reported_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET report = excluded.report, reported_at = excluded.reported_at",
        params![node.0, report, now_ms()],
    )?;
    Ok(())
}

/// The first neighbour that is a registered switch, and the port it names.
fn lldp_port(tx: &Db, facts: &Facts) -> Result<Option<(switches::Switch, SwitchPort)>> {
    for n in &facts.neighbours {
        if let Some(switch) = switches::find_by_chassis(tx, &n.chassis)? {
            return Ok(Some((switch, n.port.clone())));
        }
    }
    Ok(None)
}

/// Which node holds a switch port, other than `this`.
fn port_holder(tx: &Db, this: Option<NodeId>, switch: &switches::Switch, port: &SwitchPort) -> Result<Option<String>> {
    tx.query_opt(
        "SELECT name FROM nodes WHERE switch_id = ?1 AND switch_port = ?2 AND id <> ?3",
        params![switch.id.0, port.as_str(), this.map_or(-1, |id| id.0)],
        |r| r.get(0),
    )
}

/// An inspection's report: kept, and the node's CPUs, RAM, disk and boot mode follow it; an LLDP
/// neighbour that is a registered switch gives the node its port (unless another node has it).
pub fn record(conn: &mut Db, node: NodeId, report: &str, facts: &Facts) -> Result<Node> {
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
pub fn enlist(conn: &mut Db, report: &str, facts: &Facts) -> Result<Node> {
    let tx = conn.transaction()?;
    check_macs(&tx, None, &facts.macs)?;
    let (switch, port, how) = match lldp_port(&tx, facts)? {
        Some((switch, port)) if port_holder(&tx, None, &switch, &port)?.is_none() => (switch, port, "from LLDP"),
        _ => {
            let first: Option<i64> = tx.query_opt("SELECT id FROM switches ORDER BY id LIMIT 1", params![], |r| r.get(0))?;
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
    let id = NodeId(tx.query_row(
        "INSERT INTO nodes (name, mac, ip, cpus, ram_mb, disk_gb, bmc_address, bmc_port, bmc_username, bmc_password,
                            power_driver, switch_id, switch_port, state, created_at, updated_at, boot_mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', 623, '', ?12, '', ?7, ?8, ?9, ?10, ?10, ?11)
         RETURNING id",
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
            facts.boot_mode.as_str(),
            tx.seal("nodes.bmc_password", "")?
        ],
        |r| r.get(0),
    )?);
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

#[cfg(test)]
mod tests {
    use metalhost_wire::{CpuInfo, DiskInfo, InventoryReport, LldpNeighbor, NicInfo};

    use super::*;
    use crate::domain::Key;
    use crate::domain::{BootMode, Secret, SwitchId};
    use crate::store::nodes::{NewNode, Transition};
    use crate::store::switches::NewSwitch;

    fn db(dir: &std::path::Path) -> Db {
        let key = super::super::seal::SealKey::create(&dir.join("key")).expect("key");
        let mut conn = Db::sqlite(rusqlite::Connection::open_in_memory().expect("db"), key);
        super::super::migrations::apply(&mut conn).expect("migrations");
        let switch = NewSwitch {
            name: "tor1".into(),
            address: "127.0.0.1".parse().expect("address"),
            port: 830,
            username: "admin".into(),
            password: Secret::new("pw"),
            driver: "juniper".into(),
            description: String::new(),
            pinned_host_key: None,
            chassis_id: Some("02:00:00:99:00:01".parse().expect("chassis")),
        };
        switches::insert(&mut conn, switch).expect("switch");
        for (i, port) in [(1, "ge-0/0/1"), (2, "ge-0/0/2")] {
            let node = NewNode {
                name: format!("n{i}"),
                mac: format!("52:54:00:00:00:0{i}").parse().expect("mac"),
                ip: format!("10.0.0.{i}").parse().expect("ip"),
                cpus: 1,
                ram_mb: 1,
                disk_gb: 1,
                bmc_address: "127.0.0.1".parse().expect("bmc"),
                bmc_port: 623,
                bmc_username: "admin".into(),
                bmc_password: Secret::new("pw"),
                power_driver: "ipmitool".into(),
                switch_id: SwitchId(1),
                switch_port: port.parse().expect("port"),
                boot_mode: BootMode::Legacy,
            };
            nodes::insert(&mut conn, node).expect("node");
        }
        conn
    }

    fn report(port: &str) -> (String, Facts) {
        let report = InventoryReport {
            cpu: CpuInfo { count: 8, model: "cpu".into() },
            memory_bytes: 16 << 30,
            disks: vec![DiskInfo { name: "sda".into(), size_bytes: 100 << 30, ..DiskInfo::default() }],
            nics: vec![NicInfo { name: "eth0".into(), mac: "52:54:00:00:00:01".into(), link: true, ..NicInfo::default() }],
            lldp: vec![LldpNeighbor { interface: "eth0".into(), chassis_id: "02:00:00:99:00:01".into(), port_id: port.into(), system_name: None }],
            ..InventoryReport::default()
        };
        let facts = crate::inventory::check(&report).expect("facts");
        (serde_json::to_string(&report).expect("json"), facts)
    }

    fn inspecting(conn: &Db, node: i64) {
        let t = Transition::settle(NodeId(node), &[], ProvisionState::Inspecting, "test");
        nodes::transition(conn, t).expect("inspecting");
    }

    #[test]
    fn a_report_is_taken_only_while_inspecting_and_never_steals_a_port() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut conn = db(dir.path());
        let (json, facts) = report("ge-0/0/2");
        assert!(matches!(record(&mut conn, NodeId(1), &json, &facts), Err(StoreError::Conflict(_))), "n1 is not inspecting");
        assert!(get(&conn, NodeId(1)).expect("get").is_none(), "a refused report writes nothing");

        // LLDP names n2's port: the facts are taken, the port is not.
        inspecting(&conn, 1);
        let n1 = record(&mut conn, NodeId(1), &json, &facts).expect("record");
        assert_eq!((n1.cpus, n1.ram_mb, n1.disk_gb, n1.switch_port.as_str()), (8, 16384, 100, "ge-0/0/1"));
        let events = super::super::events::query(&conn, &super::super::events::EventQuery::of(NodeId(1))).expect("events");
        assert!(events.iter().any(|e| e.message.contains("given to node \"n2\"")), "{events:?}");

        // A free port is taken.
        let (json, facts) = report("ge-0/0/7");
        let n1 = record(&mut conn, NodeId(1), &json, &facts).expect("record");
        assert_eq!(n1.switch_port, "ge-0/0/7");
        assert!(get(&conn, NodeId(1)).expect("get").is_some_and(|s| s.report.contains("ge-0/0/7")));

        // n2 reporting n1's MAC is refused.
        inspecting(&conn, 2);
        assert!(matches!(record(&mut conn, NodeId(2), &json, &facts), Err(StoreError::Conflict(m)) if m.contains("belongs to node \"n1\"")));
        assert_eq!(switches::get(&conn, &Key::Id(1)).expect("switch").chassis_id.as_deref(), Some("02:00:00:99:00:01"));
    }
}
