//! Instances and the atomic claim of a node for one.

use super::db::{Db, Row, params};

use super::last_error::LastError;
use super::nodes::{self, Node, Transition};
use super::{Result, StoreError, images};
use crate::domain::Key;
use crate::domain::{DeployRequest, ImageId, InstanceId, InstanceState, NodeId, ProjectId, ProvisionState, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Instance {
    #[schema(value_type = i64)]
    pub id: InstanceId,
    pub name: String,
    #[schema(value_type = i64)]
    pub image_id: ImageId,
    #[schema(value_type = Option<i64>)]
    pub node_id: Option<NodeId>,
    /// The project it belongs to (none: an admin's, outside any project).
    #[schema(value_type = Option<i64>)]
    pub project_id: Option<ProjectId>,
    /// The VLAN its node is on once active: its project's, or `[network] tenant_vlan`.
    pub project_vlan: Option<u16>,
    /// Its address on its project's subnet (none: no subnet, the node asks DHCP).
    pub address: Option<String>,
    /// The host name on its config drive.
    pub hostname: Option<String>,
    /// The SSH public keys that may log in.
    pub ssh_keys: Vec<String>,
    /// Its metadata, as given.
    pub meta: std::collections::BTreeMap<String, String>,
    /// Whether it has user data (which is never shown).
    pub has_user_data: bool,
    /// Whether its disk gets a config drive.
    pub config_drive: bool,
    #[serde(serialize_with = "super::as_text")]
    #[schema(value_type = String, example = "deploying")]
    pub state: InstanceState,
    pub last_error: Option<LastError>,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

const SELECT: &str = "SELECT i.id, i.name, i.image_id, n.id, i.state, i.last_error, i.created_at, i.updated_at, i.last_error_detail,
            i.project_id, p.vlan, i.address, i.hostname, i.ssh_keys, i.meta, i.user_data IS NOT NULL, i.config_drive
     FROM instances i LEFT JOIN nodes n ON n.instance_id = i.id LEFT JOIN projects p ON p.id = i.project_id";

fn from_row(row: &Row<'_>) -> Result<Instance> {
    Ok(Instance {
        id: row.get(0)?,
        name: row.get(1)?,
        image_id: row.get(2)?,
        node_id: row.get(3)?,
        state: row.parse(4)?,
        last_error: LastError::from_columns(row.get(5)?, row.get(8)?),
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        project_id: row.get(9)?,
        project_vlan: row.get(10)?,
        address: row.get(11)?,
        hostname: row.get(12)?,
        ssh_keys: json_column(row, 13)?,
        meta: json_column(row, 14)?,
        has_user_data: row.get(15)?,
        config_drive: row.get(16)?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Db(super::DbError::Column { index, message: e.to_string() }))
}

/// A new instance's request with the deadline of its `deploying` state.
pub struct Claim {
    pub request: DeployRequest,
    /// When the `deploying` state must be over.
    pub deadline: i64,
}

/// In one transaction: picks the first available node that fits (or the named one), creates the
/// instance, and moves the node to `deploying`. Two claims can never get the same node.
pub fn claim(conn: &mut Db, claim: Claim) -> Result<(Instance, Node)> {
    let tx = conn.transaction()?;
    // The quota first: a project at its quota gets no node, and nothing is touched.
    if let Some(project) = claim.request.project {
        super::projects::check_quota(&tx, project)?;
    }
    let project = claim.request.project;
    let image = images::get(&tx, &claim.request.image).map_err(|e| match e {
        StoreError::NotFound(what) => StoreError::Unprocessable(format!("{what} does not exist")),
        other => other,
    })?;
    // Another project's image does not exist for this one.
    if image.project_id.is_some() && image.project_id != project {
        return Err(StoreError::Unprocessable(format!("image {} does not exist", claim.request.image)));
    }
    // A qcow2's virtual size must fit the disk (nodes know theirs in whole GiB, rounded down).
    let image_gb = image.virtual_size.map_or(0, |v| v.div_ceil(1 << 30));
    let too_small = |node: &Node| {
        StoreError::Unprocessable(format!(
            "image {:?} needs a {image_gb} GiB disk (virtual size {} bytes); node {:?} has {} GiB",
            image.name,
            image.virtual_size.unwrap_or(0),
            node.name,
            node.disk_gb
        ))
    };
    let node: Node = match &claim.request.node {
        Some(key) => {
            let node = nodes::get(&tx, key).map_err(|e| match e {
                StoreError::NotFound(what) => StoreError::Unprocessable(format!("{what} does not exist")),
                other => other,
            })?;
            // Read again under the row lock: another daemon may have claimed it meanwhile.
            nodes::lock(&tx, node.id)?;
            let node = nodes::get_by_id(&tx, node.id)?;
            if node.state != ProvisionState::Available || node.maintenance || node.instance_id.is_some() {
                return Err(StoreError::Conflict(format!(
                    "node {:?} is {}{}: it cannot take an instance",
                    node.name,
                    node.state,
                    if node.maintenance { " and in maintenance" } else { "" }
                )));
            }
            if node.disk_gb < image_gb {
                return Err(too_small(&node));
            }
            if node.project_id.is_some() && node.project_id != project {
                return Err(StoreError::Conflict(format!("node {:?} is dedicated to another project", node.name)));
            }
            node
        }
        None => {
            // On PostgreSQL, concurrent claims on other daemons skip the rows this one locks, so
            // they never pick the same node and never wait for each other.
            let lock = if tx.is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
            let id: Option<i64> = tx.query_opt(
                &format!(
                    // A project's dedicated nodes first, then the shared pool; never another's.
                    "SELECT id FROM nodes WHERE state = 'available' AND maintenance = 0 AND instance_id IS NULL
                       AND cpus >= ?1 AND ram_mb >= ?2 AND disk_gb >= ?3 AND (project_id IS NULL OR project_id = ?4)
                     ORDER BY CASE WHEN project_id IS NULL THEN 1 ELSE 0 END, cpus, ram_mb, disk_gb, id LIMIT 1{lock}"
                ),
                params![claim.request.cpus, claim.request.ram_mb, claim.request.disk_gb.max(image_gb), project],
                |r| r.get(0),
            )?;
            let Some(id) = id else {
                return Err(StoreError::Conflict(format!(
                    "no available node fits cpus >= {}, ram_mb >= {}, disk_gb >= {}{}",
                    claim.request.cpus,
                    claim.request.ram_mb,
                    claim.request.disk_gb.max(image_gb),
                    if image_gb > claim.request.disk_gb {
                        format!(" (image {:?} has a {image_gb} GiB virtual size)", image.name)
                    } else {
                        String::new()
                    }
                )));
            };
            nodes::get_by_id(&tx, NodeId(id))?
        }
    };
    let name = claim.request.name.unwrap_or_else(|| format!("instance-{}", node.name));
    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM instances WHERE name = ?1)", params![&name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("an instance named {name:?} already exists")));
    }
    let address = match project {
        Some(project) => free_address(&tx, project)?,
        None => None,
    };
    let identity = claim.request.identity;
    // An image need not have a table that can take a config drive: an instance gets one when asked,
    // or when it has anything to be told (an address, keys, user data, a host name, metadata).
    let config_drive = identity.config_drive.unwrap_or(identity.is_given() || address.is_some());
    let hostname = identity.hostname.unwrap_or_else(|| crate::domain::identity::host_name_from(&name));
    let user_data = identity.user_data.map(|u| tx.seal(USER_DATA_LABEL, u.expose())).transpose()?;
    let now = now_ms();
    let instance_id: i64 = tx.query_row(
        "INSERT INTO instances (name, image_id, state, created_at, updated_at, project_id, uuid, hostname, ssh_keys, meta, user_data, address, config_drive)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        params![
            name,
            image.id,
            InstanceState::Deploying.as_str(),
            now,
            project,
            new_uuid(),
            hostname,
            serde_json::to_string(&identity.ssh_keys).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&identity.meta).unwrap_or_else(|_| "{}".into()),
            user_data,
            address.map(|a| a.to_string()),
            config_drive
        ],
        |r| r.get(0),
    )?;
    // A new tenancy, above every earlier one of any node: what this tenant's events and console
    // lines carry, so it never reads a previous tenant's.
    tx.execute(
        "UPDATE nodes SET instance_id = ?2, tenancy = (SELECT COALESCE(MAX(tenancy), 0) + 1 FROM nodes) WHERE id = ?1",
        params![node.id.0, instance_id],
    )?;
    let message = format!("claimed for instance {name:?} (image {:?})", image.name);
    let node = nodes::transition(&tx, Transition::until(node.id, &[ProvisionState::Available], ProvisionState::Deploying, &message, claim.deadline))?;
    let instance = get(&tx, &Key::Id(instance_id))?;
    tx.commit()?;
    Ok((instance, node))
}

