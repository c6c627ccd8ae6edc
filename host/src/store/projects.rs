//! Projects: a name, an instance quota, and the VLAN their instances' nodes are moved to, taken
//! from `[network] tenant_vlans` when the project is made and freed when it is deleted (the UNIQUE
//! column makes two projects on one VLAN impossible, also across daemons).

use super::db::{Db, Row, params};
use super::{Result, StoreError};
use crate::domain::identity::Subnet;
use crate::domain::tenancy::{ObjectKind, Owner, Role, VlanRange};
use crate::domain::{InstanceId, Key, ProjectId, UserId, Vlan, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Project {
    #[schema(value_type = i64)]
    pub id: ProjectId,
    pub name: String,
    /// The most instances the project may have at once.
    pub quota: i64,
    /// Instances it has now.
    pub instances: i64,
    /// The VLAN its instances' nodes are on.
    pub vlan: Option<u16>,
    /// The IPv4 subnet its instances get addresses from, its gateway and DNS servers (none: the
    /// instances ask DHCP on their VLAN).
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    #[serde(serialize_with = "crate::domain::time::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

const SELECT: &str = "SELECT p.id, p.name, p.quota, p.vlan, p.created_at,
       (SELECT COUNT(*) FROM instances i WHERE i.project_id = p.id), p.subnet, p.gateway, p.dns FROM projects p";

fn from_row(row: &Row<'_>) -> Result<Project> {
    let dns: String = row.get(8)?;
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        quota: row.get(2)?,
        vlan: row.get(3)?,
        created_at: row.get(4)?,
        instances: row.get(5)?,
        subnet: row.get(6)?,
        gateway: row.get(7)?,
        dns: dns.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect(),
    })
}

/// Gives a project its subnet (or takes it away), only while it has no instances: addresses
/// already handed out never change under a running machine.
pub fn set_subnet(conn: &mut Db, id: ProjectId, subnet: Option<&Subnet>) -> Result<Project> {
    let tx = conn.transaction()?;
    let project = get(&tx, &Key::Id(id.0))?;
    if project.instances > 0 {
        return Err(StoreError::Conflict(format!(
            "project {:?} has {} instance(s) with addresses from its subnet: delete them before changing it",
            project.name, project.instances
        )));
    }
    write_subnet(&tx, id, subnet)?;
    let project = get(&tx, &Key::Id(id.0))?;
    tx.commit()?;
    Ok(project)
}

fn write_subnet(tx: &Db, id: ProjectId, subnet: Option<&Subnet>) -> Result<()> {
    let dns = subnet.map(|s| s.dns.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")).unwrap_or_default();
    tx.execute(
        "UPDATE projects SET subnet = ?2, gateway = ?3, dns = ?4 WHERE id = ?1",
        params![id, subnet.map(ToString::to_string), subnet.and_then(|s| s.gateway).map(|g| g.to_string()), dns],
    )?;
    Ok(())
}

/// A project's name and subnet, when it has one.
pub fn subnet_of(conn: &Db, id: ProjectId) -> Result<Option<(String, Subnet)>> {
    let project = get(conn, &Key::Id(id.0))?;
    Ok(project.parsed_subnet()?.map(|subnet| (project.name, subnet)))
}

impl Project {
    /// Its subnet as the domain type, when it has one. Checked when it was set; a value that no
    /// longer parses is a damaged row.
    pub fn parsed_subnet(&self) -> Result<Option<Subnet>> {
        let Some(cidr) = &self.subnet else { return Ok(None) };
        Subnet::parse(cidr, self.gateway.as_deref(), &self.dns)
            .map(Some)
            .map_err(|e| StoreError::Db(super::DbError::Column { index: 6, message: e.0 }))
    }
}

/// Creates a project on the lowest free VLAN of `range`; a full range is a conflict, and nothing
/// is created.
pub fn create(conn: &mut Db, name: &str, quota: i64, range: VlanRange, subnet: Option<&Subnet>) -> Result<Project> {
    let tx = conn.transaction()?;
    let taken: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM projects WHERE name = ?1)", params![name], |r| r.get(0))?;
    if taken {
        return Err(StoreError::Conflict(format!("a project named {name:?} already exists")));
    }
    let used: Vec<u16> =
        tx.query_map("SELECT vlan FROM projects WHERE vlan BETWEEN ?1 AND ?2 ORDER BY vlan", params![range.first, range.last], |r| r.get(0))?;
    let vlan = (range.first..=range.last).find(|v| used.binary_search(v).is_err()).ok_or_else(|| {
        StoreError::Conflict(format!(
            "every VLAN of [network] tenant_vlans {range} is taken by a project ({} projects): none left for {name:?}",
            used.len()
        ))
    })?;
    let id: i64 = tx.query_row(
        "INSERT INTO projects (name, quota, vlan, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![name, quota, vlan, now_ms()],
        |r| r.get(0),
    )?;
    if let Some(subnet) = subnet {
        write_subnet(&tx, ProjectId(id), Some(subnet))?;
    }
    let project = get(&tx, &Key::Id(id))?;
    tx.commit()?;
    Ok(project)
}

pub fn get(conn: &Db, key: &Key) -> Result<Project> {
    let found = match key {
        Key::Id(id) => conn.query_opt(&format!("{SELECT} WHERE p.id = ?1"), params![id], from_row)?,
        Key::Name(n) => conn.query_opt(&format!("{SELECT} WHERE p.name = ?1"), params![n], from_row)?,
    };
    found.ok_or_else(|| StoreError::NotFound(format!("project {key}")))
}

