//! The conformance suite behind `metalhost plugin test`: loads a built driver component into the
//! real plugin runtime with only the grants its kind needs, drives every operation of its world
//! against a real simulator, and reports each check with its timing.
//!
//! Power plugins meet OpenIPMI's `ipmi_sim`, switch plugins the `fake-switches` Juniper emulator,
//! netboot plugins a dnsmasq in a network namespace the suite creates and deletes. Everything
//! the suite starts is stopped by PID when it is done, whatever the outcome.

mod capture;
mod error;
mod netboot;
mod power;
mod power_http;
mod report;
/// The simulators, also used by the project's own integration tests (`tests/src`).
pub mod sims;
mod switch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metalhost_plugin_host::{CallError, PluginHost, PluginKind, PluginSpec, PluginStatus};

pub use error::Error;
pub use report::{Check, Report};

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    pub wasm: PathBuf,
    pub kind: PluginKind,
    /// Programs the plugin may run (power plugins): what operators will grant it in `exec = [...]`.
    pub exec: Vec<String>,
    /// Extra plugin config (`key=value`), as in the `[[plugin]]` table.
    pub config: BTreeMap<String, String>,
    /// The `fake-switches` program (switch plugins).
    pub fake_switches: PathBuf,
    /// The fake-switches model: `juniper_generic` (EX, legacy syntax) or `juniper_qfx_copper_generic`.
    pub switch_model: String,
    /// The `sushy-emulator` program (power plugins of contract 0.2.0, which speak HTTP).
    pub sushy_emulator: PathBuf,
    /// The BMC a power plugin of contract 0.2.0 speaks to: Redfish or IPMI over LAN.
    pub power_bmc: PowerBmc,
    pub call_timeout_s: u64,
}

/// What a 0.2.0 power plugin is tested against: sushy-emulator (Redfish, through `http`) or
/// ipmi_sim (IPMI over LAN, through `datagram`). 0.1.0 plugins always drive ipmi_sim with a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PowerBmc {
    #[default]
    Redfish,
    Ipmi,
}

impl Options {
    pub fn new(wasm: PathBuf, kind: PluginKind) -> Options {
        Options {
            wasm,
            kind,
            exec: if kind == PluginKind::Power { vec!["ipmitool".into()] } else { Vec::new() },
            config: BTreeMap::new(),
            fake_switches: default_fake_switches(),
            switch_model: "juniper_generic".into(),
            sushy_emulator: sims::sushy::default_program(),
            power_bmc: PowerBmc::default(),
            call_timeout_s: 20,
        }
    }
}

/// `$METALHOST_FAKE_SWITCHES`, else the venv `scripts/setup` makes in this source tree, else PATH.
pub fn default_fake_switches() -> PathBuf {
    if let Some(path) = std::env::var_os("METALHOST_FAKE_SWITCHES") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.lab/venv/bin/fake-switches");
    if venv.is_file() { venv } else { PathBuf::from("fake-switches") }
}

/// Runs the suite for one plugin. Errors are about the test bench (a simulator missing or not
/// starting); everything about the plugin is a check in the report.
pub fn run(opts: &Options) -> Result<Report, Error> {
    let capture = capture::Capture::new();
    // One thread: the plugin's `log` calls land in this thread's subscriber.
    let _guard = tracing::subscriber::set_default(capture.subscriber());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Setup(format!("async runtime: {e}")))?;
    let started = Instant::now();
    let mut report = Report::new(&opts.wasm, opts.kind);
    runtime.block_on(async {
        let suite = async {
            match opts.kind {
                PluginKind::Power => power::run(opts, &capture, &mut report).await,
                PluginKind::Switch => switch::run(opts, &capture, &mut report).await,
                PluginKind::Netboot => netboot::run(opts, &mut report).await,
            }
        };
        // Ctrl-C or SIGTERM drops the suite, and with it the simulators and the netns it made.
        tokio::select! {
            outcome = suite => outcome,
            signal = interrupted() => Err(Error::Interrupted(signal)),
        }
    })?;
    report.total_ms = millis(started.elapsed());
    Ok(report)
}

