//! PostgreSQL over TLS (issue 31): with `database_ca_file` the connection must be TLS, the
//! server's certificate must chain to that CA and name the host the URL names (libpq's
//! `verify-full`); a server that offers no TLS is refused with a message that says so.

use std::path::{Path, PathBuf};

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
        let certs = crate::tls::read_certificates(ca_file).map_err(|e| format!("database_ca_file {e}"))?;
        let config = crate::tls::client_config(certs, false).map_err(|e| format!("database_ca_file {}: {e}", ca_file.display()))?;
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
