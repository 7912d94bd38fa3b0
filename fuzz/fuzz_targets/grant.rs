//! A key grant opens only if it is exactly what the broker sealed and signed for this enclave.
//! The property is `clemmys_fuzzing::oracles::grant`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::grant(data));
