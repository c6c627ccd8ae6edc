//! Requests to one BMC's Redfish service over the host's `http` capability, with Basic auth and
//! the contract's error mapping: 401 is `auth-failed`, 404 `not-found`, any other failure status
//! `command-failed` carrying the BMC's `@Message.ExtendedInfo`.

use metalhost_plugin_sdk::DriverError;
use metalhost_plugin_sdk::http::{Request, Response};
use metalhost_plugin_sdk::power2::Credentials;
use serde_json::Value;

use crate::model;

pub struct Client<'a> {
    pub creds: &'a Credentials,
    pub timeout_ms: u32,
}

/// A document and the ETag it came with.
pub struct Doc {
    pub body: Value,
    pub etag: Option<String>,
}

impl Client<'_> {
    fn request(&self, request: Request) -> Request {
        request
            .basic_auth(&self.creds.username, &self.creds.password)
            .header("accept", "application/json")
            .header("odata-version", "4.0")
            .timeout_ms(self.timeout_ms)
    }

    pub fn get(&self, path: &str) -> Result<Doc, DriverError> {
        let response = self.checked("GET", path, self.request(Request::get(path)))?;
        let body =
            serde_json::from_slice(&response.body).map_err(|e| DriverError::ParseError(format!("GET {path}: the BMC's answer is not JSON: {e}")))?;
        Ok(Doc { body, etag: response.header("etag").map(str::to_owned) })
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Response, DriverError> {
        self.checked("POST", path, self.request(Request::post(path)).json(body.to_string()))
    }

    /// `If-Match` when the BMC gave the document an ETag, so a concurrent change is not overwritten.
    pub fn patch(&self, path: &str, body: &Value, etag: Option<&str>) -> Result<Response, DriverError> {
        let mut request = self.request(Request::patch(path)).json(body.to_string());
        if let Some(etag) = etag {
            request = request.header("if-match", etag);
        }
        self.checked("PATCH", path, request)
    }

    fn checked(&self, method: &str, path: &str, request: Request) -> Result<Response, DriverError> {
        let response = request.send()?;
        match response.status {
            200..=299 => Ok(response),
            401 => Err(DriverError::AuthFailed(format!(
                "the BMC refused the credentials of user {:?} ({method} {path}: HTTP 401): {}",
                self.creds.username,
                model::error_text(&response.body)
            ))),
            404 => Err(DriverError::NotFound(format!("{method} {path}: HTTP 404: {}", model::error_text(&response.body)))),
            status => Err(DriverError::CommandFailed(format!("{method} {path}: HTTP {status}: {}", model::error_text(&response.body)))),
        }
    }
}
