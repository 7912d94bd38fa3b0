//! Confidential activations: the invoker hands the sealed invocation and a
//! way to fetch the sealed code to the enclave runtime, and stores what
//! comes back, which is sealed to the client. It never sees plaintext.

use std::time::Instant;

use base64::Engine;
use clemmys_bus::ActivationMessage;
use clemmys_enclave::SealedRun;
use clemmys_whisk::{ActivationResponse, ActivationStatus, Exec};
use serde_json::json;

use crate::{Invoker, RunReport, record};

/// The field of a confidential payload or result holding sealed bytes.
pub const SEALED_FIELD: &str = "sealed";
/// The prefix of the one log line of a confidential activation, which
/// carries its sealed logs.
pub const SEALED_LOGS_PREFIX: &str = "sealed:";

impl Invoker {
    /// Runs a confidential action inside the enclave.
    pub(crate) async fn execute_confidential(&self, message: &ActivationMessage) -> RunReport {
        let started = Instant::now();
        let start_ms = record::now_ms();
        let refuse = |status: ActivationStatus, text: String| RunReport {
            start_ms,
            duration: started.elapsed(),
            init_time: None,
            timed_out: false,
            response: ActivationResponse::error(status, text),
            logs: Vec::new(),
        };
        let Some(enclave) = self.enclave.clone() else {
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
        let action = message.action.clone();
        let activation_id = message.activation_id.to_string();
        let store = self.store.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let entry = match &action.exec {
                Exec::Wasm { main, .. } => main.clone(),
                Exec::Sequence { .. } => None,
            };
            let run = SealedRun {
                namespace: action.namespace.as_str(),
                action: action.name.as_str(),
                activation_id: &activation_id,
                invocation: &invocation,
                limits: action.limits,
                entry,
            };
            enclave.run(run, || {
                store
                    .get_code(&action.namespace, &action.name)
                    .ok()
                    .flatten()
            })
        })
        .await;
        match outcome {
            Ok(Ok(sealed)) => {
                let result = json!({ SEALED_FIELD: base64::engine::general_purpose::STANDARD.encode(&sealed.result) });
                // The outer status is success whatever happened inside (it is
                // sealed), except for a chain step that must stop the chain.
                let status = if sealed.stop_chain {
                    ActivationStatus::ApplicationError
                } else {
                    ActivationStatus::Success
                };
                RunReport {
                    start_ms,
                    duration: started.elapsed(),
                    init_time: sealed.init_time,
                    timed_out: sealed.timed_out,
                    response: ActivationResponse::new(status, result),
                    logs: vec![format!(
                        "{SEALED_LOGS_PREFIX}{}",
                        base64::engine::general_purpose::STANDARD.encode(&sealed.logs)
                    )],
                }
            }
            Ok(Err(refusal)) => {
                tracing::warn!(action = %message.action.path(), %refusal, "enclave refused an activation");
                refuse(
                    ActivationStatus::DeveloperError,
                    format!("confidential execution refused: {refusal}"),
                )
            }
            Err(join_error) => refuse(
                ActivationStatus::InternalError,
                format!("the enclave thread failed: {join_error}"),
            ),
        }
    }
}
