//! [`SandboxConfig`] and the one function that turns it into the process's
//! wasmtime [`Config`].
//!
//! Every activation gets a slot of the pooling instance allocator (instance
//! metadata, one linear memory, one table): slots are reserved once at
//! start-up and recycled, and linear memories are mapped copy-on-write from
//! the module's initial image, so instantiating a cached module costs a few
//! microseconds. Guests are interrupted by epochs: a background thread bumps
//! the engine's epoch every [`SandboxConfig::epoch_tick`], and each store
//! traps once its deadline (the action's timeout, in ticks) has passed.
//!
//! [`SandboxConfig::pooling`] and [`SandboxConfig::copy_on_write`] turn the
//! pooling allocator and copy-on-write images off, one at a time, so that
//! `clemmys bench` can show what each is worth.

use std::time::Duration;

use clemmys_whisk::limits::{MAX_MEMORY_MB, MB};
use wasmtime::{
    Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, RegallocAlgorithm,
    WasmBacktraceDetails,
};

/// Table elements any one activation may have (wasmtime's pooling default;
/// large debug builds of some toolchains need thousands).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 20_000;

/// How the process's sandbox is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Core instances that may be live at once (pooling allocator slots).
    pub total_core_instances: u32,
    /// Linear memories that may be live at once. Each reserves about 4 GiB of
    /// address space (not memory) for bounds-check-free access.
    pub total_memories: u32,
    /// Tables that may be live at once.
    pub total_tables: u32,
    /// Execution stacks for async calls that may be live at once.
    pub total_stacks: u32,
    /// The largest linear memory any action may have, in bytes (the largest
    /// action memory limit, 512 MB).
    pub max_memory_bytes: u64,
    /// How often the engine's epoch advances: the granularity of timeouts.
    pub epoch_tick: Duration,
    /// Compiled modules kept in memory (least recently used ones are dropped).
    pub module_cache_capacity: usize,
    /// Compile for start-up rather than speed: Cranelift without
    /// optimisations and with its single-pass register allocator. On by
    /// default: measured here (`cargo bench -p clemmys-sandbox`), compiling
    /// takes half as long (hello 47 → 24 ms, noop 20 → 10 ms) while the
    /// CPU-bound `cpu` example runs 9% slower (414 → 451 µs): the guests are
    /// already optimised by their own compiler, and cold starts dominate.
    pub fast_compile: bool,
    /// Bytes at the start of each pooled linear memory that are reset in
    /// place when an instance ends, instead of being returned to the kernel
    /// (`madvise`) and faulted in again by the next instance. Default
    /// 256 KiB: an action built with a 64 KiB stack (as the examples and the
    /// guest SDK's instructions do) has its stack top, static data and first
    /// heap pages there; measured, noop's run fell from 20 to 6 µs and
    /// hello's from 24 to 8 µs. An action with Rust's default 1 MiB stack
    /// touches nothing there and pays a 256 KiB reset instead.
    pub keep_resident_bytes: usize,
    /// Whether instances come from the pooling allocator (slots reserved
    /// once at start-up and recycled). false: every instance maps and
    /// unmaps its memory and tables on demand (`OnDemand`), as a plain
    /// wasmtime embedding does; the slot counts above are then unused.
    /// Default true.
    pub pooling: bool,
    /// Whether linear memories are mapped copy-on-write from the module's
    /// initial image (`memory_init_cow`) instead of being filled by copying
    /// the data segments on every instantiation. Default true.
    pub copy_on_write: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self::with_slots(256)
    }
}

impl SandboxConfig {
    /// The default configuration with `slots` instances, memories, tables
    /// and stacks: the number of activations that can run at once. Tests use
    /// a handful to keep the address space reserved per sandbox small.
    pub fn with_slots(slots: u32) -> Self {
        Self {
            total_core_instances: slots,
            total_memories: slots,
            total_tables: slots,
            total_stacks: slots,
            max_memory_bytes: u64::from(MAX_MEMORY_MB) * MB,
            epoch_tick: Duration::from_millis(5),
            module_cache_capacity: 128,
            fast_compile: true,
            keep_resident_bytes: 256 * 1024,
            pooling: true,
            copy_on_write: true,
        }
    }

    /// The wasmtime configuration of the process's engine.
    pub(crate) fn to_wasmtime(&self) -> Config {
        let max_memory_size = usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(self.total_core_instances)
            .total_memories(self.total_memories)
            .total_tables(self.total_tables)
            .total_stacks(self.total_stacks)
            .max_memory_size(max_memory_size)
            .table_elements(MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(self.keep_resident_bytes)
            .table_keep_resident(self.keep_resident_bytes.min(64 * 1024));

        let strategy = if self.pooling {
            InstanceAllocationStrategy::Pooling(pool)
        } else {
            InstanceAllocationStrategy::OnDemand
        };
        let mut config = Config::new();
        config
            .allocation_strategy(strategy)
            .memory_init_cow(self.copy_on_write)
            .epoch_interruption(true)
            .parallel_compilation(true)
            .cranelift_opt_level(if self.fast_compile {
                OptLevel::None
            } else {
                OptLevel::Speed
            })
            .cranelift_regalloc_algorithm(if self.fast_compile {
                RegallocAlgorithm::SinglePass
            } else {
                RegallocAlgorithm::Backtracking
            })
            // Traps are reported in one line; guest backtraces are neither
            // shown nor logged (they describe confidential code), so don't
            // pay for collecting them, and don't let the environment decide.
            .wasm_backtrace_max_frames(None)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_and_copy_on_write_are_on_by_default() {
        let config = SandboxConfig::default();
        assert!(config.pooling && config.copy_on_write);
        assert_eq!(config, SandboxConfig::with_slots(256));
    }

    #[test]
    fn each_knob_alone_still_makes_an_engine() {
        let base = SandboxConfig::with_slots(2);
        for config in [
            SandboxConfig {
                pooling: false,
                ..base.clone()
            },
            SandboxConfig {
                copy_on_write: false,
                ..base.clone()
            },
            SandboxConfig {
                keep_resident_bytes: 0,
                fast_compile: true,
                ..base.clone()
            },
        ] {
            wasmtime::Engine::new(&config.to_wasmtime()).expect("engine");
        }
    }
}
