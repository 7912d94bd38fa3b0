//! [`MemoryLimiter`]: a store's resource limiter, which caps linear memory
//! and tables at the action's limits and remembers being hit.
//!
//! A denied `memory.grow` returns -1 to the guest, which usually aborts with
//! a trap shortly after; knowing that a growth was denied lets the run report
//! "exhausted its memory" instead of an opaque trap.

use wasmtime::ResourceLimiter;

/// Per-activation memory and table caps.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    memory_bytes: usize,
    table_elements: usize,
    peak_memory_bytes: usize,
    denied: bool,
}

impl MemoryLimiter {
    /// Caps linear memory at `memory_bytes` and tables at `table_elements`.
    pub(crate) fn new(memory_bytes: u64, table_elements: usize) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements,
            peak_memory_bytes: 0,
            denied: false,
        }
    }

    /// Whether the guest asked for more memory or table space than allowed.
    pub(crate) fn denied(&self) -> bool {
        self.denied
    }

    /// The largest linear memory the guest had, in bytes.
    pub(crate) fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Past the module's own maximum or the pool's: still out of memory.
        self.denied = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_growth_past_the_limit_and_remembers_it() {
        let mut limiter = MemoryLimiter::new(1 << 20, 10);
        assert!(limiter.memory_growing(0, 1 << 20, None).expect("growing"));
        assert!(!limiter.denied());
        assert!(
            !limiter
                .memory_growing(1 << 20, (1 << 20) + 65536, None)
                .expect("growing")
        );
        assert!(limiter.denied());
        assert_eq!(limiter.peak_memory_bytes(), 1 << 20);
    }

    #[test]
    fn denies_tables_past_the_limit() {
        let mut limiter = MemoryLimiter::new(1 << 20, 10);
        assert!(limiter.table_growing(0, 10, None).expect("growing"));
        assert!(!limiter.table_growing(10, 11, None).expect("growing"));
        assert!(limiter.denied());
    }
}
