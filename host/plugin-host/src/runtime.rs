//! The engine, the set of loaded plugins (each loaded by `load.rs`), and per-call stores. How a
//! call runs is `call.rs`; how failures are classified, `classify.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::bindings::{netboot, switch};
use crate::budget::LogBudget;
use crate::confine::{Confiner, ExecPolicy};
use crate::contract::Contract;
use crate::drivers::Bmc;
use crate::error::{CallError, CallFailure};
use crate::limits::Limits;
use crate::load::LoadError;
use crate::net::BmcScope;
use crate::net::http::HttpClient;
use crate::net::imports::CallNetwork;
use crate::netconf_session::SharedSession;
use crate::power::PowerPre;
use crate::spec::{PluginKind, PluginSpec, PluginStatus};
use crate::state::{ExecStub, PluginState, ReloadHook};
/// The largest `memory_mb` a plugin may have: each pooled instance slot is sized for it.
pub const MAX_MEMORY_MB: u64 = 1024;
/// Instances that can exist at once across all plugin calls (the pool's slots).
const POOL_INSTANCES: u32 = 512;
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A plugin ready to instantiate, by kind.
#[derive(Clone)]
pub(crate) enum Pre {
    /// Either contract, spoken to in the newest one's terms (`power.rs`).
    Power(PowerPre),
    Switch(switch::SwitchManagerPre<PluginState>),
    Netboot(netboot::NetbootBackendPre<PluginState>),
}

#[derive(Clone)]
pub(crate) struct Loaded {
    pub name: Arc<str>,
    pub spec: Arc<PluginSpec>,
    pub grants: Arc<BTreeMap<String, PathBuf>>,
    /// Programs it may name as a console (0.2.0 power plugins).
    pub console_grants: Arc<BTreeMap<String, PathBuf>>,
    pub config: Arc<Vec<(String, String)>>,
    pub pre: Pre,
    /// The contract the component was built for.
    pub contract: Contract,
    /// 0.2.0 power plugins: the client their `http` calls go through.
    pub http: Option<Arc<HttpClient>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start the wasm engine: {0}")]
    Engine(String),
    #[error("cannot create the component cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("invalid [exec] policy: {0}")]
    ExecPolicy(String),
}

pub struct PluginHost {
    pub(crate) engine: Engine,
    pub(crate) cache_dir: PathBuf,
    pub(crate) confiner: Arc<Confiner>,
    loaded: RwLock<HashMap<String, Loaded>>,
    statuses: RwLock<Vec<PluginStatus>>,
    exec_stub: RwLock<Option<ExecStub>>,
    reload: RwLock<Option<ReloadHook>>,
}

impl PluginHost {
    /// A runtime with the default `[exec]` policy (user nobody, Landlock required).
    pub fn new(cache_dir: &Path) -> Result<PluginHost, RuntimeError> {
        PluginHost::with_exec_policy(cache_dir, &ExecPolicy::default())
    }

    /// The runtime with an earlier allocator set-up: what benchmarks measure the current one against.
    #[doc(hidden)]
    pub fn with_allocation(cache_dir: &Path, allocation: Allocation) -> Result<PluginHost, RuntimeError> {
        PluginHost::build(cache_dir, &ExecPolicy::default(), allocation)
    }

    /// One engine with epoch interruption, ticked by a background thread for as long as it lives;
    /// every program a plugin runs is confined by `policy`.
    pub fn with_exec_policy(cache_dir: &Path, policy: &ExecPolicy) -> Result<PluginHost, RuntimeError> {
        PluginHost::build(cache_dir, policy, Allocation::Pooled)
    }

