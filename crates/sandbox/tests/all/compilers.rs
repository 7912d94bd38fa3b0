//! Every compiler gives the same outcomes, and a tiered sandbox swaps in
//! its optimised code without disturbing runs.

use std::sync::Arc;
use std::time::Duration;

use clemmys_sandbox::{
    CodeDigest, Compiler, RunLimits, RunOutcome, RunRequest, Sandbox, SandboxConfig, Tier,
};
use clemmys_whisk::ActivationStatus;
use serde_json::json;

use crate::common::*;

/// Long enough for the optimising compile of a small guest, loaded.
const TIER_UP_WAIT: Duration = Duration::from_secs(30);

fn sandbox_with(compiler: Compiler) -> Sandbox {
    Sandbox::new(&SandboxConfig {
        compiler,
        ..SandboxConfig::with_slots(4)
    })
    .expect("sandbox")
}

/// Guests whose outcome the compiler must not change, with their limits:
/// output, traps, exits, an endless loop, memory exhaustion and a stack
/// overflow.
fn guests() -> Vec<(&'static str, Vec<u8>, RunLimits)> {
    let short = RunLimits {
        timeout: Duration::from_millis(200),
        memory_bytes: 64 << 20,
        ..limits()
    };
    vec![
        ("echo", echo(), short),
        (
            "trap",
            prints("{}", "about to trap\n", "unreachable"),
            short,
        ),
        (
            "exit",
            prints("{}", "", "(call $proc_exit (i32.const 3))"),
            short,
        ),
        ("loop", spinner(), short),
        (
            "grow",
            module(
                r#"(func (export "_start")
                  (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
                  unreachable)"#,
            ),
            short,
        ),
        (
            "recurse",
            module(
                r#"(func $down (param i32) (call $down (i32.add (local.get 0) (i32.const 1))))
                (func (export "_start") (call $down (i32.const 0)))"#,
            ),
            short,
        ),
    ]
}

fn run_once(
    sandbox: &Sandbox,
    module: &clemmys_sandbox::PreparedModule,
    limits: RunLimits,
) -> RunOutcome {
    sandbox.run(
        module,
        RunRequest {
            input: br#"{"k":"v"}"#.to_vec(),
            limits,
            entry: None,
            env: Vec::new(),
        },
    )
}

/// What must not depend on the compiler: status, result and failure.
fn essence(outcome: &RunOutcome) -> (ActivationStatus, Option<serde_json::Value>, String) {
    (
        outcome.response.status,
        outcome.response.result.clone(),
        format!("{:?}", outcome.failure),
    )
}

#[test]
fn every_compiler_gives_the_same_outcomes() {
    let reference = sandbox_with(Compiler::CraneliftOptimizing);
    let others = [Compiler::Winch, Compiler::CraneliftFast, Compiler::Tiered]
        .map(|compiler| (compiler, sandbox_with(compiler)));
    for (name, wasm, limits) in guests() {
        let expected = essence(&run_once(&reference, &prepare(&reference, &wasm), limits));
        for (compiler, sandbox) in &others {
            let module = prepare(sandbox, &wasm);
            let first = essence(&run_once(sandbox, &module, limits));
            assert_eq!(first, expected, "{name} compiled by {compiler:?}");
            if *compiler == Compiler::Tiered {
                assert!(sandbox.wait_for_tier_ups(TIER_UP_WAIT));
                assert_eq!(module.tier(), Tier::Final);
                let optimised = essence(&run_once(sandbox, &module, limits));
                assert_eq!(optimised, expected, "{name}, tiered, optimised");
            }
        }
    }
    // The echo guest really ran: the reference is no empty answer.
    let echo = run_once(&reference, &prepare(&reference, &echo()), limits());
    assert_eq!(success(&echo), &json!({"k": "v"}));
}

