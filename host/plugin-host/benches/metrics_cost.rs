//! What metrics cost on the plugin call path (issue 18): the median of get-power-state calls of
//! the real ipmitool plugin (stub exec) before and after a Prometheus recorder is installed, in
//! one run. Without a recorder the `metrics` facade is a no-op, as with `[metrics] enabled = false`.
//!
//! Run with `bench/metrics_cost.sh`.

use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, Credentials, PluginHost, PowerState};

mod common;

const CALLS: usize = 5_000;
const ROUNDS: usize = 3;

async fn median_call(host: &PluginHost, bmc: &Bmc, creds: &Credentials) -> Duration {
    let driver = host.power("ipmitool").expect("driver");
    let mut times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let s = driver.get_power_state(bmc, creds).await.expect("call");
        times.push(t.elapsed());
        assert_eq!(s, PowerState::On);
    }
    times.sort();
    times[CALLS / 2]
}

#[tokio::main]
async fn main() {
    let cache = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(cache.path()).expect("runtime");
    common::load_ipmitool(&host).await;
    let bmc = Bmc { host: "10.0.0.1".into(), port: 623 };
    let creds = Credentials { username: "admin".into(), password: "pw".into() };
    median_call(&host, &bmc, &creds).await; // warm-up

    // The recorder is process-wide and cannot be removed: all rounds without it come first.
    let mut without = Vec::new();
    for _ in 0..ROUNDS {
        without.push(median_call(&host, &bmc, &creds).await);
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("install the recorder");
    let mut with = Vec::new();
    for _ in 0..ROUNDS {
        with.push(median_call(&host, &bmc, &creds).await);
    }
    assert!(handle.render().contains("metalhost_plugin_call_duration_seconds"), "the calls were recorded");

    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let (w, wo) = (best(&with), best(&without));
    println!("plugin call median, {CALLS} calls x {ROUNDS} rounds (best round): without metrics {:.1} us", wo.as_secs_f64() * 1e6);
    println!("plugin call median, {CALLS} calls x {ROUNDS} rounds (best round): with a Prometheus recorder {:.1} us", w.as_secs_f64() * 1e6);
    println!("ratio with/without: {:.3}", w.as_secs_f64() / wo.as_secs_f64().max(1e-12));
}
