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
//! activations arrive, one at a time, whether they come off the bus or
//! through [`ActivationRunner::run`]: an activation that does not fit
//! waits, and every one behind it waits too (first in, first out, no
//! overtaking by smaller ones). A saturated invoker stops draining the
//! bus, whose bounded queue then refuses new work with 503; direct runs
//! wait in line, bounded by the namespaces' concurrency throttles.
//!
//! # Where the guest runs
//!
//! An activation runs on its own task ([`Sandbox::run_async`], inside the
//! enclave too for a confidential one): the guest runs inside the task's
//! poll and gives the worker back at every epoch tick and while it sleeps,
//! with no handoff to another thread and no `block_on` per WASI call; one
//! still computing after a whole tick finishes on a blocking thread.
//!
//! The compile of a plain JavaScript action's source to bytecode, which
//! its first activation (or its prewarm) does, is a guest run too.
//!
//! What stays synchronous runs on the thread that polls it: an enclave's
//! start, its broker round trips and its compile (none on a warm session
//! request) block that worker while they last, and reading sealed code
//! hands the worker's other tasks to another thread first
//! ([`tokio::task::block_in_place`]). On a current-thread runtime a
//! confidential activation is polled on a blocking thread instead.
//!
//! # A networked bus
//!
//! Off a networked bus ([`Invoker::consume_deliveries`]) an activation
//! is answered (its completion sent to the controller) as soon as it ran,
//! and its message is acknowledged only once its record is committed
//! ([`EntityStore::committed`]: under group durability, by the group
//! commit that is due anyway). The commit is off the answer's path; the
//! price is that an invoker that dies between the two leaves a record
//! that says it was lost ([`INVOKER_LOST`]) for an activation whose
//! caller already has its result. When storing it
//! fails (the store retried it and gave up), the message is handed back
//! to the bus unacknowledged: the function ran, and its result was
//! answered, but it is not run again. A message the bus delivers again,
//! because the invoker that took it died, lost the bus before
//! acknowledging it, or could not store its record, is never run again:
//! if its record is stored, that record is reported; if not, the
//! activation is recorded as failed with [`INVOKER_LOST`]. Activations
//! therefore run at most once, as in OpenWhisk, and each ends with one
//! record.
//!
//! # Records
//!
//! A record that cannot be stored after the function ran does not turn
//! the answer into an error inviting a retry: the result is returned
//! anyway, the failure is logged and counted
//! ([`InvokerStats::records_not_stored`]).

mod admission;
mod bytecode;
mod confidential;
pub mod keepalive;
pub mod pool;
mod record;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::admission::{Admission, Admitted};
use crate::bytecode::{BytecodeCache, BytecodeKey, Compile, CompileFirst, Compiled};
use crate::pool::EnclavePool;
use clemmys_bus::{
    ActivationMessage, ActivationRunner, BusError, Completion, CompletionSink, Delivery,
    DeliveryFeed, InvokerFeed, InvokerMessage, Receipt,
};
use clemmys_sandbox::{
    ActivationContext, CodeDigest, Failure, PreparedModule, RunRequest, Sandbox, javascript,
};
use clemmys_store::EntityStore;
use clemmys_whisk::limits::MAX_MEMORY_MB;
use clemmys_whisk::{Action, Activation, ActivationResponse, ActivationStatus, EntityName, Exec};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinError;
use tokio_util::task::TaskTracker;

pub use clemmys_sandbox::javascript::JsEngine;
pub use confidential::{SEALED_FIELD, SEALED_LOGS_PREFIX, StoredCode};
pub use record::RunReport;

/// The annotation that gives a plain action its invoker's API key as
/// `__OW_API_KEY`, as in OpenWhisk.
pub const PROVIDE_API_KEY_ANNOTATION: &str = "provide-api-key";

/// The error of an activation whose invoker was lost (killed, or cut
/// from the bus for too long) before it acknowledged the activation.
pub const INVOKER_LOST: &str = "The invoker running this activation was lost before it \
    finished; the activation may have run in part and was not run again.";

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
    /// The node's API URL, given to plain actions as `__OW_API_HOST`;
    /// `None` (the default) leaves the variable out.
    pub api_host: Option<String>,
    /// The engine that runs JavaScript actions; without one they fail with
    /// an internal error (the controller refuses to create them).
    pub javascript: Option<JsEngine>,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            memory_budget_mb: default_memory_budget_mb(),
            api_host: None,
            javascript: None,
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
    /// A JavaScript action reached an invoker without a JavaScript engine.
    #[error("this invoker has no JavaScript engine")]
    NoJavaScriptEngine,
    /// A JavaScript action's stored source is not UTF-8 text.
    #[error("the action's JavaScript source is not UTF-8 text")]
    SourceNotText,
    /// The platform failed.
    #[error("{0}")]
    Internal(String),
}

