//! The guest SDK: write a Clemmys action in Rust.
//!
//! A Clemmys action is a WASI preview-1 *command* module (it exports
//! `_start`; build it for `wasm32-wasip1`). The server runs it once per
//! activation under wasmtime and speaks to it only through standard streams:
//!
//! | stream | direction | contents |
//! | --- | --- | --- |
//! | stdin  | in  | the parameters, ONE JSON object (empty stdin means `{}`) |
//! | stdout | out | the result: its LAST line, ONE JSON value on one line; each earlier line is a log line |
//! | stderr | out | logs: each line becomes one activation log line |
//! | environment | in | `__OW_ACTION_NAME`, `__OW_ACTION_VERSION`, `__OW_ACTIVATION_ID`, `__OW_NAMESPACE`, `__OW_DEADLINE` (epoch ms), and `__OW_API_HOST` when the node knows its URL |
//!
//! How the server reads the outcome:
//!
//! - a result object with an `error` field is an *application error*;
//! - a trap or panic (the example actions build with `panic = "abort"`, so a
//!   panic traps), a non-zero exit code, or stdout that is not a JSON object
//!   is a *developer error*, reported by the server;
//! - anything else is a success.
//!
//! This crate owns the guest side of that protocol and nothing more: it trusts
//! nothing but the host it runs in, and it never sees keys or sealed bytes.
//! In a confidential activation the parameters on stdin and the result on
//! stdout are already plaintext inside the enclave; sealing and opening
//! happen in the host.
//!
//! # Building
//!
//! `cargo build --release --target wasm32-wasip1`. For the fastest warm
//! starts, give the module a 64 KiB stack instead of Rust's default 1 MiB:
//! the sandbox keeps the first 4 MiB of each instance's memory resident
//! between activations, and with a small stack the stack top, static data
//! and first heap pages all lie there (measured: a no-op action's run falls
//! from 20 to 6 µs). In the action's `.cargo/config.toml`:
//!
//! ```toml
//! [target.wasm32-wasip1]
//! rustflags = ["-C", "link-arg=-zstack-size=65536"]
//! ```
//!
//! # Example
//!
//! A complete action, `src/main.rs` of a binary crate:
//!
//! ```no_run
//! use clemmys_guest::{ActionError, json, log};
//!
//! fn main() {
//!     clemmys_guest::run(|params| {
//!         let name = params
//!             .get("name")
//!             .and_then(|v| v.as_str())
//!             .unwrap_or("World");
//!         if name.is_empty() {
//!             return Err(ActionError::new("parameter 'name' must not be empty"));
//!         }
//!         log!("hello: greeting {name}");
//!         Ok(json!({ "payload": format!("Hello, {name}!") }))
//!     });
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip1`; see
//! `examples/actions/` and `scripts/build-examples.sh` in the repository.
//!
//! The pure parts of [`run`] do no I/O, so they can be tested natively:
//! [`parse_params`], [`render_result`], and [`respond`], which joins them.

use std::fmt;
use std::io::{self, Read, Write};

pub use serde_json;
pub use serde_json::{Map, Value, json};

/// The parameters of one activation: the JSON object read from stdin.
pub type Params = Map<String, Value>;

/// An application error: the action ran correctly and reports a failure.
///
/// [`run`] writes it to stdout as `{"error": "<message>"}` and exits
/// normally, which the server reports as an application error (as opposed to
/// a developer error, such as a trap or a non-zero exit).
///
/// ```
/// use clemmys_guest::ActionError;
///
/// let e: ActionError = "parameter 'text' (a string) is required".into();
/// assert_eq!(e.to_string(), "parameter 'text' (a string) is required");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionError {
    message: String,
}

