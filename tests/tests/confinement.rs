//! Exec confinement and the per-call budgets, attacked the way a hostile driver would: through its
//! granted ipmitool and FreeIPMI against a real `ipmi_sim`, by leaving a process behind, by flooding
//! the log and by returning a huge error. Each attack is contained while other calls are served.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, CallResult, Credentials, ExecPolicy, PluginHost, PluginKind, PluginSpec, PowerState};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::{plugin_spec, plugin_wasm};
use serde_json::json;

const SECRET_LINE: &str = "root-only-secret-line-4f1c";
const PUBLIC_LINE: &str = "world-readable-line-9a7e";

fn escape(name: &str, mode: &str, path: &Path, exec: &[&str]) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        exec: exec.iter().map(|p| p.to_string()).collect(),
        call_timeout_s: 20,
        config: [("mode".to_owned(), mode.to_owned()), ("path".to_owned(), path.display().to_string())].into(),
        ..plugin_spec("escape-power", PluginKind::Power)
    }
}

/// Files an attacker wants: one only root reads, one anybody reads; and a dir anybody may write.
struct Targets {
    _dir: tempfile::TempDir,
    root_only: PathBuf,
    world_readable: PathBuf,
    writable: PathBuf,
}

fn targets() -> Targets {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root_only = dir.path().join("root-only");
    std::fs::write(&root_only, format!("{SECRET_LINE}\nsecond line\n")).expect("write");
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let world_readable = dir.path().join("world-readable");
    std::fs::write(&world_readable, format!("{PUBLIC_LINE}\n")).expect("write");
    std::fs::set_permissions(&world_readable, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let writable = dir.path().join("writable");
    std::fs::create_dir(&writable).expect("mkdir");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    Targets { _dir: dir, root_only, world_readable, writable }
}

async fn start_host(policy: &ExecPolicy, specs: &[PluginSpec]) -> (Arc<PluginHost>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::with_exec_policy(dir.path(), policy).expect("runtime");
    for status in host.load(specs).await {
        assert!(status.loaded, "{} did not load: {:?}", status.name, status.error);
    }
    (Arc::new(host), dir)
}

async fn call(host: &PluginHost, name: &str, sim: &IpmiSim) -> CallResult<PowerState> {
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: "s3cret-bmc".into() };
    host.power(name).expect("loaded").get_power_state(&bmc, &creds).await
}

fn message(outcome: CallResult<PowerState>) -> String {
    outcome.expect_err("the attack plugin always reports an error").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reads_through_granted_tools_are_denied() {
    let sim = IpmiSim::start("admin", "s3cret-bmc");
    let t = targets();
    let reads = |path: &Path| {
        let tag = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        vec![
            escape(&format!("exec-{tag}"), "ipmitool-exec", path, &["ipmitool"]),
            escape(&format!("pwfile-{tag}"), "ipmitool-password-file", path, &["ipmitool"]),
            escape(&format!("fconf-{tag}"), "freeipmi-config-file", path, &["ipmi-power"]),
        ]
    };
    let mut specs = reads(&t.root_only);
    specs.extend(reads(&t.world_readable));
    specs.push(escape("good", "good", &t.root_only, &[]));

    // Control: with the targets' dir added to what programs may read, the world-readable line
    // comes back through `ipmitool exec` (so the attack is real) and only the user switch keeps
    // the root-only line out.
    let lenient = ExecPolicy { read_paths: vec![t.root_only.parent().expect("dir").to_owned()], ..ExecPolicy::default() };
    let (host_lenient, _c1) = start_host(&lenient, &specs).await;
    let leaked = message(call(&host_lenient, "exec-world-readable", &sim).await);
    assert!(leaked.contains(PUBLIC_LINE), "the control attack should read the world-readable file: {leaked}");
    // FreeIPMI's --config-file names the first line it cannot parse: the same leak.
    let leaked = message(call(&host_lenient, "fconf-world-readable", &sim).await);
    assert!(leaked.contains(PUBLIC_LINE), "the control attack should read the world-readable file: {leaked}");
    let kept = message(call(&host_lenient, "exec-root-only", &sim).await);
    assert!(!kept.contains(SECRET_LINE), "the user switch should keep the root-only file out: {kept}");

    // Confined as shipped: nothing outside the system dirs is readable, whoever owns it.
    let (host, _c2) = start_host(&ExecPolicy::default(), &specs).await;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).filter(|n| n != "good").collect();
    let attacks: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let host = host.clone();
            let port = sim.port;
            tokio::spawn(async move {
                let bmc = Bmc { host: "127.0.0.1".into(), port };
                let creds = Credentials { username: "admin".into(), password: "s3cret-bmc".into() };
                (name.clone(), host.power(&name).expect("loaded").get_power_state(&bmc, &creds).await)
            })
        })
        .collect();
    let mut served = 0;
    while !attacks.iter().all(|a| a.is_finished()) {
        assert_eq!(call(&host, "good", &sim).await.expect("good call"), PowerState::On);
        served += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(served > 0, "no good call was served while the attacks ran");
    for attack in attacks {
        let (name, outcome) = attack.await.expect("join");
        let text = message(outcome);
        assert!(!text.contains(SECRET_LINE) && !text.contains(PUBLIC_LINE), "{name} read through: {text}");
        assert!(text.contains("status="), "{name} did not run its tool: {text}");
    }
    // The tool did run and was refused the file, as opposed to failing for another reason.
    let text = message(call(&host, "exec-world-readable", &sim).await);
    assert!(text.contains("Permission denied") || text.contains("permission denied"), "{text}");
}

