//! Loading: the file read and parsed, flags and environment laid over it, every cross-key rule
//! checked, and the result resolved into the [`Config`] the daemon runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    AgentConfig, ClusterConfig, ConfigError, ConsoleConfig, DeployConfig, DiscoveryConfig, FileConfig, InspectionConfig, NetbootConfig,
    NetworkConfig, PowerSyncConfig, SecretsConfig, ServeArgs, TlsConfig,
};
use crate::domain::Secret;

/// The resolved configuration the daemon runs with.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: crate::store::Database,
    /// None: a token is generated and written to `<data_dir>/operator-token`.
    pub token: Option<Secret>,
    pub public_url: Option<String>,
    /// The plain-HTTP listener for what firmware fetches (see `FileConfig::boot_listen`).
    pub boot_listen: SocketAddr,
    pub boot_url: Option<String>,
    pub tls: TlsConfig,
    pub log_json: bool,
    pub power_sync: PowerSyncConfig,
    pub agent: AgentConfig,
    pub network: NetworkConfig,
    pub deploy: DeployConfig,
    pub netboot: NetbootConfig,
    pub inspection: InspectionConfig,
    pub discovery: DiscoveryConfig,
    pub exec: metalhost_plugin_host::ExecPolicy,
    pub secrets: SecretsConfig,
    pub metrics: crate::metrics::MetricsConfig,
    pub console: ConsoleConfig,
    pub cluster: ClusterConfig,
    pub plugins: Vec<crate::drivers::PluginSpec>,
}

/// The `database` key, checked: a known scheme, and no password in a URL (it would show in
/// logs, `ps` of tools and backups of the config).
fn database(url: Option<&str>, password_file: Option<&Path>, ca_file: Option<&Path>, data_dir: &Path) -> Result<crate::store::Database, ConfigError> {
    use crate::store::Database;
    let invalid = |why: String| ConfigError::Invalid(format!("database: {why}"));
    let database = match url {
        None => Database::Sqlite(data_dir.join("metalhost.db")),
        Some(url) if url.starts_with("sqlite://") => {
            let path = &url["sqlite://".len()..];
            if path.is_empty() {
                return Err(invalid("sqlite:// needs a path, as in sqlite:///var/lib/metalhost/metalhost.db".into()));
            }
            Database::Sqlite(PathBuf::from(path))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let config: postgres::Config = url.parse().map_err(|e: postgres::Error| invalid(format!("not a PostgreSQL URL: {e}")))?;
            if config.get_password().is_some() {
                return Err(invalid("the URL holds a password: put it in database_password_file instead".into()));
            }
            let password = match password_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                    Some(Secret::new(text.lines().next().unwrap_or_default().to_owned()))
                }
                None => None,
            };
            if config.get_ssl_mode() == postgres::config::SslMode::Require && ca_file.is_none() {
                return Err(invalid("sslmode=require needs database_ca_file: the CA that signed the server's certificate, to verify it".into()));
            }
            Database::Postgres { url: url.to_owned(), password, ca_file: ca_file.map(Path::to_path_buf) }
        }
        Some(other) => {
            let scheme = other.split("://").next().unwrap_or(other);
            return Err(invalid(format!("unknown scheme {scheme:?}: use sqlite:///path or postgres://user@host/db")));
        }
    };
    if password_file.is_some() && matches!(database, Database::Sqlite(_)) {
        return Err(invalid("database_password_file is only for postgres:// databases".into()));
    }
    if ca_file.is_some() && matches!(database, Database::Sqlite(_)) {
        return Err(invalid("database_ca_file is only for postgres:// databases".into()));
    }
    Ok(database)
}

