//! `memory-hog`: allocates 1 MiB chunks, touches every page of each and
//! never frees them, until the allocator fails (the host's memory limit).
//! Then it logs how much it got and aborts, which traps: a developer error.

use std::hint::black_box;

const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

fn main() {
    clemmys_guest::run(|_params| {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(CHUNK).is_err() || chunks.try_reserve(1).is_err() {
                clemmys_guest::log!("memory-hog: allocator failed after {} MiB", chunks.len());
                std::process::abort();
            }
            chunk.resize(CHUNK, 0);
            for (i, byte) in chunk.iter_mut().step_by(PAGE).enumerate() {
                *byte = i as u8 | 1;
            }
            chunks.push(black_box(chunk));
        }
    });
}
