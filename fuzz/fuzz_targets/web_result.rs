//! A web action's result renders without panicking, into valid statuses, headers and media types.
//! The property is `clemmys_fuzzing::oracles::web_result`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::web_result(data));
