//! Runs that fail by the action's fault: developer errors.

use clemmys_sandbox::{Failure, RunRequest};

use crate::common::*;

#[test]
fn trap_is_reported_in_one_line() {
    let outcome = run(&prints("{}", "about to trap\n", "unreachable"));
    assert_developer_error(
        &outcome,
        "The action trapped: wasm trap: wasm `unreachable` instruction executed",
    );
    // Logs written before the trap are kept.
    assert_eq!(outcome.logs.len(), 1);
    assert!(outcome.logs[0].ends_with(" stderr: about to trap"));
}

#[test]
fn nonzero_exit_is_reported_with_its_code() {
    let outcome = run(&prints(
        r#"{"ok":true}"#,
        "",
        "(call $proc_exit (i32.const 3))",
    ));
    assert_developer_error(&outcome, "The action exited with code 3.");
    assert_eq!(outcome.failure, Some(Failure::Exit(3)));
}

#[test]
fn output_that_is_not_json_is_quoted() {
    let outcome = run(&prints("this is not JSON\n", "", ""));
    assert_developer_error(
        &outcome,
        "The action did not produce a valid JSON or JSON Array response: this is not JSON",
    );
}

#[test]
fn empty_output_is_a_developer_error() {
    let outcome = run(&prints("", "", ""));
    assert_developer_error(
        &outcome,
        "The action did not produce a valid JSON or JSON Array response.",
    );
}

#[test]
fn missing_entry_at_run_time_is_a_developer_error() {
    let sandbox = sandbox();
    let module = prepare(&sandbox, &prints("{}", "", ""));
    let request = RunRequest {
        input: b"{}".to_vec(),
        limits: limits(),
        entry: Some("nope".into()),
        env: Vec::new(),
    };
    let outcome = sandbox.run(&module, request);
    assert_developer_error(
        &outcome,
        "The action does not export a function `nope` without parameters or results.",
    );
}
