//! One plugin call: a fresh store, a fresh instance, `configure`, then the export, under the call's
//! deadline, in a `plugin_call` span, counted by `observe.rs`; a failure named by `classify.rs`.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;
use wasmtime::Store;

use crate::classify::{classify, driver, trap};
use crate::drivers::Bmc;
use crate::error::{CallError, CallFailure, CallResult, DriverError};
use crate::netconf_session::SharedSession;
use crate::runtime::{Loaded, PluginHost};
use crate::state::PluginState;

/// How long past its deadline a call stuck in a host import is given before it is dropped.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// What one call is: its plugin, its operation, and what its store may reach.
pub(crate) struct Call<'a> {
    pub host: &'a PluginHost,
    pub plugin: &'a Loaded,
    pub operation: &'static str,
    /// Switch calls: the NETCONF session the calls about one switch share.
    pub netconf: Option<SharedSession>,
    /// Power calls: the BMC a 0.2.0 plugin's `http` and `datagram` may reach.
    pub bmc: Option<&'a Bmc>,
}

impl Call<'_> {
    /// A fresh store for this call (`PluginHost::store`).
    pub fn store(&self) -> CallResult<Store<PluginState>> {
        self.host.store(self.plugin, self.netconf.clone(), self.bmc).map_err(|e| trap(self.plugin, self.operation, e))
    }

    /// A wasmtime error of this call's store, named (deadline, memory cap, trap).
    pub fn failed(&self, e: wasmtime::Error, store: &Store<PluginState>) -> CallError {
        classify(self.plugin, self.operation, e, store.data().limits.memory_refused())
    }

    /// What `configure` answered: a trap is this call's, a refusal is `configure`'s.
    pub fn configured<E: Into<DriverError>>(&self, outcome: wasmtime::Result<Result<(), E>>, store: &Store<PluginState>) -> CallResult<()> {
        outcome.map_err(|e| self.failed(e, store))?.map_err(|e| driver(self.plugin, "configure", e))
    }

    /// What the export answered: a trap, the driver's own error, or its value.
    pub fn settle<T, E: Into<DriverError>>(&self, outcome: wasmtime::Result<Result<T, E>>, store: &Store<PluginState>) -> CallResult<T> {
        outcome.map_err(|e| self.failed(e, store))?.map_err(|e| driver(self.plugin, self.operation, e))
    }

    /// What the plugin is not asked because its contract has no words for it (`v0_1.rs`): said
    /// before anything runs, as the driver's `unsupported`.
    pub fn unsupported(&self, message: String) -> CallError {
        driver(self.plugin, self.operation, DriverError::Unsupported(message))
    }

    /// Runs `call` in the `plugin_call` span under the plugin's deadline, and records it.
    pub async fn instrument<T>(&self, call: impl Future<Output = CallResult<T>>) -> CallResult<T> {
        let (plugin, operation) = (self.plugin, self.operation);
        let span = tracing::info_span!(
            "plugin_call",
            plugin = &*plugin.name,
            interface = plugin.spec.kind.interface(),
            operation,
            elapsed_us = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            // The epoch deadline stops guest code; this also bounds time spent inside host imports
            // (a NETCONF round trip, the reload hook), a little later so the epoch fires first.
            let budget = Duration::from_secs(plugin.spec.call_timeout_s) + DEADLINE_GRACE;
            let outcome = match tokio::time::timeout(budget, call).await {
                Ok(outcome) => outcome,
                Err(_) => Err(CallError { plugin: plugin.name.to_string(), operation, failure: CallFailure::Deadline(plugin.spec.call_timeout_s) }),
            };
            let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::Span::current().record("elapsed_us", elapsed_us);
            match &outcome {
                Ok(_) => tracing::debug!(elapsed_us, "plugin call done"),
                Err(e) => tracing::debug!(elapsed_us, "plugin call failed: {e}"),
            }
            crate::observe::call(&plugin.name, operation, started.elapsed(), outcome.as_ref().err());
            outcome
        }
        .instrument(span)
        .await
    }
}

/// Runs one call (`$call`, a [`Call`]) on a fresh instance of `$pre`: instantiates it, calls
/// `configure`, then `$body` with the store and instance bound, which evaluates to what the
/// export returned (`wasmtime::Result<Result<T, E>>`, `E` a contract's `driver-error`).
macro_rules! with_instance {
    ($call:expr, $pre:expr, |$store:ident, $inst:ident| $body:expr) => {{
        let call: &$crate::call::Call<'_> = $call;
        call.instrument(async {
            let mut store = call.store()?;
            let $inst = $pre.instantiate_async(&mut store).await.map_err(|e| call.failed(e, &store))?;
            let configured = $inst.metalhost_drivers_plugin().call_configure(&mut store, &call.plugin.config).await;
            call.configured(configured, &store)?;
            let outcome = {
                let $store = &mut store;
                $body
            };
            call.settle(outcome, &store)
        })
        .await
    }};
}

pub(crate) use with_instance;
