//! Integration tests of the invoker: one module per feature.

mod direct_runs;
