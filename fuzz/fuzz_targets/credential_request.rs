//! A signed gateway credential request never panics the parser and verifies only as the owner signed it.
//! The property is `clemmys_fuzzing::oracles::credential_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::credential_request(data));
