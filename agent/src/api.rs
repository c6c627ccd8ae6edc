//! The agent's side of `/v1/agent/*`: lookup with backoff, task polling, a background reporter for
//! heartbeats and progress, and the result. Tokens go in headers only, never in a log line.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metalhost_wire::{
    AgentTask, ConsoleLines, DiscoverResponse, Heartbeat, InventoryReport, LookupRequest, LookupResponse, MAX_CONSOLE_LINES_PER_POST, Progress,
    TaskResult,
};
use serde::Serialize;

use crate::download::Backoff;
use crate::log;

/// How long a result is retried before the agent gives up on delivering it.
const RESULT_PATIENCE: Duration = Duration::from_secs(300);

/// The daemons this agent may talk to: one URL, or several daemons of one pool, comma separated
/// (`--api http://a:8080,http://b:8080`). Every call goes to the current one; a call that cannot
/// reach it moves the agent on to the next, since any daemon of the pool serves any agent.
#[derive(Clone)]
pub struct Client {
    bases: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    http: ureq::Agent,
}

enum Lookup {
    Found(LookupResponse),
    NotFound,
    Failed(String),
}

impl Client {
    /// `ca`: the sha256 of the CA the API's certificate must chain to (src/tls.rs).
    pub fn new(api: &str, ca: Option<[u8; 32]>) -> Result<Client, rustls::Error> {
        let bases: Vec<String> = api.split(',').map(|b| b.trim().trim_end_matches('/').to_owned()).filter(|b| !b.is_empty()).collect();
        let bases = if bases.is_empty() { vec![String::new()] } else { bases };
        let tls = crate::tls::client_config(ca, crate::tls::hosts_of(&bases))?;
        let http =
            ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout_read(Duration::from_secs(30)).tls_config(Arc::new(tls)).build();
        Ok(Client { bases: Arc::new(bases), current: Arc::new(AtomicUsize::new(0)), http })
    }

    /// After a transport failure (not an HTTP answer): the next daemon, if there is another.
    fn fail_over(&self, why: &str) {
        if self.bases.len() > 1 {
            let next = self.current.fetch_add(1, Ordering::Relaxed).wrapping_add(1) % self.bases.len();
            log(format!("API unreachable ({why}); switching to {}", self.bases[next]));
        }
    }

    pub fn http(&self) -> ureq::Agent {
        self.http.clone()
    }

    /// `url` on the pool's other daemons, when it is served by one of them (an uploaded image).
    pub fn mirrors(&self, url: &str) -> Vec<String> {
        let Some((base, path)) = self.bases.iter().find_map(|b| url.strip_prefix(b.as_str()).filter(|p| p.starts_with('/')).map(|p| (b, p))) else {
            return Vec::new();
        };
        self.bases.iter().filter(|b| *b != base).map(|b| format!("{b}{path}")).collect()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()])
    }

    fn lookup(&self, macs: &[String]) -> Lookup {
        let request = LookupRequest { macs: macs.to_vec() };
        match self.http.post(&self.url("/v1/agent/lookup")).send_json(&request) {
            Ok(response) => match response.into_json::<LookupResponse>() {
                Ok(found) => Lookup::Found(found),
                Err(e) => Lookup::Failed(format!("unreadable answer: {e}")),
            },
            Err(ureq::Error::Status(404, _)) => Lookup::NotFound,
            Err(ureq::Error::Status(code, r)) => Lookup::Failed(format!("HTTP {code}: {}", error_text(r))),
            Err(e) => {
                let why = e.to_string();
                self.fail_over(&why);
                Lookup::Failed(why)
            }
        }
    }

    /// Retries with capped exponential backoff and jitter until the host knows this node and
    /// expects an agent on it (404 until then: not enrolled yet, or no task planned). After the
    /// first 404 it offers the host this machine once for enlistment (`report` inspects it);
    /// a host with discovery off answers 404 and the lookups go on.
    pub fn lookup_or_enlist(&self, macs: &[String], report: impl FnOnce() -> InventoryReport) -> Found {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
        let mut report = Some(report);
        loop {
            match self.lookup(macs) {
                Lookup::Found(found) => {
                    log(format!("looked up as node {}", found.node_id));
                    return Found::Node(Session::new(self.clone(), macs.to_vec(), found));
                }
                Lookup::NotFound => {
                    log(format!("lookup: 404, no node expecting an agent has MACs {}", macs.join(", ")));
                    if let Some(report) = report.take()
                        && let Some(enlisted) = self.discover(&report())
                    {
                        return Found::Enlisted(enlisted);
                    }
                }
                Lookup::Failed(why) => log(format!("lookup: {why}; retrying")),
            }
            std::thread::sleep(backoff.next_delay());
        }
    }

    /// Offers this machine's inventory for enlistment; the node it became, if the host took it.
    fn discover(&self, report: &InventoryReport) -> Option<DiscoverResponse> {
        match self.http.post(&self.url("/v1/agent/discover")).send_json(report) {
            Ok(response) => match response.into_json::<DiscoverResponse>() {
                Ok(enlisted) => Some(enlisted),
                Err(e) => {
                    log(format!("discover: unreadable answer: {e}"));
                    None
                }
            },
            Err(ureq::Error::Status(404, _)) => {
                log("discover: the host does not enlist unknown machines (discovery is off); waiting to be enrolled");
                None
            }
            Err(ureq::Error::Status(code, r)) => {
                log(format!("discover: HTTP {code}: {}", error_text(r)));
                None
            }
            Err(e) => {
                log(format!("discover: {e}"));
                None
            }
        }
    }
}

