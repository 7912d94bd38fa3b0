//! Compile and warm activation cost of a few small guests with each
//! compiler, side by side: compile (until a module can run, and until it
//! runs its final code), then time `Sandbox::run` (fresh store and WASI
//! context, instantiate from the pooling allocator, `_start`, interpret
//! stdout) on the final code, and print a table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clemmys_sandbox::{Compiler, RunRequest, Sandbox, SandboxConfig, Tier};
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

/// How long the bench waits for a tiered sandbox's optimising compile.
const TIER_UP_WAIT: Duration = Duration::from_secs(60);

fn main() {
    // Knobs, from the environment: CLEMMYS_COMPILER=<tiered|winch|
    // cranelift-fast|cranelift-optimizing> measures that compiler alone
    // (default: each in turn), CLEMMYS_KEEP_RESIDENT=<bytes>.
    let compilers: Vec<Compiler> = match std::env::var("CLEMMYS_COMPILER") {
        Ok(value) => vec![
            Compiler::ALL
                .into_iter()
                .find(|compiler| compiler.name() == value)
                .expect("CLEMMYS_COMPILER names a compiler"),
        ],
        Err(_) => Compiler::ALL.to_vec(),
    };
    let mut config = SandboxConfig::with_slots(16);
    if let Some(bytes) = std::env::var("CLEMMYS_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.keep_resident_bytes = bytes;
    }
    eprintln!("keep_resident={}", config.keep_resident_bytes);
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

    // compile: until the module can run (Winch's compile, when tiered);
    // final code: until it runs its final code; run: with its final code.
    println!(
        "| guest | compiler | size KB | validate ms | compile ms | final code ms | run p50 µs | run p90 µs | run p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, wasm, input) in &guests {
        for &compiler in &compilers {
            let sandbox = Sandbox::new(&SandboxConfig {
                compiler,
                ..config.clone()
            })
            .expect("sandbox");
            measure(&sandbox, name, wasm, input);
        }
    }
}

/// One guest in one sandbox: a row of the table.
fn measure(sandbox: &Sandbox, name: &str, wasm: &[u8], input: &str) {
    let started = Instant::now();
    sandbox.validate(wasm).expect("valid");
    let validate = started.elapsed();
    // The median of a few uncached compiles: one compile is noisy. Each
    // waits for the one before to be entirely done (tier-up included).
    let mut compiles = Vec::new();
    let mut finals = Vec::new();
    let mut module = None;
    for _ in 0..5 {
        let started = Instant::now();
        let compiled = sandbox.compile_private(wasm).expect("compile");
        compiles.push(started.elapsed());
        assert!(sandbox.wait_for_tier_ups(TIER_UP_WAIT), "tier-up timed out");
        finals.push(started.elapsed());
        assert_eq!(compiled.tier(), Tier::Final);
        module = Some(compiled);
    }
    // The runs use the last compile's module, on its final code.
    let module = module.expect("compiled five times");
    let request = RunRequest {
        input: input.as_bytes().to_vec(),
        ..RunRequest::default()
    };
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..WARMUP + RUNS {
        let started = Instant::now();
        let outcome = sandbox.run(&module, request.clone());
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
        "| {name} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        sandbox.compiler().name(),
        wasm.len() as f64 / 1024.0,
        validate.as_secs_f64() * 1e3,
        median_ms(&mut compiles),
        median_ms(&mut finals),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
    );
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}
