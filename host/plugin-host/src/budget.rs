//! What a plugin hands the host is budgeted per call: log lines are cut and, past a total, dropped
//! and counted in one warning; error messages are cut before they reach the database, events, API
//! or logs. (Exec output has its own cap in `exec.rs`.)

/// A log line longer than this is cut.
pub const LOG_LINE_CAP: usize = 1024;
/// Bytes of log one call may write; the rest is dropped and counted.
pub const LOG_CALL_BUDGET: usize = 64 * 1024;
/// An error message from a plugin (or its trap) longer than this is cut.
pub const ERROR_CAP: usize = 4096;

/// Cuts `text` to at most `cap` bytes (on a char boundary) and says how much was cut.
pub fn cap(mut text: String, cap: usize) -> String {
    if text.len() <= cap {
        return text;
    }
    let total = text.len();
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!(" …[cut: {} of {total} bytes not shown]", total - end));
    text
}

/// The log budget of one call. Dropped with the call's store, inside the call's span, where it
/// reports what it held back.
pub struct LogBudget {
    plugin: std::sync::Arc<str>,
    used: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogBudget {
    pub fn new(plugin: std::sync::Arc<str>) -> LogBudget {
        LogBudget { plugin, used: 0, dropped_lines: 0, dropped_bytes: 0 }
    }

    /// The line to log, cut to [`LOG_LINE_CAP`], or `None` once the call's budget is spent.
    pub fn admit(&mut self, line: String) -> Option<String> {
        let len = line.len();
        let line = cap(line, LOG_LINE_CAP);
        // Once a line did not fit, the rest of the call's lines are dropped too: a log with a hole
        // in the middle would mislead more than one cut at a point.
        if self.dropped_lines > 0 || self.used + line.len() > LOG_CALL_BUDGET {
            self.dropped_lines += 1;
            self.dropped_bytes += len as u64;
            return None;
        }
        self.used += line.len();
        Some(line)
    }
}

impl Drop for LogBudget {
    fn drop(&mut self) {
        if self.dropped_lines > 0 {
            tracing::warn!(
                plugin = &*self.plugin,
                dropped_lines = self.dropped_lines,
                dropped_bytes = self.dropped_bytes,
                "plugin log over its per-call budget of {LOG_CALL_BUDGET} bytes: {} lines ({} bytes) dropped",
                self.dropped_lines,
                self.dropped_bytes
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_on_a_char_boundary_with_a_marker() {
        assert_eq!(cap("short".into(), 10), "short");
        let cut = cap("é".repeat(10), 5);
        assert_eq!(cut, "éé …[cut: 16 of 20 bytes not shown]");
        assert!(cap("x".repeat(40 << 20), ERROR_CAP).len() < ERROR_CAP + 64);
    }

    #[test]
    fn the_budget_cuts_lines_then_drops_and_counts_the_rest() {
        let mut budget = LogBudget::new("p".into());
        let long = budget.admit("y".repeat(10_000)).expect("first line admitted");
        assert!(long.len() < LOG_LINE_CAP + 64 && long.contains("[cut:"), "{}", long.len());
        let mut admitted = 1;
        while budget.admit("z".repeat(1000)).is_some() {
            admitted += 1;
        }
        assert_eq!(admitted, 1 + (LOG_CALL_BUDGET - long.len()) / 1000);
        assert!(budget.admit("more".into()).is_none());
        assert_eq!((budget.dropped_lines, budget.dropped_bytes), (2, 1004));
    }
}
