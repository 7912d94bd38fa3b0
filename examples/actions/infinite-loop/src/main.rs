//! `infinite-loop`: never returns; the host must stop it (timeout). The
//! loop does work through `black_box` so it cannot be optimised away.

use std::hint::black_box;

fn main() {
    clemmys_guest::run(|_params| {
        clemmys_guest::log("infinite-loop: looping forever");
        let mut counter = 0u64;
        loop {
            counter = black_box(counter).wrapping_add(1);
        }
    });
}
