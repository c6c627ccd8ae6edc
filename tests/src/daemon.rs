//! Starts the real `metalhost` daemon on a free loopback port with a temporary data dir, and drives
//! it over HTTP and through the real CLI binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::openapi::ApiDocument;
use crate::paths;

pub const TOKEN: &str = "test-operator-token-0123456789";

/// A running daemon; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    /// The API: `https://...` (TLS is the default), or `http://` with `[tls] enabled = false`.
    pub url: String,
    /// The plain-HTTP boot listener (netboot files and the agent binary only).
    pub boot_url: String,
    /// The CA the API's certificate chains to (PEM file) and its sha256, hex; None without TLS.
    pub ca_file: Option<PathBuf>,
    pub ca_fingerprint: Option<String>,
    pub data_dir: PathBuf,
    /// Keeps the temp dir alive as long as the daemon.
    _dir: Option<tempfile::TempDir>,
    config_path: PathBuf,
    log_path: PathBuf,
    http: reqwest::Client,
    /// The daemon's OpenAPI document, fetched at the first call: every JSON answer is checked
    /// against it (see `crate::openapi`).
    document: tokio::sync::OnceCell<ApiDocument>,
    /// Benchmarks turn the document check off: it costs the client CPU the daemon shares.
    check_document: bool,
    /// The PostgreSQL database the daemon's pool is in, when it runs on PostgreSQL.
    pub pg_database: Option<String>,
    /// A program (and its arguments) the daemon runs under, which execs it in the end.
    wrapper: Vec<String>,
}

impl Daemon {
    /// A daemon with no plugins and the given extra TOML appended to its config.
    pub fn start_with(extra_config: &str) -> Daemon {
        let mut daemon = Daemon::prepare(extra_config, &[]);
        daemon.spawn();
        daemon
    }

    /// The daemon's files and config, not started yet.
    fn prepare(extra_config: &str, wrapper: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("metalhost.toml");
        // Tests turn the periodic power sync off unless they configure it.
        let sync = if extra_config.contains("power_sync") { "" } else { "power_sync = { interval_s = 0 }\n" };
        // Loopback on a free port, unless the test listens elsewhere (the VM lab's bridge address).
        let listen = if extra_config.lines().any(|l| l.trim_start().starts_with("listen")) { "" } else { "listen = \"127.0.0.1:0\"\n" };
        // METALHOST_TEST_DATABASE=postgres: the same test, with the pool on PostgreSQL.
        let (database, pg_database) = if crate::postgres::requested() && !extra_config.contains("database") {
            let server = crate::postgres::PgServer::shared();
            let name = server.create_database();
            (server.database_config(&name), Some(name))
        } else {
            (String::new(), None)
        };
        let config = format!("{listen}data_dir = \"{}\"\n{database}{sync}{extra_config}\n", data_dir.display());
        std::fs::write(&config_path, config).expect("write config");
        plugin_cache::seed(&data_dir);
        let log_path = dir.path().join("daemon.log");
        Daemon {
            child: None,
            url: String::new(),
            boot_url: String::new(),
            ca_file: None,
            ca_fingerprint: None,
            data_dir,
            _dir: Some(dir),
            config_path,
            log_path,
            http: reqwest::Client::new(),
            document: Default::default(),
            check_document: true,
            pg_database,
            wrapper: wrapper.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    /// As [`Daemon::start_with`], run under `wrapper` (say `unshare ...`), which must exec the
    /// daemon command line it is given as its last arguments.
    pub fn start_wrapped(extra_config: &str, wrapper: &[&str]) -> Daemon {
        let mut daemon = Daemon::prepare(extra_config, wrapper);
        daemon.spawn();
        daemon
    }

    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// Stops validating answers against the OpenAPI document (benchmarks only).
    pub fn skip_document_checks(&mut self) {
        self.check_document = false;
    }

    fn spawn(&mut self) {
        self.document = Default::default();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open log");
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(paths::host_binary("metalhost"));
                command
            }
            None => Command::new(paths::host_binary("metalhost")),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("METALHOST_TOKEN", TOKEN)
            .env("RUST_LOG", "info,metalhost=debug")
            .env_remove("METALHOST_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start metalhost serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let fresh = text.get(offset as usize..).unwrap_or("");
            if let Some(line) = fresh.lines().find(|l| l.contains("metalhost is serving addr=")) {
                // The bound address, in the scheme the daemon serves (its public URL may be a proxy).
                let scheme = field(line, "url=").split("://").next().unwrap_or("http").to_owned();
                self.url = format!("{scheme}://{}", field(line, "addr="));
                self.boot_url = field(line, "boot=");
                let tls = fresh.lines().find(|l| l.contains("TLS: clients trust this CA"));
                self.ca_file = tls.map(|l| PathBuf::from(field(l, "ca=")));
                self.ca_fingerprint = tls.map(|l| field(l, "fingerprint="));
                // A fresh client: pooled connections to a previous daemon on the same address are
                // dead, and a restarted daemon may serve under another CA.
                self.http = self.http_client();
                plugin_cache::publish(&self.data_dir);
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("metalhost exited with {status} before serving; log:\n{text}");
            }
            assert!(Instant::now() < deadline, "metalhost did not start in time; log:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon with SIGTERM and waits for it to exit; returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the daemon with SIGKILL (no graceful shutdown), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts the daemon on the same address, so agents keep reaching it.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_again();
    }

    /// Starts a stopped (or killed) daemon again on the same addresses.
    pub fn spawn_again(&mut self) {
        let addr = self.url.split("://").nth(1).unwrap_or_default().to_owned();
        let boot = self.boot_url.split("://").nth(1).unwrap_or_default().to_owned();
        if !addr.is_empty() {
            let config = std::fs::read_to_string(&self.config_path).expect("read config");
            let config = config.replacen("listen = \"127.0.0.1:0\"\n", &format!("listen = \"{addr}\"\nboot_listen = \"{boot}\"\n"), 1);
            std::fs::write(&self.config_path, config).expect("write config");
        }
        self.spawn();
    }

    /// An HTTP client that trusts this daemon's CA (as the CLI does with `--ca`).
    pub fn http_client(&self) -> reqwest::Client {
        self.http_client_builder().build().expect("HTTP client")
    }

    /// As [`Daemon::http_client`], to add settings to.
    pub fn http_client_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder();
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read(file).unwrap_or_else(|e| panic!("read the daemon's CA {}: {e}", file.display()));
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("the daemon's CA is PEM"));
        }
        builder
    }

