//! TLS by default (issue 31): the daemon serves its API over TLS from a CA it made itself, and
//! only the netboot files in plain HTTP on their own port; the CLI refuses a certificate it cannot
//! trust and says how to trust metalhost's; TLS 1.1 is refused; the web view's cookie is `Secure`
//! and HSTS is sent; the agent refuses a daemon whose certificate comes from another CA or has
//! expired, and the deploy then fails visibly. (A capture of a whole VM deploy is in vms.rs;
//! PostgreSQL's TLS is in postgres.rs.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use metalhost_tests::agent_lab::run_agent_at;
use metalhost_tests::certs;
use metalhost_tests::daemon::{Daemon, TOKEN};
use metalhost_tests::deploy_lab::{DeployLab, Options, image};
use metalhost_tests::paths;

/// The CLI's output for `args` against the daemon, with `ca` as its `--ca` (None: no CA given).
fn cli(daemon: &Daemon, ca: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(paths::host_binary("metalhost"));
    command.args(["--url", &daemon.url]).env("METALHOST_TOKEN", TOKEN).env_remove("METALHOST_CA").env("METALHOST_CLIENT_CONFIG", "/nonexistent");
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let out = command.args(args).output().expect("run the CLI");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_trusts_the_daemons_ca_only_when_told_and_says_how() {
    let daemon = Daemon::start();
    assert!(daemon.url.starts_with("https://"), "TLS is the default: {}", daemon.url);
    let ca = daemon.ca_file.clone().expect("the daemon's CA");

    let (ok, text) = cli(&daemon, None, &["node", "list"]);
    assert!(!ok, "an unknown CA must be refused: {text}");
    assert!(text.contains("no CA you trust") && text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("--ca FILE") && text.contains("METALHOST_CA") && text.contains("tls/ca.pem"), "the message says how to trust it: {text}");

    let dir = tempfile::tempdir().expect("tmp");
    let (other, _) = certs::ca("another CA");
    std::fs::write(dir.path().join("other.pem"), other.pem()).expect("write");
    let (ok, text) = cli(&daemon, Some(&dir.path().join("other.pem")), &["node", "list"]);
    assert!(!ok && text.contains("no CA you trust"), "another CA is no better: {text}");

    let (ok, text) = cli(&daemon, Some(&ca), &["--json", "node", "list"]);
    assert!(ok, "with the daemon's CA: {text}");
    assert_eq!(text.trim(), "[]");
}

/// `openssl s_client` with one protocol version: whether the handshake completed.
fn handshake(addr: &str, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, version])
        // Debian's OpenSSL would refuse TLS 1.1 itself at its default security level.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let done = text.lines().any(|l| l.contains("Cipher is") && !l.contains("(NONE)"));
    (done, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused_and_1_2_and_1_3_are_spoken() {
    let daemon = Daemon::start();
    let addr = daemon.url.trim_start_matches("https://");
    let (done, text) = handshake(addr, "-tls1_1");
    assert!(!done, "TLS 1.1 must be refused:\n{text}");
    let (done, text) = handshake(addr, "-tls1_2");
    assert!(done, "TLS 1.2:\n{text}");
    let (done, text) = handshake(addr, "-tls1_3");
    assert!(done, "TLS 1.3:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_a_secure_cookie_and_a_boot_port_that_serves_only_netboot_files() {
    let daemon = Daemon::start();
    let http = daemon.http_client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let health = http.get(format!("{}/healthz", daemon.url)).send().await.expect("get");
    assert_eq!(health.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()), Some("max-age=31536000"));
    let signed_in =
        http.post(format!("{}/ui/login", daemon.url)).header("origin", &daemon.url).form(&[("token", TOKEN)]).send().await.expect("sign in");
    let cookie = signed_in.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.starts_with("metalhost_session=") && cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // The API port speaks only TLS.
    let plain_api = daemon.url.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain_api}/healthz")).await.is_err(), "the API answered plain HTTP");

    // The boot port: the iPXE script in plain HTTP, and nothing of the API.
    assert!(daemon.boot_url.starts_with("http://"), "{}", daemon.boot_url);
    let script = reqwest::get(format!("{}/v1/boot/boot.ipxe", daemon.boot_url)).await.expect("script");
    assert_eq!(script.status(), StatusCode::OK);
    let text = script.text().await.expect("text");
    assert!(text.starts_with("#!ipxe") && text.contains(&format!("chain {}/v1/boot/nodes/", daemon.boot_url)), "{text}");
    for path in ["/v1/nodes", "/v1/agent/lookup", "/ui", "/v1/openapi.json"] {
        let response = reqwest::Client::new().get(format!("{}{path}", daemon.boot_url)).bearer_auth(TOKEN).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path} on the boot port");
        let body: serde_json::Value = response.json().await.expect("json");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("the API is at {}", daemon.url)), "{path}: {body}");
    }
}

/// An agent told to trust another CA (an attacker's daemon, seen from the other side) refuses the
/// daemon, says why on its console, and the deploy fails at its deadline instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_told_another_ca_refuses_the_daemon_and_the_deploy_fails_visibly() {
    let (other, _) = certs::ca("an attacker's CA");
    let pin = hex::encode(sha2_digest(other.der()));
    let lab = DeployLab::start(Options { agent_timeout_s: 15, agent_ca_sha256: Some(format!("sha256:{pin}")), ..Options::default() }).await;
    lab.upload("os", &image(1 << 20, 3));
    let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "os", "name": "i1"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let node = &lab.nodes[0].name;
    let n = lab.daemon.wait_node(node, &["error"], Duration::from_secs(120)).await;
    assert_eq!(n["state"], "error", "{n}");
    let failure = metalhost_tests::daemon::failure_line(&n["last_error"]);
    assert!(failure.contains("wait-agent") || failure.contains("agent"), "the failure names the agent's absence: {failure}");
    let log = std::fs::read_to_string(lab.dir.path().join("agent1.log")).unwrap_or_default();
    assert!(log.contains("not from the CA this node was told to trust") && log.contains(&pin), "the agent's console says why:\n{log}");
    assert!(!log.contains("looked up as node"), "the agent must not have talked to the daemon:\n{log}");
}

/// A daemon serving the operator's own certificate, which has expired: the agent, pinned to the
/// right CA, refuses it and says so; so does the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_by_the_agent_and_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ca, ca_key) = certs::ca("operator CA");
    let (leaf, leaf_key) = certs::server(&ca_key, "operator CA", &["127.0.0.1", "localhost"], true);
    let (chain, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    std::fs::write(&chain, format!("{}{}", leaf.pem(), ca.pem())).expect("write chain");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    let daemon = Daemon::start_with(&format!("[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n", chain.display(), key.display()));
    let pin = hex::encode(sha2_digest(ca.der()));
    assert_eq!(daemon.ca_fingerprint.as_deref(), Some(pin.as_str()), "the pin is the chain's last certificate, the CA");

    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk");
    let out = run_agent_at(&daemon.url, Some(&pin), "52:54:00:00:31:01", &disk, 8);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{log}");
    assert!(log.to_lowercase().contains("expired"), "the agent says the certificate expired:\n{log}");
    assert!(!log.contains("looked up as node"), "{log}");

    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca");
    let (ok, text) = cli(&daemon, Some(&ca_file), &["node", "list"]);
    assert!(!ok && text.to_lowercase().contains("expired"), "{text}");
}

fn sha2_digest(der: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(der).to_vec()
}
