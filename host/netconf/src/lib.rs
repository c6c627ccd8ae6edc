//! NETCONF over SSH for the switch-manager world: the host owns the connection, plugins see only RPCs.
//!
//! API contract (implementation pending; see issue 4):
//! - `Session::connect(&Target)` opens SSH (russh), authenticates with the password, requests the
//!   `netconf` subsystem, exchanges hellos and picks base:1.1 chunked framing when both sides announce
//!   it, else base:1.0 `]]>]]>`.
//! - host keys: `Target::expected_host_key` None = trust on first use (the caller stores
//!   `Session::host_key_fingerprint()`); Some(fp) = refuse any other key.

use std::time::Duration;

/// Which switch to talk to and how.
#[derive(Clone)]
pub struct Target {
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// `SHA256:...` fingerprint the server key must have; None trusts the first key seen.
    pub expected_host_key: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// base:1.0, messages end with `]]>]]>`
    EndOfMessage,
    /// base:1.1, RFC 6242 chunked framing
    Chunked,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("switch {address}:{port} is unreachable: {reason}")]
    Unreachable { address: String, port: u16, reason: String },
    #[error("switch {address}:{port} refused the credentials for user {username}")]
    AuthFailed { address: String, port: u16, username: String },
    #[error("switch {address}:{port} host key changed: expected {expected}, got {actual}")]
    HostKeyMismatch { address: String, port: u16, expected: String, actual: String },
    #[error("netconf session to {address}:{port} failed: {reason}")]
    Transport { address: String, port: u16, reason: String },
    #[error("netconf session to {address}:{port} timed out after {after:?} while {during}")]
    Timeout { address: String, port: u16, after: Duration, during: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An open NETCONF session.
pub struct Session {
    _private: (),
}

impl Session {
    pub async fn connect(_target: &Target) -> Result<Session> {
        unimplemented!("issue 4")
    }
    pub fn server_capabilities(&self) -> &[String] {
        unimplemented!("issue 4")
    }
    pub fn host_key_fingerprint(&self) -> &str {
        unimplemented!("issue 4")
    }
    pub fn framing(&self) -> Framing {
        unimplemented!("issue 4")
    }
    /// Sends `<rpc message-id=N>{operation}</rpc>` and returns the whole `<rpc-reply>`.
    pub async fn rpc(&mut self, _operation: &str) -> Result<String> {
        unimplemented!("issue 4")
    }
    /// Sends `<close-session/>` and closes the channel.
    pub async fn close(self) -> Result<()> {
        unimplemented!("issue 4")
    }
}
