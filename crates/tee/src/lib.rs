//! Trusted execution environments: producing attestation evidence inside an
//! enclave ([`Tee`]) and verifying it outside ([`Verifier`]).
//!
//! Backends:
//! * [`sim`]: a software simulation for machines without SGX/SEV/TDX. Its
//!   evidence is signed by a per-host platform key that the provider holds,
//!   so it exercises the whole protocol but gives **no hardware protection**:
//!   the provider can forge it, read enclave memory and change the code.
//!   Every surface that shows sim attestation says so ([`SIM_WARNING`]).
//! * [`sgx`]: Intel SGX DCAP quotes, verified with the `dcap-qvl` crate
//!   against Intel's production root ([`Verifier::trust_sgx_dcap`]). Only
//!   the verifier side exists: producing quotes needs SGX hardware and a
//!   runtime such as Gramine (`docs/SGX.md`).
//!
//! A [`VerifiedEvidence`] can only come out of [`Verifier::verify`]: code
//! that holds one knows the evidence was checked.

pub mod measurement;
pub mod sgx;
pub mod sim;
mod verify;

pub use clemmys_proto::suite::StorageKey;
pub use clemmys_proto::{Evidence, Measurement, TeeKind};
pub use measurement::Role;
pub use sgx::SgxPolicy;
pub use verify::{AttestError, VerifiedEvidence, Verifier};

/// What every output showing `sim` attestation must say.
pub const SIM_WARNING: &str = "SIMULATED TEE: this evidence was made by software with a key the \
provider holds. It gives NO hardware protection: the provider can read and change the code, the \
data and the results.";

/// An enclave's access to its TEE.
pub trait Tee: Send + Sync + 'static {
    /// The kind of evidence it produces.
    fn kind(&self) -> TeeKind;
    /// The measurement its evidence reports.
    fn measurement(&self) -> Measurement;
    /// Evidence binding `report_data` (a hash of the enclave's public keys)
    /// to this enclave's measurement.
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError>;
    /// A key only enclaves of this measurement on this platform can derive,
    /// for data the enclave stores outside itself (SGX's sealing key).
    fn sealing_key(&self) -> StorageKey;
    /// The enclave's monotonic counter: what sealed state it wrote last, so
    /// that a copy of older state (a rollback) is refused. Sealing hides and
    /// authenticates data at rest but cannot say it is the newest copy.
    fn read_counter(&self) -> Result<u64, CounterError>;
    /// Raises the counter to `value` (never lowers it); answers the value
    /// it now holds. Only once it returns may the enclave act on state of
    /// that version.
    fn advance_counter(&self, value: u64) -> Result<u64, CounterError>;
    /// Raises the counter to `value` only if it still holds `expected`
    /// (and `value` is above it), in one step no other caller can come
    /// between (a TPM's `PolicyNV`-guarded write; a lock in `sim`).
    /// Answers `Ok(())` when it did, else `Err` with the value it holds:
    /// two enclaves that both read `expected` and then both write cannot
    /// both succeed, which [`Tee::advance_counter`] cannot tell them.
    fn compare_and_advance_counter(
        &self,
        expected: u64,
        value: u64,
    ) -> Result<Result<(), u64>, CounterError>;
}

/// The monotonic counter could not be read or advanced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CounterError {
    /// Its storage failed.
    #[error("monotonic counter {path}: {source}")]
    Io {
        /// Where it is kept.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Its storage holds something that is not a counter.
    #[error("monotonic counter {0} is corrupted")]
    Corrupted(String),
}

/// The operating system's RNG as the infallible `CryptoRng` the protocol
/// takes. It panics if the OS cannot supply randomness: nothing secure can
/// go on without it.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
