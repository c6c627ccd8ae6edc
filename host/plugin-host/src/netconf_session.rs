//! A NETCONF session shared by the calls of one switch operation: opened on first use, so a call
//! that needs no RPC never connects, and closed by the operation's owner.

use std::sync::Arc;

use metalhost_netconf::{Error, Session, Target};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct SharedSession {
    target: Arc<Target>,
    session: Arc<Mutex<Option<Session>>>,
    fingerprint: Arc<std::sync::Mutex<Option<String>>>,
}

impl SharedSession {
    pub fn new(target: Target) -> SharedSession {
        SharedSession { target: Arc::new(target), session: Arc::default(), fingerprint: Arc::default() }
    }

    async fn with<T>(&self, f: impl AsyncFnOnce(&mut Session) -> Result<T, Error>) -> Result<T, Error> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            let session = Session::connect(&self.target).await?;
            if let Ok(mut fp) = self.fingerprint.lock() {
                *fp = Some(session.host_key_fingerprint().to_owned());
            }
            *guard = Some(session);
        }
        match guard.as_mut() {
            Some(session) => {
                let outcome = f(session).await;
                if matches!(outcome, Err(Error::Transport { .. } | Error::Timeout { .. })) {
                    // A broken session is not reused.
                    *guard = None;
                }
                outcome
            }
            None => Err(Error::Transport { address: self.target.address.clone(), port: self.target.port, reason: "no session".into() }),
        }
    }

    pub async fn capabilities(&self) -> Result<Vec<String>, Error> {
        self.with(async |s: &mut Session| Ok(s.server_capabilities().to_vec())).await
    }

    pub async fn rpc(&self, operation: &str) -> Result<String, Error> {
        self.with(async |s: &mut Session| s.rpc(operation).await).await
    }

    /// The switch's host key fingerprint, once a connection was made.
    pub fn host_key_fingerprint(&self) -> Option<String> {
        self.fingerprint.lock().ok().and_then(|f| f.clone())
    }

    pub async fn close(&self) {
        if let Some(session) = self.session.lock().await.take() {
            let _ = session.close().await;
        }
    }
}
