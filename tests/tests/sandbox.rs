//! The sandbox: purpose-built misbehaving plugins each fail only their own call, with an error
//! that names the plugin and the operation, while other calls keep being served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, CallFailure, CallResult, Credentials, PluginHost, PluginKind, PluginSpec, PowerState};
use metalhost_tests::paths::{plugin_spec, plugin_wasm};

fn evil(name: &str, mode: &str, memory_mb: u64, timeout_s: u64) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        memory_mb,
        call_timeout_s: timeout_s,
        config: [("mode".to_owned(), mode.to_owned())].into(),
        ..plugin_spec("evil-power", PluginKind::Power)
    }
}

fn bmc() -> (Bmc, Credentials) {
    (Bmc { host: "127.0.0.1".into(), port: 623 }, Credentials { username: "u".into(), password: "p".into() })
}

async fn host(specs: &[PluginSpec]) -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    for status in host.load(specs).await {
        assert!(status.loaded, "{} did not load: {:?}", status.name, status.error);
    }
    (host, dir)
}

/// One misbehaving call on its own task, with how long it took.
fn spawn_call(host: &Arc<PluginHost>, name: &'static str) -> tokio::task::JoinHandle<(Duration, CallResult<PowerState>)> {
    let host = host.clone();
    tokio::spawn(async move {
        let (b, c) = bmc();
        let started = Instant::now();
        let outcome = match host.power(name) {
            Ok(driver) => driver.get_power_state(&b, &c).await,
            Err(e) => Err(e),
        };
        (started.elapsed(), outcome)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaviour_fails_only_its_call_while_others_are_served() {
    let (host, _dir) = host(&[
        evil("good", "good", 64, 5),
        evil("looper", "loop", 64, 1),
        evil("hog", "alloc", 16, 5),
        evil("snoop", "read-passwd", 64, 5),
        evil("shell", "exec", 64, 5),
        evil("crash", "panic", 64, 5),
    ])
    .await;
    let host = Arc::new(host);
    let (b, c) = bmc();

    // All five at once, while this task keeps calling the good plugin.
    let calls = ["looper", "hog", "snoop", "shell", "crash"].map(|name| spawn_call(&host, name));
    let mut answered = 0;
    while !calls.iter().all(|c| c.is_finished()) {
        assert_eq!(host.power("good").expect("good").get_power_state(&b, &c).await.expect("good call"), PowerState::On);
        answered += 1;
    }
    assert!(answered > 10, "only {answered} good calls were served while the bad ones ran");
    let [looper, hog, snoop, shell, crash] = calls;

    // (a) an endless loop is cut at its deadline.
    let (took, outcome) = looper.await.expect("join");
    let err = outcome.expect_err("the loop must be stopped");
    assert!(matches!(err.failure, CallFailure::Deadline(1)), "{err}");
    assert_eq!(err.to_string(), "plugin \"looper\" get-power-state: deadline of 1 s exceeded");
    assert!(took < Duration::from_secs(3), "deadline overshot: {took:?}");

    // (b) allocating past the cap.
    let err = hog.await.expect("join").1.expect_err("cap");
    assert!(matches!(err.failure, CallFailure::Memory(16)), "{err}");
    assert_eq!(err.to_string(), "plugin \"hog\" get-power-state: memory cap of 16 MiB exceeded");

    // (c) no filesystem: /etc/passwd does not exist inside the sandbox.
    let err = snoop.await.expect("join").1.expect_err("no fs");
    assert!(err.to_string().contains("cannot read /etc/passwd"), "{err}");

    // (d) a program that was not granted is refused, and the plugin sees that error.
    let err = shell.await.expect("join").1.expect_err("no exec");
    assert!(err.to_string().contains("not permitted") && err.to_string().contains("\"sh\""), "{err}");

    // (e) a panic is a trap of that call only.
    let err = crash.await.expect("join").1.expect_err("panic");
    assert!(matches!(err.failure, CallFailure::Trap(_)), "{err}");
    assert!(err.to_string().starts_with("plugin \"crash\" get-power-state: trapped:"), "{err}");

    // And after all that, every plugin still serves calls in fresh sandboxes.
    assert_eq!(host.power("good").expect("good").get_power_state(&b, &c).await.expect("good"), PowerState::On);
    assert!(host.power("crash").expect("crash").get_power_state(&b, &c).await.is_err());
}

#[tokio::test]
async fn a_sha256_pin_mismatch_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let mut spec = evil("pinned", "good", 64, 5);
    spec.sha256 = Some("00".repeat(32));
    let status = host.load(&[spec]).await;
    assert!(!status[0].loaded);
    let error = status[0].error.clone().unwrap_or_default();
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(plugin_wasm("evil-power")).expect("read wasm")));
    assert!(error.contains("sha256 pin mismatch") && error.contains(&format!("expected {}, got {actual}", "00".repeat(32))), "{error}");
    assert_eq!(status[0].sha256.as_deref(), Some(actual.as_str()));
    assert!(host.power("pinned").is_err(), "a refused plugin must not be callable");
    // The right pin loads.
    let mut spec = evil("pinned", "good", 64, 5);
    spec.sha256 = status[0].sha256.clone();
    assert!(host.load(&[spec]).await[0].loaded);
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    // A power component declared as a switch driver.
    let mut spec = evil("wrong", "good", 64, 5);
    spec.kind = PluginKind::Switch;
    let status = host.load(&[spec]).await;
    assert!(!status[0].loaded);
    let error = status[0].error.clone().unwrap_or_default();
    assert!(error.contains("implements the power-manager world") && error.contains("switch"), "{error}");
    // A switch-manager component declared as a power driver.
    let spec = PluginSpec { name: "switchy".into(), kind: PluginKind::Power, path: plugin_wasm("wrong-world"), ..evil("x", "good", 64, 5) };
    let status = host.load(&[spec]).await;
    let error = status[0].error.clone().unwrap_or_default();
    assert!(!status[0].loaded, "a switch component loaded as a power driver");
    assert!(error.contains("implements the switch-manager world") && error.contains("power"), "{error}");
    assert!(host.power("switchy").is_err());
}

