//! The store's resource limiter: the plugin's memory cap, and the fact that it refused a growth,
//! which is how a failed call is told to be the cap's (ARCHITECTURE.md, plugin-host), rather than
//! by the words of the trap.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// wasmtime's `StoreLimits` (a refused growth traps at once), remembering that it refused one.
pub(crate) struct Limits {
    limits: StoreLimits,
    memory_refused: bool,
}

impl Limits {
    /// At most `memory` bytes of linear memory, and as many instances, tables and memories as a
    /// pooled slot holds.
    pub(crate) fn new(memory: usize) -> Limits {
        let limits = StoreLimitsBuilder::new().memory_size(memory).instances(32).tables(32).memories(8).trap_on_grow_failure(true).build();
        Limits { limits, memory_refused: false }
    }

    /// Whether a memory growth was refused in this store: its call then failed on the memory cap.
    pub(crate) fn memory_refused(&self) -> bool {
        self.memory_refused
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let outcome = self.limits.memory_growing(current, desired, maximum);
        if !matches!(outcome, Ok(true)) {
            self.memory_refused = true;
        }
        outcome
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growth_past_the_cap_is_refused_and_remembered() {
        let mut limits = Limits::new(1 << 20);
        assert!(limits.memory_growing(0, 1 << 16, None).unwrap());
        assert!(!limits.memory_refused());
        assert!(limits.memory_growing(1 << 16, 2 << 20, None).is_err(), "a refused growth traps");
        assert!(limits.memory_refused());
    }
}
