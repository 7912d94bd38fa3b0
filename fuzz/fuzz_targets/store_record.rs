//! A stored record never panics its decoding, and what the store writes it reads back.
//! The property is `clemmys_fuzzing::oracles::store_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::store_record(data));
