//! Compiled modules: [`PreparedModule`] (a module compiled and linked
//! against WASI, ready to instantiate) and the bounded cache that keeps them
//! by [`CodeDigest`].
//!
//! Compiling takes tens of milliseconds; instantiating a prepared module
//! takes microseconds, so each distinct code is compiled once per process
//! while it stays among the most recently used. Concurrent prepares of the
//! same digest wait for one compilation instead of repeating it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use wasmtime::InstancePre;

use crate::CodeDigest;
use crate::run::Host;

/// A module compiled for this sandbox and linked against WASI preview 1.
///
/// In a tiered sandbox its first code is Winch's, replaced by Cranelift's
/// once the background compile finishes; a run keeps the code it started
/// with, so a replacement never disturbs one.
pub struct PreparedModule {
    digest: CodeDigest,
    compile_time: Duration,
    code: RwLock<Arc<Code>>,
}

/// One compiler's code for a module, linked twice against WASI preview 1.
pub(crate) struct Code {
    /// For blocking runs ([`Sandbox::run`](crate::Sandbox::run)).
    pub(crate) pre: InstancePre<Host>,
    /// For runs on the async runtime
    /// ([`Sandbox::run_async`](crate::Sandbox::run_async)): WASI's async
    /// functions, which a synchronous call cannot use.
    pub(crate) pre_async: InstancePre<Host>,
    pub(crate) tier: Tier,
}

/// A compiled module linked for both kinds of run (see [`Code`]).
pub(crate) struct Linked {
    pub(crate) pre: InstancePre<Host>,
    pub(crate) pre_async: InstancePre<Host>,
}

/// Whether a module's code is the one it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Winch's code, which the optimising compile running in the background
    /// will replace ([`Compiler::Tiered`](crate::Compiler::Tiered)).
    Baseline,
    /// The code the module keeps.
    Final,
}

impl PreparedModule {
    pub(crate) fn new(
        digest: CodeDigest,
        compile_time: Duration,
        Linked { pre, pre_async }: Linked,
        tier: Tier,
    ) -> Self {
        Self {
            digest,
            compile_time,
            code: RwLock::new(Arc::new(Code {
                pre,
                pre_async,
                tier,
            })),
        }
    }

    /// The digest of the code it was compiled from.
    pub fn digest(&self) -> CodeDigest {
        self.digest
    }

    /// How long compiling and linking took, until the module could first
    /// run (for a tiered sandbox, Winch's compile).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Whether the module runs its final code yet.
    pub fn tier(&self) -> Tier {
        self.code().tier
    }

    /// The code a run starting now uses.
    pub(crate) fn code(&self) -> Arc<Code> {
        // Nothing panics while holding the lock: a poisoned one is intact.
        Arc::clone(&self.code.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the baseline code with the final one.
    pub(crate) fn finish(&self, Linked { pre, pre_async }: Linked) {
        let code = Arc::new(Code {
            pre,
            pre_async,
            tier: Tier::Final,
        });
        *self.code.write().unwrap_or_else(PoisonError::into_inner) = code;
    }
}

impl fmt::Debug for PreparedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedModule")
            .field("digest", &self.digest)
            .field("compile_time", &self.compile_time)
            .field("tier", &self.tier())
            .finish_non_exhaustive()
    }
}

/// What [`Sandbox::prepare`](crate::Sandbox::prepare) returns.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The module, shared with the cache.
    pub module: Arc<PreparedModule>,
    /// How long this call spent compiling (`None` when the module came from
    /// the cache): an activation's `initTime`.
    pub compiled_in: Option<Duration>,
}

/// Prepared modules by digest, least recently used dropped first.
pub(crate) struct ModuleCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Bumped on every use; an entry's stamp says how recently it was used.
    clock: u64,
    entries: HashMap<CodeDigest, Entry>,
    /// Locks held while a digest is being compiled.
    compiling: HashMap<CodeDigest, Arc<Mutex<()>>>,
}

struct Entry {
    module: Arc<PreparedModule>,
    used: u64,
}

impl ModuleCache {
    /// A cache of at most `capacity` modules (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Nothing panics while holding the lock: a poisoned map is intact.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached module for `digest`, marking it used.
    pub(crate) fn get(&self, digest: &CodeDigest) -> Option<Arc<PreparedModule>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let entry = state.entries.get_mut(digest)?;
        entry.used = now;
        Some(Arc::clone(&entry.module))
    }

    /// The module for `digest` from the cache, or from `compile` run once
    /// even when several threads ask at the same time.
    pub(crate) fn get_or_compile<E>(
        &self,
        digest: CodeDigest,
        compile: impl FnOnce() -> Result<Arc<PreparedModule>, E>,
    ) -> Result<Prepared, E> {
        if let Some(module) = self.get(&digest) {
            return Ok(Prepared {
                module,
                compiled_in: None,
            });
        }
        let gate = Arc::clone(self.lock().compiling.entry(digest).or_default());
        let _compiling = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Whoever held the gate before us may have compiled it.
        if let Some(module) = self.get(&digest) {
            return Ok(Prepared {
                module,
                compiled_in: None,
            });
        }
        let compiled = compile();
        let mut state = self.lock();
        if state
            .compiling
            .get(&digest)
            .is_some_and(|held| Arc::ptr_eq(held, &gate))
        {
            state.compiling.remove(&digest);
        }
        let module = compiled?;
        state.clock += 1;
        let used = state.clock;
        state.entries.insert(
            digest,
            Entry {
                module: Arc::clone(&module),
                used,
            },
        );
        while state.entries.len() > self.capacity {
            let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(d, _)| *d)
            else {
                break;
            };
            state.entries.remove(&oldest);
        }
        let compiled_in = Some(module.compile_time());
        Ok(Prepared {
            module,
            compiled_in,
        })
    }

    /// Drops `digest`'s module (runs holding it finish normally).
    pub(crate) fn remove(&self, digest: &CodeDigest) -> bool {
        self.lock().entries.remove(digest).is_some()
    }

    /// Modules cached.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}
