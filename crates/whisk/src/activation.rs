//! Activation records with OpenWhisk's JSON, status strings and codes.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::KeyValues;

/// A 32-character lowercase hex activation id, as OpenWhisk prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ActivationId([u8; 16]);

impl Serialize for ActivationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex(&mut [0; 32]))
    }
}

/// Text that is not a 32-character hex activation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The activation id is not valid.")]
pub struct InvalidActivationId;

impl ActivationId {
    /// An id from 16 random bytes supplied by the caller.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::str::FromStr for ActivationId {
    type Err = InvalidActivationId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 32 {
            return Err(InvalidActivationId);
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = text.get(2 * i..2 * i + 2).ok_or(InvalidActivationId)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| InvalidActivationId)?;
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for ActivationId {
    type Error = InvalidActivationId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ActivationId> for String {
    fn from(value: ActivationId) -> Self {
        value.to_string()
    }
}

impl ActivationId {
    /// The 32 hex digits, written into `buf` (no allocation: ids are
    /// printed into every record, header and log line).
    fn hex<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
        // The buffer is twice the id's 16 bytes, and hex digits are ASCII.
        hex::encode_to_slice(self.0, buf).expect("32 bytes hold 16 in hex");
        std::str::from_utf8(buf).expect("hex digits are ASCII")
    }
}

impl fmt::Display for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex(&mut [0; 32]))
    }
}

/// The outcome of an activation: OpenWhisk's four statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActivationStatus {
    /// The action ran and returned a result.
    #[serde(rename = "success")]
    Success,
    /// The action ran and returned `{error: …}`.
    #[serde(rename = "application error")]
    ApplicationError,
    /// The action failed: trap, exit, bad output, timeout, memory.
    #[serde(rename = "action developer error")]
    DeveloperError,
    /// The platform failed.
    #[serde(rename = "whisk internal error")]
    InternalError,
}

impl ActivationStatus {
    /// OpenWhisk's numeric status code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::ApplicationError => 1,
            Self::DeveloperError => 2,
            Self::InternalError => 3,
        }
    }

    /// The status with OpenWhisk's numeric `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Success),
            1 => Some(Self::ApplicationError),
            2 => Some(Self::DeveloperError),
            3 => Some(Self::InternalError),
            _ => None,
        }
    }

    /// OpenWhisk's status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ApplicationError => "application error",
            Self::DeveloperError => "action developer error",
            Self::InternalError => "whisk internal error",
        }
    }
}

/// `response` of an activation, as the API shows it: `{status, success,
/// result}` (OpenWhisk keeps the numeric code internal and shows it only as
/// `statusCode` in list summaries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationResponse {
    /// One of the four status strings.
    pub status: ActivationStatus,
    /// `status == success`.
    pub success: bool,
    /// The result object (or `{error: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl ActivationResponse {
    /// A response with a consistent code and success flag.
    pub fn new(status: ActivationStatus, result: Value) -> Self {
        Self {
            status,
            success: status == ActivationStatus::Success,
            result: Some(result),
        }
    }

    /// A successful response.
    pub fn success(result: Value) -> Self {
        Self::new(ActivationStatus::Success, result)
    }

    /// An error response of `status` whose result is `{"error": message}`.
    pub fn error(status: ActivationStatus, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "error": message.into() }))
    }
}

/// One activation record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    /// Namespace of the action (the caller's namespace).
    pub namespace: String,
    /// Name of the action.
    pub name: String,
    /// Who invoked it.
    pub subject: String,
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub activation_id: ActivationId,
    /// Version of the action that ran.
    pub version: String,
    /// Whether the record is published.
    pub publish: bool,
    /// Start, epoch milliseconds.
    pub start: u64,
    /// End, epoch milliseconds.
    pub end: u64,
    /// Milliseconds between start and end (for sequences, the sum of steps).
    pub duration: u64,
    /// The enclosing sequence's activation, for sequence components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable = false))]
    pub cause: Option<ActivationId>,
    /// Outcome and result.
    pub response: ActivationResponse,
    /// `"<ISO time> stderr: line"` log lines (for sequences, component ids).
    pub logs: Vec<String>,
    /// `path`, `kind`, `limits`, `waitTime`, `initTime`, `timeout`, …
    pub annotations: KeyValues,
}

