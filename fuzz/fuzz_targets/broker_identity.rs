//! The broker's identity JSON never panics and verifies only as the broker's own.
//! The property is `clemmys_fuzzing::oracles::broker_identity`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::broker_identity(data));
