//! TLS for the API listener (issue 31; ARCHITECTURE.md "TLS"): the pool's private CA, made on the
//! first start beside the secrets key (daemons sharing that key's directory share the CA, so an
//! agent or client that trusts it reaches any of them); a server certificate issued from it at
//! each start for the names and addresses this daemon is reached by, or the operator's own chain;
//! and the listener that hands axum finished TLS streams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key do not make a TLS server: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the API listener serves TLS with.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// The CA clients trust (PEM): the last certificate of the served chain.
    pub ca_file: PathBuf,
    /// The sha256 of that CA certificate (DER), hex: what the bootstrap tells the agent to trust.
    pub ca_fingerprint: String,
}

/// The generated CA's subject. Fixed, so a server certificate issued at a later start names the
/// same issuer as the stored CA certificate (rcgen signs with the key and this name).
const CA_NAME: &str = "metalhost private CA";
const CA_DAYS: i64 = 20 * 365;
/// A server certificate is issued afresh at each start; a daemon running longer than this without
/// a restart would serve an expired one.
const SERVER_DAYS: i64 = 825;
/// A client that opens a connection and says nothing is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the generated CA lives: a `tls` directory beside the secrets key.
pub fn ca_dir(config: &Config) -> PathBuf {
    let key = config.secrets_key_path();
    key.parent().map_or_else(|| config.data_dir.join("tls"), |dir| dir.join("tls"))
}

/// The server's TLS: the operator's chain and key when configured, else the generated CA's
/// (made now if there is none yet) and a new server certificate for `names`.
pub fn server(config: &Config, names: &[String]) -> Result<ServerTls, TlsError> {
    let (chain, key, ca_file) = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| TlsError::Invalid { path: key_file.clone(), why: format!("no private key: {e}") })?;
            (chain, key, cert_file.clone())
        }
        _ => {
            let dir = ca_dir(config);
            let ca = PrivateCa::open_or_make(&dir)?;
            let (chain, key) = ca.issue(names)?;
            (chain, key, dir.join("ca.pem"))
        }
    };
    let ca_fingerprint = fingerprint(chain.last().ok_or_else(|| TlsError::Invalid { path: ca_file.clone(), why: "no certificate".into() })?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls { config: Arc::new(server), ca_file, ca_fingerprint })
}

/// The hex sha256 of a certificate's DER.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// The certificates of a PEM file (a chain, or CAs to trust); at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| TlsError::Invalid { path: path.to_owned(), why: format!("not a PEM certificate chain: {e}") })?;
    if chain.is_empty() {
        return Err(TlsError::Invalid { path: path.to_owned(), why: "no certificate in it".into() });
    }
    Ok(chain)
}

