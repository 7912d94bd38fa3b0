//! Evidence verifies only if it is exactly what the platform signed; fuzz is never an SGX quote.
//! The property is `clemmys_fuzzing::oracles::evidence`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::evidence(data));
