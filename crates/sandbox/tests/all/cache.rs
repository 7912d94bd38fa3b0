//! The compiled module cache.

use std::sync::{Arc, Barrier};

use clemmys_sandbox::{CodeDigest, Sandbox, SandboxConfig, SandboxError};

use crate::common::*;

fn distinct_module(n: u32) -> Vec<u8> {
    prints(&format!("{{\"n\":{n}}}"), "", "")
}

#[test]
fn second_prepare_is_a_cache_hit_returning_the_same_module() {
    let sandbox = sandbox();
    let wasm = distinct_module(1);
    let digest = CodeDigest::of(&wasm);
    assert!(sandbox.cached(&digest).is_none());

    let first = sandbox.prepare(digest, &wasm).expect("compile");
    assert!(first.compiled_in.is_some(), "first prepare compiles");
    assert_eq!(first.module.digest(), digest);

    let second = sandbox.prepare(digest, &wasm).expect("hit");
    assert_eq!(second.compiled_in, None, "second prepare does not compile");
    assert!(Arc::ptr_eq(&first.module, &second.module));
    let cached = sandbox.cached(&digest).expect("cached");
    assert!(Arc::ptr_eq(&first.module, &cached));
}

#[test]
fn evicted_modules_are_compiled_again() {
    let sandbox = sandbox();
    let wasm = distinct_module(1);
    let digest = CodeDigest::of(&wasm);
    let first = sandbox.prepare(digest, &wasm).expect("compile");
    assert!(sandbox.evict(&digest));
    assert!(!sandbox.evict(&digest));
    assert!(sandbox.cached(&digest).is_none());
    let again = sandbox.prepare(digest, &wasm).expect("compile again");
    assert!(again.compiled_in.is_some());
    assert!(!Arc::ptr_eq(&first.module, &again.module));
    // The evicted module still runs for whoever holds it.
    success(&sandbox.run(&first.module, Default::default()));
}

#[test]
fn the_least_recently_used_module_is_dropped_first() {
    let config = SandboxConfig {
        module_cache_capacity: 2,
        ..SandboxConfig::with_slots(2)
    };
    let sandbox = Sandbox::new(&config).expect("sandbox");
    let [a, b, c] = [1, 2, 3].map(distinct_module);
    let [da, db, dc] = [&a, &b, &c].map(|wasm| CodeDigest::of(wasm));
    sandbox.prepare(da, &a).expect("a");
    sandbox.prepare(db, &b).expect("b");
    sandbox.cached(&da).expect("a is used again");
    sandbox.prepare(dc, &c).expect("c");
    assert_eq!(sandbox.cached_modules(), 2);
    assert!(sandbox.cached(&db).is_none(), "b was least recently used");
    assert!(sandbox.cached(&da).is_some());
    assert!(sandbox.cached(&dc).is_some());
}

#[test]
fn concurrent_prepares_of_one_module_compile_it_once() {
    let sandbox = sandbox();
    let wasm = distinct_module(7);
    let digest = CodeDigest::of(&wasm);
    let barrier = Barrier::new(4);
    let compiled = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    sandbox
                        .prepare(digest, &wasm)
                        .expect("prepare")
                        .compiled_in
                        .is_some()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(|&compiled| compiled)
            .count()
    });
    assert_eq!(compiled, 1);
}

#[test]
fn code_that_does_not_match_its_digest_is_refused() {
    let sandbox = sandbox();
    let wasm = distinct_module(1);
    let wrong = CodeDigest::of(b"other code");
    let error = sandbox.prepare(wrong, &wasm).expect_err("mismatch");
    assert!(
        matches!(error, SandboxError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(sandbox.cached(&wrong).is_none());
}
