//! The `service` capability for netboot plugins: ask the host to make the netboot service
//! (dnsmasq) re-read its files.

use crate::DriverError;
use crate::bindings::netboot::metalhost::drivers::service;

pub fn reload() -> Result<(), DriverError> {
    service::reload().map_err(|e| DriverError::CommandFailed(format!("netboot service reload: {e}")))
}
