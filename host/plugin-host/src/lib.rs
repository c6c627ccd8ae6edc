//! The plugin runtime: loads driver components under the operator's grants and calls them in a
//! fresh, bounded sandbox each time (ARCHITECTURE.md, "plugin-host").
//!
//! One `Engine`; each component compiled once and cached on disk; an `InstancePre` per plugin; a
//! new `Store` per call with an empty WASI context, a memory cap and a wall-clock epoch deadline.
//! A trap, a missed deadline or a memory overrun fails only that call.

mod bindings;
mod budget;
mod cache;
mod classify;
mod confine;
mod console;
mod drivers;
mod error;
mod exec;
mod net;
mod netconf_session;
mod observe;
mod runtime;
mod spec;
mod state;
mod world;

pub use budget::{ERROR_CAP, LOG_CALL_BUDGET, LOG_LINE_CAP};
pub use confine::{Confinement, Confiner, ExecPolicy};
pub use console::{ConsoleCommand, ConsoleError, ConsoleProcess};
pub use drivers::{
    Bmc, BootDevice, BootEntry, BootMode, Credentials, NetbootDriver, PowerAction, PowerDriver, PowerState, SwitchDescription, SwitchDriver,
    SwitchSession, Vlan,
};
pub use error::{CallError, CallFailure, CallResult, DriverError};
pub use net::{NetworkSpec, Scheme};
pub use runtime::{Allocation, CONTRACT, CONTRACT_0_2, CONTRACTS, MAX_MEMORY_MB, PluginHost, RuntimeError};
pub use spec::{Grants, PluginKind, PluginSpec, PluginStatus};
pub use state::{ExecStub, ReloadHook};
