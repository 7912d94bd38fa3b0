//! `noop`: returns `{}` as fast as possible, from as small a module as
//! possible. It is the benchmarks' cold-start subject, so it uses no JSON
//! library (not even `clemmys-guest`) and no formatting: it drains stdin and
//! writes `{}`.

use std::io::{self, Write};

fn main() {
    // Drain the parameters so the host never blocks on a full pipe; they are
    // not looked at. Errors are ignored: the result is `{}` regardless.
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    if io::stdout().write_all(b"{}").is_err() {
        std::process::exit(1);
    }
}
