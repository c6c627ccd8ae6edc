//! The web view's signed-in browsers, in memory and hashed like every other token: a daemon
//! restart signs everyone out. `session.rs` trades a user's token (or the operator token) for one
//! of these; each remembers who signed in. Sign-in attempts are limited per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::domain::tenancy::Caller;

/// A signed-in browser stays signed in for a working day.
pub(super) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Enough for every operator's browsers; past it the oldest session is dropped.
const MAX_SESSIONS: usize = 1024;
/// Sign-in attempts one address may make per window (right or wrong): enough for people, too few
/// to guess a token.
pub(super) const SIGN_IN_ATTEMPTS: u32 = 10;
const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past it the oldest windows are forgotten.
const MAX_ADDRESSES: usize = 4096;

/// The signed-in browsers: sha256 of each session id → when it expires, and who it is.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], (Instant, Caller)>>,
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves a map that is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    /// A new session for `caller`; returns the id for the cookie.
    pub(super) fn open(&self, caller: Caller) -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut live = lock(&self.live);
        live.retain(|_, (expires, _)| *expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, (e, _))| *e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&id), (now + LIFETIME, caller));
        id
    }

    /// Who a live session belongs to.
    pub(super) fn caller(&self, id: &str) -> Option<Caller> {
        lock(&self.live).get(&digest(id)).filter(|(expires, _)| *expires > Instant::now()).map(|(_, caller)| caller.clone())
    }

    pub(super) fn close(&self, id: &str) {
        lock(&self.live).remove(&digest(id));
    }

    /// Counts a sign-in attempt from `address`; false once it made too many in the window.
    pub(super) fn may_try_sign_in(&self, address: IpAddr) -> bool {
        let now = Instant::now();
        let mut attempts = lock(&self.attempts);
        if attempts.len() >= MAX_ADDRESSES {
            attempts.retain(|_, (start, _)| now.duration_since(*start) < SIGN_IN_WINDOW);
        }
        let entry = attempts.entry(address).or_insert((now, 0));
        if now.duration_since(entry.0) >= SIGN_IN_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= SIGN_IN_ATTEMPTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    #[test]
    fn a_session_lives_until_closed_and_remembers_who() {
        let sessions = Sessions::default();
        let caller = Caller { user: UserId(3), name: "ann".into(), admin: false, roles: Vec::new() };
        let id = sessions.open(caller.clone());
        assert_eq!(sessions.caller(&id), Some(caller));
        assert!(sessions.caller("not-a-session").is_none());
        sessions.close(&id);
        assert!(sessions.caller(&id).is_none());
    }

    #[test]
    fn sign_in_attempts_are_limited_per_address() {
        let sessions = Sessions::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..SIGN_IN_ATTEMPTS {
            assert!(sessions.may_try_sign_in(a));
        }
        assert!(!sessions.may_try_sign_in(a));
        assert!(sessions.may_try_sign_in(b), "another address is not limited by the first");
    }
}