/// Every project, or only `visible` ones.
pub fn list(conn: &Db, visible: Option<&[ProjectId]>) -> Result<Vec<Project>> {
    let all = conn.query_map(&format!("{SELECT} ORDER BY p.id"), params![], from_row)?;
    Ok(match visible {
        None => all,
        Some(ids) => all.into_iter().filter(|p| ids.contains(&p.id)).collect(),
    })
}

pub fn set_quota(conn: &Db, id: ProjectId, quota: i64) -> Result<()> {
    conn.execute("UPDATE projects SET quota = ?2 WHERE id = ?1", params![id, quota])?;
    Ok(())
}

/// Deletes an empty project; its VLAN becomes free and its memberships go with it.
pub fn remove(conn: &mut Db, key: &Key) -> Result<Project> {
    let tx = conn.transaction()?;
    let project = get(&tx, key)?;
    let images: i64 = tx.query_row("SELECT COUNT(*) FROM images WHERE project_id = ?1", params![project.id], |r| r.get(0))?;
    if project.instances > 0 || images > 0 {
        return Err(StoreError::Conflict(format!(
            "project {:?} still has {} instance(s) and {images} image(s): delete them first",
            project.name, project.instances
        )));
    }
    tx.execute("UPDATE nodes SET project_id = NULL WHERE project_id = ?1", params![project.id])?;
    tx.execute("DELETE FROM memberships WHERE project_id = ?1", params![project.id])?;
    tx.execute("DELETE FROM projects WHERE id = ?1", params![project.id])?;
    tx.commit()?;
    Ok(project)
}

/// Gives `user` `role` in `project` (replacing any role it had there).
pub fn set_role(conn: &Db, user: UserId, project: ProjectId, role: Role) -> Result<()> {
    conn.execute(
        "INSERT INTO memberships (user_id, project_id, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        params![user, project, role.as_str()],
    )?;
    Ok(())
}

/// Takes `user`'s role in `project` away; false when it had none.
pub fn remove_role(conn: &Db, user: UserId, project: ProjectId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM memberships WHERE user_id = ?1 AND project_id = ?2", params![user, project])? > 0)
}

/// Refuses another instance in a project at its quota (inside the claim's transaction, so two
/// creates cannot both take the last place... on PostgreSQL the project row is locked first).
pub fn check_quota(conn: &Db, id: ProjectId) -> Result<Project> {
    if conn.is_postgres() {
        conn.query_row("SELECT id FROM projects WHERE id = ?1 FOR UPDATE", params![id], |r| r.get::<i64>(0))?;
    }
    let project = get(conn, &Key::Id(id.0))?;
    if project.instances >= project.quota {
        return Err(StoreError::Conflict(format!(
            "project {:?} has {} of its {} instance(s) (its quota): delete one or raise the quota",
            project.name, project.instances, project.quota
        )));
    }
    Ok(project)
}

/// Whose the object named by `key` is, for access decisions (domain/tenancy.rs); `None` when there
/// is no such object.
pub fn owner_of(conn: &Db, kind: ObjectKind, key: &Key) -> Result<Option<Owner>> {
    let (by_id, by_name) = match kind {
        ObjectKind::Node | ObjectKind::Tenancy => (
            "SELECT i.project_id, n.project_id FROM nodes n LEFT JOIN instances i ON i.id = n.instance_id WHERE n.id = ?1",
            "SELECT i.project_id, n.project_id FROM nodes n LEFT JOIN instances i ON i.id = n.instance_id WHERE n.name = ?1",
        ),
        ObjectKind::Instance => ("SELECT project_id, NULL FROM instances WHERE id = ?1", "SELECT project_id, NULL FROM instances WHERE name = ?1"),
        ObjectKind::Image => ("SELECT project_id, NULL FROM images WHERE id = ?1", "SELECT project_id, NULL FROM images WHERE name = ?1"),
        ObjectKind::Project => ("SELECT id, NULL FROM projects WHERE id = ?1", "SELECT id, NULL FROM projects WHERE name = ?1"),
        ObjectKind::Token => {
            let Key::Id(id) = key else { return Ok(None) };
            let user: Option<UserId> = conn.query_opt("SELECT user_id FROM tokens WHERE id = ?1", params![id], |r| r.get(0))?;
            return Ok(user.map(Owner::User));
        }
    };
    let row: Option<(Option<ProjectId>, Option<ProjectId>)> = match key {
        Key::Id(id) => conn.query_opt(by_id, params![id], |r| Ok((r.get(0)?, r.get(1)?)))?,
        Key::Name(name) => conn.query_opt(by_name, params![name], |r| Ok((r.get(0)?, r.get(1)?)))?,
    };
    Ok(row.map(|(current, dedicated)| {
        // A node's console, log and events belong to its current tenant only, not to the project
        // it is dedicated to.
        let dedicated = if kind == ObjectKind::Tenancy { None } else { dedicated };
        let projects: Vec<ProjectId> = current.into_iter().chain(dedicated).collect();
        if projects.is_empty() { Owner::Nobody } else { Owner::Projects(projects) }
    }))
}

/// The VLAN and name of an instance's project; `None` for an instance outside any project.
pub fn network_of_instance(conn: &Db, instance: InstanceId) -> Result<Option<(Vlan, String)>> {
    let row: Option<(Option<i64>, Option<String>)> = conn.query_opt(
        "SELECT p.vlan, p.name FROM instances i LEFT JOIN projects p ON p.id = i.project_id WHERE i.id = ?1",
        params![instance],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match row {
        Some((Some(vlan), Some(name))) => {
            let vlan = Vlan::new(vlan).map_err(|e| StoreError::Db(super::DbError::Column { index: 0, message: e.0 }))?;
            Ok(Some((vlan, name)))
        }
        _ => Ok(None),
    }
}