    /// A WebSocket connector that trusts this daemon's CA.
    pub fn ws_connector(&self) -> tokio_tungstenite::Connector {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(file) = &self.ca_file {
            use rustls::pki_types::pem::PemObject;
            let ca = rustls::pki_types::CertificateDer::from_pem_file(file).expect("the daemon's CA");
            roots.add(ca).expect("a usable CA");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config))
    }

    /// The agent's arguments that reach this daemon: `--api URL`, and the CA's pin with TLS.
    pub fn agent_api_args(&self) -> Vec<String> {
        let mut args = vec!["--api".to_owned(), self.url.clone()];
        if let Some(fingerprint) = &self.ca_fingerprint {
            args.extend(["--ca-sha256".to_owned(), format!("sha256:{fingerprint}")]);
        }
        args
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn data_path(&self) -> &Path {
        &self.data_dir
    }

    /// Runs SQL straight on the daemon's database, SQLite or PostgreSQL (while it is stopped, to
    /// plant what the API cannot make).
    pub fn exec_sql(&self, sql: &str) {
        match &self.pg_database {
            Some(name) => {
                crate::postgres::PgServer::shared().psql(name, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            None => {
                let db = rusqlite::Connection::open(self.data_dir.join("metalhost.db")).expect("open db");
                db.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// An HTTP call with the operator token; returns the status and the JSON body (Null if empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.call_with_token(method, path, body, Some(TOKEN)).await
    }

    pub async fn call_with_token(&self, method: Method, path: &str, body: Option<&Value>, token: Option<&str>) -> (StatusCode, Value) {
        let document = if self.check_document {
            Some(
                self.document
                    .get_or_init(|| async {
                        let response = self.http.get(format!("{}/v1/openapi.json", self.url)).send().await.expect("fetch the OpenAPI document");
                        ApiDocument::new(response.json().await.expect("the OpenAPI document is JSON"))
                    })
                    .await,
            )
        } else {
            None
        };
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("send request");
        let status = response.status();
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.expect("read body");
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if let Some(document) = document
            && let Err(mismatch) = document.check(method.as_str(), path, status.as_u16(), &content_type, &value)
        {
            panic!("the daemon's answer does not match its OpenAPI document: {mismatch}");
        }
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Every page of a paged list from `first` on, following each answer's
    /// `Link: <...>; rel="next"`: the pages' items, one list per page, and the links followed.
    pub async fn pages(&self, first: &str, token: Option<&str>) -> (Vec<Vec<Value>>, Vec<String>) {
        let (mut pages, mut links) = (Vec::new(), Vec::new());
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            let mut request = self.http.get(format!("{}{path}", self.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("send request");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            next = response
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.strip_suffix("; rel=\"next\""))
                .map(|l| l.trim_matches(['<', '>']).to_owned());
            links.extend(next.clone());
            let page: Value = response.json().await.expect("a JSON page");
            pages.push(page.as_array().unwrap_or_else(|| panic!("{path}: not a list: {page}")).clone());
            assert!(pages.len() < 10_000, "pages that never end from {first}");
        }
        (pages, links)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Waits until the node is in one of `states` (or `error`, which ends every wait), and returns it;
    /// on timeout it panics with the node's events and the daemon log.
    pub async fn wait_node(&self, node: &str, states: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, n) = self.get(&format!("/v1/nodes/{node}")).await;
            let state = n["state"].as_str().unwrap_or("");
            if states.contains(&state) || (state == "error" && !states.is_empty()) {
                return n;
            }
            if Instant::now() > deadline {
                let (_, events) = self.get(&format!("/v1/nodes/{node}/events")).await;
                panic!("node {node} is {state}, not {states:?}, after {timeout:?}\nevents: {events:#}\nlog:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the real CLI against this daemon with the operator token in the environment.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_env(args, &[])
    }

    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(paths::host_binary("metalhost"));
        command.args(args).env("METALHOST_URL", &self.url).env("METALHOST_TOKEN", TOKEN);
        if let Some(ca) = &self.ca_file {
            command.env("METALHOST_CA", ca);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("run metalhost CLI")
    }
}

/// The value of `key` (say `url=`) in a log line's `key=value` fields.
fn field(line: &str, key: &str) -> String {
    let at = line.find(&format!(" {key}")).map(|i| i + 1 + key.len()).unwrap_or(line.len());
    line[at..].chars().take_while(|c| !c.is_whitespace()).collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Compiled plugin components shared by the test daemons. A daemon keeps each plugin compiled by
/// Cranelift in `<data_dir>/plugin-cache/<key>.cwasm`, the key covering the wasm's sha256 and
/// wasmtime's version and configuration; in a fresh data dir it compiles every plugin it loads,
/// seconds of CPU each in a debug build, and the suite starts over a hundred daemons, several at
/// once when test binaries run side by side (`scripts/run-tests`), where starved starts then missed
/// their deadline. So a new daemon's cache starts with what other test daemons compiled
/// (`<target>/lab/plugin-cache`), and what it compiled itself goes there once it serves. The daemon
/// treats these entries as its own (wasmtime refuses one from another version or configuration, and
/// the daemon then compiles); the tests that check compiling and caching use their own cache dirs.
pub mod plugin_cache {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn shared() -> PathBuf {
        crate::paths::target_dir().join("lab/plugin-cache")
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let files = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
        files.filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect()
    }

    /// Links (or copies) the shared entries into the daemon's cache dir before it starts.
    pub fn seed(data_dir: &Path) {
        let found = entries(&shared());
        let own = data_dir.join("plugin-cache");
        if found.is_empty() || std::fs::create_dir_all(&own).is_err() {
            return;
        }
        for entry in found {
            let Some(name) = entry.file_name() else { continue };
            // The daemon replaces a stale entry by renaming a new file over it, never writes into
            // one: a hard link shares nothing it could change.
            let _ = std::fs::hard_link(&entry, own.join(name)).or_else(|_| std::fs::copy(&entry, own.join(name)).map(|_| ()));
        }
    }

    /// Adds what the daemon compiled to the shared entries (whole files only: renamed into place).
    pub fn publish(data_dir: &Path) {
        let shared = shared();
        for entry in entries(&data_dir.join("plugin-cache")) {
            let Some(name) = entry.file_name() else { continue };
            if shared.join(name).exists() || std::fs::create_dir_all(&shared).is_err() {
                continue;
            }
            static PARTS: AtomicUsize = AtomicUsize::new(0);
            let part = PARTS.fetch_add(1, Ordering::Relaxed);
            let partial = shared.join(format!(".{}.{}-{part}", name.to_string_lossy(), std::process::id()));
            if std::fs::copy(&entry, &partial).and_then(|_| std::fs::rename(&partial, shared.join(name))).is_err() {
                let _ = std::fs::remove_file(&partial);
            }
        }
    }
}

/// The JSON body of a switch for `POST /v1/switches`.
pub fn switch_body(name: &str, password: &str) -> Value {
    serde_json::json!({
        "name": name, "address": "127.0.0.1", "port": 830, "username": "admin",
        "password": password, "driver": "juniper", "description": "rack 1 top",
    })
}

/// The JSON body of node number `i` on `switch_id` for `POST /v1/nodes`.
pub fn node_body(i: u32, switch_id: i64, bmc_password: &str) -> Value {
    serde_json::json!({
        "name": format!("node{i}"),
        "mac": format!("52:54:00:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
        "ip": format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
        "cpus": 8, "ram_mb": 16384, "disk_gb": 200,
        "bmc_address": "127.0.0.1", "bmc_port": 623, "bmc_username": "admin", "bmc_password": bmc_password,
        "power_driver": "ipmitool", "switch_id": switch_id, "switch_port": format!("ge-0/0/{i}"),
    })
}

/// A node's or instance's `last_error` record (`{step, plugin, operation, kind, message}`) as the
/// one line the CLI prints, so tests can look for words in it.
pub fn failure_line(record: &Value) -> String {
    let text = |k: &str| record.get(k).and_then(Value::as_str);
    let plugin = text("plugin").map(|p| format!("plugin {p:?} {}", text("operation").unwrap_or("")));
    let parts = [text("step"), plugin.as_deref(), text("kind"), text("message")];
    parts.iter().flatten().map(|p| p.trim()).collect::<Vec<_>>().join(": ")
}

/// An API time (RFC 3339) as Unix milliseconds, for arithmetic in tests and benches.
pub fn time_ms(value: &Value) -> Option<i64> {
    value.as_str()?.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}
