//! Runtime overhead (issues 3 and 14): instantiate + configure + get-power-state of the real
//! ipmitool plugin through a stub exec, with the pooling allocator against the on-demand one
//! measured in the same run, against the same work as a native Rust call, and a power-sync sized
//! sweep of 10,000 calls at the daemon's default concurrency (16).
//!
//! Build the plugins first: `cd plugins && cargo build --release --target wasm32-wasip2`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_plugin_host::{Bmc, Credentials, PluginHost, PowerState};

mod common;

const CALLS: usize = 10_000;

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

#[tokio::main]
async fn main() {
    let bmc = Bmc { host: "10.0.0.1".into(), port: 623 };
    let creds = Credentials { username: "admin".into(), password: "pw".into() };

    // The baseline: the same runtime with wasmtime's on-demand allocator (before issue 14).
    let cache = tempfile::tempdir().expect("tmp");
    let unpooled = PluginHost::new_unpooled(cache.path()).expect("runtime");
    common::load_ipmitool(&unpooled).await;
    let before = per_call(&unpooled, &bmc, &creds).await;
    drop(unpooled);

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
    let (bm, bp) = (percentile(&before, 0.5), percentile(&before, 0.99));
    let (wm, wp) = (percentile(&wasm, 0.5), percentile(&wasm, 0.99));
    let (nm, np) = (percentile(&native, 0.5), percentile(&native, 0.99));
    println!("load average (1 min) at the end of the per-call runs: {}", load());
    println!("per call, {CALLS} calls: wasm, on-demand allocator (baseline): median {:.1} us, p99 {:.1} us", us(bm), us(bp));
    println!(
        "per call, {CALLS} calls: wasm, pooling allocator (new store + instantiate + configure + get-power-state, stub exec): median {:.1} us, p99 {:.1} us",
        us(wm),
        us(wp)
    );
    println!("per call, {CALLS} calls: native Rust, same work: median {:.2} us, p99 {:.2} us", us(nm), us(np));
    println!(
        "ratio wasm/native (median): {:.0}x; pooled/on-demand (median): {:.2}; target median <= 15 us -> {}",
        wm.as_secs_f64() / nm.as_secs_f64().max(1e-9),
        wm.as_secs_f64() / bm.as_secs_f64().max(1e-9),
        if wm <= Duration::from_micros(15) { "met" } else { "MISSED" }
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