/// The loaded plugin under test, in a private runtime with its own component cache.
pub(crate) struct Loaded {
    pub host: PluginHost,
    pub name: String,
    /// The contract the component was built for.
    pub contract: String,
    pub spec: PluginSpec,
    _cache: tempfile::TempDir,
}

/// Loads the plugin with exactly `spec`'s grants; the first check of every suite. None when it
/// did not load (the check says why and the suite stops).
pub(crate) async fn load(
    opts: &Options,
    exec: Vec<String>,
    dirs: Vec<PathBuf>,
    config: BTreeMap<String, String>,
    report: &mut Report,
) -> Result<Option<Loaded>, Error> {
    let cache = tempfile::tempdir().map_err(|e| Error::Setup(format!("component cache dir: {e}")))?;
    let host = PluginHost::new(cache.path()).map_err(|e| Error::Setup(e.to_string()))?;
    let name = "under-test".to_owned();
    let spec = PluginSpec {
        name: name.clone(),
        kind: opts.kind,
        path: opts.wasm.clone(),
        sha256: None,
        exec,
        dirs,
        memory_mb: 64,
        call_timeout_s: opts.call_timeout_s,
        config,
        console: vec![],
        network: None,
    };
    let started = Instant::now();
    let status: Vec<PluginStatus> = host.load(std::slice::from_ref(&spec)).await;
    let elapsed = started.elapsed();
    match status.into_iter().next() {
        Some(s) if s.loaded => {
            report.plugin_version = s.version.clone();
            report.sha256 = s.sha256.clone().unwrap_or_default();
            report.push(Check::pass(
                "load",
                format!("loads as a {} component of {} (version {})", opts.kind.world(), s.contract, s.version),
                Some(elapsed),
            ));
            Ok(Some(Loaded { host, name, contract: s.contract, spec, _cache: cache }))
        }
        Some(s) => {
            report.push(Check::fail("load", s.error.unwrap_or_else(|| "not loaded".into()), Some(elapsed)));
            Ok(None)
        }
        None => Err(Error::Setup("the runtime reported no status".into())),
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Runs one plugin call and times it.
pub(crate) async fn timed<T>(call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = call.await;
    (out, started.elapsed())
}

/// A call's error as the report shows it, with the test password (if it leaked) masked.
pub(crate) fn shown(e: &CallError, password: &str) -> String {
    e.to_string().replace(password, "<password>")
}

/// A failed call checked for the `driver-error` case `want`, and for the test password in its
/// message; the message comes back with that password masked.
pub(crate) fn expect_error(e: &CallError, want: &str, password: &str) -> Result<String, String> {
    let message = shown(e, password);
    let kind = e.driver().map_or("no driver error", metalhost_plugin_host::DriverError::kind);
    if e.to_string().contains(password) {
        Err(format!("the error message holds the password: {message}"))
    } else if kind == want {
        Ok(message)
    } else {
        Err(format!("wrong error mapping: expected {want}, got {kind} ({message})"))
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A password unique to this run, so finding it anywhere is proof of a leak. At most 16 bytes:
/// IPMI caps passwords at 20 (16 for IPMI 1.5).
pub(crate) fn canary(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut word = format!("{label}{nanos:08x}{:x}", std::process::id());
    word.truncate(16);
    word
}

/// The name a `not permitted` exec refusal names, if `text` is one.
pub(crate) fn refused_program(text: &str) -> Option<String> {
    let rest = text.split("exec of \"").nth(1)?;
    rest.split('"').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_and_the_wit_agree_on_the_contract() {
        let wit = include_str!("../../../wit/drivers.wit");
        let package = wit.lines().find_map(|l| l.strip_prefix("package ")).map(|p| p.trim_end_matches(';'));
        assert_eq!(package, Some(metalhost_plugin_host::Contract::V0_1.as_str()));
    }

    #[test]
    fn refused_programs_are_named() {
        let m = "exec of \"sh\" is not permitted for plugin \"x\" (granted: ipmitool)";
        assert_eq!(super::refused_program(m).as_deref(), Some("sh"));
        assert_eq!(super::refused_program("unreachable: no answer"), None);
    }
}
