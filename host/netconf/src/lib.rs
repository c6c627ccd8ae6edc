//! NETCONF over SSH for the switch-manager world: the host owns the connection, plugins see only RPCs.
//!
//! Contract:
//! - `Session::connect(&Target)` opens TCP, then SSH (russh), authenticates with the password,
//!   requests the `netconf` subsystem, exchanges hellos and picks base:1.1 chunked framing when both
//!   sides announce it, else base:1.0 `]]>]]>`.
//! - host keys: `Target::expected_host_key` None = trust on first use (the caller stores
//!   `Session::host_key_fingerprint()`); Some(fp) = refuse any other key.
//! - one request at a time: every RPC gets a fresh message-id, goes out in one channel write, and
//!   its reply must carry the same message-id. Some servers frame on write boundaries and break on
//!   pipelined requests, so there is no pipelining.
//! - the password appears in no Debug output, log line or error.

pub mod framing;
mod host_key;
pub mod message;
pub mod stats;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client;
use russh::{Channel, ChannelMsg};

use host_key::HostKeyCheck;

/// Which switch to talk to and how.
#[derive(Clone)]
pub struct Target {
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// `SHA256:...` fingerprint the server key must have; None trusts the first key seen.
    pub expected_host_key: Option<String>,
    /// Budget for the TCP connect and the SSH handshake together.
    pub connect_timeout: Duration,
    /// Budget for each later step: authentication, channel setup, hello, every RPC reply.
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expected_host_key", &self.expected_host_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// base:1.0, messages end with `]]>]]>`
    EndOfMessage,
    /// base:1.1, RFC 6242 chunked framing
    Chunked,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made in time.
    #[error("switch {address}:{port} is unreachable: {reason}")]
    Unreachable { address: String, port: u16, reason: String },
    #[error("switch {address}:{port} refused the credentials for user {username}")]
    AuthFailed { address: String, port: u16, username: String },
    #[error("switch {address}:{port} host key changed: expected {expected}, got {actual}")]
    HostKeyMismatch { address: String, port: u16, expected: String, actual: String },
    /// The SSH or NETCONF conversation broke: protocol error, closed channel, unexpected reply.
    #[error("netconf session to {address}:{port} failed: {reason}")]
    Transport { address: String, port: u16, reason: String },
    #[error("netconf session to {address}:{port} timed out after {after:?} during {during}")]
    Timeout { address: String, port: u16, after: Duration, during: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the time of a session went, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// TCP + SSH handshake + authentication + subsystem + hello exchange.
    pub connect: Duration,
    pub rpc_count: u32,
    /// Sum of the RPC round trips (send until the whole reply is decoded).
    pub rpc_total: Duration,
}

/// A reply larger than this is refused rather than buffered without end.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// An open NETCONF session.
pub struct Session {
    handle: client::Handle<HostKeyCheck>,
    channel: Channel<client::Msg>,
    capabilities: Vec<String>,
    fingerprint: String,
    framing: Framing,
    next_id: u64,
    buffer: Vec<u8>,
    address: String,
    port: u16,
    read_timeout: Duration,
    /// Set when a request failed half-way: the stream may hold a late reply, so stop using it.
    broken: bool,
    timings: Timings,
}

impl Target {
    fn unreachable(&self, reason: String) -> Error {
        Error::Unreachable { address: self.address.clone(), port: self.port, reason }
    }

    fn transport(&self, reason: String) -> Error {
        Error::Transport { address: self.address.clone(), port: self.port, reason }
    }

    fn timeout(&self, after: Duration, during: &str) -> Error {
        Error::Timeout { address: self.address.clone(), port: self.port, after, during: during.into() }
    }
}

/// TCP, then the SSH handshake, both within the connect budget; the server's key is checked on
/// the way. Returns the handle and the key's fingerprint.
async fn ssh_handshake(target: &Target, started: Instant) -> Result<(client::Handle<HostKeyCheck>, String)> {
    let tcp = tokio::net::TcpStream::connect((target.address.as_str(), target.port));
    let stream = match tokio::time::timeout(target.connect_timeout, tcp).await {
        Err(_) => return Err(target.unreachable(format!("no TCP connection within {:?}", target.connect_timeout))),
        Ok(Err(e)) => return Err(target.unreachable(format!("tcp connect: {e}"))),
        Ok(Ok(stream)) => stream,
    };
    // Small request/reply messages: Nagle's algorithm would only add latency.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(switch = %target.address, "set_nodelay failed: {e}");
    }

