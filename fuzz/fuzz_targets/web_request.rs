//! A web request's body, query and arguments never panic; callers never set `__ow_*` or final names.
//! The property is `clemmys_fuzzing::oracles::web_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::web_request(data));
