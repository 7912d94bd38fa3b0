//! An RA-TLS certificate never panics the parser and verifies only with the gateway's own key, identity and evidence.
//! The property is `clemmys_fuzzing::oracles::ratls_certificate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clemmys_fuzzing::oracles::ratls_certificate(data));
