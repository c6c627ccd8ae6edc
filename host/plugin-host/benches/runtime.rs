//! Runtime overhead (issues 3 and 14): instantiate + configure + get-power-state of the real
//! ipmitool plugin through a stub exec, with the daemon's allocator set-up against the on-demand
//! one and the earlier madvise pool measured in the same run, against the same work as a native Rust call, and a power-sync sized
//! sweep of 10,000 calls at the daemon's default concurrency (16).
//!
//! Build the plugins first: `cd plugins && cargo build --release --target wasm32-wasip2`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_plugin_host::{Allocation, Bmc, Credentials, PluginHost, PowerState};

mod common;

const CALLS: usize = 10_000;
/// Issue 14: "median <= 15 us (44 us today)", today being the on-demand allocator.
const GOAL_RATIO: f64 = 15.0 / 44.0;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// What the plugin does for get-power-state, natively: build the argv and env, "run", parse.
fn native_get_power_state(bmc: &Bmc, creds: &Credentials) -> Option<PowerState> {
    let port = bmc.port.to_string();
    let args: Vec<String> = [
        "-v",
        "-I",
        "lanplus",
        "-H",
        &bmc.host,
        "-p",
        &port,
        "-U",
        &creds.username,
        "-E",
        "-C",
        "3",
        "-N",
        "1",
        "-R",
        "2",
        "chassis",
        "power",
        "status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let env = [("IPMI_PASSWORD".to_string(), creds.password.clone())];
    std::hint::black_box(&env);
    let out = common::stub("ipmitool", &args);
    match out.lines().find(|l| l.starts_with("Chassis Power is"))?.strip_prefix("Chassis Power is ")? {
        "on" => Some(PowerState::On),
        "off" => Some(PowerState::Off),
        _ => None,
    }
}

/// Per-call times of `CALLS` sequential get-power-state calls, sorted.
async fn per_call(host: &PluginHost, bmc: &Bmc, creds: &Credentials) -> Vec<Duration> {
    let driver = host.power("ipmitool").expect("driver");
    for _ in 0..200 {
        driver.get_power_state(bmc, creds).await.expect("warm-up");
    }
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let s = driver.get_power_state(bmc, creds).await.expect("call");
        times.push(t.elapsed());
        assert_eq!(s, PowerState::On);
    }
    times.sort();
    times
}

/// The machine's 1-minute load average, printed with the figures (the cores are often shared).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_owned)).unwrap_or_else(|| "?".into())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Per-call times with the runtime built for `allocation`, sorted.
async fn per_call_with(allocation: Allocation, bmc: &Bmc, creds: &Credentials) -> Vec<Duration> {
    let cache = tempfile::tempdir().expect("tmp");
    let host = PluginHost::with_allocation(cache.path(), allocation).expect("runtime");
    common::load_ipmitool(&host).await;
    per_call(&host, bmc, creds).await
}

fn main() {
    // As the daemon does (host/src/main.rs): no backtrace captured in wasmtime's error values, so
    // the figures do not depend on the caller's `RUST_BACKTRACE`.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        #[allow(unsafe_code)]
        // SAFETY: before the runtime starts, no other thread reads the environment.
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0")
        };
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(run());
}

async fn run() {
    let bmc = Bmc { host: "10.0.0.1".into(), port: 623 };
    let creds = Credentials { username: "admin".into(), password: "pw".into() };

    // The baselines, measured in the same run: wasmtime's on-demand allocator (issue 3) and the
    // pool as first configured (slots given back with madvise after every call).
    let on_demand = per_call_with(Allocation::OnDemand, &bmc, &creds).await;
    let madvise = per_call_with(Allocation::PooledMadvise, &bmc, &creds).await;

    let cache = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(cache.path()).expect("runtime");
    common::load_ipmitool(&host).await;
    let wasm = per_call(&host, &bmc, &creds).await;
    let driver = host.power("ipmitool").expect("driver");

    let mut native = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let s = std::hint::black_box(native_get_power_state(std::hint::black_box(&bmc), &creds));
        native.push(t.elapsed());
        assert_eq!(s, Some(PowerState::On));
    }
    native.sort();
    let (om, op) = (percentile(&on_demand, 0.5), percentile(&on_demand, 0.99));
    let (mm, mp) = (percentile(&madvise, 0.5), percentile(&madvise, 0.99));
    let (wm, wp) = (percentile(&wasm, 0.5), percentile(&wasm, 0.99));
    let (nm, np) = (percentile(&native, 0.5), percentile(&native, 0.99));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("load average (1 min) at the end of the per-call runs: {}", load());
    println!("per call, {CALLS} calls: wasm, on-demand allocator (issue 3 baseline): median {:.1} us, p99 {:.1} us", us(om), us(op));
    println!("per call, {CALLS} calls: wasm, pool with madvise reset (previous): median {:.1} us, p99 {:.1} us", us(mm), us(mp));
    println!(
        "per call, {CALLS} calls: wasm, pool with PAGEMAP_SCAN reset, no async machinery (new store + instantiate + configure + get-power-state, stub exec): median {:.1} us, p99 {:.1} us",
        us(wm),
        us(wp)
    );
    println!("per call, {CALLS} calls: native Rust, same work: median {:.2} us, p99 {:.2} us", us(nm), us(np));
    println!("ratio (median): current/on-demand {:.2}; current/madvise pool {:.2}; wasm/native {:.0}x", ratio(wm, om), ratio(wm, mm), ratio(wm, nm));
    // Issue 14's goal, "median <= 15 us (44 us today)", was set against the on-demand allocator on
    // the machine of the time; the ratio against the same baseline in this run carries it to any
    // machine, the absolute figure is printed too.
    println!(
        "target: current/on-demand <= 15/44 = {:.2} -> {}; absolute median <= 15 us -> {}",
        GOAL_RATIO,
        if ratio(wm, om) <= GOAL_RATIO { "met" } else { "MISSED" },
        if wm <= Duration::from_micros(15) { "met" } else { "MISSED (machine-dependent)" }
    );

    let started = Instant::now();
    let done: usize = futures::stream::iter(0..CALLS)
        .map(|_| async { driver.get_power_state(&bmc, &creds).await.is_ok() as usize })
        .buffer_unordered(16)
        .fold(0, |acc, ok| async move { acc + ok })
        .await;
    let sweep = started.elapsed();
    assert_eq!(done, CALLS);
    println!(
        "power-sync sweep, {CALLS} nodes, concurrency 16, stub exec: {:.2} s; target <= 10 s -> {}",
        sweep.as_secs_f64(),
        if sweep <= Duration::from_secs(10) { "met" } else { "MISSED" }
    );
}
