//! An action PUT body never panics parsing, limit checks, names or parameter merging.
//! The property is `clemmys_fuzzing::oracles::action_put`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::action_put(data));
