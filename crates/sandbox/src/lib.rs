//! The Clemmys sandbox: runs untrusted WebAssembly actions (WASI preview-1
//! command modules) under wasmtime, with OpenWhisk's limits and semantics.
//!
//! It owns the process's one wasm [`Sandbox`]: a wasmtime engine with a
//! pooling instance allocator and copy-on-write memory images, a cache of
//! compiled modules keyed by [`CodeDigest`], and the epoch thread that
//! enforces timeouts. [`Sandbox::run`] gives the guest its parameters as one
//! JSON object on stdin and its [`ActivationContext`] as `__OW_*`
//! environment variables, takes the last line of its stdout as its result
//! (OpenWhisk's contract for native actions) and every other stdout and
//! stderr line as a log line, and returns OpenWhisk's [`ActivationResponse`]
//! (success, application error or developer error, with OpenWhisk's
//! messages for timeouts, memory exhaustion and bad output).
//!
//! # Trust
//!
//! The sandbox sees action code, parameters, results and logs **in the
//! clear**: in a confidential deployment it runs inside the enclave
//! boundary, and nothing it returns may leave the enclave unsealed. For the
//! same reason it logs nothing derived from guest code or data (no trap
//! backtraces, no output) through `tracing`.
//!
//! The guest is untrusted. It never gets a filesystem (no preopens), network
//! (TCP, UDP and name lookup are refused), environment variables beyond
//! its activation context, arguments or clocks beyond WASI's own; its
//! memory, tables, log and result sizes and its wall-clock time are capped; and nothing is shared between
//! activations: each run gets a fresh store, instance and linear memory, and
//! a memory slot is reset before it is reused.
//!
//! Timeouts are epoch interruptions, which stop a guest while it runs wasm
//! code. The only host call that can block, a WASI sleep (`poll_oneoff` on
//! a clock), is the sandbox's own: it never sleeps past the activation's
//! deadline, so a sleeping guest is stopped at its time limit too.
//!
//! # Use
//!
//! ```no_run
//! use clemmys_sandbox::{CodeDigest, RunRequest, Sandbox, SandboxConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(&SandboxConfig::default())?;
//! let code = std::fs::read("hello.wasm")?;
//! sandbox.validate(&code)?; // at deploy time
//! let prepared = sandbox.prepare(CodeDigest::of(&code), &code)?; // compiles once
//! let outcome = sandbox.run(
//!     &prepared.module,
//!     RunRequest { input: br#"{"name":"world"}"#.to_vec(), ..RunRequest::default() },
//! );
//! println!("{:?} {:?}", outcome.response, outcome.logs);
//! # Ok(())
//! # }
//! ```
//!
//! [`ActivationResponse`]: clemmys_whisk::ActivationResponse

mod cache;
mod capture;
mod config;
mod context;
mod digest;
mod error;
pub mod javascript;
mod limiter;
mod outcome;
mod poll;
mod run;
mod sandbox;
mod tier;
mod validate;

pub use cache::{Prepared, PreparedModule, Tier};
pub use config::{Compiler, SandboxConfig};
pub use context::ActivationContext;
pub use digest::{CodeDigest, InvalidDigest};
pub use error::{InvalidModule, SandboxError};
pub use outcome::{Failure, interpret};
pub use run::{IdleInstance, RunLimits, RunOutcome, RunRequest};
pub use sandbox::Sandbox;