/// What the lookup ended in: a node expecting this agent, or a new node enlisted from its report.
pub enum Found {
    Node(Session),
    Enlisted(DiscoverResponse),
}

/// The error text of an API answer: the `message` of an `ErrorBody`, else the raw body.
fn error_text(response: ureq::Response) -> String {
    let body = response.into_string().unwrap_or_default();
    serde_json::from_str::<metalhost_wire::ErrorBody>(&body).map(|b| b.error.message).unwrap_or(body).trim().to_owned()
}

enum Answer {
    Ok(Box<ureq::Response>),
    Unauthorized,
    Refused(u16, String),
    Failed(String),
}

/// A looked-up node: its id, its token (renewed by a fresh lookup when it expires) and timings.
pub struct Session {
    client: Client,
    macs: Vec<String>,
    node_id: i64,
    token: Mutex<String>,
    heartbeat: Duration,
    poll: Duration,
}

impl Session {
    fn new(client: Client, macs: Vec<String>, found: LookupResponse) -> Session {
        Session {
            client,
            macs,
            node_id: found.node_id,
            token: Mutex::new(found.node_token),
            heartbeat: Duration::from_secs(found.heartbeat_interval_s.max(1)),
            poll: Duration::from_secs(found.poll_interval_s.max(1)),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&dyn erased::Body>) -> Answer {
        let token = self.token.lock().map(|t| t.clone()).unwrap_or_default();
        let request = self.client.http.request(method, &self.client.url(path)).set("Authorization", &format!("Bearer {token}"));
        let sent = match body {
            Some(b) => request.set("Content-Type", "application/json").send_string(&b.json()),
            None => request.call(),
        };
        match sent {
            Ok(r) => Answer::Ok(Box::new(r)),
            Err(ureq::Error::Status(401, _)) => Answer::Unauthorized,
            Err(ureq::Error::Status(code, r)) => Answer::Refused(code, error_text(r)),
            Err(e) => {
                let why = e.to_string();
                self.client.fail_over(&why);
                Answer::Failed(why)
            }
        }
    }

    /// A 401 means the token expired: look up again once for a new one.
    fn renew_token(&self) -> bool {
        match self.client.lookup(&self.macs) {
            Lookup::Found(found) if found.node_id == self.node_id => {
                if let Ok(mut t) = self.token.lock() {
                    *t = found.node_token;
                }
                log("node token renewed");
                true
            }
            Lookup::Found(found) => {
                log(format!("lookup now answers node {} instead of {}", found.node_id, self.node_id));
                false
            }
            Lookup::NotFound => false,
            Lookup::Failed(why) => {
                log(format!("renewing the node token: {why}"));
                false
            }
        }
    }

    /// Polls until the host has a task. `None` when the host no longer accepts this node's agent
    /// (token refused and no new one): the caller looks up again.
    pub fn next_task(&self) -> Option<AgentTask> {
        let mut said_waiting = false;
        loop {
            match self.call("GET", "/v1/agent/task", None) {
                Answer::Ok(r) if r.status() == 200 => match r.into_json::<AgentTask>() {
                    Ok(task) => return Some(task),
                    Err(e) => log(format!("task poll: unreadable task: {e}")),
                },
                Answer::Ok(_) if !said_waiting => {
                    log(format!("no task yet; polling every {} s", self.poll.as_secs()));
                    said_waiting = true;
                }
                Answer::Ok(_) => {}
                Answer::Unauthorized => {
                    if !self.renew_token() {
                        log("task poll: 401 and no new token; looking up again");
                        return None;
                    }
                    continue;
                }
                Answer::Refused(code, why) => log(format!("task poll: HTTP {code}: {why}")),
                Answer::Failed(why) => log(format!("task poll: {why}")),
            }
            std::thread::sleep(self.poll);
        }
    }

    /// Posts once; a 401 renews the token and tries again once.
    fn post(&self, path: &str, body: &dyn erased::Body) -> Answer {
        match self.call("POST", path, Some(body)) {
            Answer::Unauthorized if self.renew_token() => self.call("POST", path, Some(body)),
            other => other,
        }
    }

    /// Posts the inspection's inventory; the error text when the host refused it.
    pub fn send_inventory(&self, report: &InventoryReport) -> Result<(), String> {
        match self.post("/v1/agent/inventory", report) {
            Answer::Ok(_) => Ok(()),
            Answer::Unauthorized => Err("inventory: 401 and no new token".to_owned()),
            Answer::Refused(code, why) => Err(format!("inventory refused: HTTP {code}: {why}")),
            Answer::Failed(why) => Err(format!("inventory not delivered: {why}")),
        }
    }

    /// Delivers the result, retrying with backoff while the host is unreachable or failing.
    pub fn report(&self, task: i64, result: &TaskResult) -> bool {
        let path = format!("/v1/agent/task/{task}/result");
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            let why = match self.post(&path, result) {
                Answer::Ok(_) => return true,
                Answer::Refused(code, why) if code < 500 => {
                    log(format!("result refused: HTTP {code}: {why}"));
                    return false;
                }
                Answer::Unauthorized => "401 and no new token".to_owned(),
                Answer::Refused(code, why) => format!("HTTP {code}: {why}"),
                Answer::Failed(why) => why,
            };
            if started.elapsed() > RESULT_PATIENCE {
                log(format!("result not delivered after {} s: {why}", RESULT_PATIENCE.as_secs()));
                return false;
            }
            log(format!("result: {why}; retrying"));
            std::thread::sleep(backoff.next_delay());
        }
    }

