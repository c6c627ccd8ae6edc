//! The suite's answer: one row per check with its timing, as a table or JSON.

use std::path::Path;
use std::time::Duration;

use metalhost_plugin_host::PluginKind;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What was seen; for a failure, what is wrong.
    pub detail: String,
    /// Wall time of the plugin call(s) the check made.
    pub elapsed_ms: Option<u64>,
}

impl Check {
    pub fn pass(name: &str, detail: impl Into<String>, elapsed: Option<Duration>) -> Check {
        Check { name: name.into(), passed: true, detail: detail.into(), elapsed_ms: elapsed.map(crate::millis) }
    }

    pub fn fail(name: &str, detail: impl Into<String>, elapsed: Option<Duration>) -> Check {
        Check { name: name.into(), passed: false, detail: detail.into(), elapsed_ms: elapsed.map(crate::millis) }
    }

    pub fn new(name: &str, outcome: Result<String, String>, elapsed: Option<Duration>) -> Check {
        match outcome {
            Ok(detail) => Check::pass(name, detail, elapsed),
            Err(detail) => Check::fail(name, detail, elapsed),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub kind: PluginKind,
    pub contract: &'static str,
    pub plugin_version: String,
    pub sha256: String,
    pub passed: bool,
    pub checks: Vec<Check>,
    pub total_ms: u64,
}

impl Report {
    pub fn new(wasm: &Path, kind: PluginKind) -> Report {
        Report {
            plugin: wasm.display().to_string(),
            kind,
            contract: metalhost_plugin_host::Contract::V0_1.as_str(),
            plugin_version: String::new(),
            sha256: String::new(),
            passed: true,
            checks: Vec::new(),
            total_ms: 0,
        }
    }

    pub fn push(&mut self, check: Check) {
        self.passed &= check.passed;
        self.checks.push(check);
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The pass/fail table `plugin test` prints.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{} ({} plugin, {})\n", self.plugin, self.kind, self.contract);
        out.push_str(&format!("{:<6} {:<width$} {:>8}  DETAIL\n", "RESULT", "CHECK", "MS"));
        for c in &self.checks {
            let ms = c.elapsed_ms.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
            // Tool messages span lines; one row per check keeps the table readable (--json keeps them whole).
            let detail = c.detail.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ");
            out.push_str(&format!("{:<6} {:<width$} {:>8}  {}\n", if c.passed { "pass" } else { "FAIL" }, c.name, ms, detail));
        }
        let failed = self.failures().count();
        out.push_str(&format!(
            "{}: {} checks, {} failed, {} ms\n",
            if self.passed { "PASSED" } else { "FAILED" },
            self.checks.len(),
            failed,
            self.total_ms
        ));
        out
    }
}
