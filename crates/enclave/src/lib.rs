//! The enclave runtime: the only server-side code that sees plaintext.
//!
//! An [`Enclave`]'s interface to the untrusted host ([`Enclave::run`],
//! [`Enclave::prewarm`]) takes and returns sealed bytes only. Inside, it
//! generates and attests its keys, obtains the key of the one action it
//! serves, bound to its evidence, opens sealed code and parameters, checks
//! versions, clients and replay, runs the function in the wasm [`Sandbox`]
//! (a fresh instance per activation, several at once), and seals the
//! result, the logs and a signed receipt to the invoking client. Key
//! material lives in zeroizing types, dropped with the enclave. So does a
//! confidential JavaScript action's bytecode, which the enclave compiles
//! from the opened source once per version and never hands to the host.
//!
//! Which enclave serves which action, and for how long, is the host's
//! business: the invoker's enclave pool (`clemmys_invoker::pool`), which
//! never sees what the enclaves hold, lives outside this trusted crate.
//!
//! With the `sim` TEE all of this runs in the provider's process and
//! protects nothing from the provider; with a hardware TEE each [`Enclave`]
//! runs inside its own enclave boundary.
//!
//! [`Sandbox`]: clemmys_sandbox::Sandbox

mod enclave;
mod error;

pub use enclave::{Enclave, SESSION_LEASE, SESSION_LEASE_USES, SealedOutcome, SealedRun};
pub use error::{CompileFailure, EnclaveError, GENERIC_COMPILE_ERROR};