impl ActionError {
    /// An application error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message, as it will appear in the result's `error` field.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The result object the action writes for this error:
    /// `{"error": "<message>"}`.
    pub fn to_result(&self) -> Value {
        json!({ "error": self.message })
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActionError {}

impl From<String> for ActionError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ActionError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Lets an action use `?` on `serde_json::from_value` and friends; the error
/// text becomes the message.
impl From<serde_json::Error> for ActionError {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

/// Runs `action` as this module's entry point: reads the parameters from
/// stdin, calls `action` once, writes its result to stdout and returns.
///
/// Call it from `main` and return from `main` afterwards, so that the module
/// exits normally (exit code 0).
///
/// - Empty (or all-whitespace) stdin is treated as `{}`.
/// - Stdin that is not a JSON object is not passed to `action`: the result is
///   then the application error
///   `{"error": "parameters are not a JSON object: ..."}`.
/// - `Err(e)` is written as `{"error": "<e>"}` (an application error).
/// - `Ok(value)` is written as it is, whatever JSON value it is: no wrapping.
///   An object is the normal case; OpenWhisk also accepts an array, but note
///   that Clemmys' protocol asks for an object, so the server reports any
///   other value (array, string, number...) as a developer error. An `Ok`
///   object that has an `error` field is an application error too.
///
/// A panic inside `action` is not caught: built with `panic = "abort"` it
/// traps, which the server reports as a developer error.
///
/// If stdout cannot be written (say the host closed it because the result is
/// over its size limit), the reason goes to stderr and the module exits with
/// code 1, a developer error.
pub fn run<F>(action: F)
where
    F: FnOnce(Params) -> Result<Value, ActionError>,
{
    let mut input = Vec::new();
    let output = match io::stdin().lock().read_to_end(&mut input) {
        Ok(_) => respond(&input, action),
        Err(e) => render_result(Err(ActionError::new(format!(
            "could not read parameters from stdin: {e}"
        )))),
    };
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(&output).and_then(|()| stdout.flush()) {
        log(&format!("clemmys-guest: could not write the result: {e}"));
        std::process::exit(1);
    }
}

/// The pure part of [`run`]: the bytes to write to stdout for these stdin
/// bytes. Parses with [`parse_params`], calls `action` only if that
/// succeeded, and renders with [`render_result`].
///
/// ```
/// use clemmys_guest::{json, respond};
///
/// let out = respond(br#"{"a": 1}"#, |p| Ok(json!({ "keys": p.len() })));
/// assert_eq!(out, b"{\"keys\":1}\n");
/// ```
pub fn respond<F>(input: &[u8], action: F) -> Vec<u8>
where
    F: FnOnce(Params) -> Result<Value, ActionError>,
{
    render_result(parse_params(input).and_then(action))
}

/// Parses the parameters from the bytes read on stdin.
///
/// Empty or all-whitespace input is `{}`. Anything that is not one JSON
/// object (invalid UTF-8, invalid JSON, trailing data, an array...) is the
/// error `parameters are not a JSON object: <why>`.
///
/// ```
/// use clemmys_guest::parse_params;
///
/// assert!(parse_params(b"").unwrap().is_empty());
/// assert_eq!(parse_params(br#"{"n": 3}"#).unwrap()["n"], 3);
/// assert!(parse_params(b"[1, 2]").is_err());
/// ```
pub fn parse_params(input: &[u8]) -> Result<Params, ActionError> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::new());
    }
    let not_an_object = |why: &dyn fmt::Display| {
        ActionError::new(format!("parameters are not a JSON object: {why}"))
    };
    match serde_json::from_slice::<Value>(input) {
        Ok(Value::Object(params)) => Ok(params),
        Ok(other) => Err(not_an_object(&format_args!("got {}", kind(&other)))),
        Err(e) => Err(not_an_object(&e)),
    }
}

/// Renders an action's outcome as the bytes to write to stdout: the JSON
/// value (or `{"error": "<message>"}` for an error) followed by a newline.
///
/// ```
/// use clemmys_guest::{ActionError, json, render_result};
///
/// assert_eq!(render_result(Ok(json!({ "ok": true }))), b"{\"ok\":true}\n");
/// assert_eq!(
///     render_result(Err(ActionError::new("no"))),
///     b"{\"error\":\"no\"}\n",
/// );
/// ```
pub fn render_result(result: Result<Value, ActionError>) -> Vec<u8> {
    let value = match result {
        Ok(value) => value,
        Err(error) => error.to_result(),
    };
    // A `Value` always serialises: its map keys are strings and its numbers
    // are finite, so `to_string` cannot fail on it.
    let mut out = value.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// Writes `line` to stderr as one log line, in a single write.
///
/// The server turns each line on stderr into one log line of the activation,
/// so a `line` containing `\n` becomes several log lines. Errors are ignored:
/// logging never fails an action. See [`log!`](macro@log) for a `format!`-style
/// form.
pub fn log(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    // Stderr is unbuffered: one `write_all` is one write the host sees
    // (unless the host accepts only part of it).
    let _ = io::stderr().lock().write_all(buf.as_bytes());
}

/// Writes one log line to stderr, formatted like [`format!`]; see [`log()`].
///
/// ```
/// let name = "World";
/// clemmys_guest::log!("hello: greeting {name}");
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log(&::std::format!($($arg)*))
    };
}

