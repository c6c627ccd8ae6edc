//! Host key checking during the SSH handshake: trust on first use, or refuse any key but the
//! pinned one. Remembers the fingerprint it saw so the caller can store or report it.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{HashAlg, PublicKeyOrCertificate};

/// The russh handler of one connection.
pub(crate) struct HostKeyCheck {
    /// `SHA256:...`; None accepts whatever key the server shows (the caller pins it afterwards).
    pub expected: Option<String>,
    pub seen: Arc<Mutex<Option<String>>>,
}

/// OpenSSH-style `SHA256:<base64, no padding>` of the server's public key.
pub(crate) fn fingerprint(key: &PublicKeyOrCertificate) -> String {
    match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256).to_string(),
        PublicKeyOrCertificate::Certificate(cert) => cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fingerprint = fingerprint(key);
        let accepted = self.expected.as_deref().is_none_or(|expected| expected == fingerprint);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fingerprint);
        }
        Ok(accepted)
    }
}
