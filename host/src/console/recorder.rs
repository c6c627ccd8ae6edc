//! Records a node's serial console into its console log (store/console.rs) while a workflow runs
//! on it, and `[console] record_after_s` longer, so the log holds the bootstrap's boot and the
//! deployed OS's first one. The recorder is a watcher like any other: an operator can attach to
//! the same console while it records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{ConsoleError, Consoles, Event, Role};
use crate::config::Config;
use crate::domain::NodeId;
use crate::drivers::PluginHost;
use crate::store::Store;
use crate::store::console::{self, MAX_LINE_BYTES, Source};
use crate::store::nodes;

/// Waits before trying a console again that could not be opened or ended: the first short (a BMC
/// may end SOL at a power cycle, and what the node prints meanwhile is lost), then doubling.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the wait to [`RETRY_FIRST`].
const STEADY: Duration = Duration::from_secs(10);
/// Lines are written to the store at most this often.
const FLUSH: Duration = Duration::from_millis(500);

/// What a recorder needs of the workflow core (provision/core.rs builds it), so the console
/// module never depends on the workflow.
#[derive(Clone)]
pub struct RecordingContext {
    pub store: Store,
    pub plugins: Arc<PluginHost>,
    pub consoles: Arc<Consoles>,
    pub recorders: Arc<Recorders>,
    pub config: Arc<Config>,
}

/// The nodes being recorded: one recorder per node, however many workflows overlap its window
/// (a destroy started while the deploy's `record_after` runs), so no line is kept twice.
#[derive(Default)]
pub struct Recorders {
    nodes: Mutex<HashMap<i64, Arc<Window>>>,
}

/// How many workflows a node's recorder serves right now.
#[derive(Default)]
struct Window {
    workflows: AtomicUsize,
    changed: Notify,
}

/// Recording of one node's console for one workflow. Dropping it lets the recording end
/// `record_after` later, unless another workflow on the node started meanwhile.
pub struct Recording {
    window: Arc<Window>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.window.workflows.fetch_sub(1, Ordering::SeqCst);
        self.window.changed.notify_one();
    }
}

/// Records the node's console while the returned guard lives, unless `[console] record` is off.
pub fn start(ctx: &RecordingContext, node: NodeId) -> Option<Recording> {
    if !ctx.config.console.record {
        return None;
    }
    let mut nodes = ctx.recorders.nodes.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(window) = nodes.get(&node.0) {
        window.workflows.fetch_add(1, Ordering::SeqCst);
        window.changed.notify_one();
        return Some(Recording { window: window.clone() });
    }
    let window = Arc::new(Window { workflows: AtomicUsize::new(1), changed: Notify::new() });
    nodes.insert(node.0, window.clone());
    tokio::spawn(record(ctx.clone(), node, window.clone()));
    Some(Recording { window })
}

/// When the recording ends: never while a workflow runs, else `record_after` after the last one.
struct Until {
    at: Option<Instant>,
}

impl Until {
    fn update(&mut self, window: &Window, after: Duration) {
        if window.workflows.load(Ordering::SeqCst) > 0 {
            self.at = None;
        } else if self.at.is_none() {
            self.at = Some(Instant::now() + after);
        }
    }

    async fn reached(&self) {
        match self.at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    }
}

async fn record(ctx: RecordingContext, id: NodeId, window: Arc<Window>) {
    let after = ctx.config.console.record_after;
    let mut until = Until { at: None };
    let mut retry = RETRY_FIRST;
    loop {
        until.update(&window, after);
        let over = until.at.is_some_and(|t| Instant::now() >= t);
        if over || !record_once(&ctx, id, &window, &mut until, &mut retry).await {
            // Unregister unless a workflow arrived meanwhile (it found this recorder registered).
            let mut nodes = ctx.recorders.nodes.lock().unwrap_or_else(|p| p.into_inner());
            if window.workflows.load(Ordering::SeqCst) == 0 || !over {
                nodes.remove(&id.0);
                return;
            }
        }
    }
}

/// One console session recorded until it ends or the window closes. False: there is nothing to
/// record on this node (no console, no grant, node gone).
async fn record_once(ctx: &RecordingContext, id: NodeId, window: &Window, until: &mut Until, retry: &mut Duration) -> bool {
    let after = ctx.config.console.record_after;
    let Ok(node) = ctx.store.call(move |c| nodes::get_by_id(c, id)).await else { return false };
    let mut viewer = match ctx.consoles.attach(&ctx.plugins, &node, Role::Watcher).await {
        Ok(viewer) => viewer,
        Err(ConsoleError::Driver(f)) if f.kind.is_transient() => {
            tracing::debug!(node = id.0, "console not recorded yet: {f}");
            pause(window, until, after, next_retry(retry)).await;
            return true;
        }
        Err(e) => {
            // No console (a 0.1.0 plugin, a BMC without one) or no grant: nothing to record.
            tracing::info!(node = id.0, "console not recorded: {e}");
            return false;
        }
    };
    let opened = Instant::now();
    let mut lines = Lines::default();
    let mut flush = tokio::time::interval(FLUSH);
    let ended = loop {
        tokio::select! {
            event = viewer.next() => match event {
                Event::Output(bytes) => lines.push(&bytes),
                Event::Missed(n) => lines.note(&format!("[metalhost: {n} chunks of console output missed]")),
                Event::Ended(why) => break Some(why),
            },
            () = window.changed.notified() => until.update(window, after),
            () = until.reached() => break None,
            _ = flush.tick() => save(ctx, id, lines.take()).await,
        }
    };
    lines.finish();
    save(ctx, id, lines.take()).await;
    drop(viewer);
    if let Some(why) = ended {
        tracing::debug!(node = id.0, "recorded console ended: {why}");
        if opened.elapsed() >= STEADY {
            *retry = RETRY_FIRST;
        }
        pause(window, until, after, next_retry(retry)).await;
    }
    true
}