    let seen = Arc::new(Mutex::new(None));
    let check = HostKeyCheck { expected: target.expected_host_key.clone(), seen: seen.clone() };
    let config = Arc::new(client::Config { inactivity_timeout: Some(target.read_timeout * 4), ..Default::default() });
    let handshake_budget = target.connect_timeout.saturating_sub(started.elapsed());
    let handle = match tokio::time::timeout(handshake_budget, client::connect_stream(config, stream, check)).await {
        Err(_) => return Err(target.timeout(target.connect_timeout, "the ssh handshake")),
        Ok(Err(russh::Error::UnknownKey)) => {
            return Err(Error::HostKeyMismatch {
                address: target.address.clone(),
                port: target.port,
                expected: target.expected_host_key.clone().unwrap_or_default(),
                actual: seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default(),
            });
        }
        Ok(Err(e)) => return Err(target.transport(format!("ssh handshake: {e}"))),
        Ok(Ok(handle)) => handle,
    };
    let fingerprint = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
    Ok((handle, fingerprint))
}

/// Password authentication, a session channel and the `netconf` subsystem on it, each step within
/// the read timeout.
async fn netconf_channel(target: &Target, handle: &mut client::Handle<HostKeyCheck>) -> Result<Channel<client::Msg>> {
    let auth = tokio::time::timeout(target.read_timeout, handle.authenticate_password(&target.username, &target.password))
        .await
        .map_err(|_| target.timeout(target.read_timeout, "authentication"))?
        .map_err(|e| target.transport(format!("authentication: {e}")))?;
    if !auth.success() {
        return Err(Error::AuthFailed { address: target.address.clone(), port: target.port, username: target.username.clone() });
    }
    let channel = tokio::time::timeout(target.read_timeout, handle.channel_open_session())
        .await
        .map_err(|_| target.timeout(target.read_timeout, "opening a channel"))?
        .map_err(|e| target.transport(format!("open channel: {e}")))?;
    // The subsystem's success reply turns up later in `wait()`; `read_message` skips it.
    tokio::time::timeout(target.read_timeout, channel.request_subsystem(true, "netconf"))
        .await
        .map_err(|_| target.timeout(target.read_timeout, "the netconf subsystem request"))?
        .map_err(|e| target.transport(format!("netconf subsystem: {e}")))?;
    Ok(channel)
}

impl Session {
    pub async fn connect(target: &Target) -> Result<Session> {
        let started = Instant::now();
        let (mut handle, fingerprint) = ssh_handshake(target, started).await?;
        let channel = netconf_channel(target, &mut handle).await?;
        let mut session = Session {
            handle,
            channel,
            capabilities: Vec::new(),
            fingerprint,
            framing: Framing::EndOfMessage,
            next_id: 101,
            buffer: Vec::new(),
            address: target.address.clone(),
            port: target.port,
            read_timeout: target.read_timeout,
            broken: false,
            timings: Timings::default(),
        };
        session.exchange_hellos().await?;
        session.timings.connect = started.elapsed();
        stats::record_session(session.timings.connect);
        tracing::debug!(
            switch = %session.address, port = session.port, framing = ?session.framing,
            host_key = %session.fingerprint, elapsed_ms = session.timings.connect.as_millis() as u64,
            "netconf session open"
        );
        Ok(session)
    }

    /// Reads the server's hello, sends ours, and picks the framing both announce. Hellos always
    /// use end-of-message framing; the negotiated framing applies after them.
    async fn exchange_hellos(&mut self) -> Result<()> {
        let hello = self.read_message("the server hello").await?;
        self.capabilities =
            message::hello_capabilities(&hello).ok_or_else(|| self.transport(format!("expected a hello, got {}", excerpt(&hello))))?;
        self.send(&framing::encode_eom(&message::client_hello())).await?;
        self.framing = message::negotiate(&[message::BASE_10, message::BASE_11], &self.capabilities);
        Ok(())
    }

