//! The sandbox's errors: code that is not a runnable action
//! ([`InvalidModule`]) and failures to set up or prepare one
//! ([`SandboxError`]).
//!
//! A failure *of a run* (trap, timeout, bad output) is not an error here: it
//! is an [`ActivationResponse`](clemmys_whisk::ActivationResponse) inside a
//! [`RunOutcome`](crate::RunOutcome).

use clemmys_whisk::{ActivationResponse, ActivationStatus};

use crate::CodeDigest;

/// Code that cannot be deployed as a Clemmys action. The message names what
/// is wrong with the code, for its owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidModule {
    /// The bytes do not start with the WebAssembly magic number.
    #[error("the code is not a WebAssembly module (missing \\0asm magic)")]
    NotWasm,
    /// The bytes are WebAssembly but do not validate.
    #[error("the code is not a valid WebAssembly module: {0}")]
    Malformed(String),
    /// The module exports no function to run.
    #[error(
        "the module is not a WASI command: it exports no `{entry}` function{}",
        if entry == "_start" { " (build it for wasm32-wasip1 as a binary)" } else { "" }
    )]
    MissingEntry {
        /// The export that was looked for.
        entry: String,
    },
    /// The module imports something the sandbox does not provide.
    #[error(
        "the module imports `{module}::{name}`, but actions may only import \
         WASI preview-1 functions (`wasi_snapshot_preview1`)"
    )]
    ForeignImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
}

/// A failure of the sandbox itself or of preparing a module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The wasmtime engine could not be created (for example the pooling
    /// allocator could not reserve its address space).
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The code is not a runnable action.
    #[error(transparent)]
    Invalid(#[from] InvalidModule),
    /// The code's SHA-256 is not the digest it was prepared under.
    #[error("the code does not match its digest {expected} (it hashes to {actual})")]
    DigestMismatch {
        /// The digest the caller gave.
        expected: CodeDigest,
        /// The digest of the bytes.
        actual: CodeDigest,
    },
    /// Compiling the module failed.
    #[error("the module failed to compile: {0}")]
    Compile(String),
    /// The module's imports could not be satisfied by WASI preview 1.
    #[error("the module cannot be linked against WASI preview 1: {0}")]
    Link(String),
}

impl SandboxError {
    /// The activation response to report when preparing an action failed:
    /// problems with the code are the developer's, the rest are ours.
    pub fn to_response(&self) -> ActivationResponse {
        let status = match self {
            Self::Engine(_) => ActivationStatus::InternalError,
            Self::DigestMismatch { .. } => ActivationStatus::InternalError,
            Self::Invalid(_) | Self::Compile(_) | Self::Link(_) => ActivationStatus::DeveloperError,
        };
        ActivationResponse::error(status, self.to_string())
    }
}
