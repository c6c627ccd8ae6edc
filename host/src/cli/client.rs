//! The CLI's HTTP client: JSON in, JSON out, server errors turned into their message.

use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error; its message is what the operator needs.
    #[error("{message} (HTTP {status})")]
    Server { status: u16, message: String },
    #[error("cannot reach metalhost at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token }
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
        let response = builder.send().await.map_err(|source| CliError::Connect { url: self.base.clone(), source })?;
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
            let response = request.send().await.map_err(|source| CliError::Connect { url: self.base.clone(), source })?;
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
