//! A chain plan verifies only if it parses to exactly the plan the owner signed.
//! The property is `clemmys_fuzzing::oracles::chain_plan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::chain_plan(data));
