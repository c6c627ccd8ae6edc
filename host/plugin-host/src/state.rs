//! The per-call store state and the host capabilities plugins import (`exec`, `log`, `netconf`,
//! `service`). Nothing here outlives one call except the NETCONF session, which the caller owns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::netboot::metalhost::drivers::service;
use crate::bindings::power::metalhost::drivers::{exec, types};
use crate::bindings::power2::metalhost::drivers::log;
use crate::bindings::switch::metalhost::drivers::netconf;
use crate::budget::LogBudget;
use crate::confine::Confiner;
use crate::limits::Limits;
use crate::netconf_session::SharedSession;

/// Replaces real process execution in benchmarks: (program, args) → stdout.
pub type ExecStub = Arc<dyn Fn(&str, &[String]) -> String + Send + Sync>;
pub type ReloadHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

pub struct PluginState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: Limits,
    pub plugin: Arc<str>,
    pub exec_grants: Arc<BTreeMap<String, PathBuf>>,
    pub confiner: Arc<Confiner>,
    pub log_budget: LogBudget,
    pub deadline: Instant,
    pub exec_stub: Option<ExecStub>,
    pub netconf: Option<SharedSession>,
    pub reload: Option<ReloadHook>,
    /// 0.2.0 power calls: the BMC their `http` and `datagram` may reach.
    pub network: Option<crate::net::imports::CallNetwork>,
    /// Power calls: the BMC the programs this call runs may reach (`netscope/`); other calls'
    /// programs reach nothing.
    pub bmc: Option<crate::drivers::Bmc>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for PluginState {}

/// The newest contract's `log`; 0.1.0's comes here through `v0_1.rs`.
impl log::Host for PluginState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let Some(message) = self.log_budget.admit(message) else { return Ok(()) };
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

impl exec::Host for PluginState {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        files: Vec<(String, String)>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<exec::CommandOutput, exec::ExecError>> {
        if let Some(stub) = &self.exec_stub {
            let stdout = stub(&program, &args);
            return Ok(Ok(exec::CommandOutput { status: 0, stdout, stderr: String::new() }));
        }
        let started = Instant::now();
        let reach = match &self.bmc {
            Some(bmc) => match crate::netscope::resolve(&bmc.host, bmc.port).await {
                Ok(addrs) => addrs,
                Err(e) => return Ok(Err(exec::ExecError::SpawnFailed(format!("the call's BMC {} does not resolve: {e}", bmc.host)))),
            },
            None => Vec::new(),
        };
        let outcome = crate::exec::run(crate::exec::Request {
            plugin: &self.plugin,
            granted: &self.exec_grants,
            program: &program,
            args: &args,
            env: &env,
            files: &files,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            deadline: self.deadline,
            confiner: &self.confiner,
            reach: &reach,
        })
        .await;
        tracing::debug!(plugin = &*self.plugin, %program, elapsed_ms = started.elapsed().as_millis() as u64, ok = outcome.is_ok(), "exec");
        Ok(match outcome {
            Ok(out) => Ok(exec::CommandOutput { status: out.status, stdout: out.stdout, stderr: out.stderr }),
            Err(crate::exec::ExecError::NotPermitted(m)) => Err(exec::ExecError::NotPermitted(m)),
            Err(crate::exec::ExecError::TimedOut(m)) => Err(exec::ExecError::TimedOut(m)),
            Err(crate::exec::ExecError::SpawnFailed(m)) => Err(exec::ExecError::SpawnFailed(m)),
        })
    }
}

impl netconf::Host for PluginState {
    async fn server_capabilities(&mut self) -> wasmtime::Result<Result<Vec<String>, netconf::NetconfError>> {
        let Some(session) = self.netconf.clone() else {
            return Ok(Err(netconf::NetconfError::Transport("no switch is attached to this call".into())));
        };
        Ok(session.capabilities().await.map_err(to_wit_error))
    }

    async fn rpc(&mut self, operation: String) -> wasmtime::Result<Result<String, netconf::NetconfError>> {
        let Some(session) = self.netconf.clone() else {
            return Ok(Err(netconf::NetconfError::Transport("no switch is attached to this call".into())));
        };
        Ok(session.rpc(&operation).await.map_err(to_wit_error))
    }
}

fn to_wit_error(e: metalhost_netconf::Error) -> netconf::NetconfError {
    use metalhost_netconf::Error as E;
    match e {
        E::Unreachable { .. } => netconf::NetconfError::Unreachable(e.to_string()),
        E::AuthFailed { .. } | E::HostKeyMismatch { .. } => netconf::NetconfError::AuthFailed(e.to_string()),
        _ => netconf::NetconfError::Transport(e.to_string()),
    }
}

impl service::Host for PluginState {
    async fn reload(&mut self) -> wasmtime::Result<Result<(), String>> {
        Ok(match &self.reload {
            Some(hook) => hook(),
            None => Ok(()),
        })
    }
}
