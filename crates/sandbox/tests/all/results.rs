//! Normal runs: results, application errors, logs, entry points.

use std::time::SystemTime;

use clemmys_sandbox::RunRequest;
use clemmys_whisk::ActivationStatus;
use serde_json::json;

use crate::common::*;

#[test]
fn stdout_json_object_is_the_result() {
    let outcome = run(&prints(r#"{"greeting":"hello"}"#, "", ""));
    assert_eq!(success(&outcome), &json!({"greeting": "hello"}));
    assert!(outcome.logs.is_empty());
    assert!(!outcome.logs_truncated);
    assert_eq!(outcome.failure, None);
}

#[test]
fn parameters_arrive_on_stdin() {
    let input = r#"{"name":"Ada","n":[1,2,3]}"#;
    let outcome = run_with(&echo(), input, limits());
    assert_eq!(success(&outcome), &json!({"name": "Ada", "n": [1, 2, 3]}));
    assert_eq!(outcome.result_bytes, input.len() as u64);
}

#[test]
fn object_with_error_is_an_application_error() {
    let outcome = run(&prints(r#"{"error":"no such user"}"#, "", ""));
    assert_eq!(outcome.response.status, ActivationStatus::ApplicationError);
    assert_eq!(
        outcome.response.result,
        Some(json!({"error": "no such user"}))
    );
    assert_eq!(outcome.failure, None);
}

#[test]
fn exit_zero_after_a_result_is_success() {
    let outcome = run(&prints(
        r#"{"ok":true}"#,
        "",
        "(call $proc_exit (i32.const 0))",
    ));
    assert_eq!(success(&outcome), &json!({"ok": true}));
}

#[test]
fn stderr_lines_become_timestamped_log_lines() {
    let before = SystemTime::now();
    let outcome = run(&prints("{}", "first line\nsecond line\nunfinished", ""));
    let after = SystemTime::now();
    success(&outcome);
    let texts: Vec<&str> = outcome
        .logs
        .iter()
        .map(|line| {
            let (time, text) = line.split_once(" stderr: ").expect("OpenWhisk log format");
            assert_eq!(time.len(), "2026-11-25T11:31:23.123456789Z".len(), "{line}");
            let time = humantime::parse_rfc3339(time).expect("RFC 3339 time");
            assert!(
                before <= time && time <= after,
                "{line} not stamped during the run"
            );
            text
        })
        .collect();
    assert_eq!(texts, ["first line", "second line", "unfinished"]);
}

#[test]
fn a_named_entry_is_called_after_initialize() {
    let result = r#"{"initialized":0}"#;
    let digit = DATA + result.find('0').expect("digit") as u32;
    let wasm = module(&format!(
        r#"{out}
        (global $initialized (mut i32) (i32.const 0))
        (func (export "_initialize") (global.set $initialized (i32.const 1)))
        (func (export "main")
          (i32.store8 (i32.const {digit}) (i32.add (i32.const 48) (global.get $initialized)))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        len = result.len(),
    ));
    let sandbox = sandbox();
    sandbox
        .validate_entry(&wasm, Some("main"))
        .expect("valid with entry main");
    let module = prepare(&sandbox, &wasm);
    let request = RunRequest {
        input: b"{}".to_vec(),
        limits: limits(),
        entry: Some("main".into()),
        env: Vec::new(),
    };
    let outcome = sandbox.run(&module, request);
    assert_eq!(success(&outcome), &json!({"initialized": 1}));
}

#[test]
fn parallel_runs_of_one_module_each_get_their_own_input() {
    let sandbox = sandbox();
    let module = prepare(&sandbox, &echo());
    std::thread::scope(|scope| {
        for thread in 0..3 {
            let (sandbox, module) = (&sandbox, &module);
            scope.spawn(move || {
                for run in 0..20 {
                    let input = json!({"thread": thread, "run": run});
                    let request = RunRequest {
                        input: input.to_string().into_bytes(),
                        limits: limits(),
                        entry: None,
                        env: Vec::new(),
                    };
                    assert_eq!(success(&sandbox.run(module, request)), &input);
                }
            });
        }
    });
}
