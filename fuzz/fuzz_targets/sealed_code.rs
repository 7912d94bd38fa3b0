//! Sealed code opens only if it is exactly what the owner sealed.
//! The property is `clemmys_fuzzing::oracles::sealed_code`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::sealed_code(data));
