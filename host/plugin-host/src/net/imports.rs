//! The network imports of the 0.2.0 power world on the per-call state: `http` and `datagram`,
//! scoped to the call's BMC (its `log` is in `state.rs`).

use std::sync::Arc;
use std::time::Instant;

use crate::bindings::power2::metalhost::drivers::{datagram, http, types};
use crate::state::PluginState;

use super::http::{HttpClient, Request};
use super::{BmcScope, NetError};

/// What a 0.2.0 power call may reach: its BMC, over the plugin's HTTP client.
#[derive(Clone)]
pub struct CallNetwork {
    pub scope: BmcScope,
    pub http: Arc<HttpClient>,
}

impl types::Host for PluginState {}

impl http::Host for PluginState {
    async fn send(&mut self, req: http::Request) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let Some(net) = self.network.clone() else {
            return Ok(Err(http::HttpError::NotPermitted("no BMC is attached to this call".into())));
        };
        let (method, target) = (req.method.clone(), req.target.clone());
        let started = Instant::now();
        let request = Request { method: req.method, target: req.target, headers: req.headers, body: req.body, timeout_ms: req.timeout_ms };
        let outcome = net.http.send(&net.scope, self.deadline, request).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(r) => tracing::debug!(plugin = &*self.plugin, %method, %target, status = r.status, elapsed_ms, "http"),
            Err(NetError::NotPermitted(m)) => tracing::warn!(plugin = &*self.plugin, %method, "http refused: {m}"),
            Err(e) => tracing::debug!(plugin = &*self.plugin, %method, %target, elapsed_ms, "http failed: {e}"),
        }
        Ok(outcome.map(|r| http::Response { status: r.status, headers: r.headers, body: r.body }).map_err(|e| match e {
            NetError::NotPermitted(m) => http::HttpError::NotPermitted(m),
            NetError::Unreachable(m) => http::HttpError::Unreachable(m),
            NetError::Tls(m) => http::HttpError::Tls(m),
            NetError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
            NetError::TooLarge(m) => http::HttpError::TooLarge(m),
            NetError::Transport(m) => http::HttpError::Transport(m),
        }))
    }
}

impl datagram::Host for PluginState {
    async fn exchange(
        &mut self,
        port: Option<u16>,
        payload: Vec<u8>,
        timeout_ms: u32,
        max_replies: u32,
    ) -> wasmtime::Result<Result<Vec<Vec<u8>>, datagram::DatagramError>> {
        let Some(net) = self.network.clone() else {
            return Ok(Err(datagram::DatagramError::NotPermitted("no BMC is attached to this call".into())));
        };
        let outcome = super::datagram::exchange(&net.scope, self.deadline, port, &payload, timeout_ms, max_replies).await;
        match &outcome {
            Ok(replies) => tracing::debug!(plugin = &*self.plugin, bytes = payload.len(), replies = replies.len(), "datagram"),
            Err(NetError::NotPermitted(m)) => tracing::warn!(plugin = &*self.plugin, "datagram refused: {m}"),
            Err(e) => tracing::debug!(plugin = &*self.plugin, "datagram failed: {e}"),
        }
        Ok(outcome.map_err(|e| match e {
            NetError::NotPermitted(m) => datagram::DatagramError::NotPermitted(m),
            NetError::InvalidRequest(m) => datagram::DatagramError::InvalidRequest(m),
            other => datagram::DatagramError::Unreachable(other.to_string()),
        }))
    }
}
