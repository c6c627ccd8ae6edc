//! Generated guest bindings of the `power-manager` world of `wit/drivers-0.2.0.wit`: power
//! plugins that reach their BMC through the host's `http` and `datagram` capabilities.
//!
//! A crate of its own, like the 0.1.0 worlds: its export macro lives at the crate root, and its
//! `types`/`log` are those of 0.2.0, distinct from 0.1.0's.

wit_bindgen::generate!({
    world: "power-manager",
    path: "../../../../wit/drivers-0.2.0.wit",
    pub_export_macro: true,
    default_bindings_module: "metalhost_plugin_sdk::bindings::power2",
});
