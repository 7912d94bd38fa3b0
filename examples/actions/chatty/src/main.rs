//! `chatty`: prints log lines on stdout before its result, as OpenWhisk's
//! native actions may, and returns the `__OW_*` activation context it finds
//! in its environment.
//!
//! stdout: `starting`, `working on <n> parameters`, then the result
//! `{"env": {"__OW_ACTION_NAME": ..., ...}}` on the last line; stderr:
//! `chatty: done`.

use std::io::{self, Write};

use clemmys_guest::{Map, Value, json, log};

fn main() {
    clemmys_guest::run(|params| {
        let mut stdout = io::stdout().lock();
        // Log lines: everything on stdout before the last line.
        let _ = writeln!(stdout, "starting");
        let _ = writeln!(stdout, "working on {} parameters", params.len());
        let _ = stdout.flush();
        let env: Map<String, Value> = std::env::vars()
            .filter(|(name, _)| name.starts_with("__OW_"))
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        log!("chatty: done");
        Ok(json!({ "env": env }))
    });
}
