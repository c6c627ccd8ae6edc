//! The network capabilities of `metalhost:drivers@0.2.0` (ARCHITECTURE.md, plugin-host): HTTP(S)
//! and UDP to the BMC of the current call, and to nothing else.
//!
//! The scope is the call's `bmc-address`, set by the host before the guest runs; the plugin only
//! names paths (HTTP) or the BMC's own port (UDP). Scheme, TLS, size caps and the deadline are
//! the host's, from the operator's `network = { ... }` settings of the `[[plugin]]` entry.

mod config;
pub mod datagram;
pub mod http;
pub(crate) mod imports;
mod tls;

pub use config::{NetworkSpec, Scheme};

/// The one address a call's network capabilities may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcScope {
    pub host: String,
    pub port: u16,
}

impl BmcScope {
    /// `host:port`, with an IPv6 literal in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') { format!("[{}]:{}", self.host, self.port) } else { format!("{}:{}", self.host, self.port) }
    }
}

/// Why a network capability refused or failed a request; each case is one case of the WIT
/// `http-error` / `datagram-error` variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("transport: {0}")]
    Transport(String),
}

/// What is left of the call's deadline, capped by the plugin's own timeout (0: no cap of its own).
pub(crate) fn budget(deadline: std::time::Instant, timeout_ms: u32) -> std::time::Duration {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if timeout_ms == 0 { left } else { left.min(std::time::Duration::from_millis(u64::from(timeout_ms))) }
}
