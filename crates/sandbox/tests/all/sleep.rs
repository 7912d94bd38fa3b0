//! `poll_oneoff`, the sandbox's own: sleeps last as long as asked, stdio is
//! always ready, and what WASI does not define is refused.
//!
//! Each guest reads the monotonic clock, makes one `poll_oneoff` call,
//! reads the clock again and prints `[errno, nevents, userdata, type, ms]`:
//! the first event's userdata and type, and how many whole milliseconds the
//! guest saw pass.

use std::time::Duration;

use clemmys_sandbox::RunLimits;

use crate::common::*;

const CLOCK: u8 = 0;
const FD_READ: u8 = 1;
const FD_WRITE: u8 = 2;
pub(crate) const REALTIME: u32 = 0;
pub(crate) const MONOTONIC: u32 = 1;
pub(crate) const ABSTIME: u16 = 1;
pub(crate) const MS: u64 = 1_000_000;

/// Where the guest keeps its subscriptions, events and event count.
const SUBSCRIPTIONS_AT: u32 = 256;
const EVENTS_AT: u32 = 1024;
const NEVENTS_AT: u32 = 72;

/// A clock `subscription` record (WASI preview 1 layout).
pub(crate) fn clock(userdata: u64, id: u32, timeout: u64, flags: u16) -> [u8; 48] {
    let mut record = [0; 48];
    record[..8].copy_from_slice(&userdata.to_le_bytes());
    record[8] = CLOCK;
    record[16..20].copy_from_slice(&id.to_le_bytes());
    record[24..32].copy_from_slice(&timeout.to_le_bytes());
    record[40..42].copy_from_slice(&flags.to_le_bytes());
    record
}

/// An `fd_read` or `fd_write` `subscription` record.
fn fd(userdata: u64, tag: u8, fd: u32) -> [u8; 48] {
    let mut record = [0; 48];
    record[..8].copy_from_slice(&userdata.to_le_bytes());
    record[8] = tag;
    record[16..20].copy_from_slice(&fd.to_le_bytes());
    record
}

/// A guest that polls `subscriptions` after running `prep` (WAT, which may
/// use `$t0`, the monotonic time before the call), and reports as the
/// module docs say. `args` replaces the call's arguments if given.
pub(crate) fn poller(subscriptions: &[[u8; 48]], prep: &str, args: Option<&str>) -> Vec<u8> {
    let default_args = format!(
        "(i32.const {SUBSCRIPTIONS_AT}) (i32.const {EVENTS_AT}) (i32.const {n}) (i32.const {NEVENTS_AT})",
        n = subscriptions.len()
    );
    let records: Vec<u8> = subscriptions.concat();
    let imports = r#"
        (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))"#;
    module_importing(
        imports,
        &format!(
            r#"{records}
        ;; Writes the decimal digits of $v at $p; returns the end.
        (func $digits (param $p i32) (param $v i64) (result i32)
          (if (i64.ge_u (local.get $v) (i64.const 10)) (then
            (local.set $p (call $digits (local.get $p) (i64.div_u (local.get $v) (i64.const 10))))))
          (i32.store8 (local.get $p)
            (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
          (i32.add (local.get $p) (i32.const 1)))
        ;; Writes `$byte` then the digits of $v at $p; returns the end.
        (func $item (param $p i32) (param $byte i32) (param $v i64) (result i32)
          (i32.store8 (local.get $p) (local.get $byte))
          (call $digits (i32.add (local.get $p) (i32.const 1)) (local.get $v)))
        (func (export "_start") (local $t0 i64) (local $errno i32) (local $p i32)
          (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 64)))
          (local.set $t0 (i64.load (i32.const 64)))
          {prep}
          (local.set $errno (call $poll_oneoff {args}))
          (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 80)))
          (local.set $p (call $item (i32.const 2048) (i32.const 91) (i64.extend_i32_u (local.get $errno))))
          (local.set $p (call $item (local.get $p) (i32.const 44) (i64.load32_u (i32.const {NEVENTS_AT}))))
          (local.set $p (call $item (local.get $p) (i32.const 44) (i64.load (i32.const {EVENTS_AT}))))
          (local.set $p (call $item (local.get $p) (i32.const 44) (i64.load8_u (i32.const {type_at}))))
          (local.set $p (call $item (local.get $p) (i32.const 44)
            (i64.div_u (i64.sub (i64.load (i32.const 80)) (local.get $t0)) (i64.const {MS}))))
          (i32.store8 (local.get $p) (i32.const 93))
          (call $write (i32.const 1) (i32.const 2048)
            (i32.sub (i32.add (local.get $p) (i32.const 1)) (i32.const 2048))))"#,
            records = data(SUBSCRIPTIONS_AT, &records),
            args = args.unwrap_or(&default_args),
            type_at = EVENTS_AT + 10,
        ),
    )
}

