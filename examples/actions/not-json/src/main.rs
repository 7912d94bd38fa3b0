//! `not-json`: a developer error. Exits normally, but its stdout is
//! `this is not JSON`.

use std::io::{self, Read, Write};

fn main() {
    let _ = io::stdin().read_to_end(&mut Vec::new());
    clemmys_guest::log("not-json: writing a result that is not JSON");
    if io::stdout().write_all(b"this is not JSON\n").is_err() {
        std::process::exit(1);
    }
}
