//! The `netconf` capability for switch plugins: the host owns the SSH session to the switch the
//! call is about (and its password); a plugin sends RPC bodies and reads whole replies.

use crate::bindings::switch::metalhost::drivers::netconf::{self, NetconfError};
use crate::{DriverError, log, xml};

/// A session error as a driver error: the host's unreachable and auth failures keep their case.
pub fn session_error(e: NetconfError) -> DriverError {
    match e {
        NetconfError::Unreachable(m) => DriverError::Unreachable(m),
        NetconfError::AuthFailed(m) => DriverError::AuthFailed(m),
        NetconfError::Transport(m) => DriverError::CommandFailed(format!("netconf session failed: {m}")),
    }
}

/// The capabilities the switch announced in its hello.
pub fn capabilities() -> Result<Vec<String>, DriverError> {
    netconf::server_capabilities().map_err(session_error)
}

/// Sends one RPC (`operation` is the content of `<rpc>`) and returns the whole `<rpc-reply>`,
/// which may hold `<rpc-error>`s: reading them is the plugin's job.
pub fn rpc(operation: &str) -> Result<String, DriverError> {
    netconf::rpc(operation).map_err(session_error)
}

/// Sends one RPC and reads its `<rpc-error>`s: those of severity error become `command-failed`
/// with their messages; warnings (Junos reports commit warnings this way) are logged.
pub fn call(operation: &str) -> Result<String, DriverError> {
    let reply = rpc(operation)?;
    let (warnings, errors): (Vec<_>, Vec<_>) = xml::rpc_errors(&reply).into_iter().partition(xml::RpcError::is_warning);
    for warning in warnings {
        log::warn(&format!("switch warning: {}", warning.message));
    }
    if errors.is_empty() { Ok(reply) } else { Err(DriverError::CommandFailed(errors.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "))) }
}
