//! The agent's trust in the daemon (issue 31; ARCHITECTURE.md "TLS"). The API's certificate must
//! chain to the CA whose sha256 the bootstrap was given (`metalhost.ca=sha256:HEX` on the kernel
//! command line, or `--ca-sha256`): that CA, found in the chain the daemon sends, becomes the only
//! root, and webpki then checks the chain in full (signatures, dates, the daemon's name or
//! address). A certificate from any other CA, or an expired one, ends the handshake. Hosts other
//! than the API's (an image's own URL) are checked against the public roots.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// A sha256 fingerprint as the kernel command line gives it: `sha256:` and 64 hex digits.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex_digits = text.strip_prefix("sha256:").unwrap_or(text);
    let bytes = hex::decode(hex_digits).map_err(|_| format!("CA fingerprint {text:?} is not sha256:<64 hex digits>"))?;
    bytes.try_into().map_err(|_| format!("CA fingerprint {text:?} is not sha256:<64 hex digits>"))
}

/// The TLS client settings for the API at `api_hosts`, pinned to `ca` when given.
pub fn client_config(ca: Option<[u8; 32]>, api_hosts: Vec<String>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let public_roots = Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    let public = WebPkiServerVerifier::builder_with_provider(public_roots, provider.clone()).build().map_err(|e| Error::General(e.to_string()))?;
    let verifier = Arc::new(PinnedApi { ca, api_hosts, provider: provider.clone(), public });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The host names or addresses of the API's base URLs (`https://host:port`).
pub fn hosts_of(bases: &[String]) -> Vec<String> {
    bases
        .iter()
        .filter_map(|base| {
            let authority = base.split("://").nth(1)?.split('/').next()?;
            match authority.strip_prefix('[') {
                Some(v6) => v6.split(']').next().map(str::to_owned),
                None => authority.split(':').next().map(str::to_owned),
            }
        })
        .collect()
}

#[derive(Debug)]
struct PinnedApi {
    /// None: no pin was given, and the API is checked against the public roots like any host.
    ca: Option<[u8; 32]>,
    api_hosts: Vec<String>,
    provider: Arc<CryptoProvider>,
    public: Arc<WebPkiServerVerifier>,
}

/// Why a daemon's certificate was refused, in the words the console shows.
struct NotThePinnedCa(String);

/// rustls shows a verifier's own error by its Debug: the same sentence as Display.
impl std::fmt::Debug for NotThePinnedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for NotThePinnedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the daemon's certificate is not from the CA this node was told to trust (metalhost.ca=sha256:{})", self.0)
    }
}

impl std::error::Error for NotThePinnedCa {}

impl ServerCertVerifier for PinnedApi {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let is_api = self.api_hosts.iter().any(|h| *h == server_name.to_str());
        let Some(pin) = self.ca.filter(|_| is_api) else {
            return self.public.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        };
        let pinned = std::iter::once(end_entity).chain(intermediates).find(|cert| Sha256::digest(cert.as_ref()).as_slice() == pin);
        let Some(ca) = pinned else {
            return Err(Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(NotThePinnedCa(hex::encode(pin)))))));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone()).build().map_err(|e| Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_hosts() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&format!("sha256:{hex64}")).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        let bases = ["https://10.0.0.1:8080".to_owned(), "https://[fd00::2]:8443".to_owned(), "https://metal.example".to_owned()];
        assert_eq!(hosts_of(&bases), ["10.0.0.1", "fd00::2", "metal.example"]);
    }
}
