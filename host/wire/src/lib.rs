//! Wire types of the agent API (`/v1/agent/*`): the only types the host and the agent share.
//!
//! Kept free of I/O and of host domain types so the agent stays small.

use serde::{Deserialize, Serialize};

/// `POST /v1/agent/lookup`: the agent names its MAC addresses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupRequest {
    pub macs: Vec<String>,
}

/// The node the agent runs on, and the token for its other agent calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupResponse {
    pub node_id: i64,
    /// Bearer token for `/v1/agent/*` calls of this node.
    pub node_token: String,
    /// How often the agent should heartbeat while it works.
    pub heartbeat_interval_s: u64,
    /// How often the agent should poll for a task while it has none.
    pub poll_interval_s: u64,
}

/// `GET /v1/agent/task`: the node's pending task (204 No Content when there is none yet).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentTask {
    pub id: i64,
    pub work: TaskWork,
    /// What the agent does once it has reported the result.
    pub after: AfterTask,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskWork {
    Deploy(DeployTask),
    Clean(CleanTask),
    Inspect(InspectTask),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AfterTask {
    Exit,
    Poweroff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What the served file is: a disk as it is (perhaps compressed whole), or qcow2, which the agent
/// converts to raw while it writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImageFormat {
    #[default]
    Raw,
    Qcow2,
}

/// Write an image to a disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeployTask {
    pub image_url: String,
    /// Bearer token for `image_url`, valid for this task only. None for external URLs that need none.
    pub image_token: Option<String>,
    /// sha256 of the image as stored (before decompression), lower-case hex.
    pub sha256: String,
    /// Size in bytes of the image as stored, when known.
    pub size: Option<u64>,
    pub compression: Compression,
    /// `raw` from a host that predates qcow2.
    #[serde(default)]
    pub format: ImageFormat,
    /// The bytes the image puts on the disk, when the host inspected it.
    #[serde(default)]
    pub virtual_size: Option<u64>,
    /// A disk name (`sda`, `/dev/vda`) to write to; otherwise the agent picks one.
    pub disk_hint: Option<String>,
    /// Re-read what was written and compare it with what was downloaded.
    pub verify_readback: bool,
    /// The files of the `config-2` partition the agent adds at the disk's end once the image is
    /// written (OpenStack config-drive layout). None from a host that predates config drives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_drive: Option<ConfigDrive>,
}

/// An instance's config drive: what cloud-init's ConfigDrive source reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigDrive {
    pub files: Vec<ConfigDriveFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigDriveFile {
    /// Relative, `/`-separated: `openstack/latest/meta_data.json`.
    pub path: String,
    pub content: String,
}

/// Wipe disks so the next tenant sees nothing of the last one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanTask {
    /// Disk names to clean; empty means every non-removable disk.
    pub disks: Vec<String>,
    pub method: CleanMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CleanMethod {
    /// Partition tables, signatures, and the first and last MiB of each disk (discard where supported).
    Metadata,
}

/// Report the node's hardware (`POST /v1/agent/inventory`), then the result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectTask {
    /// How long to listen for LLDP frames on each NIC that has a link.
    pub lldp_wait_s: u64,
}

/// How long an agent that found no node listens for LLDP before it reports itself for enlistment.
pub const DISCOVERY_LLDP_WAIT_S: u64 = 5;

/// At most this many bytes in one inventory report; the host refuses bigger ones.
pub const MAX_INVENTORY_BYTES: usize = 64 * 1024;

