//! Records a node's serial console into its console log (store/console.rs) while a workflow runs
//! on it, and `[console] record_after_s` longer, so the log holds the bootstrap's boot and the
//! deployed OS's first one. The recorder is a watcher like any other: an operator can attach to
//! the same console while it records.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{ConsoleError, Event, Role};
use crate::app::AppState;
use crate::domain::NodeId;
use crate::store::console::{self, MAX_LINE_BYTES, Source};
use crate::store::nodes;

/// Wait before trying a console again that could not be opened or ended.
const RETRY: Duration = Duration::from_secs(10);
/// Lines are written to the store at most this often.
const FLUSH: Duration = Duration::from_millis(500);

/// Recording of one node's console. Dropping it ends the recording after `record_after`.
pub struct Recording {
    _workflow: oneshot::Sender<()>,
}

/// Starts recording the node's console, unless `[console] record` is off.
pub fn start(state: &AppState, node: NodeId) -> Option<Recording> {
    if !state.config.console.record {
        return None;
    }
    let (workflow, done) = oneshot::channel();
    tokio::spawn(record(state.clone(), node, done));
    Some(Recording { _workflow: workflow })
}

async fn record(state: AppState, id: NodeId, mut workflow: oneshot::Receiver<()>) {
    // Set once the workflow ended.
    let mut until: Option<Instant> = None;
    let mut lines = Lines::default();
    loop {
        if until.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        let node = match state.store.call(move |c| nodes::get_by_id(c, id)).await {
            Ok(node) => node,
            Err(_) => return,
        };
        let mut viewer = match state.consoles.attach(&state.plugins, &node, Role::Watcher).await {
            Ok(viewer) => viewer,
            Err(ConsoleError::Driver(f)) if f.kind.is_transient() => {
                tracing::debug!(node = id.0, "console not recorded yet: {f}");
                if wait(RETRY, &mut workflow, &mut until, &state).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                // No console (a 0.1.0 plugin, a BMC without one) or no grant: nothing to record.
                tracing::info!(node = id.0, "console not recorded: {e}");
                return;
            }
        };
        let mut flush = tokio::time::interval(FLUSH);
        let ended = loop {
            let stop = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = viewer.next() => match event {
                    Event::Output(bytes) => lines.push(&bytes),
                    Event::Missed(n) => lines.note(&format!("[metalhost: {n} chunks of console output missed]")),
                    Event::Ended(why) => break Some(why),
                },
                _ = &mut workflow, if until.is_none() => until = Some(Instant::now() + state.config.console.record_after),
                () = stop => break None,
                _ = flush.tick() => save(&state, id, lines.take()).await,
            }
        };
        lines.finish();
        save(&state, id, lines.take()).await;
        match ended {
            None => return,
            Some(why) => {
                tracing::debug!(node = id.0, "recorded console ended: {why}");
                drop(viewer);
                if wait(RETRY, &mut workflow, &mut until, &state).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `pause`, noting when the workflow ends; true when the recording is over.
async fn wait(pause: Duration, workflow: &mut oneshot::Receiver<()>, until: &mut Option<Instant>, state: &AppState) -> bool {
    let wake = Instant::now() + pause;
    if until.is_none() {
        tokio::select! {
            _ = workflow => *until = Some(Instant::now() + state.config.console.record_after),
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    let wake = until.map_or(wake, |t| t.min(wake));
    tokio::time::sleep_until(wake).await;
    until.is_some_and(|t| Instant::now() >= t)
}

async fn save(state: &AppState, node: NodeId, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = state.store.call(move |c| console::append(c, node, Source::Serial, &lines)).await {
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
