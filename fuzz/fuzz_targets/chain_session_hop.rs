//! A chain session hop opens under its step's key only if it is exactly the
//! hop that was sealed. The property is
//! `clemmys_fuzzing::oracles::chain_session_hop`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::chain_session_hop(data));
