//! Process-wide NETCONF counters: sessions opened, RPCs sent, and the time both took. For
//! metrics and benchmarks that see only a driver API (the plugin runtime owns the sessions);
//! take a `totals()` before and after and subtract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static SESSIONS: AtomicU64 = AtomicU64::new(0);
static CONNECT_NANOS: AtomicU64 = AtomicU64::new(0);
static RPCS: AtomicU64 = AtomicU64::new(0);
static RPC_NANOS: AtomicU64 = AtomicU64::new(0);

/// Totals since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sessions: u64,
    /// TCP + SSH handshake + authentication + subsystem + hello, summed over sessions.
    pub connect: Duration,
    pub rpcs: u64,
    /// RPC round trips (send until the reply is decoded), summed.
    pub rpc: Duration,
}

impl std::ops::Sub for Totals {
    type Output = Totals;

    fn sub(self, earlier: Totals) -> Totals {
        Totals {
            sessions: self.sessions.saturating_sub(earlier.sessions),
            connect: self.connect.saturating_sub(earlier.connect),
            rpcs: self.rpcs.saturating_sub(earlier.rpcs),
            rpc: self.rpc.saturating_sub(earlier.rpc),
        }
    }
}

pub fn totals() -> Totals {
    Totals {
        sessions: SESSIONS.load(Ordering::Relaxed),
        connect: Duration::from_nanos(CONNECT_NANOS.load(Ordering::Relaxed)),
        rpcs: RPCS.load(Ordering::Relaxed),
        rpc: Duration::from_nanos(RPC_NANOS.load(Ordering::Relaxed)),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn record_session(connect: Duration) {
    SESSIONS.fetch_add(1, Ordering::Relaxed);
    CONNECT_NANOS.fetch_add(nanos(connect), Ordering::Relaxed);
}

pub(crate) fn record_rpc(elapsed: Duration) {
    RPCS.fetch_add(1, Ordering::Relaxed);
    RPC_NANOS.fetch_add(nanos(elapsed), Ordering::Relaxed);
}
