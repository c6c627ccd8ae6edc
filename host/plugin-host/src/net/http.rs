//! The `http` capability: the plugin names a method, a target on its BMC, headers and a body; the
//! host builds the URL from the call's BMC address and the plugin's scheme, refuses any other
//! address, and sends it with the plugin's TLS settings, no proxy, no redirects, capped sizes and
//! the call's deadline.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::{BmcScope, NetError, NetworkSpec, Scheme, budget, tls};

/// The largest request body a plugin may send.
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// The largest response body the host reads; a BMC sending more is cut off with `too-large`.
pub const MAX_RESPONSE_BODY: usize = 8 << 20;
/// Headers the host owns: they decide where and how the request goes.
const HOST_HEADERS: [&str; 6] = ["host", "content-length", "transfer-encoding", "connection", "upgrade", "proxy-authorization"];

pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One plugin's HTTP client: built at load from its `network` settings, shared by its calls so
/// connections to a BMC are reused.
pub struct HttpClient {
    client: reqwest::Client,
    scheme: Scheme,
}

impl HttpClient {
    /// Reads the CA bundle when there is one: call it off the async workers.
    pub fn new(spec: &NetworkSpec) -> Result<HttpClient, String> {
        spec.validate()?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30));
        if spec.scheme == Scheme::Https {
            builder = builder.use_preconfigured_tls(tls::client_config(spec)?);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpClient { client, scheme: spec.scheme })
    }

    /// `scheme://host:port` of the call's BMC: the only origin its requests may have.
    pub fn origin(&self, scope: &BmcScope) -> String {
        format!("{}://{}", self.scheme.as_str(), scope.authority())
    }

    pub async fn send(&self, scope: &BmcScope, deadline: Instant, req: Request) -> Result<Response, NetError> {
        let origin = self.origin(scope);
        let url = target_url(&origin, self.scheme, scope, &req.target)?;
        let method = method(&req.method)?;
        if req.body.len() > MAX_REQUEST_BODY {
            return Err(NetError::InvalidRequest(format!("the body is {} bytes, more than the {MAX_REQUEST_BODY} allowed", req.body.len())));
        }
        let headers = headers(&req.headers)?;
        let budget = budget(deadline, req.timeout_ms);
        if budget.is_zero() {
            return Err(NetError::Unreachable(format!("no time left in the call's deadline to reach {origin}")));
        }
        let exchange = async {
            let response = self.client.request(method, url).headers(headers).body(req.body).send().await.map_err(|e| classify(&origin, &e))?;
            let status = response.status().as_u16();
            let headers =
                response.headers().iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
            let body = read_capped(response, &origin).await?;
            Ok(Response { status, headers, body })
        };
        match tokio::time::timeout(budget, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(NetError::Unreachable(format!("{origin} did not answer within {} ms", budget.as_millis()))),
        }
    }
}

/// The URL a target names, if it is on the call's BMC: a path is joined to the BMC's origin; an
/// absolute URL must have exactly that origin (and no user info).
pub(crate) fn target_url(origin: &str, scheme: Scheme, scope: &BmcScope, target: &str) -> Result<Url, NetError> {
    let text = if target.starts_with('/') {
        format!("{origin}{target}")
    } else if target.contains("://") {
        target.to_owned()
    } else {
        return Err(NetError::InvalidRequest(format!("target {target:?} is neither a path (/...) nor an absolute URL")));
    };
    let url = Url::parse(&text).map_err(|e| NetError::InvalidRequest(format!("target {target:?}: {e}")))?;
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let same = url.scheme() == scheme.as_str()
        && url.username().is_empty()
        && url.password().is_none()
        && host.eq_ignore_ascii_case(scope.host.trim_start_matches('[').trim_end_matches(']'))
        && url.port_or_known_default() == Some(scope.port);
    if same {
        Ok(url)
    } else {
        Err(NetError::NotPermitted(format!("{} is not this call's BMC: requests may go to {origin} only", url.origin().ascii_serialization())))
    }
}

