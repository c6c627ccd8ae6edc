//! The sandbox: purpose-built misbehaving plugins each fail only their own call, with an error
//! that names the plugin and the operation, while other calls keep being served.

use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, CallFailure, Credentials, PluginHost, PluginKind, PluginSpec, PowerState};
use metalhost_tests::paths::plugin_wasm;

fn evil(name: &str, mode: &str, memory_mb: u64, timeout_s: u64) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        kind: PluginKind::Power,
        path: plugin_wasm("evil-power"),
        sha256: None,
        exec: vec![],
        dirs: vec![],
        memory_mb,
        call_timeout_s: timeout_s,
        config: [("mode".to_owned(), mode.to_owned())].into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_misbehaviour_fails_only_its_call() {
    let (host, _dir) = host(&[
        evil("good", "good", 64, 5),
        evil("looper", "loop", 64, 1),
        evil("hog", "alloc", 16, 5),
        evil("snoop", "read-passwd", 64, 5),
        evil("shell", "exec", 64, 5),
        evil("crash", "panic", 64, 5),
    ])
    .await;
    let (b, c) = bmc();

    // (a) an endless loop is cut at its deadline, while the good plugin keeps answering.
    let started = Instant::now();
    let looper = host.power("looper").expect("looper");
    let looping = looper.get_power_state(&b, &c);
    let meanwhile = async {
        let mut answered = 0;
        while started.elapsed() < Duration::from_millis(800) {
            assert_eq!(host.power("good").expect("good").get_power_state(&b, &c).await.expect("good call"), PowerState::On);
            answered += 1;
        }
        answered
    };
    let (looped, answered) = tokio::join!(looping, meanwhile);
    let err = looped.expect_err("the loop must be stopped");
    assert!(matches!(err.failure, CallFailure::Deadline(1)), "{err}");
    assert!(err.to_string().contains("\"looper\"") && err.to_string().contains("get-power-state"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "deadline overshot: {:?}", started.elapsed());
    assert!(answered > 10, "only {answered} good calls were served during the loop");

    // (b) allocating past the cap.
    let err = host.power("hog").expect("hog").get_power_state(&b, &c).await.expect_err("cap");
    assert!(matches!(err.failure, CallFailure::Memory(16)), "{err}");

    // (c) no filesystem: /etc/passwd does not exist inside the sandbox.
    let err = host.power("snoop").expect("snoop").get_power_state(&b, &c).await.expect_err("no fs");
    let text = err.to_string();
    assert!(text.contains("cannot read /etc/passwd"), "{text}");

    // (d) a program that was not granted is refused, and the plugin sees that error.
    let err = host.power("shell").expect("shell").get_power_state(&b, &c).await.expect_err("no exec");
    assert!(err.to_string().contains("not permitted") && err.to_string().contains("\"sh\""), "{err}");

    // (e) a panic is a trap of that call only.
    let err = host.power("crash").expect("crash").get_power_state(&b, &c).await.expect_err("panic");
    assert!(matches!(err.failure, CallFailure::Trap(_)), "{err}");
    assert!(err.to_string().contains("\"crash\""), "{err}");

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
    assert!(error.contains("sha256 pin mismatch") && error.contains(&"00".repeat(32)), "{error}");
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
    // A switch component declared as a power driver.
    let juniper = plugin_wasm("juniper");
    if juniper.exists() {
        let spec = PluginSpec { name: "jun".into(), kind: PluginKind::Power, path: juniper, ..evil("x", "good", 64, 5) };
        let status = host.load(&[spec]).await;
        let error = status[0].error.clone().unwrap_or_default();
        assert!(!status[0].loaded && error.contains("implements the switch-manager world"), "{error}");
    }
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
