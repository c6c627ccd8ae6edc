//! Helpers for the serial-console tests: a node's console stand-in (a TCP port that ipmi_sim's
//! Serial over LAN connects to), and a WebSocket client for `GET /v1/nodes/{id}/console`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::tungstenite::{Error as WsError, http};

use crate::daemon::{Daemon, TOKEN};

/// A serial console that answers every byte typed with its upper case, as a node's shell echoes
/// what it is sent; ipmi_sim bridges SOL to it. It prints `banner` on every connection.
pub struct UppercaseConsole {
    pub port: u16,
}

impl UppercaseConsole {
    pub fn start(banner: &'static str) -> UppercaseConsole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind console port");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let _ = stream.write_all(banner.as_bytes());
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        UppercaseConsole { port }
    }
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a node's console WebSocket; a refusal is its HTTP status and the body's message.
pub async fn open(daemon: &Daemon, node: &str, query: &str, token: Option<&str>) -> Result<Socket, (u16, String)> {
    let url = format!("{}/v1/nodes/{node}/console{query}", daemon.url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    if let Some(token) = token {
        request.headers_mut().insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    }
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(daemon.ws_connector())).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(body);
            Err((response.status().as_u16(), message))
        }
        Err(e) => Err((0, e.to_string())),
    }
}

/// Opens a console as the operator; panics on refusal.
pub async fn attach(daemon: &Daemon, node: &str, query: &str) -> Socket {
    open(daemon, node, query, Some(TOKEN)).await.unwrap_or_else(|(status, m)| panic!("console refused: {status} {m}"))
}

/// Types `typed` (again every 2 s: SOL drops what a console printed before ipmi_sim reached it)
/// until the console's output holds `needle`; returns everything read.
pub async fn type_until(socket: &mut Socket, typed: &[u8], needle: &str, within: Duration) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains(needle) {
        if !typed.is_empty() {
            socket.send(Message::Binary(typed.to_vec().into())).await.expect("type");
        }
        let round = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(round.min(deadline), socket.next()).await {
            if let Message::Binary(bytes) = message {
                seen.extend_from_slice(&bytes);
            }
            if String::from_utf8_lossy(&seen).contains(needle) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// The console programs running against this BMC port: (pid, argv).
pub fn sol_programs(bmc_port: u16) -> Vec<(u32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let argv: Vec<String> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let ours = argv.first().is_some_and(|a| a.ends_with("ipmitool")) && argv.windows(2).any(|w| w[0] == "-p" && w[1] == bmc_port.to_string());
        if ours && argv.iter().any(|a| a == "activate") {
            found.push((pid, argv));
        }
    }
    found
}

pub async fn wait_no_sol_program(bmc_port: u16) {
    for _ in 0..50 {
        if sol_programs(bmc_port).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the console program outlived its last viewer: {:?}", sol_programs(bmc_port));
}

/// A detached tmux session on a server of its own (its own socket), running one command in a
/// pane of a real terminal: what an operator's terminal shows is read back with `capture-pane`.
/// The server is killed by its PID on drop.
pub struct TmuxPane {
    socket: String,
    server_pid: Option<u32>,
}

impl TmuxPane {
    pub fn start(command: &str, env: &[(&str, &str)]) -> TmuxPane {
        let socket = format!("metalhost-test-{}-{}", std::process::id(), rand_suffix());
        let mut tmux = std::process::Command::new("tmux");
        tmux.args(["-L", &socket, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50", "-s", "console"])
            // The pane stays after the command exits, so its last words can be read.
            .arg(format!("{command}; echo \"[exit status $?]\"; sleep 600"));
        for (k, v) in env {
            tmux.env(k, v);
        }
        let status = tmux.status().expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        let mut pane = TmuxPane { socket, server_pid: None };
        pane.server_pid = pane.tmux(&["display-message", "-p", "#{pid}"]).trim().parse().ok();
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's screen and scrollback.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "console"])
    }

    /// `tmux send-keys`: literal text, or key names such as `Enter` and `C-]`.
    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    pub async fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let screen = self.screen();
            if screen.contains(needle) || tokio::time::Instant::now() >= deadline {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() % 1_000_000
}

impl Drop for TmuxPane {
    fn drop(&mut self) {
        // The server we started, by its PID: its panes (and what runs in them) end with it.
        if let Some(pid) = self.server_pid {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
    }
}
