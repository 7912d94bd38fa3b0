//! A key request's JSON never panics and verifies only with its own evidence and keys.
//! The property is `clemmys_fuzzing::oracles::key_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::key_request(data));
