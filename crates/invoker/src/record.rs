//! Activation records built from a run, with OpenWhisk's annotations.

use std::time::{Duration, Instant};

use clemmys_bus::ActivationMessage;
use clemmys_whisk::{Activation, ActivationResponse, KeyValues};
use serde_json::{Value, json};

/// What an invoker observed about one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// When the run started, epoch ms.
    pub start_ms: u64,
    /// How long it took, compile included.
    pub duration: Duration,
    /// Time before the function could start, when this run was a cold
    /// start: compiling; for a confidential action also starting an enclave
    /// and obtaining the action's key, or waiting for another run doing so.
    pub init_time: Option<Duration>,
    /// Whether the run hit its time limit.
    pub timed_out: bool,
    /// The outcome.
    pub response: ActivationResponse,
    /// Formatted log lines.
    pub logs: Vec<String>,
}

impl RunReport {
    /// A run that never started.
    pub(crate) fn failed(
        start_ms: u64,
        started: Instant,
        message: &str,
        error: &super::StartError,
    ) -> Self {
        Self {
            start_ms,
            duration: started.elapsed(),
            init_time: None,
            timed_out: false,
            response: ActivationResponse::error(error.status(), message),
            logs: Vec::new(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The activation record of `message` after `report`.
pub(crate) fn activation(message: &ActivationMessage, report: RunReport) -> Activation {
    let action = &message.action;
    let duration = millis(report.duration);
    let mut annotations = KeyValues::default();
    annotations.set("path", Value::String(action.path()));
    annotations.set(
        "waitTime",
        json!(report.start_ms.saturating_sub(message.accepted_at)),
    );
    annotations.set("kind", Value::String(action.exec.kind().to_owned()));
    annotations.set("timeout", Value::Bool(report.timed_out));
    annotations.set("limits", json!(action.limits));
    if message.cause.is_some() {
        // OpenWhisk marks a sequence's component activations so.
        annotations.set("causedBy", Value::String("sequence".into()));
    }
    if let Some(init) = report.init_time {
        annotations.set("initTime", json!(millis(init)));
    }
    message.record(
        report.start_ms,
        duration,
        report.response,
        report.logs,
        annotations,
    )
}
