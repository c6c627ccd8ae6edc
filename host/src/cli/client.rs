//! The CLI's HTTP client: JSON in, JSON out, server errors turned into their message.

use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error; its message is what the operator needs.
    #[error("{message} (HTTP {status})")]
    Server { status: u16, message: String },
    #[error("cannot reach metalhost at {url}: {}", chain(source))]
    Connect { url: String, source: reqwest::Error },
    /// The daemon's certificate chains to no CA the CLI trusts: say how to trust metalhost's.
    #[error(
        "the daemon at {url} sent a certificate no CA you trust has signed ({why}).\n\
         metalhost serves its API under its own CA: copy the daemon's ca.pem (`metalhost serve` logs \
         where it is and its sha256; by default <data_dir>/tls/ca.pem) and pass --ca FILE, set \
         METALHOST_CA=FILE, or put ca = \"FILE\" in the client config"
    )]
    Untrusted { url: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Client {
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
    ca: Option<std::path::PathBuf>,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `ca`: a PEM file of CAs trusted beside the public roots (the daemon's own CA, issue 31).
    pub fn new(base: &str, token: Option<String>, ca: Option<&std::path::Path>) -> Result<Client, CliError> {
        let tls = std::sync::Arc::new(tls_config(ca)?);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .build()
            .map_err(|e| CliError::Usage(format!("cannot make the HTTP client: {e}")))?;
        Ok(Client { http, tls, ca: ca.map(std::path::Path::to_path_buf), base: base.trim_end_matches('/').to_owned(), token })
    }

    /// The CA file given, which `token create --save` keeps in the client config.
    pub fn ca_file(&self) -> Option<std::path::PathBuf> {
        self.ca.clone()
    }

    /// The TLS settings, for the console's WebSocket.
    pub fn tls(&self) -> std::sync::Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// A failed request as the operator should read it: an untrusted certificate says how to trust it.
    fn failed(&self, source: reqwest::Error) -> CliError {
        let text = chain(&source);
        match untrusted_certificate(&text) {
            Some(why) => CliError::Untrusted { url: self.base.clone(), why },
            None => CliError::Connect { url: self.base.clone(), source },
        }
    }

    /// The daemon's URL, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let response = builder.send().await.map_err(|e| self.failed(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|source| CliError::Connect { url: self.base.clone(), source })?;
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(body);
        }
        let message = body.pointer("/error/message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("request failed: {body}"));
        Err(CliError::Server { status: status.as_u16(), message })
    }

    /// A paged list: the first page of `path` with `query`, and with `all` every next page its
    /// `Link: <...>; rel="next"` header names; one JSON array.
    pub async fn list_pages(&self, path: &str, query: &[(String, String)], all: bool) -> Result<Value, CliError> {
        let mut items = Vec::new();
        let mut request = self.request(Method::GET, path).query(query);
        loop {
            let response = request.send().await.map_err(|e| self.failed(e))?;
            let next = response
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
            let status = response.status();
            let text = response.text().await.map_err(|source| CliError::Connect { url: self.base.clone(), source })?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if !status.is_success() {
                let message =
                    body.pointer("/error/message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("request failed: {body}"));
                return Err(CliError::Server { status: status.as_u16(), message });
            }
            items.extend(body.as_array().cloned().unwrap_or_default());
            match next {
                Some(next) if all && next.starts_with('/') => request = self.request(Method::GET, &next),
                Some(_) => {
                    eprintln!("the first {} shown; more with --all (or a larger --limit)", items.len());
                    return Ok(Value::Array(items));
                }
                None => return Ok(Value::Array(items)),
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::PATCH, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }
}

/// The public roots and, when given, the CAs in `ca` (PEM); TLS 1.2 and 1.3 only.
pub fn tls_config(ca: Option<&std::path::Path>) -> Result<rustls::ClientConfig, CliError> {
    let extra = match ca {
        Some(path) => crate::tls::read_certificates(path).map_err(|e| CliError::Usage(format!("--ca {e}")))?,
        None => Vec::new(),
    };
    crate::tls::client_config(extra, true).map_err(|e| CliError::Usage(format!("--ca: {e}")))
}

/// An error and its causes on one line (reqwest's own text stops at "error sending request").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls's words for a certificate the trust store does not vouch for, if that is what failed.
pub fn untrusted_certificate(error_text: &str) -> Option<String> {
    let at = error_text.find("invalid peer certificate")?;
    Some(error_text[at..].split(": ").take(2).collect::<Vec<_>>().join(": "))
}

/// A secret given on the command line, in an env var (clap fills it) or in a file.
pub fn secret_from(value: Option<String>, file: Option<&std::path::Path>, what: &str) -> Result<Option<String>, CliError> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read {what} file {}: {e}", path.display())))?;
            Ok(Some(text.lines().next().unwrap_or("").to_owned()))
        }
        (None, None) => Ok(None),
    }
}
