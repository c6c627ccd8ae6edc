//! PostgreSQL over TLS (issue 31): with `database_ca_file` the connection must be TLS, the
//! server's certificate must chain to that CA and name the host the URL names (libpq's
//! `verify-full`); a server that offers no TLS is refused with a message that says so.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How the store's connections reach PostgreSQL.
#[derive(Clone)]
pub enum PgTls {
    /// In clear: loopback or a unix socket, or a network the operator trusts.
    Off,
    /// TLS, verified against the CA in `ca_file`.
    Verified { connector: tokio_postgres_rustls::MakeRustlsConnect, ca_file: PathBuf },
}

impl PgTls {
    /// TLS verified against the CAs (PEM) in `ca_file`; `Off` without one.
    pub fn new(ca_file: Option<&Path>) -> Result<PgTls, String> {
        let Some(ca_file) = ca_file else { return Ok(PgTls::Off) };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .and_then(Iterator::collect)
            .map_err(|e| format!("database_ca_file {}: not a PEM certificate file: {e}", ca_file.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| format!("database_ca_file {}: {e}", ca_file.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("database_ca_file {}: no certificate in it", ca_file.display()));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(PgTls::Verified { connector: tokio_postgres_rustls::MakeRustlsConnect::new(config), ca_file: ca_file.to_owned() })
    }

    /// Connects with `config` (whose `sslmode` becomes `require` with TLS on).
    pub fn connect(&self, config: &postgres::Config) -> Result<postgres::Client, String> {
        match self {
            PgTls::Off => config.connect(postgres::NoTls).map_err(|e| super::DbError::from(e).to_string()),
            PgTls::Verified { connector, ca_file } => {
                let mut config = config.clone();
                config.ssl_mode(postgres::config::SslMode::Require);
                config.connect(connector.clone()).map_err(|e| {
                    // The handshake's own words (say, rustls's UnknownIssuer) are in the sources.
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        text = format!("{text}: {cause}");
                        source = cause.source();
                    }
                    if text.contains("server does not support TLS") {
                        format!(
                            "the PostgreSQL server offers no TLS, and database_ca_file ({}) requires it: turn ssl on at the server",
                            ca_file.display()
                        )
                    } else {
                        text
                    }
                })
            }
        }
    }
}
