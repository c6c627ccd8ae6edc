//! The operator's `[[plugin]]` entries and what each plugin reports about itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Power,
    Switch,
    Netboot,
}

impl PluginKind {
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Power => "power-manager",
            PluginKind::Switch => "switch-manager",
            PluginKind::Netboot => "netboot-backend",
        }
    }

    /// The interface a component of this kind exports.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Power => "power",
            PluginKind::Switch => "switch",
            PluginKind::Netboot => "netboot",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Power => "power",
            PluginKind::Switch => "switch",
            PluginKind::Netboot => "netboot",
        })
    }
}

/// One `[[plugin]]` table of the daemon config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    pub kind: PluginKind,
    pub path: PathBuf,
    /// Refuse to load unless the file has this sha256.
    pub sha256: Option<String>,
    /// Programs the plugin may run (names on PATH or absolute paths).
    #[serde(default)]
    pub exec: Vec<String>,
    /// Programs a 0.2.0 power plugin may name as a node's serial console (`describe-console`);
    /// the host runs them on a pty, confined like `exec`.
    #[serde(default)]
    pub console: Vec<String>,
    /// Host directories preopened read-write at the same path inside the guest (netboot backends).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    #[serde(default = "default_call_timeout_s")]
    pub call_timeout_s: u64,
    /// Passed to the plugin's `configure` on every call.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// How a `metalhost:drivers@0.2.0` power plugin's HTTP reaches its BMCs (scheme, TLS trust).
    #[serde(default)]
    pub network: Option<crate::net::NetworkSpec>,
}

fn default_memory_mb() -> u64 {
    64
}

fn default_call_timeout_s() -> u64 {
    30
}

/// What a plugin was granted, as resolved at load.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grants {
    /// Program name → absolute path.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub exec: BTreeMap<String, PathBuf>,
    /// Console programs: name → absolute path (0.2.0 power plugins).
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub console: BTreeMap<String, PathBuf>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub dirs: Vec<PathBuf>,
    pub memory_mb: u64,
    pub call_timeout_s: u64,
    /// 0.2.0 power plugins: what their `http` and `datagram` may reach, and how TLS is verified.
    pub network: Option<String>,
}

/// `metalhost plugin list`: one row per configured plugin.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    /// The version the plugin reports (empty when it did not load).
    pub version: String,
    pub sha256: Option<String>,
    pub grants: Option<Grants>,
    /// The contract the component was built for (empty when it did not load).
    pub contract: String,
    /// How the programs it may run are confined (plugins with exec grants only).
    pub confinement: Option<crate::confine::Confinement>,
    pub loaded: bool,
    pub error: Option<String>,
}
