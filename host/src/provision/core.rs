//! The workflow core's context (ARCHITECTURE.md, "The workflow core and its doors"): everything a
//! runner, an operator action, a background loop or a console recorder needs, and nothing of the
//! web layer. The REST API and the web view hold one and hand it to their handlers through
//! axum's `FromRef`; the core never sees them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::Config;
use crate::console::Consoles;
use crate::console::recorder::{Recorders, RecordingContext};
use crate::drivers::PluginHost;
use crate::images::Images;
use crate::store::Store;
use crate::store::cluster::{Lease, Member, Renewal};

/// The workflow core: store, drivers, configuration, this daemon's place in the pool, and the
/// in-memory coordination of its runners and consoles. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowCore {
    pub store: Store,
    pub plugins: Arc<PluginHost>,
    pub config: Arc<Config>,
    /// Base URL agents reach this daemon at (config `public_url`, else the bound address).
    pub public_url: Arc<str>,
    /// Base URL of the plain-HTTP boot listener (config `boot_url`, else its bound address): what
    /// firmware and the bootstrap fetch before anything can check a certificate.
    pub boot_url: Arc<str>,
    /// The sha256 (hex) of the CA the API's certificate chains to, which the bootstrap tells the
    /// agent to trust (`metalhost.ca=`); None when the API is plain HTTP.
    pub ca_fingerprint: Option<Arc<str>>,
    /// Woken whenever a task finishes, so workflows need not wait for their next poll.
    pub task_events: Arc<Notify>,
    pub runners: Arc<Runners>,
    /// Notified when the netboot plugin asks for a reload (SIGHUP to a supervised dnsmasq).
    pub netboot_reload: Arc<Notify>,
    /// Live serial consoles, one per node at most.
    pub consoles: Arc<Consoles>,
    /// Which nodes' consoles are being recorded into their console logs.
    pub recorders: Arc<Recorders>,
    /// This daemon as the pool's other daemons see it (store/cluster.rs).
    pub member: Arc<Member>,
    /// Uploaded images' files, and copies of them from peer daemons.
    pub images: Arc<Images>,
}

impl WorkflowCore {
    /// The lease TTL in the store's milliseconds.
    pub fn lease_ttl_ms(&self) -> i64 {
        lease_ttl_ms(&self.config)
    }

    /// How runners pause between attempts of a step or a store call (`[deploy] retry_*`).
    pub(crate) fn backoff(&self) -> super::retry::Backoff {
        super::retry::Backoff { initial: self.config.deploy.retry_initial, max: self.config.deploy.retry_max }
    }

    /// The part of the core a console recorder works with.
    pub fn recording(&self) -> RecordingContext {
        RecordingContext {
            store: self.store.clone(),
            plugins: self.plugins.clone(),
            consoles: self.consoles.clone(),
            recorders: self.recorders.clone(),
            config: self.config.clone(),
        }
    }
}

pub fn lease_ttl_ms(config: &Config) -> i64 {
    i64::try_from(config.cluster.lease_ttl.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Which nodes have a runner on this daemon, the leases they hold, and the per-switch locks that
/// serialise switch changes.
#[derive(Default)]
pub struct Runners {
    running: Mutex<HashSet<i64>>,
    /// The lease each runner holds, so the heartbeat can move its clock (store/cluster.rs).
    leases: Mutex<HashMap<i64, Lease>>,
    switch_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runners {
    /// Tells the runners' lease clocks what a heartbeat renewed: only a lease of the same epoch
    /// (one taken over and taken back since is another lease).
    pub fn renewed(&self, renewal: &Renewal) {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        for (node, epoch) in &renewal.leases {
            if let Some(lease) = leases.get(&node.0).filter(|l| l.epoch == *epoch) {
                lease.clock.renew(renewal.sent);
            }
        }
    }

    pub(super) fn hold(&self, lease: &Lease) {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(lease.node.0, lease.clone());
    }

    pub(super) fn drop_lease(&self, lease: &Lease) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases.get(&lease.node.0).is_some_and(|l| l.epoch == lease.epoch) {
            leases.remove(&lease.node.0);
        }
    }

    pub fn switch_lock(&self, switch: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.switch_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(switch).or_default().clone()
    }

    /// Marks the node as having a runner here; false when it already had one.
    pub(super) fn claim(&self, node: i64) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(node)
    }

    pub(super) fn release(&self, node: i64) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&node);
    }
}