/// The wait before the next attempt; doubles the one after it, up to [`RETRY_MAX`].
fn next_retry(retry: &mut Duration) -> Duration {
    let now = *retry;
    *retry = (now * 2).min(RETRY_MAX);
    now
}

/// Waits `pause` (or until the window closes), following the node's workflows meanwhile.
async fn pause(window: &Window, until: &mut Until, after: Duration, pause: Duration) {
    let wake = Instant::now() + pause;
    loop {
        tokio::select! {
            () = window.changed.notified() => until.update(window, after),
            () = until.reached() => return,
            () = tokio::time::sleep_until(wake) => return,
        }
    }
}

async fn save(ctx: &RecordingContext, node: NodeId, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = ctx.store.call(move |c| console::append(c, node, Source::Serial, &lines)).await {
        tracing::warn!(node = node.0, "cannot keep console lines: {e}");
    }
}

/// Splits console bytes into lines: `\r\n`, `\n` and lone `\r` end a line, terminal escape
/// sequences (CSI, OSC, two-byte ESC) are dropped, a line is cut at the store's limit. The store
/// turns what control characters remain into U+FFFD.
#[derive(Default)]
pub struct Lines {
    current: Vec<u8>,
    done: Vec<String>,
    escape: Escape,
    last_cr: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// In `ESC [ ... final`.
    Csi,
    /// In `ESC ] ... BEL` (or `ESC \`).
    Osc,
}

impl Lines {
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.last_cr, false);
            self.escape = match (self.escape, b) {
                (Escape::None, 0x1b) => Escape::Start,
                // `\r\n` ends one line, not two: the `\r` ended it.
                (Escape::None, b'\n') if after_cr => Escape::None,
                (Escape::None, b'\n') => {
                    self.end_line();
                    Escape::None
                }
                // A lone `\r` redraws the line: it ends one too.
                (Escape::None, b'\r') => {
                    self.end_line();
                    self.last_cr = true;
                    Escape::None
                }
                (Escape::None, _) => {
                    self.current.push(b);
                    if self.current.len() >= MAX_LINE_BYTES {
                        self.end_line();
                    }
                    Escape::None
                }
                (Escape::Start, b'[') => Escape::Csi,
                (Escape::Start, b']') => Escape::Osc,
                (Escape::Start, _) => Escape::None,
                (Escape::Csi, 0x40..=0x7e) => Escape::None,
                (Escape::Csi, _) => Escape::Csi,
                (Escape::Osc, 0x07) => Escape::None,
                (Escape::Osc, 0x1b) => Escape::Start,
                (Escape::Osc, _) => Escape::Osc,
            };
        }
    }

    /// A note of the recorder's own, as a line of its own.
    pub fn note(&mut self, text: &str) {
        self.end_line_if_any();
        self.done.push(text.to_owned());
    }

    /// Ends the partial line (a prompt waiting for input, say).
    pub fn finish(&mut self) {
        self.end_line_if_any();
    }

    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.done)
    }

    fn end_line_if_any(&mut self) {
        if !self.current.is_empty() {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.current).into_owned();
        self.current.clear();
        self.done.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        for chunk in chunks {
            lines.push(chunk);
        }
        lines.finish();
        lines.take()
    }

    #[test]
    fn line_ends_of_every_kind_end_one_line_each() {
        assert_eq!(split(&[b"one\r\ntwo\nthree\r\r\nfour"]), ["one", "two", "three", "", "four"]);
        assert_eq!(split(&[b"spl", b"it\r", b"\nnext\n"]), ["split", "next"]);
        assert_eq!(split(&[b"\n\nx\n"]), ["", "", "x"]);
    }

    #[test]
    fn escape_sequences_are_dropped_even_across_chunks() {
        assert_eq!(split(&[b"\x1b[1;32mgreen\x1b[0m ok\n"]), ["green ok"]);
        assert_eq!(split(&[b"a\x1b[", b"2J", b"b\n"]), ["ab"]);
        assert_eq!(split(&[b"\x1b]0;title\x07shell$ "]), ["shell$ "]);
        assert_eq!(split(&[b"\x1bcreset\n"]), ["reset"]);
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_store_limit() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let lines = split(&[&long]);
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
    }

    #[test]
    fn notes_stand_on_their_own_line() {
        let mut lines = Lines::default();
        lines.push(b"half");
        lines.note("[gap]");
        lines.push(b" more\n");
        assert_eq!(lines.take(), ["half", "[gap]", " more"]);
    }
}
