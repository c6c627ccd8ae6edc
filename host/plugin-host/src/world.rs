//! Which world and contract version a component implements, told from its exports at load.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::contract::Contract;
use crate::spec::PluginKind;

/// Names the world a component implements from its exports, and refuses a mismatch or another
/// contract version with a message saying which.
pub(crate) fn check_world(engine: &Engine, component: &Component, declared: PluginKind) -> Result<Contract, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
    let ours: Vec<(&str, &str)> = exports.iter().filter_map(|e| e.strip_prefix("metalhost:drivers/")).filter_map(|e| e.split_once('@')).collect();
    let Some((_, version)) = ours.first() else {
        return Err(format!("the component exports no metalhost:drivers interface (exports: {})", exports.join(", ")));
    };
    let spoken = || Contract::ALL.map(Contract::as_str).join(" and ");
    let Some(contract) = Contract::ALL.into_iter().find(|c| c.version() == *version) else {
        return Err(format!("the component was built for metalhost:drivers@{version}; this host speaks {}", spoken()));
    };
    if let Some((_, other)) = ours.iter().find(|(_, v)| v != version) {
        return Err(format!("the component exports interfaces of two contract versions ({version} and {other})"));
    }
    let implemented =
        [PluginKind::Power, PluginKind::Switch, PluginKind::Netboot].into_iter().find(|k| ours.iter().any(|(iface, _)| *iface == k.interface()));
    match implemented {
        Some(kind) if kind == declared && contract.has_world(kind) => Ok(contract),
        Some(kind) if kind == declared => Err(format!("{contract} has no {} world: build {kind} plugins against {}", kind.world(), Contract::V0_1)),
        Some(kind) => Err(format!(
            "the component implements the {} world, but the config declares a {declared} plugin ({} world)",
            kind.world(),
            declared.world()
        )),
        None => Err(format!("the component implements no driver world (it must export metalhost:drivers/{})", declared.interface())),
    }
}
