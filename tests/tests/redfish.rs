//! The Redfish power plugin (contract 0.2.0) against sushy-emulator: through the daemon and the
//! CLI (power, boot device read back from the emulator's own API, wrong password, untrusted CA,
//! emulator stopped), and the host's network scope, which lets a plugin reach its call's BMC and
//! nothing else.

use std::collections::BTreeMap;

use metalhost_conformance::sims::sushy::{self, Sushy};
use metalhost_conformance::sims::test_ca::TestCa;
use metalhost_plugin_host::{Bmc, Credentials, NetworkSpec, PluginHost, PluginKind, PluginSpec};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::paths::{plugin_spec, plugin_wasm};
use serde_json::{Value, json};

const PASSWORD: &str = "redfish-s3cret";

fn start_sushy() -> Sushy {
    Sushy::start(&sushy::default_program(), "admin", PASSWORD).unwrap_or_else(|e| panic!("{e}"))
}

/// A `[[plugin]]` entry for the Redfish plugin trusting `ca`.
fn redfish_toml(name: &str, ca: &std::path::Path) -> String {
    format!(
        "\n[[plugin]]\nname = \"{name}\"\nkind = \"power\"\npath = \"{}\"\ncall_timeout_s = 40\nnetwork = {{ ca = \"{}\" }}\n",
        plugin_wasm("redfish").display(),
        ca.display()
    )
}

/// A node whose BMC is the emulator, driven by `driver`.
async fn add_node(daemon: &Daemon, i: u32, switch_id: i64, sushy: &Sushy, driver: &str, password: &str) {
    let mut body = node_body(i, switch_id, password);
    body["bmc_port"] = json!(sushy.port);
    body["power_driver"] = json!(driver);
    let (status, answer) = daemon.post("/v1/nodes", &body).await;
    assert!(status.is_success(), "{status} {answer}");
}

