//! The config file's shape: its top-level keys and one typed section per `[table]`, each with its
//! defaults. Unknown keys are errors; durations are `Duration` (read from `*_s`/`*_ms` keys), VLANs
//! are `Vlan`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::Vlan;
use crate::domain::tenancy::VlanRange;

/// The config file. Every section is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub token: Option<String>,
    /// A file holding the operator token (first line).
    pub token_file: Option<PathBuf>,
    pub public_url: Option<String>,
    /// Where the plain-HTTP boot listener binds: the iPXE scripts, the bootstrap kernel and initrd
    /// and the agent binary, which firmware fetches before anything can verify a certificate
    /// (default: `listen`'s address, the next port).
    pub boot_listen: Option<SocketAddr>,
    /// The boot listener's URL as nodes reach it (default `http://<boot_listen>`).
    pub boot_url: Option<String>,
    pub log_json: Option<bool>,
    /// `sqlite:///path/metalhost.db` (default: `<data_dir>/metalhost.db`) or
    /// `postgres://user@host:5432/dbname` for several daemons sharing one pool. Never a password
    /// here: it goes in `database_password_file`.
    pub database: Option<String>,
    /// A file holding the PostgreSQL password (first line).
    pub database_password_file: Option<PathBuf>,
    /// The CA (PEM) that signed the PostgreSQL server's certificate: the connection then uses TLS
    /// and verifies the server's certificate and name (libpq's `verify-full`), or fails.
    pub database_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub power_sync: PowerSyncConfig,
    #[serde(default)]
    pub agent: AgentConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub deploy: DeployConfig,
    #[serde(default)]
    pub netboot: NetbootConfig,
    #[serde(default)]
    pub inspection: InspectionConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub exec: metalhost_plugin_host::ExecPolicy,
    #[serde(default)]
    pub secrets: SecretsConfig,
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<crate::drivers::PluginSpec>,
}

/// TLS on the API listener (issue 31; README "TLS"). On by default: the daemon makes a private CA
/// beside the secrets key on first start and a server certificate from it at each start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Off only behind a TLS-terminating proxy the operator runs: everything then travels in clear.
    pub enabled: bool,
    /// The operator's own certificate chain (PEM: the server's certificate, then its issuers, the
    /// last being the CA agents are told to trust) instead of the generated one; with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// More names or addresses for the generated certificate, beside `public_url`'s host, the
    /// listen address, this machine's name and loopback.
    pub names: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { enabled: true, cert_file: None, key_file: None, names: Vec::new() }
    }
}

/// Where the key that seals BMC and switch passwords in the database lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Default `<data_dir>/secrets.key`, generated (0600) on first start. Back it up apart from
    /// the database: without it the stored passwords cannot be read (README "Secrets at rest").
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerSyncConfig {
    /// Time between two sweeps (`interval_s`, seconds); 0 turns the sync off.
    #[serde(rename = "interval_s", with = "seconds")]
    pub interval: Duration,
    /// How many BMCs are asked at once.
    pub concurrency: usize,
    /// Each call starts after a random delay of up to this long (`jitter_ms`, milliseconds).
    #[serde(rename = "jitter_ms", with = "millis")]
    pub jitter: Duration,
}

impl Default for PowerSyncConfig {
    fn default() -> Self {
        PowerSyncConfig { interval: Duration::from_secs(60), concurrency: 16, jitter: Duration::from_millis(250) }
    }
}

/// `[console]`: recording nodes' serial consoles into their console logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// While a workflow runs on a node whose power plugin describes a serial console, record
    /// what the node prints into its console log.
    pub record: bool,
    /// Go on recording this long after the workflow ended (`record_after_s`), so the log shows
    /// the deployed OS's first boot.
    #[serde(rename = "record_after_s", with = "seconds")]
    pub record_after: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { record: true, record_after: Duration::from_secs(120) }
    }
}

/// `[cluster]`: several daemons sharing one PostgreSQL pool (store/cluster.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This daemon's name in the pool, unique among its daemons and kept across restarts, so a
    /// restarted daemon finds the leases it still holds. Default: `<hostname>:<API port>`.
    pub name: Option<String>,
    /// How long a node's lease lasts without renewal (`lease_ttl_s`): a daemon that stops
    /// heartbeating loses its nodes to the others after this. Heartbeats come every third of it.
    #[serde(rename = "lease_ttl_s", with = "seconds")]
    pub lease_ttl: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { name: None, lease_ttl: Duration::from_secs(15) }
    }
}