/// Runs a poller with a one-second time limit; its report.
fn report_of(wasm: &[u8]) -> [u64; 5] {
    let limits = RunLimits {
        timeout: Duration::from_secs(1),
        ..limits()
    };
    let outcome = run_with(wasm, "{}", limits);
    let report: Vec<u64> = success(&outcome)
        .as_array()
        .expect("an array")
        .iter()
        .map(|n| n.as_u64().expect("a number"))
        .collect();
    report.try_into().expect("five numbers")
}

#[test]
fn a_short_sleep_lasts_as_long_as_asked() {
    let [errno, nevents, userdata, event_type, ms] =
        report_of(&poller(&[clock(7, MONOTONIC, 50 * MS, 0)], "", None));
    assert_eq!([errno, nevents, userdata, event_type], [0, 1, 7, 0]);
    assert!((50..1000).contains(&ms), "slept {ms} ms");
}

#[test]
fn an_absolute_monotonic_sleep_wakes_at_its_time() {
    // The guest sets the deadline: 50 ms after the time it read.
    let timeout_at = SUBSCRIPTIONS_AT + 24;
    let prep = format!(
        "(i64.store (i32.const {timeout_at}) (i64.add (local.get $t0) (i64.const {})))",
        50 * MS
    );
    let wasm = poller(&[clock(9, MONOTONIC, 0, ABSTIME)], &prep, None);
    let [errno, nevents, userdata, _, ms] = report_of(&wasm);
    assert_eq!([errno, nevents, userdata], [0, 1, 9]);
    assert!((50..1000).contains(&ms), "slept {ms} ms");
}

#[test]
fn the_earliest_clock_wakes_the_guest_and_only_due_clocks_are_reported() {
    let wasm = poller(
        &[
            clock(1, MONOTONIC, 3_600_000 * MS, 0),
            clock(2, REALTIME, 20 * MS, 0),
            clock(3, REALTIME, 1, ABSTIME),
        ],
        "",
        None,
    );
    // The realtime clock passed 1 ns after 1970 long ago: the call returns
    // at once, before the 20 ms clock is due.
    let [errno, nevents, userdata, event_type, _] = report_of(&wasm);
    assert_eq!([errno, nevents, userdata, event_type], [0, 1, 3, 0]);
}

#[test]
fn stdio_is_ready_at_once() {
    let wasm = poller(
        &[
            clock(1, MONOTONIC, 3_600_000 * MS, 0),
            fd(2, FD_READ, 0),
            fd(3, FD_WRITE, 1),
            fd(4, FD_WRITE, 2),
        ],
        "",
        None,
    );
    let [errno, nevents, userdata, event_type, _] = report_of(&wasm);
    assert_eq!(
        [errno, nevents, userdata, event_type],
        [0, 3, 2, u64::from(FD_READ)]
    );
}

#[test]
fn subscriptions_wasi_does_not_define_are_refused_with_errnos() {
    const BADF: u64 = 8;
    const INVAL: u64 = 28;
    let errno_of = |subscriptions: &[[u8; 48]], args: Option<&str>| {
        report_of(&poller(subscriptions, "", args))[..2].to_vec()
    };
    let process_cputime = clock(1, 2, MS, 0);
    assert_eq!(errno_of(&[process_cputime], None), [INVAL, 0]);
    assert_eq!(errno_of(&[clock(1, MONOTONIC, MS, 2)], None), [INVAL, 0]);
    assert_eq!(errno_of(&[fd(1, FD_READ, 3)], None), [BADF, 0]);
    assert_eq!(errno_of(&[fd(1, FD_WRITE, 0)], None), [BADF, 0]);
    let none = format!(
        "(i32.const {SUBSCRIPTIONS_AT}) (i32.const {EVENTS_AT}) (i32.const 0) (i32.const {NEVENTS_AT})"
    );
    assert_eq!(errno_of(&[], Some(&none)), [INVAL, 0]);
}

#[test]
fn subscriptions_out_of_bounds_trap() {
    let args = format!(
        "(i32.const 131064) (i32.const {EVENTS_AT}) (i32.const 1) (i32.const {NEVENTS_AT})"
    );
    let outcome = run(&poller(&[], "", Some(&args)));
    assert_developer_error(
        &outcome,
        "The action trapped: poll_oneoff: the subscription array `in` at 0x1fff8 is out of bounds",
    );
}

#[test]
fn a_module_without_a_memory_export_traps() {
    let wasm = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
          (memory 1)
          (func (export "_start")
            (drop (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#,
    )
    .expect("wat");
    assert_developer_error(
        &run(&wasm),
        "The action trapped: poll_oneoff: the module exports no linear memory named `memory`",
    );
}
