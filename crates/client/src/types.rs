//! What the typed calls take and return, beyond the entity model of
//! `clemmys-whisk`: tolerant views of API answers (unknown fields are kept
//! in `extra`, so printing one shows everything the server sent), invoke
//! options and outcomes, and list filters.

use base64::Engine as _;
use clemmys_whisk::{ActionLimits, ActivationId, ActivationResponse, ActivationStatus, KeyValues};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ClientError;

/// An action as the API shows it: the answer of `GET`/`PUT
/// …/actions/{name}` or one entry of `GET …/actions` (which lacks
/// `parameters` and most of `exec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDoc {
    /// The namespace (`ns` or `ns/pkg`).
    pub namespace: String,
    /// The action's name.
    pub name: String,
    /// Semantic version.
    #[serde(default)]
    pub version: String,
    /// Whether it is shared.
    #[serde(default)]
    pub publish: bool,
    /// How it runs.
    #[serde(default)]
    pub exec: ExecDoc,
    /// Its limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ActionLimits>,
    /// Annotations.
    #[serde(default)]
    pub annotations: KeyValues,
    /// Bound parameters (absent from list entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<KeyValues>,
    /// Last update, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
    /// Any other field the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `exec` object of an [`ActionDoc`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecDoc {
    /// `wasm`, `sequence`, … (absent from list entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The code, base64 when `binary` (absent when fetched with `code=false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether `code` is base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<bool>,
    /// Entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
    /// Components of a sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Any other field the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ActionDoc {
    /// `/namespace/name`.
    pub fn qualified_name(&self) -> String {
        format!("/{}/{}", self.namespace, self.name)
    }

    /// The kind: `exec.kind`, or else the `exec` annotation (list entries).
    pub fn kind(&self) -> Option<&str> {
        self.exec
            .kind
            .as_deref()
            .or_else(|| self.annotations.get("exec").and_then(Value::as_str))
    }

    /// The code as bytes (base64-decoded when `binary`), or `None` when the
    /// answer carried no code.
    pub fn code_bytes(&self) -> Result<Option<Vec<u8>>, ClientError> {
        let Some(code) = &self.exec.code else {
            return Ok(None);
        };
        if self.exec.binary == Some(false) {
            return Ok(Some(code.clone().into_bytes()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(code.trim())
            .map(Some)
            .map_err(|e| ClientError::decode("action code", e))
    }
}

/// An activation as `GET …/activations` lists it: a summary, or the whole
/// record with `docs=true` (then `response` and `logs` are present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationSummary {
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
    /// Version of the action that ran.
    #[serde(default)]
    pub version: String,
    /// Who invoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its id.
    pub activation_id: ActivationId,
    /// Start, epoch milliseconds.
    #[serde(default)]
    pub start: u64,
    /// End, epoch milliseconds (0 while running).
    #[serde(default)]
    pub end: u64,
    /// Duration in milliseconds.
    #[serde(default)]
    pub duration: u64,
    /// OpenWhisk's numeric status (0 success, 1 application error, 2
    /// developer error, 3 internal error), in summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u8>,
    /// The enclosing sequence's activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ActivationId>,
    /// Outcome and result, in full records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ActivationResponse>,
    /// Log lines, in full records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<String>>,
    /// Annotations (`kind`, `initTime`, `path`, …).
    #[serde(default)]
    pub annotations: KeyValues,
    /// Whether the record is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    /// Any other field the server sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ActivationSummary {
    /// The status, from `response.status` or else `statusCode`.
    pub fn status(&self) -> Option<ActivationStatus> {
        if let Some(response) = &self.response {
            return Some(response.status);
        }
        match self.status_code? {
            0 => Some(ActivationStatus::Success),
            1 => Some(ActivationStatus::ApplicationError),
            2 => Some(ActivationStatus::DeveloperError),
            3 => Some(ActivationStatus::InternalError),
            _ => None,
        }
    }

    /// Whether the activation paid for a cold start (it has `initTime`).
    pub fn is_cold(&self) -> bool {
        self.annotations.get("initTime").is_some()
    }

    /// The `kind` annotation.
    pub fn kind(&self) -> Option<&str> {
        self.annotations.get("kind").and_then(Value::as_str)
    }
}

/// How to invoke: OpenWhisk's `blocking`, `result` and `timeout` query
/// parameters. The default is a non-blocking invoke.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvokeOptions {
    /// Wait for the activation to finish (up to the server's limit, 60 s).
    pub blocking: bool,
    /// With `blocking`, answer only `response.result` instead of the record.
    pub result: bool,
    /// With `blocking`, wait at most this long before answering 202.
    pub timeout_ms: Option<u64>,
}