#[test]
fn a_tiered_module_runs_at_once_and_gets_its_final_code_in_the_background() {
    let sandbox = sandbox_with(Compiler::Tiered);
    let wasm = echo();
    let prepared = sandbox
        .prepare(CodeDigest::of(&wasm), &wasm)
        .expect("prepare");
    assert!(prepared.compiled_in.is_some());
    success(&run_once(&sandbox, &prepared.module, limits()));
    assert!(sandbox.wait_for_tier_ups(TIER_UP_WAIT));
    assert_eq!(sandbox.pending_tier_ups(), 0);
    assert_eq!(prepared.module.tier(), Tier::Final);
    // The cache holds the same module, now with the final code.
    let cached = sandbox.cached(&CodeDigest::of(&wasm)).expect("cached");
    assert!(Arc::ptr_eq(&cached, &prepared.module));
    assert_eq!(
        success(&run_once(&sandbox, &cached, limits())),
        &json!({"k": "v"})
    );
}

#[test]
fn runs_keep_answering_while_the_optimised_code_is_swapped_in() {
    let sandbox = sandbox_with(Compiler::Tiered);
    let module = sandbox.compile_private(&echo()).expect("compile");
    let tiers = std::thread::scope(|scope| {
        let runners: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut tiers = Vec::new();
                    loop {
                        let tier = module.tier();
                        let outcome = run_once(&sandbox, &module, limits());
                        assert_eq!(success(&outcome), &json!({"k": "v"}));
                        tiers.push(tier);
                        if tier == Tier::Final {
                            return tiers;
                        }
                    }
                })
            })
            .collect();
        runners
            .into_iter()
            .flat_map(|runner| runner.join().expect("runner"))
            .collect::<Vec<_>>()
    });
    assert!(sandbox.wait_for_tier_ups(TIER_UP_WAIT));
    assert_eq!(tiers.last(), Some(&Tier::Final));
}

#[test]
fn code_winch_cannot_compile_is_compiled_by_cranelift_at_once() {
    // Tail calls: valid for the main engine, not supported by Winch.
    let wasm = module(
        r#"(func $done)
        (func (export "_start") (return_call $done))"#,
    );
    let sandbox = sandbox_with(Compiler::Tiered);
    sandbox.validate(&wasm).expect("valid for the main engine");
    let module = prepare(&sandbox, &wasm);
    assert_eq!(module.tier(), Tier::Final, "no tier-up needed");
    assert_eq!(sandbox.pending_tier_ups(), 0);
    assert_eq!(
        run_once(&sandbox, &module, limits()).response.status,
        ActivationStatus::DeveloperError,
        "runs, and prints nothing: not JSON"
    );
}

/// What a private (confidential) module's compile logs at any level must
/// not depend on its code: the provider reads the log, and which compiler
/// took a module tells whether it uses features Winch lacks.
#[test]
fn a_private_modules_compile_logs_the_same_whichever_compiler_took_it() {
    let sandbox = sandbox_with(Compiler::Tiered);
    let winch_takes = module(r#"(func (export "_start"))"#);
    let winch_refuses = module(
        r#"(func $done)
        (func (export "_start") (return_call $done))"#,
    );
    let logged = |code: &[u8]| {
        let capture = Capture::default();
        tracing::subscriber::with_default(capture.clone(), || {
            sandbox.compile_private(code).expect("compiles")
        });
        capture.messages()
    };
    let (took, refused) = (logged(&winch_takes), logged(&winch_refuses));
    assert!(
        !took.is_empty(),
        "nothing logged: the comparison means nothing"
    );
    assert_eq!(took, refused);
}

/// A subscriber keeping every event's message, at every level.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Capture {
    fn messages(&self) -> Vec<String> {
        self.0.lock().expect("capture").clone()
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                // The message only: a compile time differs run to run.
                if field.name() == "message" {
                    self.0.push_str(&format!("{value:?}"));
                }
            }
        }
        let mut message = format!("{} ", event.metadata().level());
        event.record(&mut Message(&mut message));
        self.0.lock().expect("capture").push(message);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
