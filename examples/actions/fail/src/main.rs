//! `fail`: always returns the application error
//! `{"error": "this action always fails"}` (and exits normally).

fn main() {
    clemmys_guest::run(|_params| Err("this action always fails".into()));
}
