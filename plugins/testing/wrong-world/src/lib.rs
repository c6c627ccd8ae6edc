//! A switch-manager component that does nothing, for the test that a component of another world is
//! refused when the config declares it a power driver.

wit_bindgen::generate!({ world: "switch-manager", path: "../../../wit/drivers.wit" });

use exports::metalhost::drivers::switch::{SwitchDescription, Vlan};
use exports::metalhost::drivers::{plugin, switch};
use metalhost::drivers::types::{DriverError, PluginInfo, PluginKind};

struct WrongWorld;

impl plugin::Guest for WrongWorld {
    fn info() -> PluginInfo {
        PluginInfo { name: "wrong-world".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Switch }
    }

    fn configure(_config: Vec<(String, String)>) -> Result<(), DriverError> {
        Ok(())
    }
}

impl switch::Guest for WrongWorld {
    fn describe() -> Result<SwitchDescription, DriverError> {
        Ok(SwitchDescription { model: "none".into(), capabilities: vec![] })
    }

    fn ensure_vlan(_vlan: Vlan) -> Result<(), DriverError> {
        Ok(())
    }

    fn set_access_vlan(_port: String, _vlan: Vlan) -> Result<(), DriverError> {
        Ok(())
    }

    fn clear_port(_port: String) -> Result<(), DriverError> {
        Ok(())
    }

    fn get_port_vlan(_port: String) -> Result<Option<u16>, DriverError> {
        Ok(None)
    }
}

export!(WrongWorld);
