//! Generated guest bindings of the `netboot-backend` world of `wit/drivers.wit`, sharing `types`
//! and `log` with the power crate.

wit_bindgen::generate!({
    world: "netboot-backend",
    path: "../../../../wit/drivers.wit",
    pub_export_macro: true,
    default_bindings_module: "metalhost_plugin_sdk::bindings::netboot",
    with: {
        "metalhost:drivers/types@0.1.0": metalhost_plugin_sdk_power::metalhost::drivers::types,
        "metalhost:drivers/log@0.1.0": metalhost_plugin_sdk_power::metalhost::drivers::log,
    },
});
