//! The invoker: consumes activation messages from the bus, runs each in a
//! fresh sandbox instance, stores the activation record and reports the
//! completion.
//!
//! The invoker is host code and untrusted. Plain actions run in the
//! [`Sandbox`] directly; confidential actions are handed, still sealed, to
//! the [`EnclavePool`], and only sealed results come back. The pool and its
//! keep-alive policy ([`pool`], [`keepalive`]) live here, on the host side,
//! and not in the trusted `clemmys-enclave` crate.
//!
//! # Admission
//!
//! Before an activation runs it takes its action's memory limit
//! (`limits.memory`, MB) out of the invoker's memory budget
//! ([`InvokerConfig::memory_budget_mb`]) and one of its
//! [`concurrency`](InvokerConfig::concurrency) slots, and gives both back
//! when its run ends. So the limits of the activations running at
//! once never add up to more than the budget, and never more activations
//! run than the sandbox has instance slots. Admission happens in the order
//! messages leave the bus, one at a time: an activation that does not fit
//! waits, and every message behind it waits too (first in, first out, no
//! overtaking by smaller ones), so a saturated invoker stops draining the
//! bus, whose bounded queue then refuses new work with 503: back-pressure
//! reaches the client instead of piling up here.

mod confidential;
pub mod keepalive;
pub mod pool;
mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pool::EnclavePool;
use clemmys_bus::{ActivationMessage, Completion, CompletionSink, InvokerFeed, InvokerMessage};
use clemmys_sandbox::{CodeDigest, Failure, PreparedModule, RunRequest, Sandbox};
use clemmys_store::EntityStore;
use clemmys_whisk::limits::MAX_MEMORY_MB;
use clemmys_whisk::{Action, ActivationResponse, ActivationStatus, Exec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

pub use confidential::{SEALED_FIELD, SEALED_LOGS_PREFIX, StoredCode};
pub use record::RunReport;

/// The memory budget when the machine's memory cannot be read: 2 GiB,
/// OpenWhisk's default user memory per invoker.
pub const FALLBACK_MEMORY_BUDGET_MB: u32 = 2048;
/// The largest default memory budget: 64 GiB.
pub const MAX_DEFAULT_MEMORY_BUDGET_MB: u32 = 64 * 1024;

/// Tunables of an invoker. The enclaves of confidential actions are tuned
/// by their pool's `EnclavePoolConfig`.
#[derive(Debug, Clone)]
pub struct InvokerConfig {
    /// Activations that may run at once. The node clamps it to the
    /// sandbox's instance slots (`SandboxConfig::total_core_instances`):
    /// an activation past them could not be instantiated. Default 64.
    pub concurrency: usize,
    /// Memory, in MB, that the limits (`limits.memory`) of the activations
    /// running at once may add up to; activations past it wait their turn.
    /// An action whose limit exceeds the whole budget runs alone. Default:
    /// [`default_memory_budget_mb`].
    pub memory_budget_mb: u32,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            memory_budget_mb: default_memory_budget_mb(),
        }
    }
}

/// Half of this machine's memory (`MemTotal` in `/proc/meminfo`), between
/// the largest action memory limit (512 MB) and
/// [`MAX_DEFAULT_MEMORY_BUDGET_MB`]; [`FALLBACK_MEMORY_BUDGET_MB`] where
/// that cannot be read (not Linux, no `/proc`). The other half is left to
/// the node itself: compiled modules, enclaves, the store, the OS.
pub fn default_memory_budget_mb() -> u32 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| budget_from_meminfo(&meminfo))
        .unwrap_or(FALLBACK_MEMORY_BUDGET_MB)
}

fn budget_from_meminfo(meminfo: &str) -> Option<u32> {
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    let half_mb = total_kb / 1024 / 2;
    let budget = half_mb.clamp(
        u64::from(MAX_MEMORY_MB),
        u64::from(MAX_DEFAULT_MEMORY_BUDGET_MB),
    );
    u32::try_from(budget).ok()
}

