//! Confidential activations: the invoker hands the sealed invocation to the
//! enclave pool (which fetches the sealed code from the store through
//! [`StoredCode`]), and stores what comes back, which is sealed to the
//! client. It never sees plaintext.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use clemmys_bus::ActivationMessage;
use clemmys_enclave::{EnclaveError, GENERIC_COMPILE_ERROR, SealedRun};

use crate::pool::CodeSource;
use clemmys_store::EntityStore;
use clemmys_whisk::{Action, ActivationResponse, ActivationStatus, EntityName, Exec};
use serde_json::{Value, json};
use tokio::runtime::{Handle, TryCurrentError};

use crate::{Invoker, RunReport};

/// The store as the enclave pool's source of sealed code.
pub struct StoredCode {
    store: Arc<dyn EntityStore>,
    runtime: Handle,
}

impl StoredCode {
    /// Reads from `store` on the Tokio runtime this is called on.
    pub fn new(store: Arc<dyn EntityStore>) -> Result<Self, TryCurrentError> {
        Ok(Self {
            store,
            runtime: Handle::try_current()?,
        })
    }
}

impl CodeSource for StoredCode {
    fn sealed_code(&self, namespace: &str, name: &str) -> Option<Vec<u8>> {
        let namespace = EntityName::new(namespace).ok()?;
        // `package/name` inside a package (`Action::sealed_name`).
        let (package, name) = match name.split_once('/') {
            Some((package, name)) => (Some(EntityName::new(package).ok()?), name),
            None => (None, name),
        };
        let name = EntityName::new(name).ok()?;
        // The pool calls this from a run polled on a runtime worker (see
        // `poll_blocking_future`) or on a blocking thread; `block_in_place`
        // lets this thread wait (it hands a worker's other tasks to another
        // thread first). The embedded store's read is ready at its first
        // poll.
        let read = async {
            match &package {
                Some(package) => {
                    self.store
                        .get_package_code(&namespace, package, &name)
                        .await
                }
                None => self.store.get_code(&namespace, &name).await,
            }
        };
        match tokio::task::block_in_place(|| self.runtime.block_on(read)) {
            Ok(code) => code,
            Err(error) => {
                tracing::warn!(%namespace, ?package, %name, %error, "reading sealed code failed");
                None
            }
        }
    }
}

/// The field of a confidential payload or result holding sealed bytes.
pub const SEALED_FIELD: &str = "sealed";
/// The field of a refused confidential result holding the broker's replay
/// floor (epoch ms) when the refusal was for a request stamped before it.
pub const NOT_BEFORE_FIELD: &str = "notBeforeMs";
/// The field of a refused confidential activation's result that holds the
/// refusal's code ([`clemmys_proto::refusal::Refusal`]).
pub const REFUSAL_FIELD: &str = "refusal";
/// The prefix of the one log line of a confidential activation, which
/// carries its sealed logs (none for a session request, whose logs are
/// sealed inside its result).
pub const SEALED_LOGS_PREFIX: &str = "sealed:";

