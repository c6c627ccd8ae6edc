//! A power plugin that misbehaves on purpose, for the sandbox tests. Its config key `mode` picks
//! what `get-power-state` does: loop forever, allocate past any cap, read /etc/passwd, run a
//! program it was not granted, or panic. `mode = "good"` answers `on`.

use std::cell::RefCell;

wit_bindgen::generate!({ world: "power-manager", path: "../../../wit/drivers.wit" });

use exports::metalhost::drivers::{plugin, power};
use metalhost::drivers::exec;
use metalhost::drivers::types::{BmcAddress, BootDevice, Credentials, DriverError, PluginInfo, PluginKind, PowerAction, PowerState};

thread_local! {
    static MODE: RefCell<String> = RefCell::new("good".into());
}

struct Evil;

impl plugin::Guest for Evil {
    fn info() -> PluginInfo {
        PluginInfo { name: "evil".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Power }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), DriverError> {
        for (k, v) in config {
            if k != "mode" {
                return Err(DriverError::InvalidConfig(format!("unknown key {k:?}")));
            }
            MODE.with(|m| *m.borrow_mut() = v);
        }
        Ok(())
    }
}

impl power::Guest for Evil {
    fn get_power_state(_bmc: BmcAddress, _creds: Credentials) -> Result<PowerState, DriverError> {
        let mode = MODE.with(|m| m.borrow().clone());
        match mode.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            "read-passwd" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Err(DriverError::CommandFailed(format!("read /etc/passwd: {} bytes", text.len()))),
                Err(e) => Err(DriverError::Unsupported(format!("cannot read /etc/passwd: {e}"))),
            },
            "exec" => match exec::run("sh", &["-c".into(), "id".into()], &[], &[], 1000) {
                Ok(out) => Err(DriverError::CommandFailed(format!("ran sh: {}", out.stdout))),
                Err(exec::ExecError::NotPermitted(m)) => Err(DriverError::CommandFailed(format!("not permitted: {m}"))),
                Err(e) => Err(DriverError::CommandFailed(format!("{e:?}"))),
            },
            "panic" => panic!("evil plugin panics on purpose"),
            _ => Ok(PowerState::On),
        }
    }

    fn set_power_state(_: BmcAddress, _: Credentials, _: PowerAction) -> Result<(), DriverError> {
        Ok(())
    }

    fn set_boot_device(_: BmcAddress, _: Credentials, _: BootDevice, _: bool) -> Result<(), DriverError> {
        Ok(())
    }
}

export!(Evil);
