//! A guest trying to keep state, or to reach what it must not.

use serde_json::json;

use crate::common::*;

#[test]
fn state_left_by_one_activation_is_invisible_to_the_next() {
    // Bumps a global and a byte of memory, and reports both.
    let result = r#"{"global":0,"memory":0}"#;
    let global_digit = DATA + result.find('0').expect("digit") as u32;
    let memory_digit = DATA + result.rfind('0').expect("digit") as u32;
    let wasm = module(&format!(
        r#"{out}
        (global $runs (mut i32) (i32.const 0))
        (func (export "_start")
          (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
          (i32.store8 (i32.const {global_digit}) (i32.add (i32.const 48) (global.get $runs)))
          (i32.store8 (i32.const {memory_digit})
            (i32.add (i32.load8_u (i32.const {memory_digit})) (i32.const 1)))
          (call $write (i32.const 1) (i32.const {DATA}) (i32.const {len})))"#,
        out = data(DATA, result.as_bytes()),
        len = result.len(),
    ));
    let sandbox = sandbox();
    let module = prepare(&sandbox, &wasm);
    for _ in 0..3 {
        let outcome = sandbox.run(&module, Default::default());
        assert_eq!(success(&outcome), &json!({"global": 1, "memory": 1}));
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
