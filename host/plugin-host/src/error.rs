//! What a plugin call can end with, naming the plugin and the operation every time.

/// A typed failure reported by the driver itself (the `driver-error` of the WIT contract).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("auth-failed: {0}")]
    AuthFailed(String),
    #[error("command-failed: {0}")]
    CommandFailed(String),
    #[error("parse-error: {0}")]
    ParseError(String),
    #[error("not-found: {0}")]
    NotFound(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid-config: {0}")]
    InvalidConfig(String),
}

impl DriverError {
    /// The same error with its message cut to [`crate::ERROR_CAP`] (a plugin's text is untrusted).
    pub fn capped(self) -> DriverError {
        let cap = |m: String| crate::budget::cap(m, crate::ERROR_CAP);
        match self {
            DriverError::Unreachable(m) => DriverError::Unreachable(cap(m)),
            DriverError::AuthFailed(m) => DriverError::AuthFailed(cap(m)),
            DriverError::CommandFailed(m) => DriverError::CommandFailed(cap(m)),
            DriverError::ParseError(m) => DriverError::ParseError(cap(m)),
            DriverError::NotFound(m) => DriverError::NotFound(cap(m)),
            DriverError::Unsupported(m) => DriverError::Unsupported(cap(m)),
            DriverError::InvalidConfig(m) => DriverError::InvalidConfig(cap(m)),
        }
    }

    /// The case's name in the WIT contract (`auth-failed`, ...), as its message starts.
    pub fn kind(&self) -> &'static str {
        match self {
            DriverError::Unreachable(_) => "unreachable",
            DriverError::AuthFailed(_) => "auth-failed",
            DriverError::CommandFailed(_) => "command-failed",
            DriverError::ParseError(_) => "parse-error",
            DriverError::NotFound(_) => "not-found",
            DriverError::Unsupported(_) => "unsupported",
            DriverError::InvalidConfig(_) => "invalid-config",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    #[error("{0}")]
    Driver(DriverError),
    #[error("deadline of {0} s exceeded")]
    Deadline(u64),
    #[error("memory cap of {0} MiB exceeded")]
    Memory(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("not loaded: {0}")]
    NotLoaded(String),
}

/// A failed call: plugin, operation, and what happened.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin:?} {operation}: {failure}")]
pub struct CallError {
    pub plugin: String,
    pub operation: &'static str,
    pub failure: CallFailure,
}

impl CallError {
    pub fn driver(&self) -> Option<&DriverError> {
        match &self.failure {
            CallFailure::Driver(e) => Some(e),
            _ => None,
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;
