//! `huge-log`: floods stderr. Writes ~100-byte lines
//! (`line 000123 xxxx...`), one write per line, until it has written param
//! `mb` MiB (default 20; fractions allowed), then returns `{"done": true}`.

use clemmys_guest::{ActionError, Value, json};

const DEFAULT_MB: f64 = 20.0;
const LINE_LEN: usize = 100;

fn main() {
    clemmys_guest::run(|params| {
        let mb = match params.get("mb") {
            None | Some(Value::Null) => DEFAULT_MB,
            Some(v) => v
                .as_f64()
                .filter(|mb| *mb >= 0.0)
                .ok_or_else(|| ActionError::new("parameter 'mb' must be a non-negative number"))?,
        };
        let target = (mb * (1 << 20) as f64) as u64;
        let mut written = 0u64;
        let mut n = 0u64;
        while written < target {
            let mut line = format!("line {n:06} ");
            // `log` adds the newline.
            line.extend(std::iter::repeat_n('x', LINE_LEN - 1 - line.len()));
            clemmys_guest::log(&line);
            written += line.len() as u64 + 1;
            n += 1;
        }
        Ok(json!({ "done": true }))
    });
}
