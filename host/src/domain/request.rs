//! What callers ask the workflow for, in domain terms.

use super::{Key, ProjectId};

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
}
