//! Prometheus metrics (`GET /metrics`, text format). Counters and histograms are recorded where
//! things happen, through the `metrics` facade (provision steps and retries, plugin calls in the
//! runtime, agent results, the task watchdog, power sync, every HTTP request); the pool's gauges
//! (nodes by state and by power state) are read from the store at each scrape, so they are never
//! stale. Served (api/metrics.rs) on the operator listener behind the token, or open on
//! `[metrics] listen`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

use crate::domain::{PowerState, ProvisionState};
use crate::store::Store;

/// `[metrics]`: whether metrics are recorded, and where `/metrics` is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Off: no recorder is installed, so every counter and histogram is a no-op, and there is no
    /// `/metrics` (for sites that do not scrape, and to measure what metrics cost: bench/enroll.sh).
    pub enabled: bool,
    /// A separate listener serving only `/metrics`, without the token (for a Prometheus that
    /// should not hold the operator token). Unset: `/metrics` on the API listener, token required.
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: None }
    }
}

/// Seconds buckets from 1 ms (a plugin call) to 30 min (an agent writing an image).
const SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
const THROUGHPUT_BUCKETS: &[f64] = &[1e6, 5e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2e9];

/// The process-wide recorder: the `metrics` facade has one, so the first daemon of a process
/// installs it and later ones (tests, benchmarks) share it.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes_per_second".into()), THROUGHPUT_BUCKETS))
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!("metrics are off: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Sets the node gauges (by state and by power state) from the store, just before a scrape.
pub async fn refresh_node_gauges(store: &Store) {
    match store.call(crate::store::nodes::count_by_state).await {
        Ok(counts) => {
            for s in ProvisionState::ALL {
                let n = counts.iter().filter(|(state, _, _)| state == s).map(|(_, _, n)| n).sum::<u64>();
                metrics::gauge!("metalhost_nodes", "state" => s.as_str()).set(n as f64);
            }
            for p in PowerState::ALL {
                let n = counts.iter().filter(|(_, power, _)| power == p).map(|(_, _, n)| n).sum::<u64>();
                metrics::gauge!("metalhost_nodes_power", "power_state" => p.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!("metrics: cannot count nodes: {e}"),
    }
}

/// A workflow step ended (after its retries).
pub fn step(name: &'static str, ok: bool, seconds: f64) {
    metrics::histogram!("metalhost_step_duration_seconds", "step" => name, "outcome" => if ok { "ok" } else { "error" }).record(seconds);
}

/// A workflow step is tried again after a transient failure of `kind`.
pub fn step_retry(name: &'static str, kind: &str) {
    metrics::counter!("metalhost_step_retries_total", "step" => name, "kind" => kind.to_owned()).increment(1);
}

/// An agent finished writing an image: bytes and the rate since its task was created.
pub fn agent_wrote(bytes: u64, seconds: f64) {
    metrics::counter!("metalhost_agent_bytes_written_total").increment(bytes);
    if seconds > 0.0 && bytes > 0 {
        metrics::histogram!("metalhost_agent_write_throughput_bytes_per_second").record(bytes as f64 / seconds);
    }
}

pub fn task_timeouts(n: usize) {
    metrics::counter!("metalhost_task_timeouts_total").increment(n as u64);
}

pub fn power_sync(checked: usize, drifted: usize, failed: usize) {
    metrics::counter!("metalhost_power_sync_checked_total").increment(checked as u64);
    metrics::counter!("metalhost_power_sync_drift_total").increment(drifted as u64);
    metrics::counter!("metalhost_power_sync_failed_total").increment(failed as u64);
}
