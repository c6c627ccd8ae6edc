//! The agent's side of `/v1/agent/*`: lookup with backoff, polling, progress, heartbeat, result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metalhost_wire::{AgentTask, Heartbeat, LookupRequest, LookupResponse, Progress, TaskResult};

use crate::log;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let http = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(30))
            .build();
        Client { base: base.trim_end_matches('/').to_owned(), http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> &ureq::Agent {
        &self.http
    }

    /// Retries with capped exponential backoff and jitter until the host knows this node.
    pub fn lookup_until_found(&self, macs: &[String]) -> Session {
        let mut delay = Duration::from_millis(250);
        loop {
            let request = LookupRequest { macs: macs.to_vec() };
            match self.http.post(&self.url("/v1/agent/lookup")).send_json(&request) {
                Ok(response) => match response.into_json::<LookupResponse>() {
                    Ok(found) => {
                        log(format!("looked up as node {}", found.node_id));
                        return Session { client: self.clone(), found };
                    }
                    Err(e) => log(format!("lookup: unreadable answer: {e}")),
                },
                Err(ureq::Error::Status(404, _)) => log(format!("lookup: no enrolled node has MACs {}; retrying", macs.join(", "))),
                Err(ureq::Error::Status(code, response)) => {
                    log(format!("lookup: HTTP {code}: {}; retrying", response.into_string().unwrap_or_default()))
                }
                Err(e) => log(format!("lookup: {e}; retrying")),
            }
            std::thread::sleep(delay + jitter(delay / 4));
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let max_ms = max.as_millis().max(1) as u64;
    Duration::from_millis(nanos % max_ms)
}

/// A looked-up node with its token.
pub struct Session {
    client: Client,
    found: LookupResponse,
}

impl Session {
    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        request.set("Authorization", &format!("Bearer {}", self.found.node_token))
    }

    /// Polls until the host has a task for this node. Network errors (a restarting host) are retried.
    pub fn wait_for_task(&self) -> AgentTask {
        let poll = Duration::from_secs(self.found.poll_interval_s.max(1));
        loop {
            let request = self.authorized(self.client.http.get(&self.client.url("/v1/agent/task")));
            match request.call() {
                Ok(response) if response.status() == 200 => match response.into_json::<AgentTask>() {
                    Ok(task) => return task,
                    Err(e) => log(format!("task: unreadable answer: {e}")),
                },
                Ok(_) => {}
                Err(e) => log(format!("task poll: {e}")),
            }
            std::thread::sleep(poll);
        }
    }

    /// Posts a JSON body, retrying for a while so a restarting host does not lose the message.
    fn post<T: serde::Serialize>(&self, path: &str, body: &T, attempts: u32) -> bool {
        for attempt in 0..attempts {
            let request = self.authorized(self.client.http.post(&self.client.url(path)));
            match request.send_json(body) {
                Ok(_) => return true,
                Err(ureq::Error::Status(code, response)) => {
                    log(format!("{path}: HTTP {code}: {}", response.into_string().unwrap_or_default()));
                    if code < 500 {
                        return false;
                    }
                }
                Err(e) => log(format!("{path}: {e}")),
            }
            std::thread::sleep(Duration::from_millis(500) * (attempt + 1).min(10));
        }
        false
    }

    pub fn report(&self, task: i64, result: &TaskResult) {
        if !self.post(&format!("/v1/agent/task/{task}/result"), result, 120) {
            log("could not deliver the result");
        }
    }

    pub fn progress(&self, task: i64, bytes: u64, total: Option<u64>) {
        self.post(&format!("/v1/agent/task/{task}/progress"), &Progress { bytes_written: bytes, total_bytes: total }, 1);
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Heartbeats in the background until stopped.
    pub fn start_heartbeat(&self, task: i64) -> HeartbeatHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_secs(self.found.heartbeat_interval_s.max(1));
        let session = Session { client: self.client.clone(), found: self.found.clone() };
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if last.elapsed() >= interval {
                    session.post("/v1/agent/heartbeat", &Heartbeat { task_id: Some(task) }, 1);
                    last = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        HeartbeatHandle { stop, thread: Some(thread) }
    }
}

pub struct HeartbeatHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HeartbeatHandle {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