impl Invoker {
    /// Runs a confidential action inside the enclave.
    pub(crate) async fn execute_confidential(&self, message: &ActivationMessage) -> RunReport {
        let started = Instant::now();
        let start_ms = clemmys_whisk::now_ms();
        let refuse = |status: ActivationStatus, text: String| RunReport {
            start_ms,
            duration: started.elapsed(),
            init_time: None,
            timed_out: false,
            response: ActivationResponse::error(status, text),
            logs: Vec::new(),
        };
        let Some(enclaves) = self.enclaves.clone() else {
            return refuse(
                ActivationStatus::InternalError,
                "this invoker has no enclave runtime".into(),
            );
        };
        let Some(invocation) = message.payload[SEALED_FIELD]
            .as_str()
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        else {
            return refuse(
                ActivationStatus::DeveloperError,
                "the sealed parameters are not valid base64".into(),
            );
        };
        // Only what the run needs goes into its future.
        let action = &message.action;
        let (namespace, name, limits) = (
            action.namespace.to_string(),
            action.sealed_name(),
            action.limits,
        );
        let entry = match &action.exec {
            Exec::Wasm { main, .. } => main.clone(),
            // The function the engine calls; the enclave runs it only if it
            // is the one in the owner's policy.
            Exec::JavaScript { main, .. } => Some(
                main.clone()
                    .unwrap_or_else(|| clemmys_whisk::action::DEFAULT_JAVASCRIPT_MAIN.to_owned()),
            ),
            Exec::Sequence { .. } => None,
        };
        let activation_id = message.activation_id.to_string();
        let outcome = crate::poll_blocking_future(async move {
            enclaves
                .run(SealedRun {
                    namespace: &namespace,
                    action: &name,
                    activation_id: &activation_id,
                    invocation: &invocation,
                    limits,
                    entry,
                })
                .await
        })
        .await;
        match outcome {
            Ok(Ok(sealed)) => {
                let mut result = json!({ SEALED_FIELD: base64::engine::general_purpose::STANDARD.encode(&sealed.result) });
                // The outer status is success whatever happened inside (it is
                // sealed), except for a chain step that must stop the chain,
                // and code that did not compile, which the enclave tells the
                // host in these words only (why is sealed for the client).
                if sealed.compile_failed {
                    tracing::info!(action = %message.action.path(), "{GENERIC_COMPILE_ERROR}");
                    result["error"] = json!(GENERIC_COMPILE_ERROR);
                }
                let status = if sealed.stop_chain {
                    ActivationStatus::ApplicationError
                } else if sealed.compile_failed {
                    ActivationStatus::DeveloperError
                } else {
                    ActivationStatus::Success
                };
                RunReport {
                    start_ms,
                    duration: started.elapsed(),
                    init_time: sealed.init_time,
                    timed_out: sealed.timed_out,
                    response: ActivationResponse::new(status, result),
                    // A session answer carries its logs inside the result.
                    logs: sealed
                        .logs
                        .iter()
                        .map(|logs| {
                            format!(
                                "{SEALED_LOGS_PREFIX}{}",
                                base64::engine::general_purpose::STANDARD.encode(logs)
                            )
                        })
                        .collect(),
                }
            }
            Ok(Err(refusal)) => {
                if matches!(refusal, EnclaveError::UnknownSession) {
                    // Routine after an enclave was evicted: the client
                    // opens a new session and retries.
                    tracing::info!(action = %message.action.path(), %refusal, "enclave refused an activation");
                } else {
                    tracing::warn!(action = %message.action.path(), %refusal, "enclave refused an activation");
                }
                let mut report = refuse(
                    ActivationStatus::DeveloperError,
                    format!("confidential execution refused: {refusal}"),
                );
                if let Some(Value::Object(result)) = report.response.result.as_mut() {
                    // The refusal's code, for the client to decide by.
                    result.insert(REFUSAL_FIELD.into(), refusal.refusal().code().into());
                    // A restarted broker's floor, for the client to re-stamp at.
                    if let EnclaveError::StampedBeforeFloor { floor_ms } = refusal {
                        result.insert(NOT_BEFORE_FIELD.into(), floor_ms.into());
                    }
                }
                report
            }
            // Not its text: a panic's message is the enclave's, not the
            // record's.
            Err(join_error) => refuse(
                ActivationStatus::InternalError,
                if join_error.is_panic() {
                    "the enclave thread panicked".to_owned()
                } else {
                    "the enclave thread was cancelled".to_owned()
                },
            ),
        }
    }

    /// Provisions an enclave with a new or updated confidential action's
    /// key and compiled code, ahead of its first invoke.
    pub(crate) async fn prewarm_confidential(&self, action: &Action) {
        let Some(enclaves) = self.enclaves.clone() else {
            return;
        };
        let path = action.path();
        let (namespace, name) = (action.namespace.to_string(), action.sealed_name());
        match tokio::task::spawn_blocking(move || enclaves.prewarm(&namespace, &name)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(action = %path, %error, "provisioning an enclave ahead of time failed")
            }
            Err(error) => tracing::warn!(action = %path, %error, "the provisioning thread failed"),
        }
    }
}
