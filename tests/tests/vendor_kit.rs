//! The vendor kit through the real `metalhost` binary: `plugin new` crates of every kind (and the
//! Redfish template) build, load and pass `plugin test`; this repo's plugins pass it; purpose-built broken plugins
//! fail it with a message that names their bug.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use metalhost_tests::paths::{host_binary, plugin_wasm, target_dir};
use serde_json::Value;

fn metalhost(args: &[&str]) -> Output {
    Command::new(host_binary("metalhost")).args(args).output().expect("run metalhost")
}

/// `plugin test --json`: whether it exited 0, and the report.
fn plugin_test(wasm: &Path, kind: &str, extra: &[&str]) -> (bool, Value) {
    let wasm = wasm.to_str().expect("utf-8 path");
    let out = metalhost(&[&["--json", "plugin", "test", wasm, "--kind", kind], extra].concat());
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["passed"].as_bool(), Some(out.status.success()), "exit status and report disagree: {report}");
    (out.status.success(), report)
}

fn failures(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| format!("{}: {}", c["name"].as_str().unwrap_or(""), c["detail"].as_str().unwrap_or("")))
        .collect()
}

fn assert_passes(wasm: &Path, kind: &str, extra: &[&str]) {
    let (passed, report) = plugin_test(wasm, kind, extra);
    assert!(passed, "{} failed: {:#?}", wasm.display(), failures(&report));
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.len() >= 8, "{report}");
    // Checks that call the plugin carry the call's wall time; the others (argv, logs) do not.
    let timed = checks.iter().filter(|c| c["elapsed_ms"].is_u64()).count();
    assert!(timed >= 6, "the calls are timed: {report}");
}

/// `plugin test` must fail, with one failing check whose text holds every one of `needles`.
fn assert_fails_naming(wasm: &Path, kind: &str, extra: &[&str], needles: &[&str]) {
    let (passed, report) = plugin_test(wasm, kind, extra);
    assert!(!passed, "{} passed: {report}", wasm.display());
    let failed = failures(&report);
    assert!(failed.iter().any(|f| needles.iter().all(|n| f.contains(n))), "no failure names {needles:?}: {failed:#?}");
}

/// Builds a generated crate; all of them share one target dir so the SDK's deps compile once.
fn build(crate_dir: &Path) -> PathBuf {
    let target = target_dir().join("vendor-kit");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = |offline: bool| {
        let mut command = Command::new(&cargo);
        command.args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]).current_dir(crate_dir).env("CARGO_TARGET_DIR", &target);
        if offline {
            command.arg("--offline");
        }
        command.status().expect("run cargo")
    };
    // Offline first: the plugins workspace has already fetched every dependency.
    assert!(build(true).success() || build(false).success(), "cargo build of {} failed", crate_dir.display());
    let name = crate_dir.file_name().and_then(|n| n.to_str()).expect("name").replace('-', "_");
    target.join("wasm32-wasip2/release").join(format!("{name}.wasm"))
}

#[test]
fn generated_plugins_of_every_kind_build_load_and_pass() {
    let root = tempfile::tempdir().expect("tmp");
    for kind in ["power", "switch", "netboot"] {
        let name = format!("vk-{kind}");
        let dir = root.path().join(&name);
        let out = metalhost(&["plugin", "new", "--kind", kind, &name, "--path", dir.to_str().expect("utf-8")]);
        assert!(out.status.success(), "plugin new: {}", String::from_utf8_lossy(&out.stderr));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(manifest.contains("metalhost-plugin-sdk = { path = "), "{manifest}");
        let wasm = build(&dir);
        assert_passes(&wasm, kind, &[]);
    }
}

/// The Redfish template (contract 0.2.0, HTTP through the host) builds and passes the power suite
/// against sushy-emulator, as does this repo's Redfish plugin; net-escape fails it.
#[test]
fn redfish_plugins_pass_the_http_power_suite() {
    assert_passes(&plugin_wasm("redfish"), "power", &[]);
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("vk-redfish");
    let out = metalhost(&["plugin", "new", "--kind", "power", "--template", "redfish", "vk-redfish", "--path", dir.to_str().expect("utf-8")]);
    assert!(out.status.success(), "plugin new: {}", String::from_utf8_lossy(&out.stderr));
    let (passed, report) = plugin_test(&build(&dir), "power", &[]);
    assert!(passed, "the redfish template failed: {:#?}", failures(&report));
    let names: Vec<&str> = report["checks"].as_array().expect("checks").iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(
        names.contains(&"network: only the call's BMC") && names.contains(&"error mapping: untrusted certificate is a TLS invalid-config"),
        "{names:?}"
    );
    let out =
        metalhost(&["plugin", "new", "--kind", "switch", "--template", "redfish", "x", "--path", root.path().join("x").to_str().expect("utf-8")]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("for power plugins"));
}

#[test]
fn plugin_new_refuses_a_non_empty_dir_and_a_bad_name() {
    let root = tempfile::tempdir().expect("tmp");
    std::fs::write(root.path().join("keep"), "x").expect("file");
    let out = metalhost(&["plugin", "new", "--kind", "power", "acme", "--path", root.path().to_str().expect("utf-8")]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = metalhost(&["plugin", "new", "--kind", "power", "Acme_BMC", "--path", root.path().join("x").to_str().expect("utf-8")]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("invalid plugin name"));
}

#[test]
fn the_four_plugins_of_this_repo_pass() {
    assert_passes(&plugin_wasm("ipmitool"), "power", &[]);
    let (_, report) = plugin_test(&plugin_wasm("ipmitool"), "power", &[]);
    let scoped = report["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "network: only the call's BMC").cloned();
    assert!(scoped.is_some_and(|c| c["passed"] == true), "{report}");
    assert_passes(&plugin_wasm("freeipmi"), "power", &["--exec", "ipmi-power", "--exec", "ipmi-config"]);
    assert_passes(&plugin_wasm("juniper"), "switch", &[]);
    assert_passes(&plugin_wasm("dnsmasq"), "netboot", &[]);
}

#[test]
fn broken_plugins_fail_naming_their_bug() {
    assert_fails_naming(&plugin_wasm("wrong-world"), "power", &[], &["load", "implements the switch-manager world"]);
    assert_fails_naming(
        &plugin_wasm("future-power"),
        "power",
        &[],
        &["load", "metalhost:drivers@0.9.0", "metalhost:drivers@0.1.0 and metalhost:drivers@0.2.0"],
    );
    assert_fails_naming(&plugin_wasm("bad-error-mapping"), "power", &[], &["wrong password", "expected auth-failed, got unreachable"]);
    assert_fails_naming(&plugin_wasm("argv-password"), "power", &[], &["never on argv", "password reached the argv", "-P <password>"]);
    // A console described on another host than the call's BMC: the host would refuse it.
    assert_fails_naming(
        &plugin_wasm("net-escape"),
        "power",
        &["--config", "console-host=127.0.0.2"],
        &["describe-console", "host refuses", "127.0.0.2"],
    );
    // A plugin running a program it did not declare: granted ipmi-power only, it also runs ipmi-config.
    assert_fails_naming(&plugin_wasm("freeipmi"), "power", &["--exec", "ipmi-power"], &["grants", "not permitted", "ipmi-config"]);
}

#[test]
fn a_missing_simulator_is_a_clear_error() {
    let wasm = plugin_wasm("juniper");
    let out = metalhost(&["plugin", "test", wasm.to_str().expect("utf-8"), "--kind", "switch", "--fake-switches", "/nonexistent/fake-switches"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("fake-switches is needed for the switch suite"), "{stderr}");
}