/// Why an activation could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The action's code is gone (deleted while queued).
    #[error("the action's code is no longer stored")]
    CodeMissing,
    /// The code did not compile (the controller validated it, so this is rare).
    #[error("The action failed during initialization: {0}")]
    Compile(String),
    /// The platform failed.
    #[error("{0}")]
    Internal(String),
}

/// One invoker.
pub struct Invoker {
    sandbox: Arc<Sandbox>,
    store: Arc<dyn EntityStore>,
    completions: Arc<dyn CompletionSink>,
    /// One permit per activation that may run at once.
    slots: Arc<Semaphore>,
    /// One permit per MB of the memory budget.
    memory: Arc<Semaphore>,
    memory_budget_mb: u32,
    enclaves: Option<Arc<EnclavePool>>,
    /// The activations handed to this invoker and not finished yet.
    activations: TaskTracker,
}

/// What a running activation holds; dropping it admits the next.
struct Admitted {
    _memory: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl Invoker {
    /// An invoker running actions in `sandbox`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        completions: Arc<dyn CompletionSink>,
        config: InvokerConfig,
    ) -> Arc<Self> {
        Arc::new(Self::build(sandbox, store, completions, config, None))
    }

    /// An invoker that also runs confidential actions in the enclaves of
    /// `enclaves`.
    pub fn with_enclave(
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        completions: Arc<dyn CompletionSink>,
        config: InvokerConfig,
        enclaves: Arc<EnclavePool>,
    ) -> Arc<Self> {
        Arc::new(Self::build(
            sandbox,
            store,
            completions,
            config,
            Some(enclaves),
        ))
    }

    fn build(
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        completions: Arc<dyn CompletionSink>,
        config: InvokerConfig,
        enclaves: Option<Arc<EnclavePool>>,
    ) -> Self {
        let memory_budget_mb = config.memory_budget_mb.max(1);
        Self {
            sandbox,
            store,
            completions,
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            memory: Arc::new(Semaphore::new(memory_budget_mb as usize)),
            memory_budget_mb,
            enclaves,
            activations: TaskTracker::new(),
        }
    }

    /// The activations this invoker is running or waiting to run (admitted
    /// off the bus, not yet recorded): what a stopping node waits for.
    pub fn activations(&self) -> TaskTracker {
        self.activations.clone()
    }

    /// Consumes `feed` until the controller side closes it.
    pub async fn run(self: Arc<Self>, mut feed: InvokerFeed) {
        while let Some(message) = feed.recv().await {
            let invoker = self.clone();
            match message {
                InvokerMessage::Activate(message) => {
                    // Wait here, not in the task: see "Admission".
                    let Some(admitted) = self.admit(&message).await else {
                        return; // the semaphores are never closed
                    };
                    self.activations
                        .spawn(async move { invoker.activate(*message, admitted).await });
                }
                InvokerMessage::Prewarm(action) => {
                    tokio::spawn(async move { invoker.prewarm(&action).await });
                }
            }
        }
    }

    /// Waits until `message`'s activation fits in the memory budget and a
    /// slot is free, and takes both.
    async fn admit(&self, message: &ActivationMessage) -> Option<Admitted> {
        let memory_mb = message.action.limits.memory.clamp(1, self.memory_budget_mb);
        let memory = self
            .memory
            .clone()
            .acquire_many_owned(memory_mb)
            .await
            .ok()?;
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some(Admitted {
            _memory: memory,
            _slot: slot,
        })
    }

    /// Runs one activation, gives back what it was `admitted` with (its
    /// instance is gone), stores its record and reports it.
    async fn activate(&self, message: ActivationMessage, admitted: Admitted) {
        let report = self.execute(&message).await;
        drop(admitted);
        let mut activation = record::activation(&message, report);
        if let Err(error) = self.store.put_activation(activation.clone()).await {
            tracing::error!(%error, id = %activation.activation_id, "storing activation failed");
            activation.response = ActivationResponse::error(
                ActivationStatus::InternalError,
                "The activation record could not be stored.",
            );
        }
        self.completions.complete(Completion { activation });
    }

