//! How a failed call is told apart (deadline, memory cap, trap, the driver's own error) and named:
//! every `CallError` names the plugin and operation, with the message cut to its budget.

use wasmtime::Trap;

use crate::bindings::power2::metalhost::drivers::types;
use crate::budget::{ERROR_CAP, cap};
use crate::error::{CallError, CallFailure, DriverError};
use crate::runtime::Loaded;

pub(crate) fn trap(plugin: &Loaded, operation: &'static str, message: String) -> CallError {
    CallError { plugin: plugin.name.to_string(), operation, failure: CallFailure::Trap(cap(message, ERROR_CAP)) }
}

/// Sorts a wasmtime error into deadline, memory cap or trap. `memory_refused`: the store's limiter
/// refused a growth (`limits.rs`), so the trap is the cap's.
pub(crate) fn classify(plugin: &Loaded, operation: &'static str, e: wasmtime::Error, memory_refused: bool) -> CallError {
    let failure = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        CallFailure::Deadline(plugin.spec.call_timeout_s)
    } else if memory_refused {
        CallFailure::Memory(plugin.spec.memory_mb)
    } else {
        let chain = e.chain().map(|c| c.to_string()).filter(|c| !c.starts_with("error while executing at wasm backtrace"));
        let detail = chain.collect::<Vec<_>>().join(": ");
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

/// The newest contract's `driver-error`; 0.1.0's is converted in `v0_1.rs`.
impl From<types::DriverError> for DriverError {
    fn from(e: types::DriverError) -> DriverError {
        use types::DriverError as E;
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
