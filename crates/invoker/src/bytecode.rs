//! The compiled bytecode of plain JavaScript actions, per action version.
//!
//! A JavaScript action's source is data for the node's one engine module,
//! which parses and compiles it in every activation unless it is handed
//! bytecode instead (`runtimes/js`, compile mode). This cache keeps, for
//! each source (by the SHA-256 the action record carries, so a new version
//! is a new key) and function name, what compiling it gave: its bytecode,
//! or that it does not compile (then every activation runs the source,
//! which reports why). Only plain actions come here: a confidential
//! action's source is opened inside its enclave, and nothing derived from
//! it reaches the invoker.
//!
//! A new or updated action is compiled ahead of its first activation (the
//! invoker's prewarm, [`Compile`]). An activation of a version that finds
//! nothing here (the prewarm was dropped, or the entry was) compiles it
//! ([`CompileFirst`]) in its own sandbox slot, before it runs, and then
//! runs the bytecode; activations that start while it compiles run the
//! source. A source that does not compile (or whose compile fails) is
//! remembered as such, and its activations run the source.
//!
//! The cache is bounded by bytes; when a new entry does not fit, older
//! ones are dropped, oldest first. Bytecode comes from this node's engine,
//! and the engine is fixed for the invoker's lifetime.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use clemmys_sandbox::{PreparedModule, RunLimits, RunRequest, Sandbox, javascript};
use serde_json::Value;

/// The bytes of compiled code an invoker keeps: 64 MiB (a 100 KB script
/// compiles to about 52 KB).
pub(crate) const CAPACITY_BYTES: usize = 64 << 20;

/// The key of an action's compiled code: its source's digest and its
/// function's name (`exec.main`; `None` for `main`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BytecodeKey {
    pub(crate) code_digest: String,
    pub(crate) main: Option<String>,
}

/// What compiling a source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Compiled {
    /// Its bytecode.
    Bytecode(Arc<[u8]>),
    /// It did not compile: activations run the source.
    Source,
}

impl Compiled {
    /// Bytes this entry counts for (a small floor for any entry).
    fn weight(&self) -> usize {
        const ENTRY_BYTES: usize = 256;
        match self {
            Self::Bytecode(bytes) => ENTRY_BYTES + bytes.len(),
            Self::Source => ENTRY_BYTES,
        }
    }
}

/// Compiled code per [`BytecodeKey`], at most `capacity_bytes` of it.
#[derive(Debug)]
pub(crate) struct BytecodeCache {
    capacity_bytes: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<BytecodeKey, Compiled>,
    /// Keys in the order they were inserted, for eviction.
    order: VecDeque<BytecodeKey>,
    bytes: usize,
    /// Keys being compiled now, so that one compile serves them.
    compiling: HashSet<BytecodeKey>,
}

impl BytecodeCache {
    /// An empty cache holding at most `capacity_bytes`.
    pub(crate) fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic while
        // holding the lock cannot leave it half-updated.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many sources are kept as bytecode.
    pub(crate) fn bytecode_count(&self) -> usize {
        self.state()
            .entries
            .values()
            .filter(|compiled| matches!(compiled, Compiled::Bytecode(_)))
            .count()
    }

    /// What is known about `key`'s code.
    pub(crate) fn get(&self, key: &BytecodeKey) -> Option<Compiled> {
        self.state().entries.get(key).cloned()
    }

    /// Whether the caller should compile `key` now: true unless it is
    /// known or being compiled. A true answer must be followed by
    /// [`finish`](Self::finish).
    pub(crate) fn start(&self, key: &BytecodeKey) -> bool {
        let mut state = self.state();
        !state.entries.contains_key(key) && state.compiling.insert(key.clone())
    }

    /// Ends a compile [`start`](Self::start) allowed without an answer:
    /// the next activation compiles it.
    pub(crate) fn abandon(&self, key: &BytecodeKey) {
        self.state().compiling.remove(key);
    }

    /// Ends a compile [`start`](Self::start) allowed, keeping what it gave.
    pub(crate) fn finish(&self, key: BytecodeKey, compiled: Compiled) {
        let mut state = self.state();
        state.compiling.remove(&key);
        let weight = compiled.weight();
        if weight > self.capacity_bytes || state.entries.contains_key(&key) {
            return;
        }
        while state.bytes + weight > self.capacity_bytes {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            if let Some(dropped) = state.entries.remove(&oldest) {
                state.bytes -= dropped.weight();
            }
        }
        state.bytes += weight;
        state.order.push_back(key.clone());
        state.entries.insert(key, compiled);
    }
}

