//! The invoker: consumes activation messages from the bus, runs each in a
//! fresh sandbox instance, stores the activation record and reports the
//! completion.
//!
//! The invoker is host code and untrusted. Plain actions run in the
//! [`Sandbox`] directly; confidential actions are handed, still sealed, to
//! the enclave runtime, and only sealed results come back.

mod confidential;
mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clemmys_bus::{ActivationMessage, Completion, CompletionSink, InvokerFeed, InvokerMessage};
use clemmys_enclave::EnclaveRuntime;
use clemmys_sandbox::{CodeDigest, Failure, PreparedModule, RunRequest, Sandbox};
use clemmys_store::EntityStore;
use clemmys_whisk::{Action, ActivationResponse, ActivationStatus, Exec};
use tokio::sync::Semaphore;

pub use confidential::{SEALED_FIELD, SEALED_LOGS_PREFIX};
pub use record::RunReport;

/// Tunables of an invoker.
#[derive(Debug, Clone)]
pub struct InvokerConfig {
    /// Activations that may run at once (at most the sandbox's slots).
    pub concurrency: usize,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self { concurrency: 64 }
    }
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
    slots: Arc<Semaphore>,
    enclave: Option<Arc<EnclaveRuntime>>,
}

impl Invoker {
    /// An invoker running actions in `sandbox`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        completions: Arc<dyn CompletionSink>,
        config: InvokerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            sandbox,
            store,
            completions,
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            enclave: None,
        })
    }

    /// An invoker that also runs confidential actions in `enclave`.
    pub fn with_enclave(
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        completions: Arc<dyn CompletionSink>,
        config: InvokerConfig,
        enclave: Arc<EnclaveRuntime>,
    ) -> Arc<Self> {
        Arc::new(Self {
            sandbox,
            store,
            completions,
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            enclave: Some(enclave),
        })
    }

    /// Consumes `feed` until the controller side closes it.
    pub async fn run(self: Arc<Self>, mut feed: InvokerFeed) {
        while let Some(message) = feed.recv().await {
            let invoker = self.clone();
            match message {
                InvokerMessage::Activate(message) => {
                    tokio::spawn(async move { invoker.activate(*message).await });
                }
                InvokerMessage::Prewarm(action) => {
                    tokio::spawn(async move { invoker.prewarm(&action).await });
                }
            }
        }
    }

    /// Runs one activation, stores its record and reports it.
    async fn activate(&self, message: ActivationMessage) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let report = self.execute(&message).await;
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
        let start_ms = record::now_ms();
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

    /// Compiles a new or updated action ahead of its first invoke.
    async fn prewarm(&self, action: &Action) {
        if action.is_confidential() {
            // Sealed code can only be opened by the enclave, on first use.
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
