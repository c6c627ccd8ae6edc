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
    /// A disk name (`sda`, `/dev/vda`) to write to; otherwise the agent picks one.
    pub disk_hint: Option<String>,
    /// Re-read what was written and compare it with what was downloaded.
    pub verify_readback: bool,
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
