//! JavaScript actions: the node's one engine module (`clemmys-js`, QuickJS
//! built for wasm32-wasip1 from `runtimes/js`) runs every one of them, with
//! the action's source as data, in the invoker for plain actions and in an
//! enclave for confidential ones.
//!
//! The engine's protocol is its own (see `runtimes/js/src/main.rs`): stdin
//! is an envelope `{"code", "main", "params", "env"}`, stdout one JSON line,
//! `{"result": VALUE}` or `{"developerError": "message"}`. The engine can
//! also compile a source to QuickJS bytecode (`"compile": true`, answered
//! with `{"bytecode": BASE64}`) and run that bytecode instead of the source
//! (`"bytecode": LENGTH` and the bytes after the envelope's line), which
//! skips its parser. This module builds the envelopes and turns the
//! engine's answers into the activation's response or the bytecode; all of
//! it is pure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use clemmys_whisk::{ActivationResponse, ActivationStatus};
use serde::Serialize;
use serde_json::Value;

use crate::CodeDigest;

/// The JavaScript engine module of a node: compiled once (the sandbox
/// caches it under its digest) and shared by all JavaScript actions.
#[derive(Clone)]
pub struct JsEngine {
    code: Arc<[u8]>,
    digest: CodeDigest,
}

impl JsEngine {
    /// The engine whose wasm module is `code` (check it with
    /// `Sandbox::validate` first).
    pub fn new(code: Vec<u8>) -> Self {
        let digest = CodeDigest::of(&code);
        Self {
            code: code.into(),
            digest,
        }
    }

    /// The module's bytes.
    pub fn code(&self) -> &Arc<[u8]> {
        &self.code
    }

    /// The module's digest, its key in the sandbox's cache.
    pub fn digest(&self) -> CodeDigest {
        self.digest
    }
}

impl fmt::Debug for JsEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsEngine")
            .field("digest", &self.digest.to_string())
            .field("size", &self.code.len())
            .finish()
    }
}

/// The engine's stdin.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    /// The length of the bytecode after the envelope's line.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytecode: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    compile: bool,
    main: &'a str,
    params: &'a Value,
    env: BTreeMap<&'a str, &'a str>,
}

