//! Warm activation cost: compile once, then time `Sandbox::run` (fresh
//! store and WASI context, instantiate from the pooling allocator, `_start`,
//! interpret stdout) for a few small guests, and print a table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clemmys_sandbox::{CodeDigest, RunRequest, Sandbox, SandboxConfig};
use clemmys_whisk::ActivationStatus;

const WARMUP: usize = 200;
const RUNS: usize = 5_000;

/// The smallest WASI command that answers `{}`.
const NOOP_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn examples_dir() -> PathBuf {
    std::env::var_os("CLEMMYS_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/examples/wasm32-wasip1/release")
        })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn main() {
    let mut config = SandboxConfig::with_slots(16);
    // Knobs to compare, from the environment (see the crate's README lines
    // in Cargo.toml): CLEMMYS_FAST_COMPILE=1, CLEMMYS_KEEP_RESIDENT=<bytes>.
    if let Ok(value) = std::env::var("CLEMMYS_FAST_COMPILE") {
        config.fast_compile = value == "1";
    }
    if let Some(bytes) = std::env::var("CLEMMYS_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.keep_resident_bytes = bytes;
    }
    eprintln!(
        "fast_compile={} keep_resident={}",
        config.fast_compile, config.keep_resident_bytes
    );
    let sandbox = Sandbox::new(&config).expect("sandbox");
    let mut guests = vec![(
        "noop (WAT)".to_owned(),
        wat::parse_str(NOOP_WAT).expect("wat"),
        "{}",
    )];
    for (name, input) in [
        ("noop", "{}"),
        ("echo", r#"{"a":1}"#),
        ("hello", r#"{"name":"Ada"}"#),
        ("cpu", r#"{"n":20000}"#),
    ] {
        match std::fs::read(examples_dir().join(format!("{name}.wasm"))) {
            Ok(wasm) => guests.push((format!("{name} (Rust)"), wasm, input)),
            Err(_) => eprintln!("skipping {name}: run scripts/build-examples.sh first"),
        }
    }

    println!(
        "| guest | size KB | validate ms | compile ms | run p50 µs | run p90 µs | run p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, wasm, input) in guests {
        let started = Instant::now();
        sandbox.validate(&wasm).expect("valid");
        let validate = started.elapsed();
        let prepared = sandbox
            .prepare(CodeDigest::of(&wasm), &wasm)
            .expect("prepare");
        // The median of a few uncached compiles: one compile is noisy.
        let mut compiles: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                sandbox.compile_private(&wasm).expect("compile");
                started.elapsed()
            })
            .collect();
        compiles.push(prepared.compiled_in.expect("fresh compile"));
        compiles.sort();
        let compile = compiles[compiles.len() / 2];
        let request = RunRequest {
            input: input.as_bytes().to_vec(),
            ..RunRequest::default()
        };
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..WARMUP + RUNS {
            let started = Instant::now();
            let outcome = sandbox.run(&prepared.module, request.clone());
            let elapsed = started.elapsed();
            assert_eq!(
                outcome.response.status,
                ActivationStatus::Success,
                "{outcome:?}"
            );
            if i >= WARMUP {
                times.push(elapsed);
            }
        }
        times.sort();
        println!(
            "| {name} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
            wasm.len() as f64 / 1024.0,
            validate.as_secs_f64() * 1e3,
            compile.as_secs_f64() * 1e3,
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99),
        );
    }
}
