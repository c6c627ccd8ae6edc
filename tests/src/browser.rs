//! Real headless Chromium driven over WebDriver (the `chromedriver` HTTP API, with reqwest): enough
//! of the protocol to sign in, navigate, click, read text and take screenshots.
//!
//! chromedriver runs in its own process group with the browsers it starts; dropping the
//! [`Browser`] kills that group, so a failing test leaves no Chromium behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// Chromium's pin of a certificate: the base64 sha256 of its SubjectPublicKeyInfo (by openssl).
fn spki_sha256_base64(cert: &Path) -> String {
    let script =
        format!("openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64", cert.display());
    let out = Command::new("sh").args(["-c", &script]).output().expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and one headless Chromium session with a fresh profile, trusting the
    /// daemon's CA (when it serves TLS) by the CA's public key, as an operator's browser would once
    /// told to trust that CA.
    pub async fn start(daemon: &crate::daemon::Daemon) -> Browser {
        let trust = daemon.ca_file.as_deref().map(|ca| format!("--ignore-certificate-errors-spki-list={}", spki_sha256_base64(ca)));
        let port = crate::fake_switch::free_tcp_port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver (Debian package chromium-driver)")
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.http.get(format!("{}/status", browser.base)).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let args: Vec<&str> = args.iter().copied().chain(trust.as_deref()).collect();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let started = browser.raw("POST", "/session", Some(caps)).await;
        let id = started["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {started}")).to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver request");
        let value: Value = response.json().await.expect("WebDriver answer");
        if let Some(error) = value["value"]["error"].as_str() {
            panic!("WebDriver {path}: {error}: {}", value["value"]["message"]);
        }
        value.get("value").cloned().unwrap_or(value)
    }

    pub async fn goto(&self, url: &str) {
        self.raw("POST", "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.raw("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the browser is on a URL `done` accepts (a click may return before the form's
    /// navigation ends); returns it.
    pub async fn wait_url(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "the browser stayed on {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn source(&self) -> String {
        self.raw("GET", "/source", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let found = self.raw("POST", "/elements", Some(json!({"using": "css selector", "value": css}))).await;
        found.as_array()?.first()?[ELEMENT].as_str().map(str::to_owned)
    }

    pub async fn must_find(&self, css: &str) -> String {
        self.find(css).await.unwrap_or_else(|| panic!("no element {css:?}"))
    }

    pub async fn click(&self, css: &str) {
        let element = self.must_find(css).await;
        self.raw("POST", &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.must_find(css).await;
        self.raw("POST", &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    /// The rendered text of the first element matching `css` (empty when there is none). Read in
    /// one script, not find-then-read: the node page replaces its live part every 1.5 s, and an
    /// element found a moment before may be gone ("stale element reference").
    pub async fn text(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';";
        let value = self.raw("POST", "/execute/sync", Some(json!({"script": script, "args": [css]}))).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.raw("POST", "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    pub async fn cookies(&self) -> Value {
        self.raw("GET", "/cookie", None).await
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.raw("POST", "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.raw("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).expect("base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("artifact dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the session (Chromium exits) before the driver is killed.
    pub async fn close(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group chromedriver leads (process_group(0)): it and the browsers it started.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.wait();
    }
}
