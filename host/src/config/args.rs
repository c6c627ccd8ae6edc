//! The flags of `metalhost serve`: each overrides the same key of the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `metalhost serve`. Each overrides the same key of the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see README "Config"). Without it, built-in defaults are used.
    #[arg(long, env = "METALHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address the REST API listens on (operator and agent API).
    #[arg(long, env = "METALHOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, uploaded images and caches.
    #[arg(long, env = "METALHOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The operator token, from the global `--token` / `METALHOST_TOKEN`.
    #[arg(skip)]
    pub token: Option<String>,
    /// Base URL under which agents on the provisioning network reach this daemon.
    #[arg(long, env = "METALHOST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "METALHOST_LOG_JSON")]
    pub log_json: bool,
}