fn method(name: &str) -> Result<Method, NetError> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        _ => return Err(NetError::InvalidRequest(format!("method {name:?} (one of GET, HEAD, POST, PUT, PATCH, DELETE)"))),
    })
}

fn headers(pairs: &[(String, String)]) -> Result<HeaderMap, NetError> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| NetError::InvalidRequest(format!("header name {name:?}")))?;
        if HOST_HEADERS.contains(&name.as_str()) {
            return Err(NetError::InvalidRequest(format!("the host sets the {name} header")));
        }
        // The value may be a credential: it is never echoed.
        let value =
            HeaderValue::from_str(value).map_err(|_| NetError::InvalidRequest(format!("the value of header {name} is not a valid header value")))?;
        map.append(name, value);
    }
    Ok(map)
}

async fn read_capped(mut response: reqwest::Response, origin: &str) -> Result<Vec<u8>, NetError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| NetError::Transport(format!("reading the answer of {origin}: {}", chain(&e))))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BODY {
            return Err(NetError::TooLarge(format!("{origin} answered more than {MAX_RESPONSE_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// TLS failures first (an operator fixes those in the config), then refused or silent peers.
fn classify(origin: &str, e: &reqwest::Error) -> NetError {
    let text = chain(e);
    let tls = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| e.source()).find_map(|err| {
        err.downcast_ref::<rustls::Error>().map(ToString::to_string).or_else(|| {
            let io = err.downcast_ref::<std::io::Error>()?;
            io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map(ToString::to_string)
        })
    });
    // Some layers box their cause, which hides its type from `downcast_ref`: rustls's own words
    // in the chain say it as well.
    let said_by_rustls = ["invalid peer certificate", "peer sent no certificates", "received fatal alert", "peer is incompatible", "certificate"]
        .iter()
        .find(|words| text.contains(*words));
    if let Some(tls) = tls {
        NetError::Tls(format!("TLS with {origin} failed: {tls}"))
    } else if said_by_rustls.is_some() {
        NetError::Tls(format!("TLS with {origin} failed: {text}"))
    } else if e.is_connect() || e.is_timeout() {
        NetError::Unreachable(format!("cannot reach {origin}: {text}"))
    } else {
        NetError::Transport(format!("{origin}: {text}"))
    }
}

/// An error and its causes on one line, skipping causes that repeat the line before.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for err in std::iter::successors(Some(e), |e| e.source()) {
        let text = err.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(target: &str) -> Result<String, NetError> {
        let scope = BmcScope { host: "10.0.0.5".into(), port: 8443 };
        target_url("https://10.0.0.5:8443", Scheme::Https, &scope, target).map(|u| u.to_string())
    }

    #[test]
    fn paths_stay_on_the_bmc_and_anything_else_is_refused_naming_it() {
        assert_eq!(check("/redfish/v1/Systems?$expand=.").as_deref(), Ok("https://10.0.0.5:8443/redfish/v1/Systems?$expand=."));
        assert_eq!(check("/@evil.example/x").as_deref(), Ok("https://10.0.0.5:8443/@evil.example/x"));
        assert!(check("https://10.0.0.5:8443/redfish/v1").is_ok());
        for other in ["https://10.0.0.6:8443/", "https://10.0.0.5:8444/", "http://10.0.0.5:8443/", "https://u:p@10.0.0.5:8443/", "https://10.0.0.5/"]
        {
            match check(other) {
                Err(NetError::NotPermitted(m)) => assert!(m.contains("https://10.0.0.5:8443 only"), "{m}"),
                wrong => panic!("{other}: {wrong:?}"),
            }
        }
        assert!(matches!(check("redfish/v1"), Err(NetError::InvalidRequest(_))));
    }

    #[test]
    fn host_owned_headers_are_refused_and_values_never_echoed() {
        assert!(matches!(headers(&[("Host".into(), "evil".into())]), Err(NetError::InvalidRequest(m)) if m.contains("host")));
        match headers(&[("authorization".into(), "Basic se\ncret".into())]) {
            Err(NetError::InvalidRequest(m)) => assert!(!m.contains("se"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
