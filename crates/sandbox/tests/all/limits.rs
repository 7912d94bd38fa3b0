//! The action's limits: time, memory, log size, result size.

use std::time::{Duration, Instant};

use clemmys_sandbox::RunLimits;
use serde_json::json;

use crate::common::*;

fn with_timeout(millis: u64) -> RunLimits {
    RunLimits {
        timeout: Duration::from_millis(millis),
        ..limits()
    }
}

#[test]
fn infinite_loop_is_stopped_at_the_time_limit() {
    let wasm = spinner();
    let started = Instant::now();
    let outcome = run_with(&wasm, "{}", with_timeout(200));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "ended within 5 s"
    );
    assert_developer_error(
        &outcome,
        "The action exceeded its time limits of 200 milliseconds.",
    );
    assert_timed_out(&outcome, 200);
}

#[test]
fn sleeping_within_the_time_limit_is_fine() {
    let outcome = run_with(&sleeper(1_000_000), "{}", with_timeout(5_000));
    assert_eq!(success(&outcome), &json!({"slept": true}));
}

#[test]
fn growing_memory_past_the_limit_exhausts_memory() {
    // Grows by 1 MiB until refused, then traps, as allocators abort.
    let wasm = module(
        r#"(func (export "_start")
          (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          unreachable)"#,
    );
    let limits = RunLimits {
        memory_bytes: 128 << 20,
        ..limits()
    };
    let outcome = run_with(&wasm, "{}", limits);
    assert_developer_error(&outcome, "The action exhausted its memory and was aborted.");
    assert!(
        outcome.peak_memory_bytes <= 128 << 20,
        "{}",
        outcome.peak_memory_bytes
    );
    assert!(
        outcome.peak_memory_bytes > 120 << 20,
        "{}",
        outcome.peak_memory_bytes
    );
}

#[test]
fn initial_memory_above_the_limit_exhausts_memory() {
    // 200 MiB of initial memory, declared by the module itself.
    let wasm = wat::parse_str(r#"(module (memory 3200) (func (export "_start")))"#).expect("wat");
    let limits = RunLimits {
        memory_bytes: 128 << 20,
        ..limits()
    };
    let outcome = run_with(&wasm, "{}", limits);
    assert_developer_error(&outcome, "The action exhausted its memory and was aborted.");
}

#[test]
fn logs_past_the_limit_are_dropped_and_the_guest_still_succeeds() {
    // 1,000 lines of 1,000 bytes (1 MB) against a 64 KiB log limit.
    let line = format!("{}\n", "x".repeat(999));
    let result = r#"{"done":true}"#;
    let line_at = DATA + result.len() as u32;
    let wasm = module(&format!(
        r#"{out} {line}
        (func (export "_start") (local $i i32)
          (loop $more
            (call $write (i32.const 2) (i32.const {line_at}) (i32.const 1000))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 1000))))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        line = data(line_at, line.as_bytes()),
        len = result.len(),
    ));
    let limits = RunLimits {
        log_bytes: 64 * 1024,
        ..limits()
    };
    let outcome = run_with(&wasm, "{}", limits);
    assert_eq!(success(&outcome), &json!({"done": true}));
    assert!(outcome.logs_truncated);
    // Each line costs its 39-byte `<time> stderr: ` prefix and 999 bytes of
    // text: 63 whole lines fit in 65,536 bytes (65,394), then the prefix
    // and 103 bytes of the 64th.
    assert_eq!(outcome.logs.len(), 65, "kept lines plus the notice");
    let last = outcome.logs.last().expect("notice");
    assert!(
        last.ends_with(
            " stderr: Logs were truncated because the total bytes size exceeds the limit of 65536 bytes."
        ),
        "{last}"
    );
    let cut = &outcome.logs[63];
    assert!(
        cut.ends_with(&format!(" stderr: {}", "x".repeat(103))),
        "{cut}"
    );
    let kept: usize = outcome.logs[..64].iter().map(String::len).sum();
    assert_eq!(kept, 64 * 1024, "the formatted lines fill the limit");
}

#[test]
fn result_past_the_limit_is_rejected_with_its_size() {
    // Writes the same 32 KiB 64 times: 2 MiB on stdout.
    let wasm = module(
        r#"(func (export "_start") (local $i i32)
          (loop $more
            (call $write (i32.const 1) (i32.const 8192) (i32.const 32768))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 64)))))"#,
    );
    let outcome = run(&wasm);
    assert_developer_error(
        &outcome,
        "The action produced a response that exceeded the allowed length: 2097152 > 1048576 bytes.",
    );
    assert_eq!(outcome.result_bytes, 2 << 20);
}