/// The label user data is sealed under (store/seal.rs).
const USER_DATA_LABEL: &str = "instances.user_data";

/// A random (version 4) UUID: the instance's id for cloud-init, never reused.
fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The lowest free address of the project's subnet, or none when it has no subnet; a full subnet
/// is a conflict. Inside the claim's transaction, after the quota check locked the project row
/// (PostgreSQL), so two claims cannot take the same address; the unique index would refuse it anyway.
fn free_address(tx: &Db, project: ProjectId) -> Result<Option<std::net::Ipv4Addr>> {
    let Some((name, subnet)) = super::projects::subnet_of(tx, project)? else { return Ok(None) };
    let used: Vec<String> =
        tx.query_map("SELECT address FROM instances WHERE project_id = ?1 AND address IS NOT NULL", params![project], |r| r.get(0))?;
    let used: Vec<std::net::Ipv4Addr> = used.iter().filter_map(|a| a.parse().ok()).collect();
    subnet.first_free(&used).map(Some).ok_or_else(|| {
        StoreError::Conflict(format!(
            "project {name:?} has no free address left in its subnet {subnet} ({} in use of {}): delete an instance or give the project a larger subnet",
            used.len(),
            subnet.capacity()
        ))
    })
}

/// Everything an instance's config drive says (config_drive.rs), its user data unsealed: for the
/// deploy task the agent fetches, and nothing else. `None` for an instance that gets no drive.
pub fn drive_identity(conn: &Db, id: InstanceId, node: &Node) -> Result<Option<crate::config_drive::Identity>> {
    use crate::config_drive::{Identity, Network};
    let instance = get(conn, &Key::Id(id.0))?;
    if !instance.config_drive {
        return Ok(None);
    }
    let (uuid, user_data): (Option<String>, Option<String>) =
        conn.query_row("SELECT uuid, user_data FROM instances WHERE id = ?1", params![id.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let user_data = user_data.map(|sealed| conn.unseal(USER_DATA_LABEL, &sealed)).transpose()?;
    let (project, address) = match instance.project_id {
        Some(project) => {
            let p = super::projects::get(conn, &Key::Id(project.0))?;
            let subnet = p.parsed_subnet()?;
            let address = instance.address.as_deref().and_then(|a| a.parse().ok()).zip(subnet);
            (p.vlan.map(|vlan| (p.name, vlan)), address)
        }
        None => (None, None),
    };
    let (nics, cabled) = node_nics(conn, node)?;
    Ok(Some(Identity {
        uuid: uuid.unwrap_or_else(|| format!("metalhost-instance-{}", id.0)),
        hostname: instance.hostname.clone().unwrap_or_else(|| crate::domain::identity::host_name_from(&instance.name)),
        name: instance.name,
        ssh_keys: instance.ssh_keys,
        meta: instance.meta,
        user_data,
        project,
        network: Network { nics, cabled, address },
    }))
}

/// The node's NICs as its last inspection saw them, and the one cabled to its switch port: the
/// NIC that heard its switch port over LLDP, else the enrolled (PXE) MAC.
fn node_nics(conn: &Db, node: &Node) -> Result<(Vec<crate::domain::MacAddr>, crate::domain::MacAddr)> {
    let Some(stored) = super::inventory::get(conn, node.id)? else { return Ok((vec![node.mac], node.mac)) };
    let Ok(report) = serde_json::from_str::<metalhost_wire::InventoryReport>(&stored.report) else { return Ok((vec![node.mac], node.mac)) };
    let nics: Vec<crate::domain::MacAddr> = report.nics.iter().filter_map(|n| n.mac.parse().ok()).collect();
    let heard = report
        .lldp
        .iter()
        .find(|n| n.port_id == node.switch_port)
        .and_then(|n| report.nics.iter().find(|nic| nic.name == n.interface))
        .and_then(|nic| nic.mac.parse().ok());
    Ok((nics, heard.unwrap_or(node.mac)))
}

pub fn get(conn: &Db, key: &Key) -> Result<Instance> {
    let found = match key {
        Key::Id(id) => conn.query_opt(&format!("{SELECT} WHERE i.id = ?1"), params![id], from_row)?,
        Key::Name(n) => conn.query_opt(&format!("{SELECT} WHERE i.name = ?1"), params![n], from_row)?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("instance {key}")))
}

/// One page of instances in id order: after an id, at most `limit`, in one state, within
/// `projects` (a user's, or an admin's filter); one statement.
pub fn query(
    conn: &Db,
    after: Option<i64>,
    limit: Option<i64>,
    state: Option<InstanceState>,
    projects: Option<&[ProjectId]>,
) -> Result<Vec<Instance>> {
    use super::db::{ToValue, Value};
    let mut values: Vec<Value> = Vec::new();
    let mut clauses = Vec::new();
    if let Some(after) = after {
        values.push(after.to_value());
        clauses.push(format!("i.id > ?{}", values.len()));
    }
    if let Some(state) = state {
        values.push(state.as_str().to_value());
        clauses.push(format!("i.state = ?{}", values.len()));
    }
    if let Some(projects) = projects {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = projects
            .iter()
            .map(|p| {
                values.push(p.to_value());
                format!("?{}", values.len())
            })
            .collect();
        clauses.push(format!("i.project_id IN ({})", marks.join(", ")));
    }
    let filter = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    let limit = match limit {
        Some(l) => {
            values.push(l.to_value());
            format!(" LIMIT ?{}", values.len())
        }
        None => String::new(),
    };
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.query_map(&format!("{SELECT}{filter} ORDER BY i.id{limit}"), &params, from_row)
}

pub fn set_state(conn: &Db, id: InstanceId, state: InstanceState, last_error: Option<&LastError>) -> Result<()> {
    conn.execute(
        "UPDATE instances SET state = ?2, last_error = ?3, last_error_detail = ?4, updated_at = ?5 WHERE id = ?1",
        params![id.0, state.as_str(), last_error.map(ToString::to_string), last_error.map(LastError::to_json), now_ms()],
    )?;
    Ok(())
}

/// Removes the instance once its node is clean; the node's link goes with it.
pub fn remove(conn: &Db, id: InstanceId) -> Result<()> {
    conn.execute("UPDATE nodes SET instance_id = NULL WHERE instance_id = ?1", params![id.0])?;
    conn.execute("DELETE FROM instances WHERE id = ?1", params![id.0])?;
    Ok(())
}