    /// Heartbeats every `heartbeat_interval_s` and posts progress about once a second, from a
    /// background thread so neither waits on the disk nor slows it.
    pub fn start_reporter(self: &Arc<Self>, task: i64, total: Option<u64>) -> Reporter {
        let written = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = channel::<()>();
        let session = self.clone();
        let progress = written.clone();
        let thread = std::thread::spawn(move || {
            let mut last_beat: Option<Instant> = None;
            let mut sent = 0;
            loop {
                if last_beat.is_none_or(|t| t.elapsed() >= session.heartbeat) {
                    match session.post("/v1/agent/heartbeat", &Heartbeat { task_id: Some(task) }) {
                        Answer::Ok(_) => {}
                        Answer::Unauthorized => log("heartbeat: 401 and no new token"),
                        Answer::Refused(code, why) => log(format!("heartbeat: HTTP {code}: {why}")),
                        Answer::Failed(why) => log(format!("heartbeat: {why}")),
                    }
                    last_beat = Some(Instant::now());
                }
                sent = session.send_progress(task, progress.load(Ordering::Relaxed), sent, total);
                session.send_console();
                match stopped.recv_timeout(Duration::from_secs(1)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            session.send_progress(task, progress.load(Ordering::Relaxed), sent, total);
            session.send_console();
        });
        Reporter { written, stop, thread: Some(thread) }
    }

    /// Posts the lines logged since the last call for the node's console log. Silent on failure
    /// (a log line about it would only add to the queue); an older host without the endpoint
    /// just never gets them.
    pub fn send_console(&self) {
        loop {
            let lines = crate::console::take(MAX_CONSOLE_LINES_PER_POST);
            if lines.is_empty() {
                return;
            }
            let batch = ConsoleLines { lines };
            match self.post("/v1/agent/console", &batch) {
                Answer::Ok(_) | Answer::Refused(..) => {}
                Answer::Unauthorized | Answer::Failed(_) => {
                    crate::console::put_back(batch.lines);
                    return;
                }
            }
        }
    }

    /// Posts `now` if it moved since `sent`; returns what the host was last told.
    fn send_progress(&self, task: i64, now: u64, sent: u64, total: Option<u64>) -> u64 {
        if now == sent {
            return sent;
        }
        match self.post(&format!("/v1/agent/task/{task}/progress"), &Progress { bytes_written: now, total_bytes: total }) {
            Answer::Ok(_) => now,
            _ => sent,
        }
    }
}

/// The running reporter; `written` is updated by the deploy as it writes.
pub struct Reporter {
    written: Arc<AtomicU64>,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    pub fn set_written(&self, bytes: u64) {
        self.written.store(bytes, Ordering::Relaxed);
    }

    /// Sends the last progress and stops heartbeating.
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bodies of different types through one `post`.
mod erased {
    pub trait Body {
        fn json(&self) -> String;
    }

    impl<T: super::Serialize> Body for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn several_daemons_give_mirrors_and_fail_over_in_turn() {
        let c = Client::new("http://a:1, http://b:2/,http://c:3", None).unwrap();
        assert_eq!(c.url("/v1/x"), "http://a:1/v1/x");
        assert_eq!(c.mirrors("http://b:2/v1/images/4/data"), ["http://a:1/v1/images/4/data", "http://c:3/v1/images/4/data"]);
        assert!(c.mirrors("http://elsewhere/img").is_empty(), "an external image has no mirrors");
        c.fail_over("refused");
        assert_eq!(c.url("/v1/x"), "http://b:2/v1/x");
        c.fail_over("refused");
        c.fail_over("refused");
        assert_eq!(c.url("/v1/x"), "http://a:1/v1/x", "round and round");
        assert!(Client::new("http://one", None).unwrap().mirrors("http://one/v1/images/1/data").is_empty());
    }
}
