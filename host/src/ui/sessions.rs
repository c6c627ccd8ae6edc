//! The web view's signed-in browsers, in memory and hashed like every other token: a daemon
//! restart signs everyone out. `session.rs` trades the operator token for one of these.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A signed-in browser stays signed in for a working day.
pub(super) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Enough for every operator's browsers; past it the oldest session is dropped.
const MAX_SESSIONS: usize = 1024;

/// The signed-in browsers: sha256 of each session id → when it expires.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session; returns the id for the cookie.
    pub(super) fn open(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut live = self.table();
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&id), now + LIFETIME);
        id
    }

    pub(super) fn is_live(&self, id: &str) -> bool {
        self.table().get(&digest(id)).is_some_and(|expires| *expires > Instant::now())
    }

    pub(super) fn close(&self, id: &str) {
        self.table().remove(&digest(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_closed() {
        let sessions = Sessions::default();
        let id = sessions.open();
        assert!(sessions.is_live(&id));
        assert!(!sessions.is_live("not-a-session"));
        sessions.close(&id);
        assert!(!sessions.is_live(&id));
    }
}
