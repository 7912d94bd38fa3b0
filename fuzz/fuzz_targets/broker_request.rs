//! A broker request opens only if it is exactly what the client sealed and signed.
//! The property is `clemmys_fuzzing::oracles::broker_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::broker_request(data));