impl Activation {
    /// The summary OpenWhisk lists without `docs=true`.
    pub fn to_summary(&self) -> ApiActivationSummary {
        ApiActivationSummary {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            subject: self.subject.clone(),
            publish: self.publish,
            annotations: self.annotations.clone(),
            activation_id: self.activation_id,
            start: self.start,
            end: self.end,
            duration: self.duration,
            status_code: self.response.status.code(),
            cause: self.cause,
        }
    }

    /// The summary JSON OpenWhisk lists without `docs=true`.
    pub fn to_summary_json(&self) -> Value {
        crate::api_json(&self.to_summary())
    }

    /// `GET …/activations/{id}/result`: `{result, success, status}`.
    pub fn to_result(&self) -> ApiActivationResult {
        ApiActivationResult {
            result: self.response.result.clone().unwrap_or_else(|| json!({})),
            success: self.response.success,
            status: self.response.status,
        }
    }

    /// The JSON of `GET …/activations/{id}/result`.
    pub fn to_result_json(&self) -> Value {
        crate::api_json(&self.to_result())
    }
}

/// The answer of `GET …/activations?count=true`, as OpenWhisk's
/// (`{"activations": N}`): the activations its filters select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActivationCount))]
pub struct ApiActivationCount {
    /// The number of activations.
    pub activations: usize,
}

/// One entry of `GET …/activations` without `docs=true`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActivationSummary))]
#[serde(rename_all = "camelCase")]
pub struct ApiActivationSummary {
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
    /// Version of the action that ran.
    pub version: String,
    /// Who invoked it.
    pub subject: String,
    /// Whether the record is published.
    pub publish: bool,
    /// `path`, `kind`, `limits`, `waitTime`, `initTime`, `timeout`, …
    pub annotations: KeyValues,
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub activation_id: ActivationId,
    /// Start, epoch milliseconds.
    pub start: u64,
    /// End, epoch milliseconds.
    pub end: u64,
    /// Milliseconds between start and end.
    pub duration: u64,
    /// OpenWhisk's numeric status: 0 success, 1 application error, 2
    /// action developer error, 3 whisk internal error.
    pub status_code: u8,
    /// The enclosing sequence's activation, for sequence components.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable = false))]
    pub cause: Option<ActivationId>,
}

/// `GET …/activations/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActivationResult))]
pub struct ApiActivationResult {
    /// What the action returned (any JSON object; `{error: …}` on
    /// failure, `{}` when there is none).
    pub result: Value,
    /// `status == success`.
    pub success: bool,
    /// One of the four status strings.
    pub status: ActivationStatus,
}

/// `GET …/activations/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActivationLogs))]
pub struct ApiActivationLogs {
    /// `"<ISO time> stderr: line"` log lines (for sequences, component
    /// ids).
    pub logs: Vec<String>,
}

/// A started activation's id: the answer of a non-blocking invoke (or one
/// whose wait ran out) and of a trigger fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ActivationStarted))]
#[serde(rename_all = "camelCase")]
pub struct ApiActivationStarted {
    /// The activation's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub activation_id: ActivationId,
}

/// Now, in milliseconds since the Unix epoch: the clock of activation
/// records (`start`, `end`) and of everything compared with them.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_ids_round_trip_as_hex() {
        let id = ActivationId::from_bytes([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(text.parse::<ActivationId>(), Ok(id));
        assert!("xyz".parse::<ActivationId>().is_err());
        assert!("zz".repeat(16).parse::<ActivationId>().is_err());
        assert!("é".repeat(16).parse::<ActivationId>().is_err());
    }

    #[test]
    fn response_uses_openwhisk_status_strings() {
        let response = ActivationResponse::error(ActivationStatus::DeveloperError, "boom");
        let value = serde_json::to_value(&response).expect("serialise");
        assert_eq!(
            value,
            json!({"status": "action developer error", "success": false, "result": {"error": "boom"}})
        );
        let back: ActivationResponse = serde_json::from_value(value).expect("parse");
        assert_eq!(back, response);
    }
}
