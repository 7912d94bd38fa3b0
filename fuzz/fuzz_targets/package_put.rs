//! A package or binding PUT body never panics parsing, names or parameter inheritance.
//! The property is `clemmys_fuzzing::oracles::package_put`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::package_put(data));
