//! Generated guest bindings of the `power-manager` world of `wit/drivers.wit`. Its `types` and
//! `log` modules are the ones the other two world crates reuse, so one `DriverError` serves all.
//!
//! One crate per world because wit-bindgen's public export macros live at the crate root, and the
//! three worlds all export `plugin`: generated side by side, their macros would collide.

wit_bindgen::generate!({
    world: "power-manager",
    path: "../../../../wit/drivers.wit",
    pub_export_macro: true,
    default_bindings_module: "metalhost_plugin_sdk::bindings::power",
});
