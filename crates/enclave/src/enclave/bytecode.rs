//! A confidential JavaScript action's bytecode, compiled and kept inside
//! the enclave.
//!
//! Plain JavaScript actions run from bytecode their invoker keeps per
//! version (`clemmys_invoker`'s bytecode cache). A confidential action's
//! source is opened only in its enclave, and its bytecode tells as much as
//! the source (its strings, names and line numbers), so it is made and kept
//! here: the first run of a provisioned version compiles the opened source
//! (the engine's compile mode: nothing of the source runs) in the sandbox,
//! under that run's limits, and then runs the bytecode; later runs of the
//! version (invocations, session requests, chain steps) run the bytecode
//! and skip the engine's parser. Runs that start while it compiles run the
//! source.
//!
//! The bytecode lives in this enclave's memory only, in zeroizing bytes:
//! it is never sealed, stored, logged, or put in any answer or message to
//! the host. It is kept for one key, the code digest and the entry the
//! grant names, and belongs to the version's opened code, so it is dropped
//! with the grant when the action moves to a new version (or the grant is
//! renewed), and with the enclave. At most [`MAX_BYTECODE_BYTES`] of it.
//!
//! A source that does not compile (or whose compile fails, for instance on
//! its limits, or whose bytecode is larger than that) is remembered as
//! such and keeps running from source, which reports why, sealed to the
//! client, as before.

use std::sync::{Arc, Mutex};

use clemmys_proto::Digest;
use clemmys_sandbox::javascript::{bytecode_envelope, bytecode_of, compile_envelope, envelope};
use clemmys_sandbox::{PreparedModule, RunLimits, RunRequest, Sandbox};
use serde_json::Value;
use zeroize::Zeroizing;

use super::lock;

/// The most bytecode an enclave keeps (one version's): 16 MiB, against
/// about 52 KB for a 100 KB script. A larger one runs from source.
pub(super) const MAX_BYTECODE_BYTES: usize = 16 << 20;

/// What the bytecode was compiled from: the grant's code digest (which
/// commits to the source and the engine) and the function it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BytecodeKey {
    pub(super) code_digest: Digest,
    pub(super) entry: String,
}

/// Bytecode compiled from the opened source, in zeroizing bytes.
type Bytecode = Arc<Zeroizing<Vec<u8>>>;

/// The bytecode of one opened JavaScript source, once compiled.
pub(super) struct KeptBytecode {
    state: Mutex<State>,
}

enum State {
    /// Nothing compiled yet.
    Unknown,
    /// A run is compiling it.
    Compiling,
    /// Compiled for `key`.
    Kept {
        key: BytecodeKey,
        bytecode: Bytecode,
    },
    /// It did not compile, or not small enough: runs use the source.
    Source,
}

/// What a run does with the source.
enum Plan {
    Run(Bytecode),
    CompileFirst,
    RunSource,
}

/// One engine run, as [`KeptBytecode::input`] prepares it.
pub(super) struct JsRun<'a> {
    pub(super) sandbox: &'a Sandbox,
    pub(super) engine: &'a Arc<PreparedModule>,
    pub(super) key: BytecodeKey,
    pub(super) source: &'a str,
    pub(super) params: &'a Value,
    pub(super) env: &'a [(String, String)],
    pub(super) limits: RunLimits,
}

