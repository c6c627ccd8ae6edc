//! The SDK's own `DriverError`: one type for every world and contract version, turned into the
//! generated `driver-error` of the world a plugin exports at the export macro's boundary.

/// A driver failure, typed so the host can tell the operator what went wrong. Keep the device's or
/// tool's own message in it; never a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// The device did not answer (refused, timed out, no route).
    Unreachable(String),
    /// The device refused the credentials.
    AuthFailed(String),
    /// A command or request ran and failed.
    CommandFailed(String),
    /// The device answered with something the driver could not understand.
    ParseError(String),
    /// The device has no such thing (a switch port, a system id).
    NotFound(String),
    /// The driver or the device cannot do this.
    Unsupported(String),
    /// The plugin config is wrong.
    InvalidConfig(String),
}

impl DriverError {
    /// The case's name in the contract (`auth-failed`, ...).
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

    pub fn message(&self) -> &str {
        match self {
            DriverError::Unreachable(m)
            | DriverError::AuthFailed(m)
            | DriverError::CommandFailed(m)
            | DriverError::ParseError(m)
            | DriverError::NotFound(m)
            | DriverError::Unsupported(m)
            | DriverError::InvalidConfig(m) => m,
        }
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for DriverError {}

/// One `From` per contract version: the generated types differ, the cases do not.
macro_rules! convert {
    ($generated:path) => {
        impl From<DriverError> for $generated {
            fn from(e: DriverError) -> Self {
                type G = $generated;
                match e {
                    DriverError::Unreachable(m) => G::Unreachable(m),
                    DriverError::AuthFailed(m) => G::AuthFailed(m),
                    DriverError::CommandFailed(m) => G::CommandFailed(m),
                    DriverError::ParseError(m) => G::ParseError(m),
                    DriverError::NotFound(m) => G::NotFound(m),
                    DriverError::Unsupported(m) => G::Unsupported(m),
                    DriverError::InvalidConfig(m) => G::InvalidConfig(m),
                }
            }
        }
    };
}

convert!(crate::bindings::power::metalhost::drivers::types::DriverError);
convert!(crate::bindings::power2::metalhost::drivers::types::DriverError);
