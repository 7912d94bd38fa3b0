//! `exit-nonzero`: a developer error. Logs one line, then exits with code 3
//! without writing a result.

fn main() {
    clemmys_guest::run(|_params| {
        clemmys_guest::log("exit-nonzero: exiting with code 3");
        std::process::exit(3)
    });
}
