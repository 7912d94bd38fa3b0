//! [`SandboxConfig`], the [`Compiler`] choice, and the functions that turn
//! them into the wasmtime [`Config`]s of the sandbox's engines: the main
//! one (Cranelift) and, for a tiered or Winch sandbox, the baseline one.
//!
//! Every activation gets a slot of the pooling instance allocator (instance
//! metadata, one linear memory, one table): slots are reserved once at
//! start-up and recycled, and linear memories are mapped copy-on-write from
//! the module's initial image, so instantiating a cached module costs a few
//! microseconds. Guests are interrupted by epochs: a background thread bumps
//! the engines' epochs every [`SandboxConfig::epoch_tick`], and each store
//! traps once its deadline (the action's timeout, in ticks) has passed.
//!
//! [`SandboxConfig::pooling`] and [`SandboxConfig::copy_on_write`] turn the
//! pooling allocator and copy-on-write images off, one at a time, so that
//! `clemmys-bench` can show what each is worth.

use std::time::Duration;

use clemmys_whisk::limits::{MAX_MEMORY_MB, MB};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    RegallocAlgorithm, Strategy, WasmBacktraceDetails,
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
    /// How action code is compiled; see [`Compiler`]. Default
    /// [`Compiler::Tiered`] where Winch supports the host (x86-64), else
    /// [`Compiler::CraneliftFast`].
    pub compiler: Compiler,
    /// Bytes at the start of each pooled linear memory that are reset in
    /// place when an instance ends, instead of being returned to the kernel
    /// (`madvise`) and faulted in again by the next instance. Default
    /// 4 MiB. An action built with a 64 KiB stack (as the examples and the
    /// guest SDK's instructions do) has its stack top, static data and first
    /// heap pages in the first 256 KiB; measured, noop's run fell from 20 to
    /// 6 µs and hello's from 24 to 8 µs. The JavaScript engine (1 MiB stack,
    /// then a pre-initialized QuickJS heap of about 1 MiB) touches pages up
    /// to about 3 MiB: at 256 KiB each activation faulted them in again
    /// (copy-on-write from its image) and a warm JS hello took 0.67 ms, at
    /// 4 MiB 0.41 ms, with the wasm hello unchanged (0.23 ms). How those
    /// bytes are reset: see [`pagemap_scan`](Self::pagemap_scan).
    pub keep_resident_bytes: usize,
    /// Whether the pooling allocator asks Linux (6.7 and later,
    /// `PAGEMAP_SCAN`) which pages an instance dirtied, and resets only
    /// those of the kept-resident bytes (copying them back from the image);
    /// without it, or on an older kernel, every kept-resident byte is reset
    /// after every instance, dirtied or not. Default true (used where the
    /// kernel has it).
    pub pagemap_scan: bool,
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
            compiler: Compiler::default_for_host(),
            keep_resident_bytes: 4 * 1024 * 1024,
            pagemap_scan: true,
            pooling: true,
            copy_on_write: true,
        }
    }

    /// The wasmtime configuration of the main engine: the one whose code
    /// activations run (once it is ready, for a tiered sandbox), and that
    /// validates code at deploy time.
    pub(crate) fn main_engine(&self) -> Config {
        let mut config = self.engine_base(self.allocation_strategy());
        match self.compiler {
            Compiler::Tiered => {
                set_cranelift(&mut config, true);
                // Compiled in the background on one thread, leaving the
                // other cores to the activations.
                config.parallel_compilation(false);
            }
            Compiler::Winch => {
                // The few functions Winch leaves to Cranelift (trampolines
                // between host and guest) are compiled for start-up too.
                set_cranelift(&mut config, false);
                config.strategy(Strategy::Winch).parallel_compilation(true);
            }
            Compiler::CraneliftFast | Compiler::CraneliftOptimizing => {
                set_cranelift(&mut config, self.compiler == Compiler::CraneliftOptimizing);
                config.parallel_compilation(true);
            }
        }
        config
    }

    /// The configuration of a tiered sandbox's baseline engine: Winch,
    /// compiling on every core. Its instances are allocated on demand:
    /// they run only until the optimised code replaces them, and a second
    /// pool would reserve the address space of every slot twice.
    pub(crate) fn baseline_engine(&self) -> Option<Config> {
        if self.compiler != Compiler::Tiered {
            return None;
        }
        let mut config = self.engine_base(InstanceAllocationStrategy::OnDemand);
        set_cranelift(&mut config, false);
        config.strategy(Strategy::Winch).parallel_compilation(true);
        Some(config)
    }

    fn allocation_strategy(&self) -> InstanceAllocationStrategy {
        if !self.pooling {
            return InstanceAllocationStrategy::OnDemand;
        }
        let max_memory_size = usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(self.total_core_instances)
            .total_memories(self.total_memories)
            .total_tables(self.total_tables)
            .total_stacks(self.total_stacks)
            .max_memory_size(max_memory_size)
            .table_elements(MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(self.keep_resident_bytes)
            .table_keep_resident(self.keep_resident_bytes.min(64 * 1024))
            .pagemap_scan(if self.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        InstanceAllocationStrategy::Pooling(pool)
    }

    /// What every engine shares: allocation, images, interruption, traps.
    fn engine_base(&self, strategy: InstanceAllocationStrategy) -> Config {
        let mut config = Config::new();
        config
            .allocation_strategy(strategy)
            .memory_init_cow(self.copy_on_write)
            .epoch_interruption(true)
            // Traps are reported in one line; guest backtraces are neither
            // shown nor logged (they describe confidential code), so don't
            // pay for collecting them, and don't let the environment decide.
            .wasm_backtrace_max_frames(None)
            .wasm_backtrace_details(WasmBacktraceDetails::Disable);
        config
    }
}

/// Cranelift's settings: optimising, or for start-up (no optimisations,
/// single-pass register allocation).
fn set_cranelift(config: &mut Config, optimizing: bool) {
    if optimizing {
        config
            .cranelift_opt_level(OptLevel::Speed)
            .cranelift_regalloc_algorithm(RegallocAlgorithm::Backtracking);
    } else {
        config
            .cranelift_opt_level(OptLevel::None)
            .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass);
    }
}