#[tokio::test]
async fn a_component_for_another_contract_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let spec = PluginSpec { name: "future".into(), path: plugin_wasm("future-power"), ..evil("x", "good", 64, 5) };
    let status = host.load(&[spec]).await;
    let error = status[0].error.clone().unwrap_or_default();
    assert!(!status[0].loaded);
    assert!(
        error.contains("metalhost:drivers@0.9.0") && error.contains("metalhost:drivers@0.1.0") && error.contains("metalhost:drivers@0.2.0"),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_config_keys_and_missing_programs_are_refused_at_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let mut bad_config = evil("cfg", "good", 64, 5);
    bad_config.config.insert("colour".into(), "red".into());
    let mut bad_program = evil("prog", "good", 64, 5);
    bad_program.exec = vec!["no-such-program-xyz".into()];
    let status = host.load(&[bad_config, bad_program]).await;
    assert!(status[0].error.clone().unwrap_or_default().contains("unknown key \"colour\""), "{:?}", status[0]);
    assert!(status[1].error.clone().unwrap_or_default().contains("no-such-program-xyz"), "{:?}", status[1]);
}

#[tokio::test]
async fn components_are_compiled_once_and_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let cached =
        || std::fs::read_dir(dir.path()).expect("cache dir").flatten().filter(|e| e.path().extension().is_some_and(|x| x == "cwasm")).count();
    let first = PluginHost::new(dir.path()).expect("runtime");
    assert!(first.load(&[evil("a", "good", 64, 5)]).await[0].loaded);
    assert_eq!(cached(), 1);
    // Another plugin entry with the same wasm, and a second runtime on the same cache, reuse it.
    let second = PluginHost::new(dir.path()).expect("runtime");
    assert!(second.load(&[evil("a", "good", 64, 5), evil("b", "good", 64, 5)]).await.iter().all(|s| s.loaded));
    assert_eq!(cached(), 1);
    let (b, c) = bmc();
    assert_eq!(second.power("b").expect("b").get_power_state(&b, &c).await.expect("call"), PowerState::On);
}

#[tokio::test]
async fn a_duplicate_name_is_refused_and_a_reload_replaces_the_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let status = host.load(&[evil("twin", "good", 64, 5), evil("twin", "panic", 64, 5)]).await;
    assert!(status[0].loaded && !status[1].loaded, "{status:?}");
    assert!(status[1].error.clone().unwrap_or_default().contains("already uses the name \"twin\""), "{status:?}");
    let (b, c) = bmc();
    assert_eq!(host.power("twin").expect("twin").get_power_state(&b, &c).await.expect("the first twin"), PowerState::On);
    // A later load without "twin" makes it uncallable, as status() says.
    host.load(&[evil("other", "good", 64, 5)]).await;
    assert!(host.power("twin").is_err());
    assert_eq!(host.status().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["other"]);
}
