//! Runs on the async runtime (`Sandbox::run_async`): the same outcome as a
//! blocking run, a guest that gives its thread back while it computes or
//! sleeps, and a dropped run that frees its slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clemmys_sandbox::{RunLimits, RunOutcome, RunRequest, Sandbox, SandboxConfig};
use serde_json::json;

use crate::common::*;

/// A current-thread runtime: a guest that never gave its thread back would
/// keep every other task of it from running.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn request(input: &str, limits: RunLimits, entry: Option<&str>) -> RunRequest {
    RunRequest {
        input: input.as_bytes().to_vec(),
        limits,
        entry: entry.map(str::to_owned),
        env: vec![("__OW_ACTIVATION_ID".into(), "a1".into())],
    }
}

/// What two runs of one guest must share: everything but times.
fn comparable(outcome: &RunOutcome) -> impl PartialEq + std::fmt::Debug {
    let logs: Vec<String> = outcome
        .logs
        .iter()
        // `<time> stderr: <line>`
        .map(|line| {
            line.split_once(' ')
                .map_or(line.clone(), |(_, rest)| rest.into())
        })
        .collect();
    (
        outcome.response.clone(),
        outcome.failure.clone(),
        logs,
        outcome.logs_truncated,
        outcome.result_bytes,
    )
}

fn with_timeout(millis: u64) -> RunLimits {
    RunLimits {
        timeout: Duration::from_millis(millis),
        ..limits()
    }
}

#[test]
fn an_async_run_ends_as_a_blocking_run_does() {
    let exits = module(r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#);
    let grows = module(
        r#"(func (export "_start")
          (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
          unreachable)"#,
    );
    let spins = spinner();
    let small_memory = RunLimits {
        memory_bytes: 64 << 20,
        ..limits()
    };
    let cases: Vec<(&str, Vec<u8>, RunRequest)> = vec![
        ("echo", echo(), request(r#"{"name":"ada"}"#, limits(), None)),
        (
            "prints then traps",
            prints("{\"partial\":1}\n", "a log line\n", "unreachable"),
            request("{}", limits(), None),
        ),
        (
            "prints a result and logs",
            prints("{\"ok\":true}\n", "one\ntwo\n", ""),
            request("{}", limits(), None),
        ),
        ("exits with 3", exits, request("{}", limits(), None)),
        ("exhausts memory", grows, request("{}", small_memory, None)),
        (
            "names an export it lacks",
            echo(),
            request("{}", limits(), Some("missing")),
        ),
        (
            "spins past its limit",
            spins,
            request("{}", with_timeout(100), None),
        ),
        (
            "sleeps within its limit",
            sleeper(2_000_000),
            request("{}", limits(), None),
        ),
        (
            "sleeps past its limit",
            sleeper(60_000_000_000),
            request("{}", with_timeout(100), None),
        ),
    ];
    let sandbox = sandbox();
    let runtime = runtime();
    for (what, wasm, request) in cases {
        let module = prepare(&sandbox, &wasm);
        let blocking = sandbox.run(&module, request.clone());
        let on_runtime = runtime.block_on(sandbox.run_async(&module, request));
        assert_eq!(
            comparable(&on_runtime),
            comparable(&blocking),
            "{what}: {on_runtime:#?}"
        );
    }
}

#[test]
fn a_computing_guest_gives_its_thread_back_until_its_time_limit() {
    let sandbox = sandbox();
    let spins = prepare(&sandbox, &spinner());
    let runtime = runtime();
    let other_ran = Arc::new(AtomicBool::new(false));
    let outcome = runtime.block_on(async {
        let flag = Arc::clone(&other_ran);
        // Runs only if the guest yields: this runtime has one thread.
        tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        sandbox
            .run_async(&spins, request("{}", with_timeout(300), None))
            .await
    });
    assert!(
        other_ran.load(Ordering::SeqCst),
        "another task ran while the guest computed"
    );
    assert_timed_out(&outcome, 300);
}

#[test]
fn a_guest_computing_past_a_tick_leaves_the_runtime_thread() {
    let sandbox = sandbox();
    let spins = prepare(&sandbox, &spinner());
    let runtime = runtime();
    let (spins_ended, turns) = runtime.block_on(async {
        let guest = sandbox.run_async(&spins, request("{}", with_timeout(400), None));
        // Another task taking turns on this one thread while the guest
        // computes: a guest kept on the thread would leave it one turn per
        // epoch tick (5 ms), about 80 in all.
        let counter = async {
            let mut turns = 0_u64;
            let until = tokio::time::Instant::now() + Duration::from_millis(300);
            while tokio::time::Instant::now() < until {
                turns += 1;
                tokio::task::yield_now().await;
            }
            turns
        };
        tokio::join!(guest, counter)
    });
    assert!(turns > 2_000, "the other task got only {turns} turns");
    assert_timed_out(&spins_ended, 400);
}

#[test]
fn a_sleeping_guest_gives_its_thread_back() {
    let sandbox = sandbox();
    let sleeps = prepare(&sandbox, &sleeper(5_000_000_000));
    let runtime = runtime();
    let started = Instant::now();
    let timer_fired_after = runtime.block_on(async {
        tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_millis(50)) => Some(started.elapsed()),
            _ = sandbox.run_async(&sleeps, request("{}", limits(), None)) => None,
        }
    });
    // A guest sleeping on the thread would hold the timer back 5 s.
    let fired = timer_fired_after.expect("the timer fired before the guest woke");
    assert!(fired < Duration::from_secs(2), "fired after {fired:?}");
    let sleeps = prepare(&sandbox, &sleeper(200_000_000));
    let outcomes = runtime.block_on(async {
        let run = || sandbox.run_async(&sleeps, request("{}", limits(), None));
        tokio::join!(run(), run())
    });
    for outcome in [outcomes.0, outcomes.1] {
        assert_eq!(success(&outcome), &json!({"slept": true}));
    }
}

#[test]
fn a_dropped_run_stops_its_guest_and_frees_its_slot() {
    let sandbox = Sandbox::new(&SandboxConfig::with_slots(1)).expect("sandbox");
    let spins = prepare(&sandbox, &spinner());
    let replies = prepare(&sandbox, &echo());
    // Slots are the pool's, which a tiered module's final code uses.
    assert!(sandbox.wait_for_tier_ups(Duration::from_secs(30)));
    let runtime = runtime();
    runtime.block_on(async {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(50),
            sandbox.run_async(&spins, request("{}", with_timeout(60_000), None)),
        )
        .await;
        assert!(gave_up.is_err(), "the spinning guest was still running");
        // It had moved to a blocking thread: it stops at its next tick.
        for _ in 0..100 {
            let outcome = sandbox
                .run_async(&replies, request(r#"{"after":"drop"}"#, limits(), None))
                .await;
            if outcome.failure.is_none() {
                assert_eq!(success(&outcome), &json!({"after": "drop"}));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the slot stayed taken for a second after the run was dropped");
    });
}
