//! An admission request's JSON never panics and its MAC verifies only for the enclave's request.
//! The property is `clemmys_fuzzing::oracles::admit_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::admit_request(data));
