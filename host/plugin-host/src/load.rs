//! Loading one `[[plugin]]` entry: the sha256 pin, grants, compile (`cache.rs`), world and contract
//! check (`world.rs`), the linker of its world, and a first `info` and `configure`. Why a plugin
//! did not load is a [`LoadError`]; its text is what `plugin list` shows the operator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};

use crate::bindings::{netboot, power, power2, switch};
use crate::budget::cap;
use crate::cache::compile;
use crate::call::Call;
use crate::contract::Contract;
use crate::error::CallError;
use crate::net::http::HttpClient;
use crate::power::PowerPre;
use crate::runtime::{Loaded, MAX_MEMORY_MB, PluginHost, Pre};
use crate::spec::{Grants, PluginKind, PluginSpec, PluginStatus};
use crate::state::PluginState;
use crate::world::check_world;

/// Why a `[[plugin]]` entry did not load.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("another [[plugin]] entry already uses the name {0:?}")]
    DuplicateName(String),
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("reading {} failed: {error}", path.display())]
    ReadTask { path: PathBuf, error: tokio::task::JoinError },
    /// Refused once the file was read: the status still names its sha256.
    #[error("{refusal}")]
    Refused { sha256: String, refusal: Refusal },
}

impl LoadError {
    /// The sha256 of the component's file, when it was read.
    pub(crate) fn sha256(&self) -> Option<&str> {
        match self {
            LoadError::Refused { sha256, .. } => Some(sha256),
            _ => None,
        }
    }
}

/// Why a component that was read is not loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("sha256 pin mismatch for {}: expected {pin}, got {sha256}", path.display())]
    PinMismatch { path: PathBuf, pin: String, sha256: String },
    /// Exec or console grants on a host that cannot confine them (`confine.rs`).
    #[error("{0}")]
    Unconfined(String),
    /// A granted program that cannot be resolved (`exec.rs`).
    #[error("{0}")]
    Grant(String),
    #[error("granted dir {} does not exist", .0.display())]
    MissingDir(PathBuf),
    #[error("memory_mb = {0} is more than this host allows a plugin ({MAX_MEMORY_MB})")]
    MemoryCap(u64),
    #[error("compiling failed: {0}")]
    CompileTask(tokio::task::JoinError),
    #[error("not a valid component: {0}")]
    NotAComponent(wasmtime::Error),
    /// Another world, kind or contract version than the config says (`world.rs`).
    #[error("{0}")]
    World(String),
    #[error("network settings are for {} power plugins; this component was built for {} (it has no network)", Contract::V0_2, Contract::V0_1)]
    NetworkOnV0_1,
    #[error("building the HTTP client failed: {0}")]
    HttpClientTask(tokio::task::JoinError),
    #[error("invalid network settings: {0}")]
    Network(String),
    #[error("console grants are for {} power plugins, which describe their consoles; this is a {kind} plugin built for {contract}", Contract::V0_2)]
    ConsoleGrants { kind: PluginKind, contract: Contract },
    #[error("does not fit the {} world of {contract}: {error}", kind.world())]
    Link { kind: PluginKind, contract: Contract, error: wasmtime::Error },
    /// The first `info` or `configure` failed.
    #[error("{0}")]
    Info(CallError),
    #[error("the plugin says it is a {said} plugin, the config declares {declared}")]
    KindMismatch { said: PluginKind, declared: PluginKind },
}

/// Programs a plugin may run (`exec`) and name as its console, by name.
struct Granted {
    exec: BTreeMap<String, PathBuf>,
    console: BTreeMap<String, PathBuf>,
}

