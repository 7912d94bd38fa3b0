//! `echo`: returns its parameters unchanged.

use clemmys_guest::Value;

fn main() {
    clemmys_guest::run(|params| Ok(Value::Object(params)));
}
