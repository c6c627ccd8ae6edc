//! The plugin runtime: loads driver components under the operator's grants and calls them in a
//! fresh, bounded sandbox each time (ARCHITECTURE.md, "plugin-host").
//!
//! One `Engine`; each component compiled once and cached on disk; an `InstancePre` per plugin; a
//! new `Store` per call with an empty WASI context, a memory cap and a wall-clock epoch deadline.
//! A trap, a missed deadline or a memory overrun fails only that call. Inside, the runtime speaks the
//! newest contract's types; a 0.1.0 component is called through its adapter (`v0_1.rs`).

mod bindings;
mod budget;
mod cache;
mod call;
mod classify;
mod confine;
mod console;
mod console_args;
mod contract;
mod drivers;
mod error;
mod exec;
mod limits;
mod load;
mod net;
mod netconf_session;
mod netscope;
mod observe;
mod power;
mod runtime;
mod spec;
mod state;
mod v0_1;
mod world;

pub use budget::{ERROR_CAP, LOG_CALL_BUDGET, LOG_LINE_CAP};
pub use confine::{Confinement, Confiner, ExecPolicy};
pub use console::{ConsoleCommand, ConsoleError, ConsoleProcess};
pub use contract::Contract;
pub use drivers::{
    Bmc, BootDevice, BootEntry, BootMode, Credentials, NetbootDriver, PowerAction, PowerDriver, PowerState, SwitchDescription, SwitchDriver,
    SwitchSession, Vlan, console_refusal,
};
pub use error::{CallError, CallFailure, CallResult, DriverError};
pub use net::{NetworkSpec, Scheme};
pub use netscope::{CallScope, ScopeError};
pub use runtime::{Allocation, MAX_MEMORY_MB, PluginHost, RuntimeError};
pub use spec::{Grants, PluginKind, PluginSpec, PluginStatus};
pub use state::{ExecStub, ReloadHook};
