//! Daemon configuration: a TOML file, overridden by flags and environment variables.
//!
//! Parsed once at startup into typed values and passed explicitly; unknown keys are errors.
//! `args.rs` is the flags, `sections.rs` the file's shape, `load.rs` how they become a [`Config`].

mod args;
mod load;
mod sections;

use std::path::PathBuf;

pub use args::ServeArgs;
pub use load::Config;
pub use sections::{
    AgentConfig, ClusterConfig, ConsoleConfig, DeployConfig, DiscoveryConfig, FileConfig, InspectionConfig, NetbootConfig, NetworkConfig,
    PowerSyncConfig, SecretsConfig, TlsConfig,
};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid config: {0}")]
    Invalid(String),
}
