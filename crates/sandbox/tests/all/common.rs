//! Shared setup: small sandboxes and WAT guests.

use std::sync::Arc;
use std::time::Duration;

use clemmys_sandbox::{
    CodeDigest, Failure, PreparedModule, RunLimits, RunOutcome, RunRequest, Sandbox, SandboxConfig,
};
use clemmys_whisk::ActivationStatus;
use serde_json::Value;

/// A sandbox with few slots, so that many tests can each have one.
pub fn sandbox() -> Sandbox {
    Sandbox::new(&SandboxConfig::with_slots(4)).expect("sandbox")
}

/// Compiles `wasm` in `sandbox`.
pub fn prepare(sandbox: &Sandbox, wasm: &[u8]) -> Arc<PreparedModule> {
    sandbox
        .prepare(CodeDigest::of(wasm), wasm)
        .expect("prepare")
        .module
}

/// Limits for tests: OpenWhisk's defaults with a short timeout.
pub fn limits() -> RunLimits {
    RunLimits {
        timeout: Duration::from_secs(10),
        ..RunLimits::default()
    }
}

/// Runs `wasm` once with `input` and `limits` in a fresh sandbox.
pub fn run_with(wasm: &[u8], input: &str, limits: RunLimits) -> RunOutcome {
    let sandbox = sandbox();
    let module = prepare(&sandbox, wasm);
    sandbox.run(
        &module,
        RunRequest {
            input: input.as_bytes().to_vec(),
            limits,
            entry: None,
            env: Vec::new(),
        },
    )
}

/// Runs `wasm` once with `{}` as input and test limits.
pub fn run(wasm: &[u8]) -> RunOutcome {
    run_with(wasm, "{}", limits())
}

/// The `error` of a failed outcome's result.
pub fn error_of(outcome: &RunOutcome) -> &str {
    outcome
        .response
        .result
        .as_ref()
        .and_then(|r| r["error"].as_str())
        .unwrap_or_default()
}

/// Asserts a developer error with `message`.
pub fn assert_developer_error(outcome: &RunOutcome, message: &str) {
    assert_eq!(
        outcome.response.status,
        ActivationStatus::DeveloperError,
        "{outcome:#?}"
    );
    assert_eq!(error_of(outcome), message, "{outcome:#?}");
}

/// The result of a successful outcome.
pub fn success(outcome: &RunOutcome) -> &Value {
    assert_eq!(
        outcome.response.status,
        ActivationStatus::Success,
        "{outcome:#?}"
    );
    outcome.response.result.as_ref().expect("result")
}

/// The WASI imports every test guest has.
const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
"#;

/// The memory and helpers every test guest has: `$write(fd, ptr, len)`.
const PRELUDE: &str = r#"
  (memory (export "memory") 2)
  ;; One iovec at 0, bytes written at 8.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

/// Where [`data`] segments of test guests usually start.
pub const DATA: u32 = 4096;

/// A module made of the prelude and `items`.
pub fn module(items: &str) -> Vec<u8> {
    module_importing("", items)
}

/// A module with more `imports` (which WAT wants before definitions).
pub fn module_importing(imports: &str, items: &str) -> Vec<u8> {
    let text = format!("(module {IMPORTS} {imports} {PRELUDE} {items})");
    wat::parse_str(&text).unwrap_or_else(|error| panic!("invalid test WAT: {error}\n{text}"))
}

/// A data segment holding `bytes` at `offset`.
pub fn data(offset: u32, bytes: &[u8]) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    format!(r#"(data (i32.const {offset}) "{escaped}")"#)
}

/// A guest whose `_start` writes `stdout` and `stderr`, then runs `then`
/// (WAT instructions, e.g. `unreachable`).
pub fn prints(stdout: &str, stderr: &str, then: &str) -> Vec<u8> {
    let err_at = DATA + stdout.len() as u32;
    module(&format!(
        r#"{out} {err}
        (func (export "_start")
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {out_len}))
          (call $write (i32.const 2) (i32.const {err_at}) (i32.const {err_len}))
          {then})"#,
        out = data(DATA, stdout.as_bytes()),
        err = data(err_at, stderr.as_bytes()),
        out_len = stdout.len(),
        err_len = stderr.len(),
    ))
}

/// A guest that computes until it is stopped.
pub fn spinner() -> Vec<u8> {
    module(r#"(func (export "_start") (loop $forever (br $forever)))"#)
}

/// Asserts that `outcome` ended at its time limit of `millis`.
pub fn assert_timed_out(outcome: &RunOutcome, millis: u64) {
    assert_eq!(
        outcome.failure,
        Some(Failure::Timeout {
            limit: Duration::from_millis(millis)
        }),
        "{outcome:#?}"
    );
}

/// A guest that copies stdin to stdout.
pub fn echo() -> Vec<u8> {
    module(
        r#"(func (export "_start") (local $n i32)
          (loop $more
            ;; iovec at 16: 32 KiB at 8192; bytes read at 24.
            (i32.store (i32.const 16) (i32.const 8192))
            (i32.store (i32.const 20) (i32.const 32768))
            (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
            (local.set $n (i32.load (i32.const 24)))
            (if (local.get $n) (then
              (call $write (i32.const 1) (i32.const 8192) (local.get $n))
              (br $more)))))"#,
    )
}

/// A guest that sleeps `nanos` with `poll_oneoff` (one relative monotonic
/// clock), then prints `{"slept":true}`.
pub fn sleeper(nanos: u64) -> Vec<u8> {
    let result = r#"{"slept":true}"#;
    module(&format!(
        r#"{out}
        (func (export "_start")
          ;; subscription at 256: clock tag 0, id 1 (monotonic), timeout, flags 0
          (i32.store (i32.const 272) (i32.const 1))
          (i64.store (i32.const 280) (i64.const {nanos}))
          (drop (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        len = result.len(),
    ))
}