impl Config {
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => parse_file(path)?,
            None => FileConfig::default(),
        };
        let token = match (&args.token, &file.token, &file.token_file) {
            (Some(t), _, _) | (None, Some(t), _) => Some(Secret::new(t.trim())),
            (None, None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Some(Secret::new(text.lines().next().unwrap_or("").trim()))
            }
            (None, None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(ConfigError::Invalid("the operator token must be at least 16 characters".into()));
        }
        if file.network.provisioning_vlan == file.network.tenant_vlan {
            return Err(ConfigError::Invalid("network.provisioning_vlan and network.tenant_vlan must differ".into()));
        }
        let range = file.network.tenant_vlans;
        if range.contains(file.network.provisioning_vlan.id()) || range.contains(file.network.tenant_vlan.id()) {
            return Err(ConfigError::Invalid(format!(
                "network.tenant_vlans {range} must not include provisioning_vlan ({}) or tenant_vlan ({}): projects would share their segment",
                file.network.provisioning_vlan, file.network.tenant_vlan
            )));
        }
        let efi = &file.netboot.efi_boot_file;
        if efi.is_empty() || !efi.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)) {
            return Err(ConfigError::Invalid(format!("netboot.efi_boot_file {efi:?}: a file name in the TFTP root (letters, digits, . _ - /)")));
        }
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("/var/lib/metalhost"));
        let database = database(file.database.as_deref(), file.database_password_file.as_deref(), file.database_ca_file.as_deref(), &data_dir)?;
        if file.cluster.lease_ttl < Duration::from_secs(3) {
            return Err(ConfigError::Invalid("cluster.lease_ttl_s must be at least 3 (heartbeats come every third of it)".into()));
        }
        if let Some(name) = &file.cluster.name
            && (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control))
        {
            return Err(ConfigError::Invalid(format!("cluster.name {name:?}: 1 to 128 printable characters")));
        }
        let listen = args.listen.or(file.listen).unwrap_or_else(default_listen);
        let public_url = args.public_url.clone().or(file.public_url).map(|u| u.trim_end_matches('/').to_owned());
        check_tls(&file.tls, public_url.as_deref())?;
        // The next port on the same address; port 0 (any free port, as tests ask) stays 0.
        let boot_listen =
            file.boot_listen.unwrap_or_else(|| SocketAddr::new(listen.ip(), if listen.port() == 0 { 0 } else { listen.port().wrapping_add(1) }));
        let boot_url = file.boot_url.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &boot_url
            && !url.starts_with("http://")
        {
            return Err(ConfigError::Invalid(format!("boot_url {url:?}: firmware fetches it before it can check a certificate, so it is http://")));
        }
        Ok(Config {
            listen,
            boot_listen,
            boot_url,
            tls: file.tls,
            data_dir,
            database,
            token,
            public_url,
            log_json: args.log_json || file.log_json.unwrap_or(false),
            power_sync: file.power_sync,
            agent: file.agent,
            network: file.network,
            deploy: file.deploy,
            netboot: file.netboot,
            inspection: file.inspection,
            discovery: file.discovery,
            exec: file.exec,
            secrets: file.secrets,
            metrics: file.metrics,
            console: file.console,
            cluster: file.cluster,
            plugins: file.plugins,
        })
    }

    pub fn secrets_key_path(&self) -> PathBuf {
        self.secrets.key_file.clone().unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    pub fn bootstrap_dir(&self) -> PathBuf {
        self.netboot.bootstrap_dir.clone().unwrap_or_else(|| self.data_dir.join("bootstrap"))
    }

    pub fn scripts_dir(&self) -> PathBuf {
        self.netboot.scripts_dir.clone().unwrap_or_else(|| self.data_dir.join("netboot/scripts"))
    }

    pub fn hosts_dir(&self) -> PathBuf {
        self.netboot.hosts_dir.clone().unwrap_or_else(|| self.data_dir.join("netboot/hosts"))
    }

    pub fn power_sync_interval(&self) -> Option<Duration> {
        (!self.power_sync.interval.is_zero()).then_some(self.power_sync.interval)
    }
}

/// TLS settings that contradict each other or the public URL stop the daemon before it serves.
fn check_tls(tls: &TlsConfig, public_url: Option<&str>) -> Result<(), ConfigError> {
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(ConfigError::Invalid("tls.cert_file and tls.key_file go together: the certificate chain and its private key".into()));
    }
    if !tls.enabled && tls.cert_file.is_some() {
        return Err(ConfigError::Invalid("tls.cert_file is set but tls.enabled = false".into()));
    }
    match public_url {
        Some(url) if tls.enabled && !url.starts_with("https://") => {
            Err(ConfigError::Invalid(format!("public_url {url:?} must be https:// while [tls] is enabled (the default)")))
        }
        Some(url) if !tls.enabled && !url.starts_with("http://") => {
            Err(ConfigError::Invalid(format!("public_url {url:?} must be http:// with [tls] enabled = false")))
        }
        _ => Ok(()),
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1111\"\ntoken = \"file-token-0123456789\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:2222".parse().unwrap()),
            data_dir: None,
            token: None,
            public_url: None,
            log_json: false,
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.listen.port(), 2222);
        assert_eq!(config.token.unwrap().expose(), "file-token-0123456789");
    }
}