/// The VLANs a node's port moves between.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    #[serde(with = "vlan")]
    pub provisioning_vlan: Vlan,
    pub provisioning_vlan_name: String,
    /// The tenant VLAN when an instance names none.
    #[serde(with = "vlan")]
    pub tenant_vlan: Vlan,
    pub tenant_vlan_name: String,
    /// The VLANs projects get, one each ("201-299"): a project's instances' nodes move to its VLAN.
    #[serde(deserialize_with = "vlan_range")]
    pub tenant_vlans: VlanRange,
}

fn vlan_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<VlanRange, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|e: crate::domain::ParseError| serde::de::Error::custom(e.0))
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            provisioning_vlan: Vlan::new(100).unwrap_or(Vlan::DEFAULT),
            provisioning_vlan_name: "provisioning".into(),
            tenant_vlan: Vlan::new(200).unwrap_or(Vlan::DEFAULT),
            tenant_vlan_name: "tenant".into(),
            tenant_vlans: VlanRange { first: 201, last: 299 },
        }
    }
}

/// The deploy and destroy workflows: deadlines and choices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Deadline of each driver-only state: deploying, activating, deleting (`step_timeout_s`, seconds).
    #[serde(rename = "step_timeout_s", with = "seconds")]
    pub step_timeout: Duration,
    /// How long the agent has to write the image: wait-agent (`agent_timeout_s`, seconds).
    #[serde(rename = "agent_timeout_s", with = "seconds")]
    pub agent_timeout: Duration,
    /// How long the agent has to clean the disks: cleaning (`clean_timeout_s`, seconds).
    #[serde(rename = "clean_timeout_s", with = "seconds")]
    pub clean_timeout: Duration,
    /// A transient driver failure is retried after this pause (`retry_initial_ms`), doubled on
    /// each further failure up to `retry_max_ms`, with jitter, while the state's deadline allows.
    #[serde(rename = "retry_initial_ms", with = "millis")]
    pub retry_initial: Duration,
    #[serde(rename = "retry_max_ms", with = "millis")]
    pub retry_max: Duration,
    /// Trusted pools can skip disk cleaning on destroy.
    pub skip_clean: bool,
    /// The netboot plugin that writes DHCP/boot entries; none: the operator handles netboot.
    pub netboot_plugin: Option<String>,
    /// Re-read the written image on the node and compare it.
    pub verify_readback: bool,
    /// The agent powers the node off when its task is done (false: it exits, for process-agent labs).
    pub agent_poweroff: bool,
    /// Bootstrap kernel and initrd URLs written into netboot entries (default: served by this daemon).
    pub kernel_url: Option<String>,
    pub initrd_url: Option<String>,
    /// Extra kernel arguments for the bootstrap.
    pub kernel_args: String,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            step_timeout: Duration::from_secs(300),
            agent_timeout: Duration::from_secs(1800),
            clean_timeout: Duration::from_secs(1800),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(8),
            skip_clean: false,
            netboot_plugin: None,
            verify_readback: false,
            agent_poweroff: true,
            kernel_url: None,
            initrd_url: None,
            kernel_args: "console=ttyS0 quiet panic=-1".into(),
        }
    }
}

/// Inspection: the agent reads the node's hardware and listens for LLDP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    /// How long the agent listens for LLDP on each NIC with a link (`lldp_wait_s`, seconds; switches
    /// send every 30 s by default, so a lab that sends its own frames sets this low).
    #[serde(rename = "lldp_wait_s", with = "seconds")]
    pub lldp_wait: Duration,
    /// Deadline of the whole inspection, boot included (`timeout_s`, seconds).
    #[serde(rename = "timeout_s", with = "seconds")]
    pub timeout: Duration,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        InspectionConfig { lldp_wait: Duration::from_secs(35), timeout: Duration::from_secs(900) }
    }
}

/// Enlistment of machines nobody enrolled: off unless the operator turns it on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Unknown MACs that PXE-boot get the bootstrap, and their agent's report becomes an `enrolled` node.
    pub enabled: bool,
}

