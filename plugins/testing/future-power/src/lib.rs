//! A power plugin built against a future `metalhost:drivers@0.9.0`, for the test that the host
//! refuses it and names both contract versions.

wit_bindgen::generate!({ world: "power-manager", path: "wit" });

use exports::metalhost::drivers::{plugin, power};
use metalhost::drivers::types::{DriverError, PluginInfo, PluginKind};

struct Future;

impl plugin::Guest for Future {
    fn info() -> PluginInfo {
        PluginInfo { name: "future-power".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Power }
    }

    fn configure(_config: Vec<(String, String)>) -> Result<(), DriverError> {
        Ok(())
    }
}

impl power::Guest for Future {
    fn get_power_state(_host: String) -> Result<bool, DriverError> {
        Ok(true)
    }
}

export!(Future);
