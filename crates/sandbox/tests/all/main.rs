//! Integration tests of the sandbox: real modules (small WAT guests, and the
//! example actions when built) run under real limits. One module per
//! feature.

mod attacks;
mod cache;
mod common;
mod compilers;
mod engine;
mod examples;
mod failures;
mod limits;
mod on_runtime;
mod results;
mod sleep;
mod validate;