#[tokio::test]
async fn file_writes_through_granted_tools_land_nowhere() {
    let sim = IpmiSim::start("admin", "s3cret-bmc");
    let t = targets();
    let attacks = [
        ("sdr-dump", "ipmitool-sdr-dump", "ipmitool", t.writable.join("sdr.bin")),
        ("sel-save", "ipmitool-sel-save", "ipmitool", t.writable.join("sel.txt")),
        ("sdr-cache", "freeipmi-sdr-cache", "ipmi-sensors", t.writable.join("cache")),
        ("sdr-dump-tmp", "ipmitool-sdr-dump", "ipmitool", PathBuf::from(format!("/tmp/metalhost-escape-{}", std::process::id()))),
    ];
    let specs: Vec<PluginSpec> = attacks.iter().map(|(name, mode, tool, path)| escape(name, mode, path, &[tool])).collect();

    let (host, _c) = start_host(&ExecPolicy::default(), &specs).await;
    for (name, _, _, path) in &attacks {
        let text = message(call(&host, name, &sim).await);
        assert!(!path.exists(), "{name} wrote {} ({text})", path.display());
        assert!(text.contains("status="), "{name} did not run its tool: {text}");
    }
    // Control: the same attack aimed at the private working dir (a relative name) writes there,
    // so the tool really writes when it may.
    let relative = escape("sdr-dump-inside", "ipmitool-sdr-dump", Path::new("sdr.bin"), &["ipmitool"]);
    let (host, _c) = start_host(&ExecPolicy::default(), &[relative]).await;
    let text = message(call(&host, "sdr-dump-inside", &sim).await);
    assert!(text.contains("status=0"), "sdr dump into the working dir should succeed (the attack tool works): {text}");
    assert!(std::fs::read_dir(&t.writable).expect("dir").next().is_none(), "nothing may appear in the writable dir");
}

#[tokio::test]
async fn a_process_left_behind_dies_with_the_call() {
    let t = targets();
    let (host, _c) = start_host(&ExecPolicy::default(), &[escape("leaver", "sh-grandchild", &t.writable, &["sh"])]).await;
    let bmc = Bmc { host: "127.0.0.1".into(), port: 623 };
    let creds = Credentials { username: "admin".into(), password: "x".into() };
    let text = message(host.power("leaver").expect("loaded").get_power_state(&bmc, &creds).await);
    let pid = text.split("stdout=").nth(1).and_then(|s| s.split_whitespace().next()).expect("the grandchild's pid").to_owned();
    assert!(pid.chars().all(|c| c.is_ascii_digit()), "{text}");
    let until = Instant::now() + Duration::from_secs(5);
    let alive =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
    while alive() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(), "pid {pid} outlived the call");
}

