//! What callers ask the workflow for, in domain terms.

use std::collections::BTreeMap;

use super::{Key, ProjectId, Secret};

/// What a new instance asks for: a name (or one made from its node's), an image, a node by key or
/// any available one that fits the minimums.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub name: Option<String>,
    pub image: Key,
    pub node: Option<Key>,
    pub cpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    /// The project the instance belongs to: its quota, its VLAN, its dedicated nodes. `None`: an
    /// admin's instance outside any project, on `[network] tenant_vlan`.
    pub project: Option<ProjectId>,
    /// What the instance is told about itself on its config drive (already checked:
    /// domain/identity.rs).
    pub identity: RequestedIdentity,
}

/// An instance's host name (none: made from its name), the SSH public keys that may log in (key
/// pairs already resolved), its user data (a secret: sealed at rest, never logged) and metadata;
/// and whether it gets a config drive at all (none: when it is given any of these or an address).
#[derive(Debug, Clone, Default)]
pub struct RequestedIdentity {
    pub config_drive: Option<bool>,
    pub hostname: Option<String>,
    pub ssh_keys: Vec<String>,
    pub user_data: Option<Secret>,
    pub meta: BTreeMap<String, String>,
}

impl RequestedIdentity {
    /// Whether the caller gave the instance anything of its own to be told.
    pub fn is_given(&self) -> bool {
        self.hostname.is_some() || !self.ssh_keys.is_empty() || self.user_data.is_some() || !self.meta.is_empty()
    }
}
