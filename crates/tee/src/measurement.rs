//! Measurements of the enclaves Clemmys runs.
//!
//! A hardware TEE measures the enclave binary itself (SGX's MRENCLAVE). The
//! `sim` backend has nothing to measure with, so an enclave's measurement
//! is defined as a digest of what determines its behaviour: its role, the
//! Clemmys release, the sandbox engine and the enclave configuration. A
//! client computes the same value from its own release to know what a
//! genuine `sim` enclave of that release reports; any change of release or
//! configuration changes it. It is a `sim` [`Measurement`]: no `sgx-dcap`
//! policy or pin is met by it, whatever its digest.

use clemmys_proto::Measurement;
use clemmys_proto::wire::Writer;

/// What an enclave does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs confidential actions.
    ActionRuntime,
    /// Holds action keys and policies (the key broker).
    KeyBroker,
    /// Terminates TLS for unmodified OpenWhisk clients and seals for them
    /// (the attested gateway).
    Gateway,
}

impl Role {
    /// Its name, as measured.
    pub fn name(self) -> &'static str {
        match self {
            Role::ActionRuntime => "action-runtime",
            Role::KeyBroker => "key-broker",
            Role::Gateway => "gateway",
        }
    }
}

/// The sandbox engine the action runtime embeds; part of its measurement.
pub const SANDBOX_ENGINE: &str = "wasmtime-48; wasi-p1; pooling; cow; epoch-interruption";

/// The digest a genuine `sim` enclave of this release reports for `role`.
pub fn expected_digest(role: Role) -> [u8; 32] {
    let transcript = Writer::new("clemmys/measurement/v1")
        .str(role.name())
        .str(env!("CARGO_PKG_VERSION"))
        .str(SANDBOX_ENGINE)
        .finish();
    clemmys_proto::Digest::of(&transcript).0
}

/// The measurement a genuine `sim` enclave of this release reports for
/// `role`.
pub fn expected(role: Role) -> Measurement {
    Measurement::sim(expected_digest(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_distinct_stable_measurements() {
        assert_ne!(expected(Role::ActionRuntime), expected(Role::KeyBroker));
        assert_ne!(expected(Role::Gateway), expected(Role::KeyBroker));
        assert_ne!(expected(Role::Gateway), expected(Role::ActionRuntime));
        assert_eq!(expected(Role::KeyBroker), expected(Role::KeyBroker));
    }
}
