//! How a failed call is told apart (deadline, memory cap, trap, the driver's own error) and named:
//! every `CallError` names the plugin and operation, with the message cut to its budget.

use wasmtime::Trap;

use crate::bindings::{power2, types};
use crate::budget::{ERROR_CAP, cap};
use crate::error::{CallError, CallFailure, DriverError};
use crate::runtime::Loaded;

pub(crate) fn trap(plugin: &Loaded, operation: &'static str, message: String) -> CallError {
    CallError { plugin: plugin.name.to_string(), operation, failure: CallFailure::Trap(cap(message, ERROR_CAP)) }
}

/// Sorts a wasmtime error into deadline, memory cap or trap.
pub(crate) fn classify(plugin: &Loaded, operation: &'static str, e: wasmtime::Error) -> CallError {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let failure = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        CallFailure::Deadline(plugin.spec.call_timeout_s)
    } else if chain.iter().any(|c| c.contains("forcing trap when growing memory")) {
        CallFailure::Memory(plugin.spec.memory_mb)
    } else {
        let detail = chain.into_iter().filter(|c| !c.starts_with("error while executing at wasm backtrace")).collect::<Vec<_>>().join(": ");
        CallFailure::Trap(cap(if detail.is_empty() { e.to_string() } else { detail }, ERROR_CAP))
    };
    let err = CallError { plugin: plugin.name.to_string(), operation, failure };
    tracing::warn!(plugin = &*plugin.name, operation, "plugin call failed: {err}");
    err
}

pub(crate) fn driver(plugin: &Loaded, operation: &'static str, e: impl Into<DriverError>) -> CallError {
    let e: DriverError = e.into();
    CallError { plugin: plugin.name.to_string(), operation, failure: CallFailure::Driver(e.capped()) }
}

impl From<types::DriverError> for DriverError {
    fn from(e: types::DriverError) -> DriverError {
        match e {
            types::DriverError::Unreachable(m) => DriverError::Unreachable(m),
            types::DriverError::AuthFailed(m) => DriverError::AuthFailed(m),
            types::DriverError::CommandFailed(m) => DriverError::CommandFailed(m),
            types::DriverError::ParseError(m) => DriverError::ParseError(m),
            types::DriverError::NotFound(m) => DriverError::NotFound(m),
            types::DriverError::Unsupported(m) => DriverError::Unsupported(m),
            types::DriverError::InvalidConfig(m) => DriverError::InvalidConfig(m),
        }
    }
}

impl From<power2::metalhost::drivers::types::DriverError> for DriverError {
    fn from(e: power2::metalhost::drivers::types::DriverError) -> DriverError {
        use power2::metalhost::drivers::types::DriverError as E;
        match e {
            E::Unreachable(m) => DriverError::Unreachable(m),
            E::AuthFailed(m) => DriverError::AuthFailed(m),
            E::CommandFailed(m) => DriverError::CommandFailed(m),
            E::ParseError(m) => DriverError::ParseError(m),
            E::NotFound(m) => DriverError::NotFound(m),
            E::Unsupported(m) => DriverError::Unsupported(m),
            E::InvalidConfig(m) => DriverError::InvalidConfig(m),
        }
    }
}