async fn add_switch(daemon: &Daemon) -> i64 {
    let (status, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    assert!(status.is_success(), "{status} {switch}");
    switch["id"].as_i64().expect("switch id")
}

fn cli(daemon: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = daemon.cli(args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn emulator_power(sushy: &Sushy) -> String {
    sushy.system(PASSWORD).expect("read the emulator")["PowerState"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redfish_power_and_boot_device_through_the_daemon_and_cli() {
    let sushy = start_sushy();
    let daemon = Daemon::start_with(&redfish_toml("redfish", &sushy.ca.cert));
    let switch = add_switch(&daemon).await;
    add_node(&daemon, 1, switch, &sushy, "redfish", PASSWORD).await;

    let (ok, out, err) = cli(&daemon, &["plugin", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    let redfish = list.as_array().and_then(|l| l.iter().find(|p| p["name"] == "redfish")).cloned().expect("listed");
    assert_eq!((redfish["loaded"].as_bool(), redfish["contract"].as_str()), (Some(true), Some("metalhost:drivers@0.2.0")), "{redfish}");
    let network = redfish["grants"]["network"].as_str().unwrap_or_default();
    assert!(network.contains("the call's BMC only") && network.contains("verified against the CA bundle"), "{redfish}");
    assert_eq!(redfish["grants"]["exec"], json!({}), "no exec grant at all: {redfish}");

    let (ok, out, err) = cli(&daemon, &["node", "power", "node1", "status"]);
    assert!(ok && out.contains("off"), "{out} {err}");
    for (action, want) in [("on", "On"), ("off", "Off"), ("reboot", "On"), ("reboot", "On")] {
        let (ok, _, err) = cli(&daemon, &["node", "power", "node1", action]);
        assert!(ok, "power {action}: {err}\n{}", sushy.log());
        assert_eq!(emulator_power(&sushy), want, "after power {action}");
    }
    let (ok, out, _) = cli(&daemon, &["node", "power", "node1", "status"]);
    assert!(ok && out.contains("on"), "{out}");

    for (args, target) in [(&["pxe"][..], "Pxe"), (&["disk", "--once"][..], "Hdd")] {
        let mut command = vec!["node", "boot-device", "node1"];
        command.extend_from_slice(args);
        let (ok, _, err) = cli(&daemon, &command);
        assert!(ok, "{err}");
        let system = sushy.system(PASSWORD).expect("read the emulator");
        assert_eq!(system["Boot"]["BootSourceOverrideTarget"], target, "{system}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_untrusted_certificate_and_a_stopped_emulator() {
    let sushy = start_sushy();
    let other = TestCa::create(sushy.dir(), "other-ca").expect("second CA");
    let config = format!("{}{}", redfish_toml("redfish", &sushy.ca.cert), redfish_toml("redfish-other-ca", &other.cert));
    let daemon = Daemon::start_with(&config);
    let switch = add_switch(&daemon).await;
    add_node(&daemon, 1, switch, &sushy, "redfish", "not-the-password").await;
    add_node(&daemon, 2, switch, &sushy, "redfish-other-ca", PASSWORD).await;
    add_node(&daemon, 3, switch, &sushy, "redfish", PASSWORD).await;

    let (ok, _, err) = cli(&daemon, &["node", "power", "node1", "status"]);
    assert!(!ok && err.contains("redfish") && err.contains("auth-failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    let (ok, _, err) = cli(&daemon, &["node", "power", "node2", "status"]);
    assert!(!ok && err.contains("TLS") && err.contains("UnknownIssuer"), "a clear TLS error: {err}");

    let (ok, out, err) = cli(&daemon, &["node", "power", "node3", "status"]);
    assert!(ok && out.contains("off"), "{err}");
    drop(sushy);
    let (ok, _, err) = cli(&daemon, &["node", "power", "node3", "status"]);
    assert!(!ok && err.contains("unreachable"), "{err}");
    assert!(!daemon.log().contains(PASSWORD), "the BMC password reached the daemon's log");
}

/// The host refuses every way out but the call's BMC, naming the address it allows; WASI sockets
/// are closed altogether; the BMC itself answers.
#[tokio::test]
async fn a_plugin_reaches_its_bmc_and_nothing_else() {
    let sushy = start_sushy();
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let network = NetworkSpec { ca: Some(sushy.ca.cert.clone()), ..Default::default() };
    let specs: Vec<PluginSpec> = ["http-host", "http-port", "http-scheme", "udp-port", "wasi-tcp", "wasi-udp", "http-bmc"]
        .into_iter()
        .map(|mode| PluginSpec {
            name: mode.to_owned(),
            console: vec![],
            network: Some(network.clone()),
            config: BTreeMap::from([("mode".to_owned(), mode.to_owned())]),
            ..plugin_spec("net-escape", PluginKind::Power)
        })
        .collect();
    for status in host.load(&specs).await {
        assert!(status.loaded, "{status:?}");
    }
    let bmc = Bmc { host: "127.0.0.1".into(), port: sushy.port };
    let creds = Credentials { username: "admin".into(), password: PASSWORD.into() };
    let said = |mode: &str| {
        let host = &host;
        let (bmc, creds) = (&bmc, &creds);
        let mode = mode.to_owned();
        async move { host.power(&mode).expect("driver").get_power_state(bmc, creds).await.expect_err("the plugin always reports").to_string() }
    };
    let allowed = format!("https://127.0.0.1:{} only", sushy.port);
    for mode in ["http-host", "http-port", "http-scheme"] {
        let message = said(mode).await;
        assert!(message.contains("NotPermitted") && message.contains(&allowed), "{mode}: {message}");
    }
    let message = said("udp-port").await;
    assert!(message.contains("NotPermitted") && message.contains(&format!("127.0.0.1:{} only", sushy.port)), "{message}");
    for mode in ["wasi-tcp", "wasi-udp"] {
        let message = said(mode).await;
        assert!(message.contains("wasi socket refused"), "{mode}: {message}");
    }
    let message = said("http-bmc").await;
    assert!(message.contains("reached /redfish/v1: HTTP 200"), "{message}");
}
