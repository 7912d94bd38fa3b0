//! `wire::Reader` never panics and what it reads re-encodes to the same bytes.
//! The property is `clemmys_fuzzing::oracles::wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::wire(data));
