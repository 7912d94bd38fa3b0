//! A guest trying to keep state, to reach what it must not, or to hold more
//! time or memory than its limits allow.

use std::time::{Duration, Instant};

use clemmys_sandbox::{Failure, RunLimits, RunOutcome, Sandbox, SandboxConfig};
use serde_json::json;

use crate::common::*;
use crate::sleep::{ABSTIME, MONOTONIC, MS, REALTIME, clock, poller};

/// Runs `wasm` with a 200 ms time limit and checks that it timed out, at
/// about that time rather than when its sleep would have ended.
fn assert_stopped_at_200ms(wasm: &[u8]) -> RunOutcome {
    let limit = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = run_with(
        wasm,
        "{}",
        RunLimits {
            timeout: limit,
            ..limits()
        },
    );
    assert_developer_error(
        &outcome,
        "The action exceeded its time limits of 200 milliseconds.",
    );
    assert_eq!(outcome.failure, Some(Failure::Timeout { limit }));
    assert!(outcome.duration >= limit, "{:?}", outcome.duration);
    // A few epoch ticks of 5 ms after the limit; generous for a busy host.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ended {:?} after starting",
        started.elapsed()
    );
    outcome
}

#[test]
fn state_left_by_one_activation_is_invisible_to_the_next() {
    // Bumps a global, a byte of the data segment's page and a byte of a
    // page past it (zero at start: resetting it means zeroing, not copying
    // from the image; in the second 64 KiB page, so past any host page the
    // image covers), and reports all three.
    let result = r#"{"global":0,"memory":0,"heap":0}"#;
    let digit = |field: &str| {
        let at = result.find(&format!("\"{field}\":0")).expect("field") + field.len() + 3;
        DATA + at as u32
    };
    let (global_digit, memory_digit, heap_digit) =
        (digit("global"), digit("memory"), digit("heap"));
    let heap_byte = 100_000;
    let wasm = module(&format!(
        r#"{out}
        (global $runs (mut i32) (i32.const 0))
        (func (export "_start")
          (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
          (i32.store8 (i32.const {global_digit}) (i32.add (i32.const 48) (global.get $runs)))
          (i32.store8 (i32.const {memory_digit})
            (i32.add (i32.load8_u (i32.const {memory_digit})) (i32.const 1)))
          (i32.store8 (i32.const {heap_byte})
            (i32.add (i32.load8_u (i32.const {heap_byte})) (i32.const 1)))
          (i32.store8 (i32.const {heap_digit})
            (i32.add (i32.const 48) (i32.load8_u (i32.const {heap_byte}))))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        len = result.len(),
    ));
    // Both ways the pooling allocator resets kept-resident memory: every
    // byte, or only the pages the kernel reports dirtied.
    for pagemap_scan in [true, false] {
        let sandbox = Sandbox::new(&SandboxConfig {
            pagemap_scan,
            ..SandboxConfig::with_slots(4)
        })
        .expect("sandbox");
        let module = prepare(&sandbox, &wasm);
        for _ in 0..3 {
            let outcome = sandbox.run(&module, Default::default());
            assert_eq!(
                success(&outcome),
                &json!({"global": 1, "memory": 1, "heap": 1}),
                "pagemap_scan {pagemap_scan}"
            );
        }
    }
}

#[test]
fn guest_sees_no_preopened_directory_environment_or_arguments() {
    // Reports the errno of fd_prestat_get(3) and the env and arg counts.
    let result = r#"{"prestat":0,"env":0,"args":0}"#;
    let digits: Vec<u32> = result
        .match_indices('0')
        .map(|(i, _)| DATA + i as u32)
        .collect();
    let imports = r#"
        (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))"#;
    let wasm = module_importing(
        imports,
        &format!(
            r#"{out}
        (func (export "_start")
          (i32.store8 (i32.const {prestat})
            (i32.add (i32.const 48) (call $fd_prestat_get (i32.const 3) (i32.const 64))))
          (drop (call $environ_sizes_get (i32.const 64) (i32.const 68)))
          (i32.store8 (i32.const {env}) (i32.add (i32.const 48) (i32.load (i32.const 64))))
          (drop (call $args_sizes_get (i32.const 64) (i32.const 68)))
          (i32.store8 (i32.const {args}) (i32.add (i32.const 48) (i32.load (i32.const 64))))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
            out = data(DATA, result.as_bytes()),
            prestat = digits[0],
            env = digits[1],
            args = digits[2],
            len = result.len(),
        ),
    );
    let outcome = run(&wasm);
    // errno 8 is EBADF: there is no file descriptor 3.
    assert_eq!(
        success(&outcome),
        &json!({"prestat": 8, "env": 0, "args": 0})
    );
}

#[test]
fn sleeping_past_the_time_limit_is_stopped_at_the_deadline() {
    // Ten seconds: without the deadline this would fail, in ten seconds.
    let outcome = assert_stopped_at_200ms(&sleeper(10_000 * MS));
    assert!(outcome.logs.is_empty());
}

#[test]
fn hour_long_and_endless_sleeps_are_stopped_at_the_deadline() {
    assert_stopped_at_200ms(&sleeper(3_600_000 * MS));
    // Too long for an `Instant`, let alone tokio's timer.
    assert_stopped_at_200ms(&sleeper(u64::MAX));
    assert_stopped_at_200ms(&poller(&[clock(1, REALTIME, u64::MAX, ABSTIME)], "", None));
    // Several clocks at once (wasmtime-wasi would wait on tokio timers).
    assert_stopped_at_200ms(&poller(
        &[
            clock(1, MONOTONIC, 3_600_000 * MS, 0),
            clock(2, MONOTONIC, u64::MAX, ABSTIME),
        ],
        "",
        None,
    ));
}

#[test]
fn sleeping_in_short_naps_forever_is_stopped_at_the_deadline() {
    let wasm = module(
        r#"(func (export "_start")
          ;; subscription at 256: relative monotonic clock, 10 ms.
          (i32.store (i32.const 272) (i32.const 1))
          (i64.store (i32.const 280) (i64.const 10000000))
          (loop $nap
            (drop (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))
            (br $nap)))"#,
    );
    assert_stopped_at_200ms(&wasm);
}

#[test]
fn a_flood_of_empty_log_lines_is_charged_per_line() {
    // 1 MB of bare newlines, in 4 KiB writes, against a 64 KiB log limit:
    // each line costs its 39-byte `<time> stderr: ` prefix, so about 1,700
    // lines are kept, not a million.
    let result = r#"{"done":true}"#;
    let newlines_at = DATA + result.len() as u32;
    let wasm = module(&format!(
        r#"{out} {newlines}
        (func (export "_start") (local $i i32)
          (loop $more
            (call $write (i32.const 2) (i32.const {newlines_at}) (i32.const 4096))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $i) (i32.const 256))))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        newlines = data(newlines_at, &[b'\n'; 4096]),
        len = result.len(),
    ));
    let limit = 64 * 1024;
    let limits = RunLimits {
        log_bytes: limit,
        ..limits()
    };
    let outcome = run_with(&wasm, "{}", limits);
    assert_eq!(success(&outcome), &json!({"done": true}));
    assert!(outcome.logs_truncated);
    let (notice, kept) = outcome.logs.split_last().expect("a notice");
    assert!(
        notice.ends_with(
            " stderr: Logs were truncated because the total bytes size exceeds the limit of 65536 bytes."
        ),
        "{notice}"
    );
    let kept_bytes: u64 = kept.iter().map(|line| line.len() as u64).sum();
    assert!(kept_bytes <= limit, "{kept_bytes} bytes kept");
    assert_eq!(kept.len() as u64, limit / 39, "lines kept");
    assert!(kept.iter().all(|line| line.ends_with(" stderr: ")));
}