/// Counters of an invoker, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvokerStats {
    /// Activations whose record could not be stored after they ran (their
    /// result was answered anyway).
    pub records_not_stored: u64,
    /// Plain JavaScript sources (per version and function) kept compiled
    /// to bytecode.
    pub compiled_javascript: usize,
}

/// When an activation's caller hears of its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Once its record is stored (as the store's durability says): the
    /// in-process bus, where the caller then reads the record at once.
    AfterRecord,
    /// As soon as it ran, before its record is stored: a networked bus,
    /// whose message is acknowledged only once the record is durable (a
    /// lost invoker's message comes back, and the record says so). A
    /// record commit (an fsync on the database) is then off the answer's
    /// path; the controller shows the answered record to its readers
    /// until it is committed.
    BeforeRecord,
}

/// One invoker.
pub struct Invoker {
    sandbox: Arc<Sandbox>,
    store: Arc<dyn EntityStore>,
    completions: Arc<dyn CompletionSink>,
    admission: Admission,
    enclaves: Option<Arc<EnclavePool>>,
    /// The node's API URL, for `__OW_API_HOST`.
    api_host: Option<String>,
    javascript: Option<JsEngine>,
    /// Plain JavaScript actions' bytecode, per source and function.
    bytecode: Arc<BytecodeCache>,
    /// The activations handed to this invoker and not finished yet.
    activations: TaskTracker,
    records_not_stored: AtomicU64,
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
        Self {
            sandbox,
            store,
            completions,
            admission: Admission::new(config.concurrency, config.memory_budget_mb),
            enclaves,
            api_host: config.api_host,
            javascript: config.javascript,
            bytecode: Arc::new(BytecodeCache::new(bytecode::CAPACITY_BYTES)),
            activations: TaskTracker::new(),
            records_not_stored: AtomicU64::new(0),
        }
    }

    /// The activations this invoker is running or waiting to run (taken
    /// off the bus or handed over directly, not yet recorded): what a
    /// stopping node waits for.
    pub fn activations(&self) -> TaskTracker {
        self.activations.clone()
    }

    /// This invoker's counters.
    pub fn stats(&self) -> InvokerStats {
        InvokerStats {
            records_not_stored: self.records_not_stored.load(Ordering::Relaxed),
            compiled_javascript: self.bytecode.bytecode_count(),
        }
    }

    /// Consumes `feed` (the bus's activations) until the controller side
    /// closes it. Blocking invokes of this node come through
    /// [`ActivationRunner::run`] instead, on the request's own task.
    pub async fn consume(self: Arc<Self>, mut feed: InvokerFeed) {
        while let Some(message) = feed.recv().await {
            let invoker = self.clone();
            match message {
                InvokerMessage::Activate(message) => {
                    // Wait here, not in the task: see "Admission".
                    let Some(admitted) = self.admission.admit(message.action.limits.memory).await
                    else {
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

    /// Consumes a networked bus's `feed` until it ends (the node stops),
    /// acknowledging each message once handled (see "A networked bus").
    pub async fn consume_deliveries(self: Arc<Self>, mut feed: impl DeliveryFeed) {
        while let Some(Delivery {
            message,
            redelivered,
            receipt,
        }) = feed.next().await
        {
            let invoker = self.clone();
            match message {
                InvokerMessage::Activate(message) if redelivered => {
                    self.activations
                        .spawn(async move { invoker.settle_redelivered(*message, receipt).await });
                }
                InvokerMessage::Activate(message) => {
                    // Wait here, not in the task: see "Admission". The bus
                    // must not hand the message on meanwhile.
                    let admitting = self.admission.admit(message.action.limits.memory);
                    let Some(admitted) = while_held(receipt.as_ref(), admitting).await else {
                        return; // the semaphores are never closed
                    };
                    let receipt: Arc<dyn Receipt> = Arc::from(receipt);
                    self.activations.spawn(async move {
                        let ticking = tokio::spawn(keep_in_progress(receipt.clone()));
                        let (_, stored) = invoker
                            .run_and_record(*message, admitted, Answer::BeforeRecord)
                            .await;
                        // Acknowledged once durable: a message acknowledged
                        // before would be lost with this invoker.
                        let durable = stored && invoker.store.committed().await.is_ok();
                        ticking.abort();
                        if durable {
                            receipt.done().await;
                        } else {
                            // Back to the bus, which delivers it again as
                            // redelivered: recorded then, never run again.
                            receipt.retry_later().await;
                        }
                    });
                }
                InvokerMessage::Prewarm(action) => {
                    receipt.done().await;
                    tokio::spawn(async move { invoker.prewarm(&action).await });
                }
            }
        }
    }

    /// Handles an activation delivered again: reports its stored record,
    /// or records it as failed with [`INVOKER_LOST`]; never runs it.
    async fn settle_redelivered(&self, message: ActivationMessage, receipt: Box<dyn Receipt>) {
        let id = message.activation_id;
        let activation = match self.store.get_activation(&message.namespace, &id).await {
            Ok(Some(activation)) => Arc::new(activation),
            Ok(None) => {
                let report = RunReport {
                    start_ms: clemmys_whisk::now_ms(),
                    duration: Duration::ZERO,
                    init_time: None,
                    timed_out: false,
                    response: ActivationResponse::error(
                        ActivationStatus::InternalError,
                        INVOKER_LOST,
                    ),
                    logs: Vec::new(),
                };
                let activation = record::activation(&message, report);
                if let Err(error) = self.store.put_activation(activation.clone()).await {
                    tracing::warn!(%error, %id, "recording a lost activation failed; the bus will deliver it again");
                    receipt.retry_later().await;
                    return;
                }
                tracing::warn!(%id, "recorded an activation whose invoker was lost");
                Arc::new(activation)
            }
            Err(error) => {
                tracing::warn!(%error, %id, "looking up a redelivered activation failed; the bus will deliver it again");
                receipt.retry_later().await;
                return;
            }
        };
        self.completions.complete(Completion { activation });
        receipt.done().await;
    }

    /// Runs one activation, gives back what it was `admitted` with (its
    /// instance is gone), stores its record and reports it.
    async fn activate(&self, message: ActivationMessage, admitted: Admitted) -> Arc<Activation> {
        self.run_and_record(message, admitted, Answer::AfterRecord)
            .await
            .0
    }

    /// [`Invoker::activate`], also saying whether the record is stored,
    /// answering when `answer` says.
    async fn run_and_record(
        &self,
        message: ActivationMessage,
        admitted: Admitted,
        answer: Answer,
    ) -> (Arc<Activation>, bool) {
        let report = self.execute(&message).await;
        drop(admitted);
        let activation = Arc::new(record::activation(&message, report));
        let report_it = || {
            self.completions.complete(Completion {
                activation: activation.clone(),
            });
        };
        if answer == Answer::BeforeRecord {
            report_it();
        }
        // The store takes its own copy: its API takes the record by value.
        let stored = match self.store.put_activation((*activation).clone()).await {
            Ok(()) => true,
            Err(error) => {
                // The function ran: answering an error would invite a retry
                // that runs it again. Answer its result; the record is what
                // is lost.
                self.records_not_stored.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, id = %activation.activation_id, "storing an activation record failed; answering its result anyway");
                false
            }
        };
        if answer == Answer::AfterRecord {
            report_it();
        }
        (activation, stored)
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
        let limits = (&message.action.limits).into();
        let env = self.context_of(message, start_ms).await.env();
        let mut compile_first = None;
        let request = match &message.action.exec {
            Exec::JavaScript {
                code_digest, main, ..
            } => {
                let key = BytecodeKey {
                    code_digest: code_digest.clone(),
                    main: main.clone(),
                };
                let known = self.bytecode.get(&key);
                let input = if let Some(Compiled::Bytecode(bytecode)) = &known {
                    javascript::bytecode_envelope(bytecode, main.as_deref(), &message.payload, &env)
                } else {
                    let source = match self.javascript_source(&message.action).await {
                        Ok(source) => source,
                        Err(error) => {
                            return RunReport::failed(
                                start_ms,
                                started,
                                &error.to_string(),
                                &error,
                            );
                        }
                    };
                    let input =
                        javascript::envelope(&source, main.as_deref(), &message.payload, &env);
                    if known.is_none() && self.bytecode.start(&key) {
                        compile_first = Some(CompileFirst {
                            compile: Compile {
                                cache: self.bytecode.clone(),
                                key,
                                source,
                            },
                            params: message.payload.clone(),
                        });
                    }
                    input
                };
                RunRequest {
                    input,
                    limits,
                    entry: None,
                    // The engine gives the function `process.env` from the
                    // envelope; WASI's environment is the same.
                    env,
                }
            }
            exec => RunRequest {
                input: serde_json::to_vec(&message.payload).unwrap_or_else(|_| b"{}".to_vec()),
                limits,
                entry: match exec {
                    Exec::Wasm { main, .. } => main.clone(),
                    Exec::JavaScript { .. } | Exec::Sequence { .. } => None,
                },
                env,
            },
        };
        let is_javascript = matches!(message.action.exec, Exec::JavaScript { .. });
        // The first activation of a JavaScript action compiles its source
        // to bytecode before it runs.
        let request = match compile_first {
            Some(compile) => compile.run(&self.sandbox, &module, request).await,
            None => request,
        };
        let outcome = self.sandbox.run_async(&module, request).await;
        RunReport {
            start_ms,
            duration: started.elapsed(),
            init_time,
            timed_out: matches!(outcome.failure, Some(Failure::Timeout { .. })),
            response: if is_javascript {
                javascript::engine_response(outcome.response)
            } else {
                outcome.response
            },
            logs: outcome.logs,
        }
    }

    /// The `__OW_*` context of a plain activation that starts at `start_ms`.
    /// The invoking subject's API key only with the `provide-api-key`
    /// annotation (confidential actions never come here).
    async fn context_of(&self, message: &ActivationMessage, start_ms: u64) -> ActivationContext {
        let action = &message.action;
        let api_key = if action.annotations.is_true(PROVIDE_API_KEY_ANNOTATION) {
            self.api_key_of(&message.subject).await
        } else {
            None
        };
        ActivationContext {
            action_name: format!("/{}", action.path()),
            action_version: action.version.to_string(),
            activation_id: message.activation_id.to_string(),
            namespace: message.namespace.clone(),
            deadline_ms: start_ms.saturating_add(action.limits.timeout),
            api_host: self.api_host.clone(),
            api_key,
        }
    }

    /// The API key of namespace `subject`, if it can be read.
    async fn api_key_of(&self, subject: &str) -> Option<String> {
        let name = EntityName::new(subject).ok()?;
        match self.store.get_namespace(&name).await {
            Ok(record) => record.map(|record| record.auth.to_string()),
            Err(error) => {
                tracing::warn!(%error, "reading the invoker's API key failed; running without it");
                None
            }
        }
    }

    /// The stored source of JavaScript `action`.
    async fn javascript_source(&self, action: &Action) -> Result<String, StartError> {
        String::from_utf8(self.stored_code(action).await?).map_err(|_| StartError::SourceNotText)
    }

    /// The stored code of `action`, in its package if it has one.
    async fn stored_code(&self, action: &Action) -> Result<Vec<u8>, StartError> {
        match &action.package {
            Some(package) => {
                self.store
                    .get_package_code(&action.namespace, package, &action.name)
                    .await
            }
            None => self.store.get_code(&action.namespace, &action.name).await,
        }
        .map_err(|error| StartError::Internal(error.to_string()))?
        .ok_or(StartError::CodeMissing)
    }

    /// The node's JavaScript engine module, compiling it on its first use.
    async fn javascript_engine(
        &self,
    ) -> Result<(Arc<PreparedModule>, Option<Duration>), StartError> {
        let engine = self
            .javascript
            .clone()
            .ok_or(StartError::NoJavaScriptEngine)?;
        if let Some(module) = self.sandbox.cached(&engine.digest()) {
            return Ok((module, None));
        }
        let sandbox = self.sandbox.clone();
        let prepared =
            tokio::task::spawn_blocking(move || sandbox.prepare(engine.digest(), engine.code()))
                .await
                .map_err(|error| StartError::Internal(error.to_string()))?
                .map_err(|error| StartError::Compile(error.to_string()))?;
        Ok((prepared.module, prepared.compiled_in))
    }

    /// The prepared module of `action`, compiling it on a miss. The second
    /// value is the compile time when this call compiled (a cold start).
    async fn module_for(
        &self,
        action: &Action,
    ) -> Result<(Arc<PreparedModule>, Option<Duration>), StartError> {
        let code_digest = match &action.exec {
            Exec::Wasm { code_digest, .. } => code_digest,
            Exec::JavaScript { .. } => return self.javascript_engine().await,
            Exec::Sequence { .. } => {
                return Err(StartError::Internal(
                    "a sequence reached the invoker".into(),
                ));
            }
        };
        if let Some(module) = code_digest
            .parse::<CodeDigest>()
            .ok()
            .and_then(|d| self.sandbox.cached(&d))
        {
            return Ok((module, None));
        }
        let code = self.stored_code(action).await?;
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
        let module = match self.module_for(action).await {
            Ok((module, _)) => module,
            Err(error) => {
                tracing::warn!(action = %action.path(), %error, "prewarming failed");
                return;
            }
        };
        if let Exec::JavaScript {
            code_digest, main, ..
        } = &action.exec
        {
            self.precompile_javascript(action, module, code_digest, main)
                .await;
        }
    }

    /// Compiles a new or updated plain JavaScript action's source to
    /// bytecode ahead of its first activation, unless that is known or
    /// under way: the first invoke then runs bytecode too. In a sandbox
    /// slot under the action's own limits, like an activation's compile.
    async fn precompile_javascript(
        &self,
        action: &Action,
        module: Arc<PreparedModule>,
        code_digest: &str,
        main: &Option<String>,
    ) {
        let key = BytecodeKey {
            code_digest: code_digest.to_owned(),
            main: main.clone(),
        };
        // False when it is known or being compiled.
        if !self.bytecode.start(&key) {
            return;
        }
        let source = match self.javascript_source(action).await {
            Ok(source) => source,
            Err(error) => {
                // Activations compile it, or report why they cannot.
                self.bytecode.abandon(&key);
                tracing::warn!(action = %action.path(), %error, "precompiling failed");
                return;
            }
        };
        let compile = Compile {
            cache: self.bytecode.clone(),
            key: key.clone(),
            source,
        };
        let (sandbox, limits) = (self.sandbox.clone(), (&action.limits).into());
        // A task of its own, so that a panic in it still abandons the key.
        let compiling = tokio::spawn(async move { compile.run(&sandbox, &module, limits).await });
        if let Err(error) = compiling.await {
            self.bytecode.abandon(&key);
            tracing::warn!(action = %action.path(), %error, "the precompiling task failed");
        }
    }
}

#[async_trait::async_trait]
impl ActivationRunner for Invoker {
    async fn run(self: Arc<Self>, message: ActivationMessage) -> Result<Arc<Activation>, BusError> {
        let tracker = self.activations.clone();
        let run = tracker.track_future(async move {
            let admitted = self
                .admission
                .admit(message.action.limits.memory)
                .await
                .ok_or(BusError::Closed)?;
            Ok(self.activate(message, admitted).await)
        });
        RunToEnd::new(run).await
    }
}

/// Awaits `work`, telling the bus every so often that the message behind
/// it is still held.
async fn while_held<T>(receipt: &dyn Receipt, work: impl Future<Output = T>) -> T {
    let Some(interval) = receipt.progress_interval() else {
        return work.await;
    };
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tokio::time::sleep(interval) => receipt.in_progress().await,
        }
    }
}

/// Tells the bus every so often that `receipt`'s message is still held,
/// until aborted; a task of its own because what is synchronous in an
/// activation (an enclave's start, a compile) may hold its task for a
/// while.
async fn keep_in_progress(receipt: Arc<dyn Receipt>) {
    while_held(receipt.as_ref(), std::future::pending::<()>()).await;
}

/// Polls `work`, a future that may block its thread for a while (an
/// enclave starting, a broker round trip, a compile), on this task when the
/// runtime is multi-threaded, else on a blocking thread: a current-thread
/// runtime's only thread must not wait for what may need it, and it cannot
/// use `block_in_place`.
pub(crate) async fn poll_blocking_future<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, JoinError> {
    let runtime = Handle::current();
    if runtime.runtime_flavor() == RuntimeFlavor::MultiThread {
        return Ok(work.await);
    }
    tokio::task::spawn_blocking(move || runtime.block_on(work)).await
}

/// A future that, if dropped before it finishes, goes on as a task of its
/// own: an activation runs to its end and is recorded whoever stops
/// waiting for it.
struct RunToEnd<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> RunToEnd<F>
where
    F::Output: Send + 'static,
{
    fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future + Send + 'static> Future for RunToEnd<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending; // polled again after it finished
        };
        let output = std::task::ready!(future.as_mut().poll(context));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for RunToEnd<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            match Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(future)),
                Err(_) => {
                    tracing::error!("an activation was abandoned: no runtime to finish it on")
                }
            }
        }
    }
}

impl StartError {
    fn status(&self) -> ActivationStatus {
        match self {
            StartError::Compile(_) => ActivationStatus::DeveloperError,
            StartError::CodeMissing
            | StartError::Internal(_)
            | StartError::NoJavaScriptEngine
            | StartError::SourceNotText => ActivationStatus::InternalError,
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
