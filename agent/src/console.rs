//! The agent's lines for the node's console log: every `log` line is printed to stderr (the
//! console, on a node) and kept here until the session posts it to `/v1/agent/console`. Bounded:
//! a host that does not take them costs at most [`KEEP`] lines of memory.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept while the host is not reachable; older ones are dropped first.
const KEEP: usize = 2000;

static PENDING: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

pub fn keep(line: String) {
    if let Ok(mut pending) = PENDING.lock() {
        if pending.len() == KEEP {
            pending.pop_front();
        }
        pending.push_back(line);
    }
}

/// Up to `max` of the oldest pending lines, removed from the queue.
pub fn take(max: usize) -> Vec<String> {
    match PENDING.lock() {
        Ok(mut pending) => {
            let n = pending.len().min(max);
            pending.drain(..n).collect()
        }
        Err(_) => Vec::new(),
    }
}

/// Puts lines that could not be delivered back in front of newer ones (still bounded).
pub fn put_back(lines: Vec<String>) {
    if let Ok(mut pending) = PENDING.lock() {
        for line in lines.into_iter().rev() {
            if pending.len() == KEEP {
                break;
            }
            pending.push_front(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_in_order_and_go_back_in_front() {
        keep("a".into());
        keep("b".into());
        keep("c".into());
        let first = take(2);
        assert_eq!(first, ["a", "b"]);
        put_back(first);
        assert_eq!(take(10), ["a", "b", "c"]);
        assert!(take(10).is_empty());
    }
}
