//! Opened code splits into code and default parameters without panicking,
//! and never nests default parameters.
//! The property is `clemmys_fuzzing::oracles::opened_code`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::opened_code(data));