/// A compile of one source whose key [`BytecodeCache::start`]ed.
pub(crate) struct Compile {
    pub(crate) cache: Arc<BytecodeCache>,
    pub(crate) key: BytecodeKey,
    pub(crate) source: String,
}

impl Compile {
    /// Compiles the source with the engine `module` under `limits` (the
    /// action's), keeps what it gave, and answers the bytecode if it
    /// compiled. On the async runtime, like [`Sandbox::run_async`].
    pub(crate) async fn run(
        self,
        sandbox: &Sandbox,
        module: &Arc<PreparedModule>,
        limits: RunLimits,
    ) -> Option<Arc<[u8]>> {
        let outcome = sandbox
            .run_async(
                module,
                RunRequest {
                    input: javascript::compile_envelope(&self.source, self.key.main.as_deref()),
                    limits,
                    entry: None,
                    env: Vec::new(),
                },
            )
            .await;
        match javascript::bytecode_of(&outcome.response) {
            Some(bytecode) => {
                let bytecode: Arc<[u8]> = bytecode.into();
                self.cache
                    .finish(self.key, Compiled::Bytecode(bytecode.clone()));
                Some(bytecode)
            }
            None => {
                self.cache.finish(self.key, Compiled::Source);
                None
            }
        }
    }
}

/// A compile the activation that [`BytecodeCache::start`]ed it runs before
/// its own run, in its own slot.
pub(crate) struct CompileFirst {
    pub(crate) compile: Compile,
    pub(crate) params: Value,
}

impl CompileFirst {
    /// Compiles under `request`'s limits and gives back the request to
    /// run: the bytecode's envelope if it compiled, else `request` (the
    /// source's). On the async runtime, like [`Sandbox::run_async`].
    pub(crate) async fn run(
        self,
        sandbox: &Sandbox,
        module: &Arc<PreparedModule>,
        request: RunRequest,
    ) -> RunRequest {
        let main = self.compile.key.main.clone();
        match self.compile.run(sandbox, module, request.limits).await {
            Some(bytecode) => RunRequest {
                input: javascript::bytecode_envelope(
                    &bytecode,
                    main.as_deref(),
                    &self.params,
                    &request.env,
                ),
                ..request
            },
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(digest: &str) -> BytecodeKey {
        BytecodeKey {
            code_digest: digest.to_owned(),
            main: None,
        }
    }

    fn bytecode(len: usize) -> Compiled {
        Compiled::Bytecode(vec![7; len].into())
    }

    #[test]
    fn one_compile_per_key_and_its_answer_is_kept() {
        let cache = BytecodeCache::new(1 << 20);
        assert!(cache.start(&key("a")));
        assert!(!cache.start(&key("a")), "already compiling");
        assert_eq!(cache.get(&key("a")), None);
        cache.finish(key("a"), bytecode(10));
        assert_eq!(cache.get(&key("a")), Some(bytecode(10)));
        assert!(!cache.start(&key("a")), "already known");
        let other_main = BytecodeKey {
            main: Some("handler".into()),
            ..key("a")
        };
        assert_eq!(cache.get(&other_main), None);
    }

    #[test]
    fn a_source_that_does_not_compile_is_remembered() {
        let cache = BytecodeCache::new(1 << 20);
        assert!(cache.start(&key("a")));
        cache.finish(key("a"), Compiled::Source);
        assert_eq!(cache.get(&key("a")), Some(Compiled::Source));
        assert!(!cache.start(&key("a")));
    }

    #[test]
    fn the_oldest_entries_make_room_and_oversized_ones_are_not_kept() {
        let cache = BytecodeCache::new(3 * (256 + 100));
        for name in ["a", "b", "c", "d"] {
            assert!(cache.start(&key(name)));
            cache.finish(key(name), bytecode(100));
        }
        assert_eq!(cache.get(&key("a")), None, "evicted");
        for name in ["b", "c", "d"] {
            assert!(cache.get(&key(name)).is_some(), "{name}");
        }
        assert!(cache.start(&key("huge")));
        cache.finish(key("huge"), bytecode(10_000));
        assert_eq!(cache.get(&key("huge")), None);
        assert!(cache.get(&key("d")).is_some(), "nothing evicted for it");
    }
}
