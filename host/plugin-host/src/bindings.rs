//! All host bindings of `wit/drivers.wit`, generated in one place. The three worlds share the
//! `types` and `log` interfaces so one set of Rust types serves every plugin kind.

pub mod power {
    wasmtime::component::bindgen!({
        world: "power-manager",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub mod switch {
    wasmtime::component::bindgen!({
        world: "switch-manager",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "metalhost:drivers/types": super::power::metalhost::drivers::types,
            "metalhost:drivers/log": super::power::metalhost::drivers::log,
        },
    });
}

pub mod netboot {
    wasmtime::component::bindgen!({
        world: "netboot-backend",
        path: "../../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "metalhost:drivers/types": super::power::metalhost::drivers::types,
            "metalhost:drivers/log": super::power::metalhost::drivers::log,
        },
    });
}

pub use power::metalhost::drivers::types;
