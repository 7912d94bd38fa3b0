//! `secret`: the subject of the confidential leak-scan test.
//!
//! Takes param `secret` (a string), writes ONE log line
//! `log: <secret reversed>` and returns `{"shout": <secret uppercased>}`.
//!
//! The module also carries [`CODE_MARKER`], a string that is never printed:
//! the leak scan looks for it to check that the action's *code* never
//! appears in the clear outside the enclave. It must survive compilation, so
//! it is compared against the input through `black_box`, which forces its
//! bytes into the module's data section (check: `grep -c` on the `.wasm`).

use std::hint::black_box;

use clemmys_guest::{ActionError, json, log};

/// Appears in the compiled module only; never in any output.
const CODE_MARKER: &str = "clemmys-code-marker-4e1f0c2b";

fn main() {
    clemmys_guest::run(|params| {
        let secret = params
            .get("secret")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ActionError::new("parameter 'secret' (a string) is required"))?;
        if secret == black_box(CODE_MARKER) {
            return Err(ActionError::new("refusing the code marker"));
        }
        let reversed: String = secret.chars().rev().collect();
        log!("log: {reversed}");
        Ok(json!({ "shout": secret.to_uppercase() }))
    });
}
