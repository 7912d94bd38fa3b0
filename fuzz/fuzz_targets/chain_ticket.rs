//! A chain ticket verifies only if it parses to exactly the plan the client signed.
//! The property is `clemmys_fuzzing::oracles::chain_ticket`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::chain_ticket(data));