/// What the agent found on the node: `POST /v1/agent/inventory` (inspection, node token) or
/// `POST /v1/agent/discover` (enlistment of an unknown machine, no token).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    pub cpu: CpuInfo,
    /// Installed memory in bytes (the memory blocks the kernel sees, else MemTotal).
    pub memory_bytes: u64,
    pub disks: Vec<DiskInfo>,
    pub nics: Vec<NicInfo>,
    pub system: SystemInfo,
    pub boot_mode: FirmwareBootMode,
    pub lldp: Vec<LldpNeighbor>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CpuInfo {
    /// Logical CPUs online.
    pub count: u32,
    pub model: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiskInfo {
    pub name: String,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub rotational: bool,
    pub wwn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NicInfo {
    pub name: String,
    pub mac: String,
    pub driver: Option<String>,
    /// The kernel sees a carrier.
    pub link: bool,
    /// Link speed in Mbit/s, when the driver tells.
    pub speed_mbps: Option<u32>,
    /// The NIC's IPv4 address (the one DHCP gave the bootstrap), if any.
    pub ipv4: Option<String>,
}

/// From DMI (SMBIOS): who made the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SystemInfo {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
}

/// How the firmware booted the bootstrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FirmwareBootMode {
    #[default]
    Bios,
    Uefi,
}

/// A switch seen through LLDP on one of the node's NICs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LldpNeighbor {
    /// The node's NIC that heard it.
    pub interface: String,
    /// A MAC as aa:bb:cc:dd:ee:ff when the chassis id is one, else its text.
    pub chassis_id: String,
    pub port_id: String,
    pub system_name: Option<String>,
}

/// `POST /v1/agent/discover`: the node the report was enlisted as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoverResponse {
    pub node_id: i64,
    pub name: String,
    /// What the operator must still do.
    pub message: String,
}

/// `POST /v1/agent/task/{id}/progress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub bytes_written: u64,
    pub total_bytes: Option<u64>,
}

/// `POST /v1/agent/task/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskResult {
    pub success: bool,
    pub message: String,
    /// What kind of failure ended the task (a failed task only). Absent from an older agent's
    /// result, which the host then reads as an agent failure it cannot say more about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AgentFailureKind>,
}

/// Why an agent's task failed, as a fact rather than a sentence: the host decides from it whether
/// another attempt could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentFailureKind {
    /// The image could not be fetched: no image server answered, the connection broke for good,
    /// or the server answered with an HTTP error. Another attempt may succeed.
    Download,
    /// A disk could not be found, opened, written, synced, read back or wiped.
    Disk,
    /// The image did not verify: its sha256, its decompression, or what was read back from disk.
    Verify,
    /// Anything else (an undelivered report, a bug in the agent), and any kind this side does not
    /// know yet, so a newer agent's result still parses.
    #[serde(other)]
    Other,
}

/// `POST /v1/agent/heartbeat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The task the agent is working on, if any.
    pub task_id: Option<i64>,
}

/// `POST /v1/agent/console`: lines the agent printed (to the node's console too), oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleLines {
    pub lines: Vec<String>,
}

/// At most this many lines in one `ConsoleLines` post; the host refuses more.
pub const MAX_CONSOLE_LINES_PER_POST: usize = 500;

/// Error body of every API error: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> TaskResult {
        serde_json::from_str(json).expect("a task result")
    }

    #[test]
    fn an_older_agents_result_has_no_kind_and_an_unknown_kind_reads_as_other() {
        assert_eq!(result(r#"{"success": false, "message": "disk on fire"}"#).kind, None);
        assert_eq!(result(r#"{"success": false, "message": "m", "kind": "verify"}"#).kind, Some(AgentFailureKind::Verify));
        assert_eq!(result(r#"{"success": false, "message": "m", "kind": "cosmic_ray"}"#).kind, Some(AgentFailureKind::Other));
    }

    #[test]
    fn a_result_without_a_kind_is_sent_as_before() {
        let ok = TaskResult { success: true, message: "done".into(), kind: None };
        assert_eq!(serde_json::to_string(&ok).expect("json"), r#"{"success":true,"message":"done"}"#);
        let failed = TaskResult { success: false, message: "m".into(), kind: Some(AgentFailureKind::Download) };
        assert_eq!(serde_json::to_string(&failed).expect("json"), r#"{"success":false,"message":"m","kind":"download"}"#);
    }
}
