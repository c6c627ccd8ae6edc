//! `metalhost node console NAME`: attaches the terminal to a node's serial console through the
//! daemon's WebSocket (`GET /v1/nodes/{id}/console`). The terminal is raw while attached; Ctrl-]
//! detaches (as in telnet), and the terminal is restored however the session ends.

use std::io::Write;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::tungstenite::{Error as WsError, http};

use super::client::{CliError, Client};

/// Ctrl-]: detaches.
pub const DETACH: u8 = 0x1d;

/// Attaches until the operator detaches or the console ends.
pub async fn attach(client: &Client, node_segment: &str, watch: bool) -> Result<(), CliError> {
    let mode = if watch { "watch" } else { "type" };
    let url = client.url(&format!("/v1/nodes/{node_segment}/console?mode={mode}"));
    let ws_url = match url.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((scheme, _)) => return Err(CliError::Usage(format!("the console needs an https:// or http:// daemon URL, not {scheme}://"))),
        None => return Err(CliError::Usage(format!("invalid daemon URL {url}"))),
    };
    let mut request = ws_url.as_str().into_client_request().map_err(|e| CliError::Usage(format!("invalid console URL {ws_url}: {e}")))?;
    if let Some(token) = client.token() {
        let value =
            http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| CliError::Usage("the token is not a valid header value".into()))?;
        request.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
    let connector = tokio_tungstenite::Connector::Rustls(client.tls());
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)).await.map_err(|e| refused(client, e))?;
    let (mut to_daemon, mut from_daemon) = socket.split();
    let _raw = RawTerminal::enter();
    eprint!("[metalhost: attached to {node_segment}'s console{}; Ctrl-] detaches]\r\n", if watch { " (watching)" } else { "" });
    let mut stdin = tokio::io::stdin();
    let mut typed = [0u8; 1024];
    let mut stdin_open = true;
    let ended = loop {
        tokio::select! {
            read = stdin.read(&mut typed), if stdin_open => match read {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let chunk = &typed[..n];
                    let (before, detach) = match chunk.iter().position(|b| *b == DETACH) {
                        Some(at) => (&chunk[..at], true),
                        None => (chunk, false),
                    };
                    if !before.is_empty() && !watch && to_daemon.send(Message::Binary(before.to_vec().into())).await.is_err() {
                        break "the daemon closed the connection".to_owned();
                    }
                    if detach {
                        let _ = to_daemon.send(Message::Close(None)).await;
                        break "detached".to_owned();
                    }
                }
            },
            message = from_daemon.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                }
                Some(Ok(Message::Text(note))) => eprint!("\r\n{note}\r\n"),
                Some(Ok(Message::Close(frame))) => break frame.map_or_else(|| "the daemon closed the console".to_owned(), |f| f.reason.to_string()),
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("connection lost: {e}"),
                None => break "the daemon closed the connection".to_owned(),
            },
        }
    };
    eprint!("\r\n[metalhost: {ended}]\r\n");
    Ok(())
}

/// The daemon's refusal (409 busy, 501 no console, 404 ...) in its own words.
fn refused(client: &Client, e: WsError) -> CliError {
    match e {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("the daemon refused the console: {body}"));
            CliError::Server { status, message }
        }
        other => {
            let text = super::client::chain(&other);
            match super::client::untrusted_certificate(&text) {
                Some(why) => CliError::Untrusted { url: client.base().to_owned(), why },
                None => CliError::Usage(format!("cannot open the console: {text}")),
            }
        }
    }
}

/// The terminal in raw mode (no echo, no line editing, no signals from Ctrl-C) while attached,
/// restored on drop. Nothing happens when stdin is not a terminal.
struct RawTerminal {
    saved: Option<rustix::termios::Termios>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return RawTerminal { saved: None };
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else { return RawTerminal { saved: None } };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).is_err() {
            return RawTerminal { saved: None };
        }
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}
