//! The agent's lines for the node's console log: every `log` line is printed to stderr (the
//! console, on a node) and kept here until the session posts it to `/v1/agent/console`. Bounded:
//! a host that does not take them costs at most [`KEEP`] lines of memory.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept while the host is not reachable; older ones are dropped first.
const KEEP: usize = 2000;

/// A bounded queue of lines; the agent has one, [`PENDING`].
struct Queue(Mutex<VecDeque<String>>);

static PENDING: Queue = Queue::new();

impl Queue {
    const fn new() -> Queue {
        Queue(Mutex::new(VecDeque::new()))
    }

    fn keep(&self, line: String) {
        if let Ok(mut pending) = self.0.lock() {
            if pending.len() == KEEP {
                pending.pop_front();
            }
            pending.push_back(line);
        }
    }

    fn take(&self, max: usize) -> Vec<String> {
        match self.0.lock() {
            Ok(mut pending) => {
                let n = pending.len().min(max);
                pending.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    fn put_back(&self, lines: Vec<String>) {
        if let Ok(mut pending) = self.0.lock() {
            for line in lines.into_iter().rev() {
                if pending.len() == KEEP {
                    break;
                }
                pending.push_front(line);
            }
        }
    }
}

pub fn keep(line: String) {
    PENDING.keep(line);
}

/// Up to `max` of the oldest pending lines, removed from the queue.
pub fn take(max: usize) -> Vec<String> {
    PENDING.take(max)
}

/// Puts lines that could not be delivered back in front of newer ones (still bounded).
pub fn put_back(lines: Vec<String>) {
    PENDING.put_back(lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_in_order_and_go_back_in_front() {
        let queue = Queue::new();
        for line in ["a", "b", "c"] {
            queue.keep(line.into());
        }
        let first = queue.take(2);
        assert_eq!(first, ["a", "b"]);
        queue.put_back(first);
        assert_eq!(queue.take(10), ["a", "b", "c"]);
        assert!(queue.take(10).is_empty());
    }

    #[test]
    fn the_queue_is_bounded_and_drops_the_oldest() {
        let queue = Queue::new();
        for i in 0..KEEP + 3 {
            queue.keep(i.to_string());
        }
        let all = queue.take(usize::MAX);
        assert_eq!((all.len(), all[0].as_str()), (KEEP, "3"));
    }
}
