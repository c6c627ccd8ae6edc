//! The `http` capability of 0.2.0 power plugins: requests to the call's BMC. The host picks the
//! scheme, address and TLS trust; a plugin names a path (or an absolute URL on that BMC), headers
//! and a body. Anything aimed elsewhere comes back as `not-permitted`, naming the allowed address.

use crate::DriverError;
use crate::bindings::power2::metalhost::drivers::http;

pub use http::HttpError;

/// One request, built up and sent with [`Request::send`].
#[derive(Clone)]
pub struct Request {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: u32,
}

impl Request {
    pub fn new(method: &'static str, target: &str) -> Request {
        Request { method, target: target.to_owned(), headers: Vec::new(), body: Vec::new(), timeout_ms: 0 }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn post(target: &str) -> Request {
        Request::new("POST", target)
    }

    pub fn patch(target: &str) -> Request {
        Request::new("PATCH", target)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Basic ...`. The header is the host's to send, never to log.
    pub fn basic_auth(self, username: &str, password: &str) -> Request {
        let token = base64(format!("{username}:{password}").as_bytes());
        self.header("authorization", &format!("Basic {token}"))
    }

    /// A JSON body, with its content type.
    pub fn json(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self.header("content-type", "application/json")
    }

    /// At most this long; 0 (the default) is whatever is left of the call's deadline.
    pub fn timeout_ms(mut self, ms: u32) -> Request {
        self.timeout_ms = ms;
        self
    }

    /// Sends it, with the host's error as it is.
    pub fn send_raw(&self) -> Result<Response, HttpError> {
        let request = http::Request {
            method: self.method.to_owned(),
            target: self.target.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            timeout_ms: self.timeout_ms,
        };
        http::send(&request).map(|r| Response { status: r.status, headers: r.headers, body: r.body })
    }

    /// Sends it; the host's errors become driver errors ([`driver_error`]).
    pub fn send(&self) -> Result<Response, DriverError> {
        self.send_raw().map_err(driver_error)
    }
}

/// A BMC's answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The host's refusals and transport failures as driver errors: a silent or refusing BMC is
/// `unreachable`; a TLS failure is `invalid-config` (the operator's trust settings, or a BMC
/// that is not who it should be, and retrying will not help); a refused target is a plugin bug.
pub fn driver_error(e: HttpError) -> DriverError {
    match e {
        HttpError::Unreachable(m) => DriverError::Unreachable(m),
        HttpError::Tls(m) => DriverError::InvalidConfig(m),
        HttpError::Transport(m) => DriverError::Unreachable(format!("connection broke: {m}")),
        HttpError::NotPermitted(m) => DriverError::CommandFailed(format!("the host refused the request: {m}")),
        HttpError::InvalidRequest(m) => DriverError::CommandFailed(format!("invalid request: {m}")),
        HttpError::TooLarge(m) => DriverError::ParseError(m),
    }
}

/// Standard base64 with padding (RFC 4648), for Basic auth.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("admin:password", "YWRtaW46cGFzc3dvcmQ=")]
        {
            assert_eq!(super::base64(input.as_bytes()), want);
        }
    }
}
