//! Domain types: ids, addresses, states and their transitions. Pure: no SQLite, axum or wasmtime here.

mod access;
mod failure;
pub mod identity;
mod ids;
mod net;
mod request;
mod state;
pub mod tenancy;
pub mod time;

pub use access::{Bmc, NodeLabel, SwitchAccess};
pub use failure::FailureKind;
pub use ids::{EventId, ImageId, InstanceId, Key, NodeId, ProjectId, SwitchId, TaskId, TokenId, UserId};
pub use net::{ChassisId, Hostname, MacAddr, SwitchPort, Vlan};
pub use request::{DeployRequest, RequestedIdentity};
pub use state::{
    BootDevice, BootMode, Compression, ImageFormat, InstanceState, NetworkKind, PowerAction, PowerState, ProvisionState, TaskKind, TaskState,
};

/// A value that failed to parse, with a message fit for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// A password or token. It has no `Display` and no `Serialize`, and its `Debug` is redacted, so it
/// cannot end up in a log line or an API response by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (a child's env, an SSH login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Milliseconds since the Unix epoch: how timestamps are stored and shown.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// When something must be over, as stored (Unix ms): `within` from now.
pub fn deadline_in(within: std::time::Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX / 4))
}

/// How long until a stored deadline (Unix ms); zero once it has passed.
pub fn time_left(deadline_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(deadline_ms.saturating_sub(now_ms())).unwrap_or(0))
}
