//! The SDK for metalhost driver plugins: a plugin is one type implementing [`Plugin`] and the trait
//! of its world, exported with that world's macro.
//!
//! ```ignore
//! use metalhost_plugin_sdk::{power::*, Config, DriverError, Plugin};
//!
//! struct MyBmc;
//!
//! impl Plugin for MyBmc {
//!     const NAME: &'static str = "my-bmc";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn configure(config: Config) -> Result<Self, DriverError> {
//!         config.finish()?;
//!         Ok(MyBmc)
//!     }
//! }
//!
//! impl PowerManager for MyBmc { /* get_power_state, set_power_state, set_boot_device */ }
//!
//! metalhost_plugin_sdk::export_power!(MyBmc);
//! ```
//!
//! The host builds a fresh instance for every call and calls `configure` first, so the value
//! `configure` returns is the `&self` of the call that follows. The export macros adapt these traits
//! to the generated bindings; `bindings` holds those for anything the traits do not cover.

mod config;
pub mod datagram;
mod error;
pub mod exec;
mod export;
mod export2;
pub mod http;
pub mod log;
pub mod netconf;
pub mod service;
pub mod xml;

pub use config::Config;
pub use error::DriverError;
pub use export::{NetbootBackend, Plugin, PowerManager, SwitchManager};

/// The frozen contract of `export_power!`, `export_switch!` and `export_netboot!`. The host refuses
/// a component whose exports carry a version it does not speak, naming both (`the component was
/// built for metalhost:drivers@X; this host speaks ...`).
pub const CONTRACT: &str = "metalhost:drivers@0.1.0";
/// The version part of [`CONTRACT`].
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The open contract of `export_power2!`: power plugins with host-scoped `http` and `datagram`.
pub const CONTRACT_0_2: &str = "metalhost:drivers@0.2.0";

/// The wit-bindgen bindings of each world (one crate per world, see `worlds/`).
pub mod bindings {
    pub use metalhost_plugin_sdk_netboot as netboot;
    pub use metalhost_plugin_sdk_power as power;
    pub use metalhost_plugin_sdk_power2 as power2;
    pub use metalhost_plugin_sdk_switch as switch;
}

pub use bindings::power::metalhost::drivers::types::{PluginInfo, PluginKind};

/// Everything a power plugin needs.
pub mod power {
    pub use crate::bindings::power::metalhost::drivers::types::{BmcAddress, BootDevice, Credentials, PowerAction, PowerState};
    pub use crate::exec::{Command, Output};
    pub use crate::export::PowerManager;
}

/// Everything a 0.2.0 power plugin needs: it talks to its BMC itself, through [`http`] or
/// [`datagram`], which the host scopes to the call's BMC. Export it with `export_power2!`.
pub mod power2 {
    pub use crate::bindings::power2::metalhost::drivers::types::{
        BmcAddress, BootDevice, BootMode, ConsoleAccess, ConsoleCommand, Credentials, PowerAction, PowerState,
    };
    pub use crate::export2::PowerManager;
    pub use crate::{datagram, http};

    /// The `log` capability of 0.2.0: lines land in the daemon's log inside the call's span.
    /// Never log a password or a request's authorization header.
    pub mod log {
        use crate::bindings::power2::metalhost::drivers::log::{Level, log};

        pub fn debug(message: &str) {
            log(Level::Debug, message);
        }

        pub fn info(message: &str) {
            log(Level::Info, message);
        }

        pub fn warn(message: &str) {
            log(Level::Warn, message);
        }

        pub fn error(message: &str) {
            log(Level::Error, message);
        }
    }
}

/// Everything a switch plugin needs.
pub mod switch {
    pub use crate::bindings::switch::exports::metalhost::drivers::switch::{SwitchDescription, Vlan};
    pub use crate::export::SwitchManager;
    pub use crate::netconf;
}

/// Everything a netboot plugin needs.
pub mod netboot {
    pub use crate::bindings::netboot::exports::metalhost::drivers::netboot::BootEntry;
    pub use crate::export::NetbootBackend;
    pub use crate::service;
}

#[doc(hidden)]
pub mod __private {
    pub use std::cell::RefCell;
    pub use std::rc::Rc;
}

#[cfg(test)]
mod tests {
    /// The constant must say what the WIT the bindings come from says.
    #[test]
    fn contract_matches_the_wit_package() {
        let wit = include_str!("../../../wit/drivers.wit");
        let package = wit.lines().find_map(|l| l.strip_prefix("package ")).map(|p| p.trim_end_matches(';'));
        assert_eq!(package, Some(super::CONTRACT));
        let wit = include_str!("../../../wit/drivers-0.2.0.wit");
        let package = wit.lines().find_map(|l| l.strip_prefix("package ")).map(|p| p.trim_end_matches(';'));
        assert_eq!(package, Some(super::CONTRACT_0_2));
        assert_eq!(super::CONTRACT.rsplit('@').next(), Some(super::CONTRACT_VERSION));
    }
}
