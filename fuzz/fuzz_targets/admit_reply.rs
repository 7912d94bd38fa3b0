//! The broker's admission answer never panics and verifies only as its answer to this request.
//! The property is `clemmys_fuzzing::oracles::admit_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::admit_reply(data));
