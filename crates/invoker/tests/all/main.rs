//! Integration tests of the invoker: one module per feature.

mod deliveries;
mod direct_runs;