    pub fn server_capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// `SHA256:...` of the key the server showed (the one to pin after first use).
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Sends `<rpc message-id=N>{operation}</rpc>` and returns the whole `<rpc-reply>`, which may
    /// hold an `<rpc-error>`: interpreting it is the caller's job.
    pub async fn rpc(&mut self, operation: &str) -> Result<String> {
        if self.broken {
            return Err(self.transport("the session is unusable after an earlier failure".into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let started = Instant::now();
        self.broken = true;
        let message = format!("<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"{id}\">{operation}</rpc>");
        let framed = match self.framing {
            Framing::EndOfMessage => framing::encode_eom(&message),
            Framing::Chunked => framing::encode_chunked(&message),
        };
        self.send(&framed).await?;
        let reply = self.read_message("an rpc-reply").await?;
        match message::reply_message_id(&reply) {
            Ok(Some(got)) if got == id.to_string() => {}
            Ok(Some(got)) => return Err(self.transport(format!("the reply to message {id} carries message-id {got}"))),
            Ok(None) => return Err(self.transport(format!("the reply to message {id} has no message-id"))),
            Err(e) => return Err(self.transport(format!("{e} in answer to message {id}"))),
        }
        self.broken = false;
        let elapsed = started.elapsed();
        self.timings.rpc_count += 1;
        self.timings.rpc_total += elapsed;
        stats::record_rpc(elapsed);
        tracing::trace!(switch = %self.address, message_id = id, elapsed_us = elapsed.as_micros() as u64, "netconf rpc");
        Ok(reply)
    }

    /// Sends `<close-session/>` (best effort) and closes the channel and the connection.
    pub async fn close(mut self) -> Result<()> {
        if !self.broken {
            let budget = self.read_timeout.min(Duration::from_secs(2));
            let _ = tokio::time::timeout(budget, self.rpc("<close-session/>")).await;
        }
        let _ = self.channel.close().await;
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        Ok(())
    }

    fn transport(&self, reason: String) -> Error {
        Error::Transport { address: self.address.clone(), port: self.port, reason }
    }

    /// One message, one channel write.
    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let sending = self.channel.data(bytes);
        match tokio::time::timeout(self.read_timeout, sending).await {
            Err(_) => Err(Error::Timeout { address: self.address.clone(), port: self.port, after: self.read_timeout, during: "sending".into() }),
            Ok(Err(e)) => Err(self.transport(format!("send: {e}"))),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_message(&mut self, what: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + self.read_timeout;
        loop {
            let decoded = match self.framing {
                Framing::EndOfMessage => framing::decode_eom(&mut self.buffer),
                Framing::Chunked => framing::decode_chunked(&mut self.buffer).map_err(|e| self.transport(e.to_string()))?,
            };
            if let Some(message) = decoded {
                return Ok(message);
            }
            if self.buffer.len() > MAX_MESSAGE {
                return Err(self.transport(format!("{what} is larger than {MAX_MESSAGE} bytes")));
            }
            let next = tokio::time::timeout_at(deadline, self.channel.wait()).await.map_err(|_| Error::Timeout {
                address: self.address.clone(),
                port: self.port,
                after: self.read_timeout,
                during: format!("waiting for {what}"),
            })?;
            match next {
                Some(ChannelMsg::Data { data }) => self.buffer.extend_from_slice(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    return Err(self.transport(format!("the switch closed the session while we waited for {what}")));
                }
                Some(ChannelMsg::Failure) => return Err(self.transport("the switch refused the netconf subsystem".into())),
                // Window adjustments, the subsystem's success reply, stderr data: not NETCONF.
                Some(_) => {}
            }
        }
    }
}

/// The start of a message for an error text.
fn excerpt(message: &str) -> String {
    let short: String = message.chars().take(80).collect();
    if short.len() < message.len() { format!("{short}...") } else { short }
}
