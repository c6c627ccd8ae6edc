//! Plugin call metrics through the `metrics` facade (a no-op until the daemon installs a recorder):
//! latency by plugin and operation, failures by kind (the contract's error case, or the runtime's
//! own: deadline, memory, trap, not-loaded).

use std::time::Duration;

use crate::error::{CallError, CallFailure};

pub fn call(plugin: &str, operation: &'static str, took: Duration, failed: Option<&CallError>) {
    metrics::histogram!("metalhost_plugin_call_duration_seconds", "plugin" => plugin.to_owned(), "operation" => operation).record(took.as_secs_f64());
    if let Some(e) = failed {
        let kind = match &e.failure {
            CallFailure::Driver(d) => d.kind(),
            CallFailure::Deadline(_) => "deadline",
            CallFailure::Memory(_) => "memory",
            CallFailure::Trap(_) => "trap",
            CallFailure::NotLoaded(_) => "not-loaded",
        };
        metrics::counter!("metalhost_plugin_call_errors_total", "plugin" => plugin.to_owned(), "operation" => operation, "kind" => kind).increment(1);
    }
}
