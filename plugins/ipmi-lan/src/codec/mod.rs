//! The IPMI 2.0 / RMCP+ wire format, pure: bytes in, bytes out, no I/O, no clock, no randomness
//! (callers pass random numbers in), so every packet can be unit-tested on the host target.

pub mod commands;
pub mod message;
pub mod rakp;
pub mod rmcp;
pub mod suite;

/// A packet the codec could not read or that failed a check. `integrity` marks a failed HMAC or
/// key exchange code, which the session reports as an authentication failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    pub message: String,
    pub integrity: bool,
}

impl CodecError {
    pub fn new(message: impl Into<String>) -> CodecError {
        CodecError { message: message.into(), integrity: false }
    }

    pub fn integrity(message: impl Into<String>) -> CodecError {
        CodecError { message: message.into(), integrity: true }
    }
}

#[cfg(test)]
mod captured;