/// A TLS client (ring, TLS 1.2 and 1.3) trusting `roots` beside, when `public_roots`, the public
/// ones: the CLI's and the store's connection to PostgreSQL.
pub fn client_config(extra_roots: Vec<CertificateDer<'static>>, public_roots: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots =
        if public_roots { rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() } } else { rustls::RootCertStore::empty() };
    for cert in extra_roots {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The names a generated server certificate covers: the public URL's host, the listen address
/// (unless it is every address), loopback, this machine's name and the configured extras.
pub fn certificate_names(config: &Config, bound: SocketAddr, host_name: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(host) = config.public_url.as_deref().and_then(url_host) {
        names.push(host);
    }
    if !bound.ip().is_unspecified() {
        names.push(bound.ip().to_string());
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(str::to_owned));
    names.push(host_name.to_owned());
    names.extend(config.tls.names.iter().cloned());
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The host of `scheme://host[:port]/...`, brackets of an IPv6 literal removed.
fn url_host(url: &str) -> Option<String> {
    let authority = url.split("://").nth(1)?.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().map(str::to_owned);
    }
    Some(authority.split(':').next()?.to_owned())
}

/// The generated CA: its certificate and key, files `ca.pem` and `ca.key` (0600).
struct PrivateCa {
    cert: CertificateDer<'static>,
    pem: String,
    key: rcgen::KeyPair,
}

impl PrivateCa {
    /// Reads the CA in `dir`, or makes one there (the directory may exist already: the Debian
    /// package makes it, writable by the daemon, since /etc is read-only to the unit). Daemons
    /// starting together on one shared directory may each make one: the first to link its key
    /// into place wins, and the others read the winner's.
    fn open_or_make(dir: &Path) -> Result<PrivateCa, TlsError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if !cert_path.exists() {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
            let made = Self::make()?;
            let tag = format!("{}-{}", std::process::id(), rand::random::<u32>());
            let (key_new, cert_new) = (dir.join(format!(".ca.key.{tag}")), dir.join(format!(".ca.pem.{tag}")));
            made.write(&key_new, &cert_new)?;
            if std::fs::hard_link(&key_new, &key_path).is_ok() {
                std::fs::rename(&cert_new, &cert_path).map_err(|source| TlsError::Write { path: cert_path.clone(), source })?;
                tracing::warn!(dir = %dir.display(), "made a private CA for the API's TLS: clients trust its ca.pem (README \"TLS\")");
            }
            let _ = std::fs::remove_file(&key_new);
            let _ = std::fs::remove_file(&cert_new);
            // The winner renames its certificate into place right after linking its key.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !cert_path.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self::read(dir)
    }

    fn params() -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, CA_NAME);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::DigitalSignature];
        params
    }

    fn make() -> Result<PrivateCa, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = Self::params();
        set_validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key)?;
        Ok(PrivateCa { cert: cert.der().clone(), pem: cert.pem(), key })
    }

    fn write(&self, key_path: &Path, cert_path: &Path) -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Write { path, source }
        };
        let mut key_file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(key_path).map_err(failed(key_path))?;
        key_file.write_all(self.key.serialize_pem().as_bytes()).map_err(failed(key_path))?;
        std::fs::write(cert_path, &self.pem).map_err(failed(cert_path))
    }

    fn read(dir: &Path) -> Result<PrivateCa, TlsError> {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let pem = std::fs::read_to_string(&cert_path).map_err(|source| TlsError::Read { path: cert_path.clone(), source })?;
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| TlsError::Invalid { path: cert_path, why: format!("not the CA's certificate: {e}") })?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(|source| TlsError::Read { path: key_path.clone(), source })?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Invalid { path: key_path, why: format!("not the CA's key: {e}") })?;
        Ok(PrivateCa { cert, pem, key })
    }

    /// A new server certificate for `names`, and the chain served with it (it, then the CA).
    fn issue(&self, names: &[String]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let issuer = rcgen::Issuer::new(Self::params(), &self.key);
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().map_or("metalhost", String::as_str));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, SERVER_DAYS);
        let cert = params.signed_by(&key, &issuer)?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Ok((vec![cert.der().clone(), self.cert.clone()], key))
    }
}

/// Valid from yesterday (clocks differ a little between machines) for `days`.
fn set_validity(params: &mut rcgen::CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

/// The API listener with TLS: connections are accepted and their handshakes run concurrently
/// (one slow or silent client holds up nobody), and axum gets only finished TLS streams.
pub struct TlsListener {
    streams: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (done, streams) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, as axum's own listener does.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake refused: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { streams, local, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(stream) => stream,
            // The accept task ended (it never does on its own): serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://10.0.0.1:8443").as_deref(), Some("10.0.0.1"));
        assert_eq!(url_host("https://metal.example/x").as_deref(), Some("metal.example"));
        assert_eq!(url_host("https://[fd00::1]:8443").as_deref(), Some("fd00::1"));
        assert!(url_host("nonsense").is_none());
    }

    #[test]
    fn a_ca_made_once_issues_certificates_a_verifier_accepts() {
        use rustls::client::danger::ServerCertVerifier;
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let first = PrivateCa::open_or_make(&tls).unwrap();
        let again = PrivateCa::open_or_make(&tls).unwrap();
        assert_eq!(first.cert, again.cert, "a second start reads the CA the first one made");
        let (chain, _key) = again.issue(&["10.1.2.3".to_owned(), "metal.example".to_owned()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(first.cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let now = rustls::pki_types::UnixTime::now();
        for name in ["10.1.2.3", "metal.example"] {
            let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier.verify_server_cert(&chain[0], &chain[1..], &server_name, &[], now).unwrap();
        }
        let other = rustls::pki_types::ServerName::try_from("10.9.9.9").unwrap();
        assert!(verifier.verify_server_cert(&chain[0], &chain[1..], &other, &[], now).is_err(), "a name it was not issued for");
        let pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
        assert_eq!(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(), first.cert, "ca.pem is the CA's certificate");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(tls.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
