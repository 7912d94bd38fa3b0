//! `big-result`: returns `{"data": "xxx..."}` with param `kb` KiB of `x`
//! (default 2048, i.e. 2 MiB), to test the server's result size limit.

use clemmys_guest::{ActionError, Value, json};

const DEFAULT_KB: u64 = 2048;

fn main() {
    clemmys_guest::run(|params| {
        let kb = match params.get("kb") {
            None | Some(Value::Null) => DEFAULT_KB,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ActionError::new("parameter 'kb' must be a non-negative integer"))?,
        };
        let len = usize::try_from(kb.saturating_mul(1024))
            .map_err(|_| ActionError::new("parameter 'kb' is too large"))?;
        Ok(json!({ "data": "x".repeat(len) }))
    });
}
