//! `cpu`: a CPU-bound action for benchmarks.
//!
//! Counts the primes below param `n` (default 100000) by trial division,
//! which keeps memory constant whatever `n`: `{"n": 100} → {"n": 100,
//! "primes": 25}`.

use std::hint::black_box;

use clemmys_guest::{ActionError, Params, Value, json};

const DEFAULT_N: u64 = 100_000;

fn main() {
    clemmys_guest::run(|params| {
        let n = param_u64(&params, "n", DEFAULT_N)?;
        Ok(json!({ "n": n, "primes": count_primes_below(black_box(n)) }))
    });
}

/// The number of primes `p < n`.
fn count_primes_below(n: u64) -> u64 {
    (2..n).filter(|&k| is_prime(k)).count() as u64
}

fn is_prime(k: u64) -> bool {
    if k < 4 {
        return k >= 2;
    }
    if k.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= k {
        if k.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

fn param_u64(params: &Params, key: &str, default: u64) -> Result<u64, ActionError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().ok_or_else(|| {
            ActionError::new(format!("parameter '{key}' must be a non-negative integer"))
        }),
    }
}
