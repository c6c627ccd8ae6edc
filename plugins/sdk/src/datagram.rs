//! The `datagram` capability of 0.2.0 power plugins: send one UDP datagram to the call's BMC and
//! collect its replies (for protocols such as IPMI over LAN). Only the BMC's address is allowed.

use crate::bindings::power2::metalhost::drivers::datagram;

pub use datagram::DatagramError;

/// Sends `payload` to the BMC's own port and returns up to `max_replies` replies received within
/// `timeout_ms` (clamped by the host to the call's deadline). No reply is an empty list.
pub fn exchange(payload: &[u8], timeout_ms: u32, max_replies: u32) -> Result<Vec<Vec<u8>>, DatagramError> {
    datagram::exchange(None, payload, timeout_ms, max_replies)
}

/// The same to an explicit port; any port but the BMC's is refused with `not-permitted`.
pub fn exchange_on(port: u16, payload: &[u8], timeout_ms: u32, max_replies: u32) -> Result<Vec<Vec<u8>>, DatagramError> {
    datagram::exchange(Some(port), payload, timeout_ms, max_replies)
}