impl KeptBytecode {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State::Unknown),
        }
    }

    /// The engine's input for `run`: the bytecode's envelope if it is
    /// kept for `run.key`, or once this run compiled it (the first to ask,
    /// on the async runtime like [`Sandbox::run_async`]); else the source's
    /// envelope. Returns whether this run compiled.
    pub(super) async fn input(&self, run: &JsRun<'_>) -> (Vec<u8>, bool) {
        let main = Some(run.key.entry.as_str());
        match self.plan(&run.key) {
            Plan::Run(bytecode) => (
                bytecode_envelope(&bytecode, main, run.params, run.env),
                false,
            ),
            Plan::RunSource => (envelope(run.source, main, run.params, run.env), false),
            Plan::CompileFirst => {
                let outcome = run
                    .sandbox
                    .run_async(
                        run.engine,
                        RunRequest {
                            input: compile_envelope(run.source, main),
                            limits: run.limits,
                            entry: None,
                            env: Vec::new(),
                        },
                    )
                    .await;
                let input = match self.finish(run.key.clone(), bytecode_of(&outcome.response)) {
                    Some(bytecode) => bytecode_envelope(&bytecode, main, run.params, run.env),
                    None => envelope(run.source, main, run.params, run.env),
                };
                (input, true)
            }
        }
    }

    fn plan(&self, key: &BytecodeKey) -> Plan {
        let mut state = lock(&self.state);
        match &*state {
            State::Kept {
                key: kept,
                bytecode,
            } if kept == key => Plan::Run(bytecode.clone()),
            State::Compiling | State::Source => Plan::RunSource,
            // Nothing yet, or another key's: this run compiles (and
            // replaces what was kept).
            State::Unknown | State::Kept { .. } => {
                *state = State::Compiling;
                Plan::CompileFirst
            }
        }
    }

    /// Ends the compile [`plan`](Self::plan) asked for with what it gave.
    fn finish(&self, key: BytecodeKey, compiled: Option<Vec<u8>>) -> Option<Bytecode> {
        let compiled = compiled.map(Zeroizing::new);
        let mut state = lock(&self.state);
        match compiled {
            Some(bytecode) if bytecode.len() <= MAX_BYTECODE_BYTES => {
                let bytecode = Arc::new(bytecode);
                *state = State::Kept {
                    key,
                    bytecode: bytecode.clone(),
                };
                Some(bytecode)
            }
            _ => {
                *state = State::Source;
                None
            }
        }
    }

    /// Bytes of bytecode kept.
    #[cfg(test)]
    fn kept_bytes(&self) -> Option<usize> {
        match &*lock(&self.state) {
            State::Kept { bytecode, .. } => Some(bytecode.len()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(entry: &str) -> BytecodeKey {
        BytecodeKey {
            code_digest: Digest::of(b"source"),
            entry: entry.to_owned(),
        }
    }

    #[test]
    fn the_first_run_compiles_and_later_runs_use_the_bytecode() {
        let kept = KeptBytecode::new();
        assert!(matches!(kept.plan(&key("main")), Plan::CompileFirst));
        assert!(
            matches!(kept.plan(&key("main")), Plan::RunSource),
            "runs during the compile use the source"
        );
        assert!(kept.finish(key("main"), Some(vec![1, 2, 3])).is_some());
        assert!(matches!(kept.plan(&key("main")), Plan::Run(b) if **b == [1, 2, 3]));
        assert_eq!(kept.kept_bytes(), Some(3));
    }

    #[test]
    fn another_key_is_compiled_anew() {
        let kept = KeptBytecode::new();
        assert!(matches!(kept.plan(&key("main")), Plan::CompileFirst));
        kept.finish(key("main"), Some(vec![1]));
        assert!(matches!(kept.plan(&key("handler")), Plan::CompileFirst));
        kept.finish(key("handler"), Some(vec![2]));
        assert!(matches!(kept.plan(&key("handler")), Plan::Run(b) if **b == [2]));
        assert!(matches!(kept.plan(&key("main")), Plan::CompileFirst));
    }

    #[test]
    fn a_source_that_does_not_compile_or_is_too_large_runs_from_source() {
        let kept = KeptBytecode::new();
        assert!(matches!(kept.plan(&key("main")), Plan::CompileFirst));
        assert!(kept.finish(key("main"), None).is_none());
        assert!(matches!(kept.plan(&key("main")), Plan::RunSource));
        assert_eq!(kept.kept_bytes(), None);

        let kept = KeptBytecode::new();
        assert!(matches!(kept.plan(&key("main")), Plan::CompileFirst));
        let huge = vec![0; MAX_BYTECODE_BYTES + 1];
        assert!(kept.finish(key("main"), Some(huge)).is_none());
        assert!(matches!(kept.plan(&key("main")), Plan::RunSource));
        assert_eq!(kept.kept_bytes(), None);
    }
}
