//! `sleep`: busy-waits (burning CPU is what a timeout test wants; a WASI
//! sleep would also be cut at the deadline) until param `ms` milliseconds
//! (default 1000) have passed on the monotonic clock, then returns
//! `{"slept": ms}`. Used to test timeouts and the 202 path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clemmys_guest::{ActionError, Value, json};

const DEFAULT_MS: u64 = 1000;

fn main() {
    clemmys_guest::run(|params| {
        let ms = match params.get("ms") {
            None | Some(Value::Null) => DEFAULT_MS,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ActionError::new("parameter 'ms' must be a non-negative integer"))?,
        };
        let start = Instant::now();
        let duration = Duration::from_millis(ms);
        while black_box(start.elapsed()) < duration {
            std::hint::spin_loop();
        }
        Ok(json!({ "slept": ms }))
    });
}