    /// Runs the action of `message` and reports what happened.
    async fn execute(&self, message: &ActivationMessage) -> RunReport {
        if message.action.is_confidential() {
            return self.execute_confidential(message).await;
        }
        let started = Instant::now();
        let start_ms = clemmys_whisk::now_ms();
        let (module, init_time) = match self.module_for(&message.action).await {
            Ok(found) => found,
            Err(error) => return RunReport::failed(start_ms, started, &error.to_string(), &error),
        };
        let request = RunRequest {
            input: serde_json::to_vec(&message.payload).unwrap_or_else(|_| b"{}".to_vec()),
            limits: (&message.action.limits).into(),
            entry: match &message.action.exec {
                Exec::Wasm { main, .. } => main.clone(),
                Exec::Sequence { .. } => None,
            },
        };
        let sandbox = self.sandbox.clone();
        let outcome = tokio::task::spawn_blocking(move || sandbox.run(&module, request)).await;
        match outcome {
            Ok(outcome) => RunReport {
                start_ms,
                duration: started.elapsed(),
                init_time,
                timed_out: matches!(outcome.failure, Some(Failure::Timeout { .. })),
                response: outcome.response,
                logs: outcome.logs,
            },
            Err(join_error) => {
                let error =
                    StartError::Internal(format!("the sandbox thread failed: {join_error}"));
                RunReport::failed(start_ms, started, &error.to_string(), &error)
            }
        }
    }

    /// The prepared module of `action`, compiling it on a miss. The second
    /// value is the compile time when this call compiled (a cold start).
    async fn module_for(
        &self,
        action: &Action,
    ) -> Result<(Arc<PreparedModule>, Option<Duration>), StartError> {
        let Exec::Wasm { code_digest, .. } = &action.exec else {
            return Err(StartError::Internal(
                "a sequence reached the invoker".into(),
            ));
        };
        if let Some(module) = code_digest
            .parse::<CodeDigest>()
            .ok()
            .and_then(|d| self.sandbox.cached(&d))
        {
            return Ok((module, None));
        }
        let code = self
            .store
            .get_code(&action.namespace, &action.name)
            .map_err(|error| StartError::Internal(error.to_string()))?
            .ok_or(StartError::CodeMissing)?;
        let sandbox = self.sandbox.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let digest = CodeDigest::of(&code);
            sandbox.prepare(digest, &code)
        })
        .await
        .map_err(|error| StartError::Internal(error.to_string()))?
        .map_err(|error| StartError::Compile(error.to_string()))?;
        Ok((prepared.module, prepared.compiled_in))
    }

    /// Compiles a new or updated action ahead of its first invoke; for a
    /// confidential action, provisions an enclave with its key and code.
    async fn prewarm(&self, action: &Action) {
        if action.is_confidential() {
            self.prewarm_confidential(action).await;
            return;
        }
        if let Err(error) = self.module_for(action).await {
            tracing::warn!(action = %action.path(), %error, "prewarming failed");
        }
    }
}

impl StartError {
    fn status(&self) -> ActivationStatus {
        match self {
            StartError::Compile(_) => ActivationStatus::DeveloperError,
            StartError::CodeMissing | StartError::Internal(_) => ActivationStatus::InternalError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_half_the_machines_memory_within_bounds() {
        let meminfo = "MemTotal:       24683656 kB\nMemFree:        19945164 kB\n";
        assert_eq!(budget_from_meminfo(meminfo), Some(24_683_656 / 1024 / 2));
        // A tiny machine still runs the largest action.
        assert_eq!(
            budget_from_meminfo("MemTotal: 524288 kB\n"),
            Some(MAX_MEMORY_MB)
        );
        // A huge one is capped.
        assert_eq!(
            budget_from_meminfo("MemTotal: 1073741824 kB\n"),
            Some(MAX_DEFAULT_MEMORY_BUDGET_MB)
        );
        assert_eq!(budget_from_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(budget_from_meminfo("MemTotal: lots\n"), None);
        assert!(default_memory_budget_mb() >= MAX_MEMORY_MB);
    }
}
