//! A session invocation opens only if it is exactly the one the client sealed.
//! The property is `clemmys_fuzzing::oracles::session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::session(data));