/// The kind of a JSON value, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_message(input: &[u8]) -> String {
        match parse_params(input) {
            Ok(params) => panic!("expected an error, got {params:?}"),
            Err(e) => e.message().to_owned(),
        }
    }

    fn parsed(input: &[u8]) -> Params {
        parse_params(input).expect("input is a JSON object")
    }

    #[test]
    fn empty_input_is_an_empty_object() {
        assert!(parsed(b"").is_empty());
        assert!(parsed(b" \n\t\r\n").is_empty());
    }

    #[test]
    fn object_input_is_parsed() {
        let params = parsed(br#" {"name": "Ada", "n": 3, "nested": {"a": [1, 2]}} "#);
        assert_eq!(params.len(), 3);
        assert_eq!(params["name"], "Ada");
        assert_eq!(params["n"], 3);
        assert_eq!(params["nested"], json!({ "a": [1, 2] }));
        assert!(parsed(b"{}\n").is_empty());
    }

    #[test]
    fn non_object_json_is_rejected() {
        for (input, kind) in [
            (&b"[1, 2]"[..], "an array"),
            (b"\"text\"", "a string"),
            (b"42", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            assert_eq!(
                error_message(input),
                format!("parameters are not a JSON object: got {kind}"),
            );
        }
    }

    #[test]
    fn invalid_json_is_rejected() {
        for input in [
            &b"{"[..],
            b"{\"a\": }",
            b"not json",
            b"{} {}",
            b"{\"a\": \"\xff\"}",
        ] {
            let message = error_message(input);
            assert!(
                message.starts_with("parameters are not a JSON object: "),
                "{message}"
            );
            assert!(message.len() > "parameters are not a JSON object: ".len());
        }
    }

    #[test]
    fn ok_result_is_written_unchanged() {
        assert_eq!(render_result(Ok(json!({}))), b"{}\n");
        assert_eq!(
            render_result(Ok(json!({ "payload": "Hello, World!" }))),
            b"{\"payload\":\"Hello, World!\"}\n"
        );
        // Not wrapped: the server decides what a non-object means.
        assert_eq!(render_result(Ok(json!([1, 2]))), b"[1,2]\n");
        assert_eq!(render_result(Ok(json!("s"))), b"\"s\"\n");
    }

    #[test]
    fn action_error_becomes_error_field() {
        let out = render_result(Err("this action always fails".into()));
        let value: Value = serde_json::from_slice(&out).expect("output is JSON");
        assert_eq!(value, json!({ "error": "this action always fails" }));
    }

    #[test]
    fn error_message_is_escaped() {
        let out = render_result(Err(ActionError::new("quote \" and\nnewline")));
        assert_eq!(out, b"{\"error\":\"quote \\\" and\\nnewline\"}\n");
    }

    #[test]
    fn action_error_conversions() {
        let from_string: ActionError = String::from("a").into();
        let from_str: ActionError = "a".into();
        assert_eq!(from_string, from_str);
        assert_eq!(from_str.to_string(), "a");
        assert_eq!(from_str.to_result(), json!({ "error": "a" }));

        let serde_error =
            serde_json::from_value::<u32>(json!("x")).expect_err("a string is not a u32");
        let e = ActionError::from(serde_error);
        assert!(e.message().contains("invalid type"), "{e}");
    }

    #[test]
    fn respond_passes_params_to_action() {
        let out = respond(br#"{"a": 1, "b": [true]}"#, |p| Ok(Value::Object(p)));
        let value: Value = serde_json::from_slice(&out).expect("output is JSON");
        assert_eq!(value, json!({ "a": 1, "b": [true] }));
    }

    #[test]
    fn respond_does_not_call_action_on_bad_input() {
        let mut called = false;
        let out = respond(b"[]", |_| {
            called = true;
            Ok(json!({}))
        });
        assert!(!called);
        let value: Value = serde_json::from_slice(&out).expect("output is JSON");
        assert_eq!(
            value,
            json!({ "error": "parameters are not a JSON object: got an array" })
        );
    }

    #[test]
    fn respond_maps_action_error() {
        let out = respond(b"", |p| {
            assert!(p.is_empty());
            Err(ActionError::new("nope"))
        });
        assert_eq!(out, b"{\"error\":\"nope\"}\n");
    }
}
