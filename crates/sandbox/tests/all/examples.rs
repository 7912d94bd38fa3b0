//! The example actions (real Rust guests built by
//! `scripts/build-examples.sh`) behave as their docs say.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clemmys_sandbox::{RunLimits, RunOutcome};
use clemmys_whisk::ActivationStatus;
use serde_json::json;

use crate::common::*;

/// The compiled example `name`, from `$CLEMMYS_EXAMPLES_DIR` or the
/// workspace's `target/examples/wasm32-wasip1/release`.
fn example(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("CLEMMYS_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/examples/wasm32-wasip1/release")
        });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {} ({error}): run scripts/build-examples.sh first",
            path.display()
        )
    })
}

fn run_example(name: &str, input: &str, limits: RunLimits) -> RunOutcome {
    let wasm = example(name);
    sandbox()
        .validate(&wasm)
        .unwrap_or_else(|error| panic!("{name} is not valid: {error}"));
    run_with(&wasm, input, limits)
}

#[test]
fn hello_greets_and_logs() {
    let outcome = run_example("hello", r#"{"name":"Ada"}"#, limits());
    assert_eq!(success(&outcome), &json!({"payload": "Hello, Ada!"}));
    assert_eq!(outcome.logs.len(), 1);
    assert!(
        outcome.logs[0].ends_with(" stderr: hello: greeting Ada"),
        "{:?}",
        outcome.logs
    );
}

#[test]
fn chatty_logs_its_stdout_lines_before_the_result_and_sees_its_context() {
    let wasm = example("chatty");
    let sandbox = sandbox();
    let module = prepare(&sandbox, &wasm);
    let context = clemmys_sandbox::ActivationContext {
        action_name: "/guest/tools/chatty".into(),
        action_version: "0.0.3".into(),
        activation_id: "00112233445566778899aabbccddeeff".into(),
        namespace: "guest".into(),
        deadline_ms: 1_795_000_060_000,
        api_host: Some("http://127.0.0.1:3233".into()),
        api_key: None,
    };
    let outcome = sandbox.run(
        &module,
        clemmys_sandbox::RunRequest {
            input: br#"{"a":1,"b":2}"#.to_vec(),
            limits: limits(),
            entry: None,
            env: context.env(),
        },
    );
    assert_eq!(
        success(&outcome),
        &json!({"env": {
            "__OW_ACTION_NAME": "/guest/tools/chatty",
            "__OW_ACTION_VERSION": "0.0.3",
            "__OW_ACTIVATION_ID": "00112233445566778899aabbccddeeff",
            "__OW_NAMESPACE": "guest",
            "__OW_DEADLINE": "1795000060000",
            "__OW_API_HOST": "http://127.0.0.1:3233",
        }})
    );
    let texts: Vec<&str> = outcome
        .logs
        .iter()
        .filter_map(|line| line.split_once(' ').map(|(_, text)| text))
        .collect();
    assert_eq!(
        texts,
        [
            "stdout: starting",
            "stdout: working on 2 parameters",
            "stderr: chatty: done"
        ]
    );
}

#[test]
fn echo_returns_its_parameters() {
    let outcome = run_example("echo", r#"{"a":[1,{"b":null}]}"#, limits());
    assert_eq!(success(&outcome), &json!({"a": [1, {"b": null}]}));
}

#[test]
fn noop_returns_an_empty_object() {
    assert_eq!(success(&run_example("noop", "{}", limits())), &json!({}));
}

#[test]
fn fail_is_an_application_error() {
    let outcome = run_example("fail", "{}", limits());
    assert_eq!(outcome.response.status, ActivationStatus::ApplicationError);
    assert_eq!(
        outcome.response.result,
        Some(json!({"error": "this action always fails"}))
    );
}

#[test]
fn trap_is_a_developer_error() {
    let outcome = run_example("trap", "{}", limits());
    assert_developer_error(
        &outcome,
        "The action trapped: wasm trap: wasm `unreachable` instruction executed",
    );
    assert_eq!(outcome.logs.len(), 1);
}

#[test]
fn exit_nonzero_reports_its_code() {
    assert_developer_error(
        &run_example("exit-nonzero", "{}", limits()),
        "The action exited with code 3.",
    );
}

#[test]
fn not_json_is_quoted() {
    assert_developer_error(
        &run_example("not-json", "{}", limits()),
        "The action did not produce a valid JSON or JSON Array response: this is not JSON",
    );
}

#[test]
fn infinite_loop_times_out() {
    let started = Instant::now();
    let limits = RunLimits {
        timeout: Duration::from_millis(200),
        ..limits()
    };
    let outcome = run_example("infinite-loop", "{}", limits);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ended within 5 s"
    );
    assert_developer_error(
        &outcome,
        "The action exceeded its time limits of 200 milliseconds.",
    );
}

#[test]
fn memory_hog_exhausts_its_memory() {
    let limits = RunLimits {
        memory_bytes: 128 << 20,
        ..limits()
    };
    let outcome = run_example("memory-hog", "{}", limits);
    assert_developer_error(&outcome, "The action exhausted its memory and was aborted.");
    assert!(
        outcome
            .logs
            .iter()
            .any(|line| line.contains("memory-hog: allocator failed after")),
        "{:?}",
        outcome.logs
    );
}

#[test]
fn huge_log_is_truncated_at_the_limit() {
    // 3 MiB of log against a 1 MB limit.
    let limits = RunLimits {
        log_bytes: 1 << 20,
        ..limits()
    };
    let outcome = run_example("huge-log", r#"{"mb":3}"#, limits);
    assert_eq!(success(&outcome), &json!({"done": true}));
    assert!(outcome.logs_truncated);
    let last = outcome.logs.last().expect("notice");
    assert!(
        last.ends_with(
            " stderr: Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        ),
        "{last}"
    );
    // ~100-byte lines, each costing 99 bytes of text and a 39-byte prefix:
    // about 7,600 of them fit.
    assert!(
        (7_000..8_000).contains(&outcome.logs.len()),
        "{}",
        outcome.logs.len()
    );
}

#[test]
fn big_result_exceeds_the_allowed_length() {
    let outcome = run_example("big-result", "{}", limits());
    assert_eq!(outcome.response.status, ActivationStatus::DeveloperError);
    let message = error_of(&outcome);
    assert!(
        message.starts_with("The action produced a response that exceeded the allowed length: ")
            && message.ends_with(" > 1048576 bytes."),
        "{message}"
    );
}

#[test]
fn wordcount_counts() {
    let outcome = run_example("wordcount", r#"{"text":"a b\nc"}"#, limits());
    assert_eq!(
        success(&outcome),
        &json!({"words": 3, "lines": 2, "chars": 5})
    );
}