impl<'a> Envelope<'a> {
    fn new(main: Option<&'a str>, params: &'a Value, env: &'a [(String, String)]) -> Self {
        Self {
            code: None,
            bytecode: None,
            compile: false,
            main: main.unwrap_or(clemmys_whisk::action::DEFAULT_JAVASCRIPT_MAIN),
            params,
            env: env
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        // Serialising borrowed strings and a `Value` into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The envelope running `source`'s function `main` (default `main`) with
/// `params` and the `process.env` values `env`.
pub fn envelope(
    source: &str,
    main: Option<&str>,
    params: &Value,
    env: &[(String, String)],
) -> Vec<u8> {
    Envelope {
        code: Some(source),
        ..Envelope::new(main, params, env)
    }
    .to_vec()
}

/// The envelope running `bytecode` (what [`bytecode_of`] took from a
/// compile of the same source and `main`) with `params` and `env`: the
/// envelope's line, then the bytecode.
pub fn bytecode_envelope(
    bytecode: &[u8],
    main: Option<&str>,
    params: &Value,
    env: &[(String, String)],
) -> Vec<u8> {
    let mut input = Envelope {
        bytecode: Some(bytecode.len()),
        ..Envelope::new(main, params, env)
    }
    .to_vec();
    input.reserve(bytecode.len() + 1);
    input.push(b'\n');
    input.extend_from_slice(bytecode);
    input
}

/// The envelope asking the engine to compile `source` for function `main`
/// (default `main`), running none of it.
pub fn compile_envelope(source: &str, main: Option<&str>) -> Vec<u8> {
    Envelope {
        code: Some(source),
        compile: true,
        ..Envelope::new(main, &Value::Null, &[])
    }
    .to_vec()
}

/// The bytecode in the sandbox's `response` of a compile run, if the
/// engine compiled the source (not if it did not parse, or the run failed:
/// running the source then reports why).
pub fn bytecode_of(response: &ActivationResponse) -> Option<Vec<u8>> {
    if response.status != ActivationStatus::Success {
        return None;
    }
    let text = response.result.as_ref()?.get("bytecode")?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The activation's response from the sandbox's `response` of an engine
/// run: a run that failed (timeout, memory, trap) stays as it is; a run
/// that answered is unwrapped.
pub fn engine_response(response: ActivationResponse) -> ActivationResponse {
    if response.status != ActivationStatus::Success {
        return response;
    }
    let Some(Value::Object(mut answer)) = response.result else {
        return unknown_answer();
    };
    if let Some(result) = answer.remove("result") {
        return if result.get("error").is_some() {
            ActivationResponse::new(ActivationStatus::ApplicationError, result)
        } else {
            ActivationResponse::success(result)
        };
    }
    match answer.remove("developerError") {
        Some(Value::String(message)) => {
            ActivationResponse::error(ActivationStatus::DeveloperError, message)
        }
        _ => unknown_answer(),
    }
}

fn unknown_answer() -> ActivationResponse {
    ActivationResponse::error(
        ActivationStatus::DeveloperError,
        "The JavaScript engine gave an answer this node does not understand.",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_envelope_carries_source_main_params_and_env() {
        let env = [("__OW_ACTIVATION_ID".to_owned(), "42".to_owned())];
        let bytes = envelope("function main(){}", None, &json!({"a": 1}), &env);
        let value: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(
            value,
            json!({"code": "function main(){}", "main": "main", "params": {"a": 1},
                   "env": {"__OW_ACTIVATION_ID": "42"}})
        );
        let bytes = envelope("", Some("handler"), &json!({}), &env);
        let value: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(value["main"], "handler");
    }

    #[test]
    fn a_bytecode_envelope_is_one_line_then_the_bytes() {
        let env = [("__OW_ACTIVATION_ID".to_owned(), "42".to_owned())];
        let bytes = bytecode_envelope(b"\n\x00bc", None, &json!({"a": "x\ny"}), &env);
        let end = bytes.iter().position(|&b| b == b'\n').expect("a line");
        let value: Value = serde_json::from_slice(&bytes[..end]).expect("JSON");
        assert_eq!(
            value,
            json!({"bytecode": 4, "main": "main", "params": {"a": "x\ny"},
                   "env": {"__OW_ACTIVATION_ID": "42"}})
        );
        assert_eq!(&bytes[end + 1..], b"\n\x00bc");
        let compile: Value =
            serde_json::from_slice(&compile_envelope("src", Some("handler"))).expect("JSON");
        assert_eq!(
            compile,
            json!({"code": "src", "compile": true, "main": "handler", "params": null, "env": {}})
        );
    }

    #[test]
    fn bytecode_comes_only_from_a_successful_compile() {
        let compiled = ActivationResponse::success(json!({"bytecode": "AAEC"}));
        assert_eq!(bytecode_of(&compiled), Some(vec![0, 1, 2]));
        for odd in [
            ActivationResponse::success(json!({"developerError": "SyntaxError"})),
            ActivationResponse::success(json!({"bytecode": "not base64!"})),
            ActivationResponse::success(json!({"bytecode": 7})),
            ActivationResponse::error(ActivationStatus::DeveloperError, "timed out"),
        ] {
            assert_eq!(bytecode_of(&odd), None, "{odd:?}");
        }
    }

    #[test]
    fn a_result_is_a_success_unless_it_has_an_error_field() {
        let ok = engine_response(ActivationResponse::success(json!({"result": {"n": 1}})));
        assert_eq!(ok, ActivationResponse::success(json!({"n": 1})));
        let failed = engine_response(ActivationResponse::success(
            json!({"result": {"error": "Error: boom"}}),
        ));
        assert_eq!(failed.status, ActivationStatus::ApplicationError);
        assert_eq!(failed.result, Some(json!({"error": "Error: boom"})));
    }

    #[test]
    fn a_developer_error_keeps_the_engines_message() {
        let response = engine_response(ActivationResponse::success(
            json!({"developerError": "Initialization has failed due to: SyntaxError: x"}),
        ));
        assert_eq!(response.status, ActivationStatus::DeveloperError);
        assert_eq!(
            response.result,
            Some(json!({"error": "Initialization has failed due to: SyntaxError: x"}))
        );
    }

    #[test]
    fn sandbox_failures_pass_through_and_odd_answers_are_developer_errors() {
        let timeout = ActivationResponse::error(ActivationStatus::DeveloperError, "timed out");
        assert_eq!(engine_response(timeout.clone()), timeout);
        for odd in [
            json!([1]),
            json!({"other": 1}),
            json!({"developerError": 7}),
        ] {
            let response = engine_response(ActivationResponse::success(odd));
            assert_eq!(response.status, ActivationStatus::DeveloperError);
        }
    }
}
