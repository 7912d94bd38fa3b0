//! A session answer opens, and its receipt verifies, only if it is exactly
//! what the enclave sealed. The property is
//! `clemmys_fuzzing::oracles::session_answer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::session_answer(data));
