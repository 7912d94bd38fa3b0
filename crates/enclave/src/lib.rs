//! The enclave runtime: the only server-side code that sees plaintext.
//!
//! An [`Enclave`]'s interface to the untrusted host ([`Enclave::run`],
//! [`Enclave::prewarm`]) takes and returns sealed bytes only. Inside, it
//! generates and attests its keys, obtains the key of the one action it
//! serves, bound to its evidence, opens sealed code and parameters, checks
//! versions, clients and replay, runs the function in the wasm [`Sandbox`]
//! (a fresh instance per activation, several at once), and seals the
//! result, the logs and a signed receipt to the invoking client. Key
//! material lives in zeroizing types, dropped with the enclave.
//!
//! The [`EnclavePool`] is the host side: one per invoker, it keeps enclaves
//! started and attested ahead of time, binds one to each action (ahead of
//! its first invoke when the action is deployed), and evicts them after a
//! keep-alive that adapts to each action's invocation pattern
//! ([`KeepAlivePolicy`]). It never sees what the enclaves hold.
//!
//! With the `sim` TEE all of this runs in the provider's process and
//! protects nothing from the provider; with a hardware TEE each [`Enclave`]
//! runs inside its own enclave boundary.
//!
//! [`Sandbox`]: clemmys_sandbox::Sandbox

mod enclave;
mod error;
mod keepalive;
mod pool;

pub use enclave::{Enclave, SealedOutcome, SealedRun};
pub use error::{CompileFailure, EnclaveError, GENERIC_COMPILE_ERROR};
pub use keepalive::{IdleHistory, KeepAliveConfig, KeepAlivePolicy, Window, WindowBasis};
pub use pool::{CodeSource, EnclavePool, EnclavePoolConfig, Launcher, PoolStats};