/// Which of wasmtime's compilers turn action code into machine code, and
/// when. Measured on this project's 2-core x86-64 machine, compiling the
/// `noop` example on one core: Winch 8.9 ms, Cranelift for start-up
/// 28.6 ms, Cranelift optimising 58.5 ms (`cargo bench -p clemmys-sandbox`
/// prints the figures of the machine it runs on, with each compiler's run
/// times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiler {
    /// Winch, wasmtime's single-pass baseline compiler, on the critical
    /// path (an action is ready to run a few milliseconds after its code
    /// arrives); then Cranelift's optimising compiler on a background
    /// thread, whose code serves every activation that starts once it is
    /// ready. A module Winch cannot compile (one using tail calls, say) is
    /// compiled by Cranelift at once.
    Tiered,
    /// Winch only: the fastest compile, and the slowest code.
    Winch,
    /// Cranelift without optimisations and with its single-pass register
    /// allocator, on the critical path: half the compile time of the
    /// optimising compiler, code about 10 % slower on CPU-bound work (the
    /// guests are already optimised by their own compiler).
    CraneliftFast,
    /// Cranelift's optimising compiler, on the critical path.
    CraneliftOptimizing,
}

impl Compiler {
    /// [`Tiered`](Self::Tiered) where Winch supports the host (x86-64),
    /// else [`CraneliftFast`](Self::CraneliftFast).
    pub fn default_for_host() -> Self {
        if cfg!(target_arch = "x86_64") {
            Self::Tiered
        } else {
            Self::CraneliftFast
        }
    }

    /// Every compiler, in the order benchmarks show them.
    pub const ALL: [Self; 4] = [
        Self::Tiered,
        Self::Winch,
        Self::CraneliftFast,
        Self::CraneliftOptimizing,
    ];

    /// The name benchmarks and logs show.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiered => "tiered",
            Self::Winch => "winch",
            Self::CraneliftFast => "cranelift-fast",
            Self::CraneliftOptimizing => "cranelift-optimizing",
        }
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
                ..base.clone()
            },
            SandboxConfig {
                pagemap_scan: false,
                ..base.clone()
            },
        ]
        .into_iter()
        .chain(Compiler::ALL.map(|compiler| SandboxConfig {
            compiler,
            ..base.clone()
        })) {
            wasmtime::Engine::new(&config.main_engine()).expect("engine");
            if let Some(baseline) = config.baseline_engine() {
                wasmtime::Engine::new(&baseline).expect("baseline engine");
            }
        }
    }
}
