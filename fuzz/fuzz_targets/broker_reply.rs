//! A broker reply opens only if it is exactly what the broker sealed.
//! The property is `clemmys_fuzzing::oracles::broker_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::broker_reply(data));
