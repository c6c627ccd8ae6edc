//! Live serial consoles (ARCHITECTURE.md, "console/"): at most one console program per node,
//! shared by everyone watching it. The node's power plugin says how to reach the console; the
//! plugin host runs that program on a pty, confined (`metalhost_plugin_host::ConsoleProcess`).
//!
//! Viewers: at most one *typist* (the CLI's `node console`, the web view's console) and any
//! number of watchers (the console-log recorder in `recorder.rs`). A newcomer first gets the
//! last [`BACKLOG`] bytes, so it sees the screen it joins. When the last viewer leaves, the program
//! is ended (its `quit` bytes, then a kill of its whole session).

pub mod recorder;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, broadcast, mpsc, watch};

use crate::drivers::{DriverFailure, PluginHost};
use crate::store::nodes::Node;

/// Bytes of recent output a new viewer is shown first.
pub const BACKLOG: usize = 16 * 1024;
/// Output chunks a slow viewer may fall behind before it misses some.
const CHANNEL_CHUNKS: usize = 1024;

/// Who attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads and types; one per node.
    Typist,
    /// Reads only.
    Watcher,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("node {node}'s console is in use by another session (one typist per node); detach it first")]
    Busy { node: String },
    #[error("{0}")]
    Driver(#[from] DriverFailure),
}

/// Every node's console session, if it has one.
#[derive(Default)]
pub struct Consoles {
    /// One slot per node that ever had a console; the async lock serialises opening and closing.
    slots: Mutex<HashMap<i64, Slot>>,
}

/// A node's console, if open; its lock is held while the console opens or closes.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

struct Session {
    output: broadcast::Sender<Bytes>,
    input: mpsc::Sender<Vec<u8>>,
    backlog: Mutex<VecDeque<u8>>,
    viewers: AtomicUsize,
    typist: AtomicBool,
    /// Woken when the last viewer left.
    idle: Notify,
    /// Set once the program has ended, with why.
    ended: watch::Sender<Option<String>>,
}

/// One viewer of a node's console. Dropping it detaches.
pub struct Viewer {
    session: Arc<Session>,
    role: Role,
    output: broadcast::Receiver<Bytes>,
    ended: watch::Receiver<Option<String>>,
    backlog: Vec<u8>,
}

/// What a viewer receives next.
#[derive(Debug)]
pub enum Event {
    Output(Bytes),
    /// The viewer fell behind and missed this many chunks.
    Missed(u64),
    /// The console program ended (the BMC closed the session, or it failed); why.
    Ended(String),
}

impl Consoles {
    fn slot(&self, node: i64) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(node).or_default().clone()
    }

    /// Joins the node's console, opening it through its power plugin if nobody watches it yet.
    pub async fn attach(&self, plugins: &PluginHost, node: &Node, role: Role) -> Result<Viewer, ConsoleError> {
        let slot = self.slot(node.id.0);
        let mut current = slot.lock().await;
        let live = current.as_ref().filter(|s| s.ended.borrow().is_none()).cloned();
        let session = match live {
            Some(session) => session,
            None => {
                let process = crate::drivers::open_console(plugins, &node.bmc()).await?;
                let session = Session::start(process, slot.clone(), node.id.0);
                *current = Some(session.clone());
                session
            }
        };
        if role == Role::Typist && session.typist.swap(true, Ordering::SeqCst) {
            return Err(ConsoleError::Busy { node: node.name.clone() });
        }
        session.viewers.fetch_add(1, Ordering::SeqCst);
        let backlog = session.backlog.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        Ok(Viewer { output: session.output.subscribe(), ended: session.ended.subscribe(), session, role, backlog })
    }
}

impl Session {
    fn start(process: metalhost_plugin_host::ConsoleProcess, slot: Slot, node: i64) -> Arc<Session> {
        let (input, mut typed) = mpsc::channel::<Vec<u8>>(64);
        let session = Arc::new(Session {
            output: broadcast::channel(CHANNEL_CHUNKS).0,
            input,
            backlog: Mutex::new(VecDeque::with_capacity(BACKLOG)),
            viewers: AtomicUsize::new(0),
            typist: AtomicBool::new(false),
            idle: Notify::new(),
            ended: watch::channel(None).0,
        });
        let pump = session.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let why = loop {
                tokio::select! {
                    read = process.read(&mut buf) => match read {
                        Ok(0) => break pump.last_words(),
                        Ok(n) => pump.printed(&buf[..n]),
                        Err(e) => break format!("reading the console failed: {e}"),
                    },
                    Some(bytes) = typed.recv() => {
                        if let Err(e) = process.write_all(&bytes).await {
                            break format!("typing at the console failed: {e}");
                        }
                    }
                    () = pump.idle.notified() => {
                        // Under the slot's lock: nobody can join between this check and the close.
                        let mut current = slot.lock().await;
                        if pump.viewers.load(Ordering::SeqCst) == 0 {
                            *current = None;
                            break "the last viewer left".to_owned();
                        }
                    }
                }
            };
            tracing::info!(node, "console closed: {why}");
            pump.ended.send_replace(Some(why));
            process.close().await;
        });
        session
    }

    fn printed(&self, bytes: &[u8]) {
        {
            let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            backlog.extend(bytes);
            let excess = backlog.len().saturating_sub(BACKLOG);
            backlog.drain(..excess);
        }
        // No receiver is fine: the backlog keeps the screen for whoever comes next.
        let _ = self.output.send(Bytes::copy_from_slice(bytes));
    }
}

impl Session {
    /// Why the program ended, in its own last line when it printed one (ipmitool: "SOL session
    /// closed by BMC", "SOL payload already active on another session", ...).
    fn last_words(&self) -> String {
        let backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<u8> = backlog.iter().rev().take(512).rev().copied().collect();
        let text = String::from_utf8_lossy(&tail);
        let last = text.lines().map(|l| l.trim_matches(|c: char| c.is_control() || c.is_whitespace())).rfind(|l| !l.is_empty());
        match last {
            Some(line) => format!("the console program ended: {}", line.chars().filter(|c| !c.is_control()).take(200).collect::<String>()),
            None => "the console program ended".to_owned(),
        }
    }
}

impl Viewer {
    /// What the console showed before this viewer joined (at most [`BACKLOG`] bytes).
    pub fn take_backlog(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.backlog)
    }

    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(why) = self.ended.borrow().clone() {
                // What it printed before it ended is still delivered.
                return match self.output.try_recv() {
                    Ok(bytes) => Event::Output(bytes),
                    Err(_) => Event::Ended(why),
                };
            }
            tokio::select! {
                received = self.output.recv() => return match received {
                    Ok(bytes) => Event::Output(bytes),
                    Err(broadcast::error::RecvError::Lagged(n)) => Event::Missed(n),
                    Err(broadcast::error::RecvError::Closed) => Event::Ended("the console closed".into()),
                },
                changed = self.ended.changed() => if changed.is_err() {
                    return Event::Ended("the console closed".into());
                },
            }
        }
    }

    /// Types at the console. Watchers cannot.
    pub async fn type_bytes(&self, bytes: Vec<u8>) -> Result<(), &'static str> {
        if self.role != Role::Typist {
            return Err("this viewer only watches");
        }
        self.session.input.send(bytes).await.map_err(|_| "the console has ended")
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if self.role == Role::Typist {
            self.session.typist.store(false, Ordering::SeqCst);
        }
        if self.session.viewers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.session.idle.notify_one();
        }
    }
}
