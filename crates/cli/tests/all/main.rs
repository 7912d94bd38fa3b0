//! End-to-end tests of the `clemmys` binary: each test starts a real
//! `clemmys serve` process on a temporary data directory and runs the CLI
//! against it as a user would, with a temporary home of its own.
//!
//! Needs the example actions: `bash scripts/build-examples.sh` (or
//! `CLEMMYS_EXAMPLES_DIR`). Run with `cargo test -p clemmys --test all`.

mod actions;
mod activations;
mod admin;
mod broker;
mod browser;
mod common;
mod confidential;
mod durability;
mod errors;
mod gateway;
mod leaks;
mod npm;
mod packages;
mod scale_out;
mod settings;
mod tls;
mod triggers;
