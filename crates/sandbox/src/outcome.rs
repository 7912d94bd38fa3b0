//! What a run means: turning the guest's stdout and the way it ended into an
//! OpenWhisk [`ActivationResponse`], with OpenWhisk's messages.
//!
//! This is pure: [`interpret`] sees bytes and a [`Failure`], never wasmtime.

use std::time::Duration;

use clemmys_whisk::{ActivationResponse, ActivationStatus};
use serde_json::Value;

/// How many characters of an invalid result the error message quotes.
const QUOTED_CHARS: usize = 100;

/// Why a run did not end with the guest returning normally.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The epoch deadline passed.
    Timeout {
        /// The action's time limit.
        limit: Duration,
    },
    /// The guest wanted more memory than its limit and then failed.
    MemoryExhausted,
    /// The guest trapped; the message is wasmtime's, on one line.
    Trap(String),
    /// The guest called `exit` with a non-zero code.
    Exit(i32),
    /// The guest does not export the entry point (with the right type).
    MissingEntry(String),
    /// The guest wrote more than the result limit to stdout.
    ResultTooLarge {
        /// Bytes written.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The platform failed (no free instance slot, ...); not the action's
    /// fault.
    Internal(String),
}

impl Failure {
    /// OpenWhisk's message for this failure.
    pub fn message(&self) -> String {
        match self {
            Self::Timeout { limit } => format!(
                "The action exceeded its time limits of {} milliseconds.",
                limit.as_millis()
            ),
            Self::MemoryExhausted => "The action exhausted its memory and was aborted.".to_owned(),
            Self::Trap(trap) => format!("The action trapped: {trap}"),
            Self::Exit(code) => format!("The action exited with code {code}."),
            Self::MissingEntry(entry) => {
                format!(
                    "The action does not export a function `{entry}` without parameters or results."
                )
            }
            Self::ResultTooLarge { size, max } => format!(
                "The action produced a response that exceeded the allowed length: {size} > {max} bytes."
            ),
            Self::Internal(message) => message.clone(),
        }
    }

    fn status(&self) -> ActivationStatus {
        match self {
            Self::Internal(_) => ActivationStatus::InternalError,
            _ => ActivationStatus::DeveloperError,
        }
    }
}

/// The response of a run that wrote `stdout` and ended with `failure` (or
/// normally, with `None`).
///
/// A failure decides the response. Otherwise stdout must be one JSON value:
/// an object with an `error` field is an application error, any other JSON
/// is the result, and anything else is the developer's error.
pub fn interpret(stdout: &[u8], failure: Option<&Failure>) -> ActivationResponse {
    if let Some(failure) = failure {
        return ActivationResponse::error(failure.status(), failure.message());
    }
    match serde_json::from_slice::<Value>(stdout) {
        Ok(value) if value.get("error").is_some() => {
            ActivationResponse::new(ActivationStatus::ApplicationError, value)
        }
        Ok(value) => ActivationResponse::success(value),
        Err(_) => ActivationResponse::error(ActivationStatus::DeveloperError, invalid_json(stdout)),
    }
}

/// OpenWhisk's message for output that is not JSON, quoting its start.
fn invalid_json(stdout: &[u8]) -> String {
    const MESSAGE: &str = "The action did not produce a valid JSON or JSON Array response";
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return format!("{MESSAGE}.");
    }
    let mut quoted: String = text.chars().take(QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!("{MESSAGE}: {quoted}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error_of(response: &ActivationResponse) -> &str {
        response
            .result
            .as_ref()
            .and_then(|r| r["error"].as_str())
            .unwrap_or_default()
    }

    #[test]
    fn a_json_object_is_the_result() {
        let response = interpret(b"{\"greeting\":\"hi\"}\n", None);
        assert_eq!(
            response,
            ActivationResponse::success(json!({"greeting": "hi"}))
        );
    }

    #[test]
    fn arrays_and_other_json_values_are_results_too() {
        assert_eq!(
            interpret(b" [1,2] ", None),
            ActivationResponse::success(json!([1, 2]))
        );
        assert_eq!(
            interpret(b"42", None),
            ActivationResponse::success(json!(42))
        );
    }

    #[test]
    fn an_object_with_error_is_an_application_error_keeping_the_whole_object() {
        let response = interpret(br#"{"error":"no such user","code":404}"#, None);
        assert_eq!(response.status, ActivationStatus::ApplicationError);
        assert!(!response.success);
        assert_eq!(
            response.result,
            Some(json!({"error": "no such user", "code": 404}))
        );
    }

    #[test]
    fn empty_output_is_a_developer_error() {
        let response = interpret(b"  \n", None);
        assert_eq!(response.status, ActivationStatus::DeveloperError);
        assert_eq!(
            error_of(&response),
            "The action did not produce a valid JSON or JSON Array response."
        );
    }

    #[test]
    fn invalid_json_is_quoted_briefly() {
        let response = interpret(b"hello world\n", None);
        assert_eq!(
            error_of(&response),
            "The action did not produce a valid JSON or JSON Array response: hello world"
        );
        let long = "é".repeat(300);
        let response = interpret(long.as_bytes(), None);
        let message = error_of(&response);
        assert!(message.ends_with('…'), "{message}");
        assert_eq!(message.chars().filter(|c| *c == 'é').count(), QUOTED_CHARS);
    }

    #[test]
    fn two_json_values_are_not_one_result() {
        let response = interpret(b"{} {}", None);
        assert_eq!(response.status, ActivationStatus::DeveloperError);
    }

    #[test]
    fn failures_win_over_output_with_openwhisk_messages() {
        let cases = [
            (
                Failure::Timeout {
                    limit: Duration::from_millis(200),
                },
                "The action exceeded its time limits of 200 milliseconds.",
            ),
            (
                Failure::MemoryExhausted,
                "The action exhausted its memory and was aborted.",
            ),
            (
                Failure::Trap("wasm trap: wasm `unreachable` instruction executed".into()),
                "The action trapped: wasm trap: wasm `unreachable` instruction executed",
            ),
            (Failure::Exit(3), "The action exited with code 3."),
            (
                Failure::ResultTooLarge {
                    size: 2_000_000,
                    max: 1_048_576,
                },
                "The action produced a response that exceeded the allowed length: 2000000 > 1048576 bytes.",
            ),
        ];
        for (failure, message) in cases {
            let response = interpret(b"{\"ok\":true}", Some(&failure));
            assert_eq!(
                response.status,
                ActivationStatus::DeveloperError,
                "{failure:?}"
            );
            assert_eq!(error_of(&response), message);
        }
    }

    #[test]
    fn internal_failures_are_whisk_errors() {
        let response = interpret(b"", Some(&Failure::Internal("no free slot".into())));
        assert_eq!(response.status, ActivationStatus::InternalError);
        assert_eq!(error_of(&response), "no free slot");
    }
}