/// A daemon with the attack plugins, a switch (never contacted) and one node per plugin.
async fn daemon_with(plugins: &[(&str, &str)]) -> Daemon {
    let mut config = String::new();
    for (name, mode) in plugins {
        config.push_str(&format!(
            "\n[[plugin]]\nname = \"{name}\"\nkind = \"power\"\npath = \"{}\"\nconfig = {{ mode = \"{mode}\" }}\n",
            plugin_wasm("escape-power").display()
        ));
    }
    let daemon = Daemon::start_with(&config);
    let (status, switch) = daemon.post("/v1/switches", &switch_body("sw1", "switch-pass")).await;
    assert!(status.is_success(), "{switch}");
    for (i, (name, _)) in plugins.iter().enumerate() {
        let mut body = node_body(i as u32 + 1, switch["id"].as_i64().expect("id"), "bmc-pass");
        body["name"] = json!(name);
        body["power_driver"] = json!(name);
        let (status, node) = daemon.post("/v1/nodes", &body).await;
        assert!(status.is_success(), "{node}");
    }
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_cut_and_counted_while_the_daemon_serves_others() {
    let daemon = daemon_with(&[("flood", "log-flood"), ("good", "good")]).await;
    let before = daemon.log().len();
    let flood = {
        let url = format!("{}/v1/nodes/flood/power", daemon.url);
        let client = daemon.http_client();
        tokio::spawn(async move { client.get(url).bearer_auth(metalhost_tests::daemon::TOKEN).send().await.map(|r| r.status()) })
    };
    let mut served = 0;
    while !flood.is_finished() {
        let (status, power) = daemon.get("/v1/nodes/good/power").await;
        assert!(status.is_success(), "{power}");
        served += 1;
    }
    assert!(flood.await.expect("join").expect("flood call").is_success());
    assert!(served > 0);
    let log = daemon.log();
    let written = log.len() - before;
    // 200 MB offered; the budget lets 64 KiB through plus the daemon's own lines.
    assert!(written < 512 * 1024, "the daemon log grew by {written} bytes");
    let warning = log.lines().find(|l| l.contains("per-call budget")).expect("one warning counts the drop");
    assert!(warning.contains("dropped_lines="), "{warning}");
    assert_eq!(log.matches("per-call budget").count(), 1);
}

#[tokio::test]
async fn a_huge_error_is_cut_before_it_reaches_the_client() {
    let daemon = daemon_with(&[("huge", "huge-error")]).await;
    let (status, body) = daemon.get("/v1/nodes/huge/power").await;
    assert!(status.is_server_error(), "{status}");
    let text = body.to_string();
    assert!(text.len() < 8 * 1024, "the client got {} bytes", text.len());
    assert!(text.contains("[cut:") && text.contains("of 41943040 bytes"), "{text}");
    assert!(daemon.log().len() < 256 * 1024, "the log took the whole error");
}

#[tokio::test]
async fn plugin_list_shows_each_plugins_confinement() {
    let mut config = format!(
        "\n[[plugin]]\nname = \"ipmitool\"\nkind = \"power\"\npath = \"{}\"\nexec = [\"ipmitool\"]\n\
         \n[[plugin]]\nname = \"noexec\"\nkind = \"power\"\npath = \"{}\"\n",
        plugin_wasm("ipmitool").display(),
        plugin_wasm("escape-power").display()
    );
    config.push_str("\n[exec]\ncpu_s = 7\nopen_files = 48\n");
    let daemon = Daemon::start_with(&config);
    let (_, list) = daemon.get("/v1/plugins").await;
    let by_name = |n: &str| list.as_array().and_then(|a| a.iter().find(|p| p["name"] == n)).cloned().expect("plugin listed");
    let confined = by_name("ipmitool")["confinement"].clone();
    assert!(confined["landlock_abi"].as_u64().is_some_and(|v| v >= 1), "{confined}");
    assert_eq!((confined["cpu_s"].as_u64(), confined["open_files"].as_u64()), (Some(7), Some(48)), "{confined}");
    assert_eq!(confined["user"], "nobody");
    assert!(confined["network_scope"].as_str().is_some_and(|s| s.contains("bpf cgroup")), "{confined}");
    assert!(by_name("noexec")["confinement"].is_null(), "a plugin without exec has nothing to confine");
    let out = daemon.cli(&["plugin", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("CONFINEMENT") && table.contains("landlock abi") && table.contains("user nobody:nogroup"), "{table}");
    assert!(table.contains("network: the call's BMC only"), "{table}");
}

/// The cgroup v2 mount point, as this process sees it.
fn cgroup2_mount() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f.get(2) == Some(&"cgroup2")).map(|f| f[1].to_owned()).expect("cgroup2 mounted")
}

/// Where programs cannot be kept to their BMC (here: a daemon in a mount namespace without the
/// cgroup v2 hierarchy), plugins with exec grants are refused unless the operator opts out, and
/// the start log and `plugin list` say so; opted out, they run and say they are unscoped.
#[tokio::test]
async fn without_the_network_scope_exec_grants_are_refused_unless_the_operator_opts_out() {
    let hide = format!("umount -l {} && exec \"$@\"", cgroup2_mount());
    let wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide.as_str(), "sh"];
    let plugin =
        format!("[[plugin]]\nname = \"ipmitool\"\nkind = \"power\"\npath = \"{}\"\nexec = [\"ipmitool\"]\n", plugin_wasm("ipmitool").display());

    let daemon = Daemon::start_wrapped(&plugin, &wrapper);
    let (_, list) = daemon.get("/v1/plugins").await;
    let status = &list[0];
    assert_eq!(status["loaded"], false, "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("network scope") && error.contains("allow_unscoped = true") && error.contains("no cgroup v2"), "{error}");
    assert!(daemon.log().contains("exec and console grants need the network scope"), "{}", daemon.log());

    let daemon = Daemon::start_wrapped(&format!("{plugin}\n[exec]\nallow_unscoped = true\n"), &wrapper);
    let (_, list) = daemon.get("/v1/plugins").await;
    let status = &list[0];
    assert_eq!(status["loaded"], true, "{status}");
    assert!(status["confinement"]["network_scope"].is_null(), "{status}");
    assert!(daemon.log().contains("NO NETWORK SCOPE"), "{}", daemon.log());
    let out = daemon.cli(&["plugin", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NO NETWORK SCOPE (any host)"), "{table}");
    // Unscoped, the plugin still drives its BMC.
    let sim = IpmiSim::start("admin", "s3cret-bmc");
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let mut body = node_body(1, switch["id"].as_i64().expect("id"), "s3cret-bmc");
    body["bmc_port"] = json!(sim.port);
    let (status, node) = daemon.post("/v1/nodes", &body).await;
    assert!(status.is_success(), "{node}");
    let (status, power) = daemon.get("/v1/nodes/node1/power").await;
    assert!(status.is_success(), "{power}");
}