/// Netboot: the bootstrap files this daemon serves, and optionally a dnsmasq it supervises.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetbootConfig {
    /// Holds `vmlinuz` and `initrd.gz` from `bootstrap/build.sh` (default `<data_dir>/bootstrap`).
    pub bootstrap_dir: Option<PathBuf>,
    /// Where the netboot plugin writes per-node iPXE scripts, served at `/v1/boot/nodes/`
    /// (default `<data_dir>/netboot/scripts`).
    pub scripts_dir: Option<PathBuf>,
    /// Where the netboot plugin writes dhcp-host entries (default `<data_dir>/netboot/hosts`).
    pub hosts_dir: Option<PathBuf>,
    /// Run dnsmasq as a supervised child with a generated config.
    pub dnsmasq: bool,
    pub dnsmasq_binary: PathBuf,
    /// The interface dnsmasq serves DHCP on.
    pub interface: String,
    /// dnsmasq `dhcp-range` value for DHCPv4.
    pub dhcp_range: String,
    /// Also send IPv6 router advertisements (iPXE waits ~15 s for one otherwise).
    pub ipv6_ra: bool,
    /// TFTP root holding `undionly.kpxe` (BIOS) and the EFI iPXE for PXE firmware that is not iPXE.
    pub tftp_root: Option<PathBuf>,
    /// The EFI iPXE in the TFTP root that x86-64 UEFI firmware gets: Debian's `ipxe` package ships
    /// `ipxe.efi` (its own NIC drivers) and `snponly.efi` (the firmware's network stack).
    pub efi_boot_file: String,
}

impl Default for NetbootConfig {
    fn default() -> Self {
        NetbootConfig {
            bootstrap_dir: None,
            scripts_dir: None,
            hosts_dir: None,
            dnsmasq: false,
            dnsmasq_binary: PathBuf::from("/usr/sbin/dnsmasq"),
            interface: "br0".into(),
            dhcp_range: "10.99.0.100,10.99.0.199,255.255.255.0,1h".into(),
            ipv6_ra: true,
            tftp_root: None,
            efi_boot_file: "ipxe.efi".into(),
        }
    }
}

/// How the daemon treats agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The agent binary served at `/v1/agent/binary`; defaults to `metalhost-agent` next to `metalhost`.
    pub binary: Option<PathBuf>,
    /// How often the agent reports progress (`heartbeat_interval_s`, seconds).
    #[serde(rename = "heartbeat_interval_s", with = "seconds")]
    pub heartbeat_interval: Duration,
    /// A running task whose agent is silent this long fails (`heartbeat_timeout_s`, seconds).
    #[serde(rename = "heartbeat_timeout_s", with = "seconds")]
    pub heartbeat_timeout: Duration,
    /// How often an idle agent asks for work (`poll_interval_s`, seconds).
    #[serde(rename = "poll_interval_s", with = "seconds")]
    pub poll_interval: Duration,
    /// How long a node token stays valid (`token_ttl_s`, seconds).
    #[serde(rename = "token_ttl_s", with = "seconds")]
    pub token_ttl: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            binary: None,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            token_ttl: Duration::from_secs(6 * 3600),
        }
    }
}

impl AgentConfig {
    pub fn binary_path(&self) -> PathBuf {
        self.binary.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("metalhost-agent")))
                .unwrap_or_else(|| PathBuf::from("metalhost-agent"))
        })
    }
}

/// Durations kept in whole seconds under the historical `*_s` keys.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Durations kept in milliseconds under `*_ms` keys.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A VLAN id checked (1-4094) where the file is parsed.
mod vlan {
    use serde::{Deserialize, Deserializer, de::Error};

    use crate::domain::Vlan;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vlan, D::Error> {
        Vlan::new(i64::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = toml::from_str::<FileConfig>("[power_sync]\nintervall_s = 3\n").unwrap_err();
        assert!(err.to_string().contains("intervall_s"), "{err}");
    }

    #[test]
    fn seconds_keys_parse_into_durations_and_vlans_are_checked() {
        let file = toml::from_str::<FileConfig>(
            "[deploy]\nstep_timeout_s = 7\nretry_initial_ms = 20\n[agent]\ntoken_ttl_s = 60\n[power_sync]\ninterval_s = 0\njitter_ms = 5\n",
        )
        .unwrap();
        assert_eq!(file.deploy.step_timeout, Duration::from_secs(7));
        assert_eq!(file.deploy.retry_initial, Duration::from_millis(20));
        assert_eq!(file.agent.token_ttl, Duration::from_secs(60));
        assert_eq!((file.power_sync.interval, file.power_sync.jitter), (Duration::ZERO, Duration::from_millis(5)));
        let err = toml::from_str::<FileConfig>("[network]\ntenant_vlan = 4095\n").unwrap_err();
        assert!(err.to_string().contains("4095"), "{err}");
    }
}
