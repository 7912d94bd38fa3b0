//! A trigger or rule PUT body never panics parsing, names, cron patterns or the event merge.
//! The property is `clemmys_fuzzing::oracles::trigger_put`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::trigger_put(data));
