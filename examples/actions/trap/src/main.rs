//! `trap`: a developer error. Logs one line, then executes the wasm
//! `unreachable` instruction, which traps.

fn main() {
    clemmys_guest::run(|_params| {
        clemmys_guest::log("trap: executing unreachable");
        trap()
    });
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

/// Off wasm (e.g. `cargo check` on the host) an abort is the nearest thing.
#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}