impl InvokeOptions {
    /// A blocking invoke answering the whole activation.
    pub fn blocking() -> Self {
        Self {
            blocking: true,
            ..Self::default()
        }
    }

    /// A blocking invoke answering only the result.
    pub fn result() -> Self {
        Self {
            blocking: true,
            result: true,
            timeout_ms: None,
        }
    }
}

/// The outcome of an invoke that the server accepted, its body read as
/// `B` (by default the whole JSON; a caller that needs only part of the
/// record names a type that reads that part and skips the rest).
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked<B = Value> {
    /// The activation finished within the wait: 200 (success) or 502
    /// (application or developer error). `body` is the activation record,
    /// or only its result when [`InvokeOptions::result`] was set.
    Completed {
        /// 200 or 502.
        status: u16,
        /// The activation's id (from the `x-openwhisk-activation-id` header).
        activation_id: ActivationId,
        /// The activation record or its result.
        body: B,
    },
    /// 202: running in the background (a non-blocking invoke, or a
    /// blocking one that outlasted the wait). Poll the activation by id.
    Accepted {
        /// The activation's id.
        activation_id: ActivationId,
    },
}

impl<B> Invoked<B> {
    /// The activation's id.
    pub fn activation_id(&self) -> ActivationId {
        match self {
            Self::Completed { activation_id, .. } | Self::Accepted { activation_id } => {
                *activation_id
            }
        }
    }

    /// Whether the activation completed successfully (status 200).
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Completed { status: 200, .. })
    }
}

/// Which activations `list_activations` and `count_activations` return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationFilter {
    /// Only activations of this action (`name`, `pkg/name` or `/ns/name`).
    pub name: Option<String>,
    /// Skip this many of the newest.
    pub skip: u32,
    /// At most this many (server default 30, maximum 200).
    pub limit: Option<u32>,
    /// Only activations that started at or after this epoch millisecond.
    pub since: Option<u64>,
    /// Only activations that started at or before this epoch millisecond.
    pub upto: Option<u64>,
    /// Whole records (`docs=true`) instead of summaries.
    pub docs: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_docs_keep_unknown_fields_and_decode_code() {
        let doc: ActionDoc = serde_json::from_value(json!({
            "namespace": "guest", "name": "hello", "version": "0.0.1", "publish": false,
            "exec": {"kind": "wasm", "binary": true, "code": "AGFzbQ=="},
            "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
            "annotations": [{"key": "exec", "value": "wasm"}],
            "parameters": [], "updated": 5, "entityType": "action"
        }))
        .expect("parse");
        assert_eq!(doc.qualified_name(), "/guest/hello");
        assert_eq!(doc.kind(), Some("wasm"));
        assert_eq!(doc.code_bytes().expect("base64"), Some(b"\0asm".to_vec()));
        assert_eq!(doc.extra.get("entityType"), Some(&json!("action")));
        let back = serde_json::to_value(&doc).expect("serialise");
        assert_eq!(back["entityType"], "action");
        assert_eq!(back["exec"]["code"], "AGFzbQ==");
    }

    #[test]
    fn list_entries_parse_without_exec_kind() {
        let doc: ActionDoc = serde_json::from_value(json!({
            "namespace": "guest", "name": "seq", "version": "0.0.2", "publish": true,
            "exec": {"binary": false},
            "annotations": [{"key": "exec", "value": "sequence"}]
        }))
        .expect("parse");
        assert_eq!(doc.kind(), Some("sequence"));
        assert_eq!(doc.code_bytes().expect("none"), None);
    }

    #[test]
    fn activation_summaries_give_status_from_either_form() {
        let id = "ab".repeat(16);
        let summary: ActivationSummary = serde_json::from_value(json!({
            "namespace": "guest", "name": "hello", "version": "0.0.1",
            "activationId": id, "start": 1, "end": 3, "duration": 2, "statusCode": 1,
            "annotations": [{"key": "kind", "value": "wasm"}, {"key": "initTime", "value": 4}]
        }))
        .expect("parse");
        assert_eq!(summary.status(), Some(ActivationStatus::ApplicationError));
        assert!(summary.is_cold());
        assert_eq!(summary.kind(), Some("wasm"));
        let full: ActivationSummary = serde_json::from_value(json!({
            "namespace": "guest", "name": "hello", "activationId": id,
            "response": {"status": "success", "success": true, "result": {}},
            "logs": ["x"], "annotations": []
        }))
        .expect("parse");
        assert_eq!(full.status(), Some(ActivationStatus::Success));
        assert!(!full.is_cold());
    }
}
