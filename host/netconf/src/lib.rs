//! NETCONF over SSH for the switch-manager world: the host owns the connection, plugins see only RPCs.
//!
//! Contract:
//! - `Session::connect(&Target)` opens SSH (russh), authenticates with the password, requests the
//!   `netconf` subsystem, exchanges hellos and picks base:1.1 chunked framing when both sides announce
//!   it, else base:1.0 `]]>]]>`.
//! - host keys: `Target::expected_host_key` None = trust on first use (the caller stores
//!   `Session::host_key_fingerprint()`); Some(fp) = refuse any other key.

pub mod framing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::{Channel, ChannelMsg};

/// Which switch to talk to and how.
#[derive(Clone)]
pub struct Target {
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// `SHA256:...` fingerprint the server key must have; None trusts the first key seen.
    pub expected_host_key: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
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
    #[error("switch {address}:{port} is unreachable: {reason}")]
    Unreachable { address: String, port: u16, reason: String },
    #[error("switch {address}:{port} refused the credentials for user {username}")]
    AuthFailed { address: String, port: u16, username: String },
    #[error("switch {address}:{port} host key changed: expected {expected}, got {actual}")]
    HostKeyMismatch { address: String, port: u16, expected: String, actual: String },
    #[error("netconf session to {address}:{port} failed: {reason}")]
    Transport { address: String, port: u16, reason: String },
    #[error("netconf session to {address}:{port} timed out after {after:?} while {during}")]
    Timeout { address: String, port: u16, after: Duration, during: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
}

/// Checks the server's key against the expected fingerprint and remembers what it saw.
struct HostKeyCheck {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fingerprint = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => cert.public_key().fingerprint(russh::keys::HashAlg::Sha256).to_string(),
        };
        let accepted = self.expected.as_deref().is_none_or(|e| e == fingerprint);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fingerprint);
        }
        Ok(accepted)
    }
}

const BASE_10: &str = "urn:ietf:params:netconf:base:1.0";
const BASE_11: &str = "urn:ietf:params:netconf:base:1.1";

impl Session {
    pub async fn connect(target: &Target) -> Result<Session> {
        let (address, port) = (target.address.clone(), target.port);
        let unreachable = |reason: String| Error::Unreachable { address: address.clone(), port, reason };
        let seen = Arc::new(Mutex::new(None));
        let check = HostKeyCheck { expected: target.expected_host_key.clone(), seen: seen.clone() };
        let config = Arc::new(client::Config { inactivity_timeout: Some(target.read_timeout * 4), ..Default::default() });
        let connecting = client::connect(config, (target.address.as_str(), target.port), check);
        let mut handle = match tokio::time::timeout(target.connect_timeout, connecting).await {
            Err(_) => return Err(unreachable(format!("no SSH answer within {:?}", target.connect_timeout))),
            Ok(Err(russh::Error::UnknownKey)) => {
                let actual = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
                return Err(Error::HostKeyMismatch {
                    address,
                    port,
                    expected: target.expected_host_key.clone().unwrap_or_default(),
                    actual,
                });
            }
            Ok(Err(russh::Error::IO(e))) => return Err(unreachable(e.to_string())),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(handle)) => handle,
        };
        let fingerprint = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
        let transport = |reason: String| Error::Transport { address: address.clone(), port, reason };
        let auth = tokio::time::timeout(target.read_timeout, handle.authenticate_password(&target.username, &target.password))
            .await
            .map_err(|_| Error::Timeout { address: address.clone(), port, after: target.read_timeout, during: "authentication".into() })?
            .map_err(|e| transport(format!("authentication: {e}")))?;
        if !auth.success() {
            return Err(Error::AuthFailed { address, port, username: target.username.clone() });
        }
        let channel = handle.channel_open_session().await.map_err(|e| transport(format!("open channel: {e}")))?;
        channel.request_subsystem(true, "netconf").await.map_err(|e| transport(format!("netconf subsystem: {e}")))?;
        let mut session = Session {
            handle,
            channel,
            capabilities: Vec::new(),
            fingerprint,
            framing: Framing::EndOfMessage,
            next_id: 100,
            buffer: Vec::new(),
            address,
            port,
            read_timeout: target.read_timeout,
        };
        // Hellos always use end-of-message framing; the chosen framing applies after them.
        let hello = session.read_message("the server hello").await?;
        session.capabilities = capabilities_of(&hello);
        let ours = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities><capability>{BASE_10}</capability><capability>{BASE_11}</capability></capabilities></hello>"
        );
        session.send(&framing::encode_eom(&ours)).await?;
        if session.capabilities.iter().any(|c| c == BASE_11) {
            session.framing = Framing::Chunked;
        }
        tracing::debug!(switch = %session.address, framing = ?session.framing, "netconf session open");
        Ok(session)
    }

    pub fn server_capabilities(&self) -> &[String] {
        &self.capabilities
    }

    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Sends `<rpc message-id=N>{operation}</rpc>` and returns the whole `<rpc-reply>`.
    /// One message per channel write and no pipelining: some servers frame on write boundaries.
    pub async fn rpc(&mut self, operation: &str) -> Result<String> {
        self.next_id += 1;
        let id = self.next_id;
        let message = format!("<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"{id}\">{operation}</rpc>");
        let framed = match self.framing {
            Framing::EndOfMessage => framing::encode_eom(&message),
            Framing::Chunked => framing::encode_chunked(&message),
        };
        self.send(&framed).await?;
        let reply = self.read_message("an rpc-reply").await?;
        let expected = format!("message-id=\"{id}\"");
        if reply.contains("message-id=") && !reply.contains(&expected) {
            return Err(self.transport(format!("reply does not answer message {id}")));
        }
        Ok(reply)
    }

    /// Sends `<close-session/>` and closes the channel.
    pub async fn close(mut self) -> Result<()> {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.rpc("<close-session/>")).await;
        let _ = self.channel.close().await;
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
        Ok(())
    }

    fn transport(&self, reason: String) -> Error {
        Error::Transport { address: self.address.clone(), port: self.port, reason }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let data = bytes.to_vec();
        self.channel.data(&data[..]).await.map_err(|e| self.transport(format!("send: {e}")))
    }

    async fn read_message(&mut self, what: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + self.read_timeout;
        loop {
            let decoded = match self.framing {
                Framing::EndOfMessage => framing::decode_eom(&mut self.buffer),
                Framing::Chunked => {
                    // A stray newline after a 1.0 hello may precede the first chunk.
                    while self.buffer.first() == Some(&b'\n') && self.buffer.get(1).is_some_and(|b| *b == b'\n') {
                        self.buffer.remove(0);
                    }
                    framing::decode_chunked(&mut self.buffer).map_err(|e| self.transport(e.to_string()))?
                }
            };
            if let Some(message) = decoded {
                return Ok(message);
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
                Some(_) => {}
            }
        }
    }
}

/// The `<capability>` values of a hello.
fn capabilities_of(hello: &str) -> Vec<String> {
    hello
        .split("<capability>")
        .skip(1)
        .filter_map(|rest| rest.split("</capability>").next())
        .map(|c| c.trim().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_capabilities() {
        let hello = "<hello><capabilities>\n<capability>urn:a</capability><capability> urn:b </capability></capabilities></hello>";
        assert_eq!(super::capabilities_of(hello), ["urn:a", "urn:b"]);
    }
}
