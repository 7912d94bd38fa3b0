//! Integration tests of `clemmys-tee`: one module per backend.

mod sgx;
mod sim;