impl PluginHost {
    pub(crate) async fn load_one(&self, spec: &PluginSpec) -> Result<(Loaded, PluginStatus), LoadError> {
        // Reading and compiling take milliseconds to seconds: keep them off the async workers.
        let path = spec.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            std::fs::read(&path).map(|bytes| {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                (bytes, sha256)
            })
        })
        .await;
        let (bytes, sha256) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => return Err(LoadError::Read { path: spec.path.clone(), error }),
            Err(error) => return Err(LoadError::ReadTask { path: spec.path.clone(), error }),
        };
        self.load_bytes(spec, bytes, &sha256).await.map_err(|refusal| LoadError::Refused { sha256, refusal })
    }

    async fn load_bytes(&self, spec: &PluginSpec, bytes: Vec<u8>, sha256: &str) -> Result<(Loaded, PluginStatus), Refusal> {
        if let Some(pin) = &spec.sha256
            && !pin.eq_ignore_ascii_case(sha256)
        {
            return Err(Refusal::PinMismatch { path: spec.path.clone(), pin: pin.clone(), sha256: sha256.to_owned() });
        }
        let granted = self.grants(spec)?;
        let (engine, cache_dir, key) = (self.engine.clone(), self.cache_dir.clone(), sha256.to_owned());
        let component = tokio::task::spawn_blocking(move || compile(&engine, &cache_dir, &bytes, &key))
            .await
            .map_err(Refusal::CompileTask)?
            .map_err(Refusal::NotAComponent)?;
        let contract = check_world(&self.engine, &component, spec.kind).map_err(Refusal::World)?;
        let http = http_client(spec, contract).await?;
        if !granted.console.is_empty() && (contract != Contract::V0_2 || spec.kind != PluginKind::Power) {
            return Err(Refusal::ConsoleGrants { kind: spec.kind, contract });
        }
        let pre = self.instance_pre(&component, spec.kind, contract).map_err(|error| Refusal::Link { kind: spec.kind, contract, error })?;
        let loaded = Loaded {
            name: spec.name.as_str().into(),
            spec: Arc::new(spec.clone()),
            grants: Arc::new(granted.exec.clone()),
            console_grants: Arc::new(granted.console.clone()),
            config: Arc::new(spec.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            pre,
            contract,
            http,
        };
        // Validate once: the plugin must say what it is, and accept its config.
        let (version, said) = self.info(&loaded).await.map_err(Refusal::Info)?;
        if said != spec.kind {
            return Err(Refusal::KindMismatch { said, declared: spec.kind });
        }
        let status = PluginStatus {
            name: spec.name.clone(),
            kind: spec.kind,
            // A plugin's own text is cut like its errors.
            version: cap(version, 128),
            confinement: (!(granted.exec.is_empty() && granted.console.is_empty())).then(|| self.confiner.summary().clone()),
            sha256: Some(sha256.to_owned()),
            grants: Some(Grants {
                exec: granted.exec,
                console: granted.console,
                dirs: spec.dirs.clone(),
                memory_mb: spec.memory_mb,
                call_timeout_s: spec.call_timeout_s,
                network: (contract == Contract::V0_2)
                    .then(|| format!("the call's BMC only; {}", spec.network.clone().unwrap_or_default().describe())),
            }),
            contract: contract.to_string(),
            loaded: true,
            error: None,
        };
        Ok((loaded, status))
    }

    /// The entry's grants, resolved, and the limits it asks for, checked against this host's.
    fn grants(&self, spec: &PluginSpec) -> Result<Granted, Refusal> {
        if !(spec.exec.is_empty() && spec.console.is_empty())
            && let Some(reason) = self.confiner.refusal()
        {
            return Err(Refusal::Unconfined(reason));
        }
        let resolve = |programs: &[String]| programs.iter().map(|p| crate::exec::resolve(p).map_err(Refusal::Grant)).collect::<Result<_, _>>();
        let granted = Granted { exec: resolve(&spec.exec)?, console: resolve(&spec.console)? };
        if let Some(dir) = spec.dirs.iter().find(|d| !d.is_dir()) {
            return Err(Refusal::MissingDir(dir.clone()));
        }
        if spec.memory_mb > MAX_MEMORY_MB {
            return Err(Refusal::MemoryCap(spec.memory_mb));
        }
        Ok(granted)
    }

    /// Only the imports of the plugin's own world are in its linker, plus WASI.
    fn instance_pre(&self, component: &Component, kind: PluginKind, contract: Contract) -> wasmtime::Result<Pre> {
        let mut linker: Linker<PluginState> = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Ok(match (contract, kind) {
            (Contract::V0_2, _) => {
                power2::PowerManager::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                Pre::Power(PowerPre::V0_2(power2::PowerManagerPre::new(linker.instantiate_pre(component)?)?))
            }
            (Contract::V0_1, PluginKind::Power) => {
                power::PowerManager::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                Pre::Power(PowerPre::V0_1(power::PowerManagerPre::new(linker.instantiate_pre(component)?)?))
            }
            (Contract::V0_1, PluginKind::Switch) => {
                switch::SwitchManager::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                Pre::Switch(switch::SwitchManagerPre::new(linker.instantiate_pre(component)?)?)
            }
            (Contract::V0_1, PluginKind::Netboot) => {
                netboot::NetbootBackend::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                Pre::Netboot(netboot::NetbootBackendPre::new(linker.instantiate_pre(component)?)?)
            }
        })
    }

    /// A fresh instance's `info` (its version and kind), then `configure` with its config.
    async fn info(&self, plugin: &Loaded) -> Result<(String, PluginKind), CallError> {
        let call = Call { host: self, plugin, operation: "info", netconf: None, bmc: None };
        let configure = Call { host: self, plugin, operation: "configure", netconf: None, bmc: None };
        let mut store = call.store()?;
        // Every world exports the same `plugin` interface; each has its own generated types.
        macro_rules! ask {
            ($pre:expr) => {{
                let i = $pre.instantiate_async(&mut store).await.map_err(|e| call.failed(e, &store))?;
                let info = i.metalhost_drivers_plugin().call_info(&mut store).await.map_err(|e| call.failed(e, &store))?;
                let configured = i.metalhost_drivers_plugin().call_configure(&mut store, &plugin.config).await;
                configure.configured(configured, &store)?;
                (info.version, PluginKind::from(info.kind))
            }};
        }
        Ok(match &plugin.pre {
            Pre::Power(PowerPre::V0_2(pre)) => ask!(pre),
            Pre::Power(PowerPre::V0_1(pre)) => ask!(pre),
            Pre::Switch(pre) => ask!(pre),
            Pre::Netboot(pre) => ask!(pre),
        })
    }
}

/// The client a 0.2.0 power plugin's `http` goes through; a 0.1.0 plugin has no network.
async fn http_client(spec: &PluginSpec, contract: Contract) -> Result<Option<Arc<HttpClient>>, Refusal> {
    match (&spec.network, contract) {
        (Some(_), Contract::V0_1) => Err(Refusal::NetworkOnV0_1),
        (None, Contract::V0_1) => Ok(None),
        (network, Contract::V0_2) => {
            let network = network.clone().unwrap_or_default();
            if network.insecure {
                tracing::warn!(plugin = %spec.name, "BMC certificates are not verified for this plugin (network.insecure = true)");
            }
            // Reads the CA bundle: off the async workers.
            let client =
                tokio::task::spawn_blocking(move || HttpClient::new(&network)).await.map_err(Refusal::HttpClientTask)?.map_err(Refusal::Network)?;
            Ok(Some(Arc::new(client)))
        }
    }
}