    fn build(cache_dir: &Path, policy: &ExecPolicy, allocation: Allocation) -> Result<PluginHost, RuntimeError> {
        let confiner = Confiner::new(policy).map_err(RuntimeError::ExecPolicy)?;
        if let (None, Some(reason)) = (confiner.refusal(), confiner.scope_missing()) {
            tracing::error!(
                "exec confinement: NO NETWORK SCOPE ({reason}); programs of plugins with exec or console grants reach ANY host ([exec] allow_unscoped = true)"
            );
        }
        match confiner.refusal() {
            Some(reason) => tracing::error!("exec confinement: {reason}"),
            None if confiner.summary().landlock_abi.is_none() => {
                tracing::error!(
                    "exec confinement: NO LANDLOCK on this kernel; plugins with exec grants run UNCONFINED ([exec] allow_unconfined = true)"
                )
            }
            None => tracing::info!("exec confinement: {}", confiner.summary().summary()),
        }
        let mut config = Config::new();
        config.epoch_interruption(true);
        match allocation {
            Allocation::OnDemand => {}
            Allocation::PooledMadvise => {
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(allocation)));
            }
            Allocation::Pooled => {
                // Plugins are synchronous components driven through `call_async` fibers; the
                // component-model-async machinery a store otherwise sets up (and tears down on drop)
                // is unused: a quarter of a call's cost (bench/README.md, issue 14).
                config.concurrency_support(false);
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(allocation)));
            }
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        std::fs::create_dir_all(cache_dir).map_err(|source| RuntimeError::Cache { path: cache_dir.to_owned(), source })?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("epoch thread: {e}")))?;
        Ok(PluginHost {
            engine,
            cache_dir: cache_dir.to_owned(),
            confiner: Arc::new(confiner),
            loaded: RwLock::default(),
            statuses: RwLock::default(),
            exec_stub: RwLock::default(),
            reload: RwLock::default(),
        })
    }

    /// Benchmarks replace process execution with a function.
    #[doc(hidden)]
    pub fn set_exec_stub(&self, stub: ExecStub) {
        if let Ok(mut s) = self.exec_stub.write() {
            *s = Some(stub);
        }
    }

    /// What `service.reload` does for netboot plugins (the daemon SIGHUPs its dnsmasq).
    pub fn set_netboot_reload(&self, hook: ReloadHook) {
        if let Ok(mut r) = self.reload.write() {
            *r = Some(hook);
        }
    }

    /// Loads every plugin; one that fails is reported, never fatal. The result replaces what an
    /// earlier `load` set up, so what is callable always matches `status()`.
    pub async fn load(&self, specs: &[PluginSpec]) -> Vec<PluginStatus> {
        let mut statuses = Vec::new();
        let mut loaded = HashMap::new();
        for spec in specs {
            let outcome = if loaded.contains_key(&spec.name) || statuses.iter().any(|s: &PluginStatus| s.name == spec.name) {
                Err(LoadError::DuplicateName(spec.name.clone()))
            } else {
                self.load_one(spec).await
            };
            let status = match outcome {
                Ok((plugin, status)) => {
                    loaded.insert(spec.name.clone(), plugin);
                    status
                }
                Err(reason) => {
                    tracing::warn!(plugin = %spec.name, "plugin not loaded: {reason}");
                    PluginStatus {
                        name: spec.name.clone(),
                        kind: spec.kind,
                        version: String::new(),
                        sha256: reason.sha256().map(str::to_owned),
                        grants: None,
                        contract: String::new(),
                        confinement: None,
                        loaded: false,
                        error: Some(reason.to_string()),
                    }
                }
            };
            statuses.push(status);
        }
        if let Ok(mut map) = self.loaded.write() {
            *map = loaded;
        }
        if let Ok(mut s) = self.statuses.write() {
            s.clone_from(&statuses);
        }
        statuses
    }

    pub fn status(&self) -> Vec<PluginStatus> {
        self.statuses.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn confiner(&self) -> &Confiner {
        &self.confiner
    }

    pub(crate) fn get(&self, name: &str, kind: PluginKind, operation: &'static str) -> Result<Loaded, CallError> {
        let found = self.loaded.read().ok().and_then(|m| m.get(name).cloned());
        match found {
            Some(l) if l.spec.kind == kind => Ok(l),
            Some(l) => Err(CallError {
                plugin: name.to_owned(),
                operation,
                failure: CallFailure::NotLoaded(format!("it is a {} plugin, not a {kind} plugin", l.spec.kind)),
            }),
            None => {
                let reason = self
                    .status()
                    .into_iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.error)
                    .unwrap_or_else(|| "no such plugin in the config".to_owned());
                Err(CallError { plugin: name.to_owned(), operation, failure: CallFailure::NotLoaded(reason) })
            }
        }
    }

    /// A fresh store: empty WASI context (plus granted dirs), memory cap, wall-clock deadline.
    /// `bmc`: the address a 0.2.0 power call's `http` and `datagram` may reach.
    pub(crate) fn store(&self, plugin: &Loaded, netconf: Option<SharedSession>, bmc: Option<&Bmc>) -> Result<Store<PluginState>, String> {
        let mut wasi = WasiCtx::builder();
        for dir in &plugin.spec.dirs {
            let guest = dir.to_string_lossy().into_owned();
            wasi.preopened_dir(dir, &guest, FsPerms::ReadWrite).map_err(|e| format!("preopen {}: {e}", dir.display()))?;
        }
        let memory = usize::try_from(plugin.spec.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let limits = Limits::new(memory);
        let deadline = Instant::now() + Duration::from_secs(plugin.spec.call_timeout_s);
        let state = PluginState {
            wasi: wasi.build(),
            table: Default::default(),
            limits,
            plugin: plugin.name.clone(),
            exec_grants: plugin.grants.clone(),
            confiner: self.confiner.clone(),
            log_budget: LogBudget::new(plugin.name.clone()),
            deadline,
            exec_stub: self.exec_stub.read().ok().and_then(|s| s.clone()),
            netconf,
            reload: self.reload.read().ok().and_then(|r| r.clone()),
            network: match (bmc, &plugin.http) {
                (Some(bmc), Some(http)) => Some(CallNetwork { scope: BmcScope { host: bmc.host.clone(), port: bmc.port }, http: http.clone() }),
                _ => None,
            },
            bmc: bmc.cloned(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| Ok(if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) }));
        Ok(store)
    }
}

