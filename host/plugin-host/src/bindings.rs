//! All host bindings of the contract, generated in one place: the three worlds of the frozen
//! `wit/drivers.wit` (0.1.0), which share `types` and `log` so one set of Rust types serves every
//! plugin kind, and the power world of the frozen `wit/drivers-0.2.0.wit` (`power2`). Each version
//! is read from its own file: a WIT directory holds one package only.

pub mod power {
    wasmtime::component::bindgen!({
        world: "power-manager",
        path: "../../wit/drivers.wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub mod switch {
    wasmtime::component::bindgen!({
        world: "switch-manager",
        path: "../../wit/drivers.wit",
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
        path: "../../wit/drivers.wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "metalhost:drivers/types": super::power::metalhost::drivers::types,
            "metalhost:drivers/log": super::power::metalhost::drivers::log,
        },
    });
}

/// `metalhost:drivers@0.2.0`: power plugins reaching their BMC through host-scoped `http` and
/// `datagram` instead of `exec`.
pub mod power2 {
    wasmtime::component::bindgen!({
        world: "power-manager",
        path: "../../wit/drivers-0.2.0.wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
