//! TEMPORARY stand-in for metalhost-plugin-host while it is being written (replaced by re-exports).

use std::path::Path;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub error: Option<String>,
}

pub struct PluginHost;

#[derive(Debug, thiserror::Error)]
#[error("plugin {0:?} is not loaded")]
pub struct NotLoaded(String);

impl PluginHost {
    pub fn new(_cache: &Path) -> Result<Self, NotLoaded> {
        Ok(PluginHost)
    }
    pub async fn load(&self, _specs: &[PluginSpec]) -> Vec<PluginStatus> {
        Vec::new()
    }
    pub fn status(&self) -> Vec<PluginStatus> {
        Vec::new()
    }
    pub fn power(&self, name: &str) -> Result<(), NotLoaded> {
        Err(NotLoaded(name.to_owned()))
    }
}