/// How instances get their memory, tables and stacks. Only `Pooled` serves plugins; the others
/// are the baselines `benches/runtime.rs` measures it against in the same run.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// wasmtime's default: every call maps and unmaps its own memory (issue 3).
    OnDemand,
    /// Pooled slots given back with `madvise` after every call (issue 14's first step).
    PooledMadvise,
    /// Pooled slots whose dirty pages are found with `PAGEMAP_SCAN` and restored in place.
    Pooled,
}

/// A fresh instance per call: pooled slots (memory, tables, stacks) are reused instead of mapped
/// and unmapped every time. Slots are sized for the largest plugin memory cap; the per-plugin cap
/// is the store limiter's.
fn pool_config(allocation: Allocation) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    let max_memory = usize::try_from(MAX_MEMORY_MB << 20).unwrap_or(usize::MAX);
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(max_memory)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .max_core_instances_per_component(32);
    if allocation == Allocation::PooledMadvise {
        // Nothing kept resident: every page a call touched is given back with `madvise`, which
        // costs a TLB shootdown now and a page fault per page on the next call.
        pool.linear_memory_keep_resident(0).table_keep_resident(0);
        return pool;
    }
    // With `PAGEMAP_SCAN` (Linux 6.7+; wasmtime falls back to `madvise` without it) a freed slot's
    // dirty pages are found and copied back from the module's image in place: no syscall per
    // page, no TLB shootdown, no fault on the next call. Up to `KEEP_RESIDENT` stays resident per
    // warm slot, and at most `WARM_SLOTS` slots stay warm, which bounds what the pool holds.
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT_TABLES)
        .max_unused_warm_slots(WARM_SLOTS);
    pool
}

/// Bytes of a warm slot's linear memory kept resident (and restored in place) between calls.
const KEEP_RESIDENT: usize = 2 << 20;
const KEEP_RESIDENT_TABLES: usize = 64 << 10;
/// Freed slots that keep their module's image and pages for the next call of the same plugin.
const WARM_SLOTS: u32 = 32;
