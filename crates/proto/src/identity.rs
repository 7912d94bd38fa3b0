//! Long-lived and per-enclave key material: a client's signing identity,
//! an enclave's (or broker's) key pair for receiving secrets and signing
//! receipts, and the report data that binds those keys into attestation
//! evidence.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

use crate::suite::KemKeyPair;
use crate::{ClientId, KemPublicKey, ProtoError, SigningPublicKey};

/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

/// A client's identity: an Ed25519 key that signs deploys, invocations and
/// chain tickets. The secret never leaves the client.
pub struct ClientIdentity {
    signing: SigningKey,
}

impl ClientIdentity {
    /// A fresh identity.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// The identity stored as `secret`.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The secret, for storing in the client's key file.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public identity.
    pub fn id(&self) -> ClientId {
        ClientId(self.signing.verifying_key().to_bytes())
    }

    /// Signs a transcript.
    pub fn sign(&self, transcript: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(transcript).to_bytes()
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientIdentity({})", self.id())
    }
}

/// Verifies an Ed25519 signature by `signer` (32 public key bytes) over
/// `transcript`; `what` names the signed object in errors.
pub fn verify_signature(
    signer: &[u8; 32],
    transcript: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    what: &'static str,
) -> Result<(), ProtoError> {
    let key = VerifyingKey::from_bytes(signer).map_err(|_| ProtoError::InvalidKey)?;
    key.verify(transcript, &Signature::from_bytes(signature))
        .map_err(|_| ProtoError::BadSignature(what))
}

impl ClientId {
    /// Verifies this client's signature.
    pub fn verify(
        &self,
        transcript: &[u8],
        signature: &[u8; SIGNATURE_LEN],
        what: &'static str,
    ) -> Result<(), ProtoError> {
        verify_signature(&self.0, transcript, signature, what)
    }
}

impl SigningPublicKey {
    /// Verifies a signature by this key.
    pub fn verify(
        &self,
        transcript: &[u8],
        signature: &[u8; SIGNATURE_LEN],
        what: &'static str,
    ) -> Result<(), ProtoError> {
        verify_signature(&self.0, transcript, signature, what)
    }
}

/// The keys an enclave (action runtime or key broker) generates inside its
/// boundary: an HPKE key pair to receive secrets and an Ed25519 key to sign
/// receipts and grants. Their public halves are bound into its evidence.
pub struct EnclaveKeys {
    kem: KemKeyPair,
    signing: SigningKey,
}

impl EnclaveKeys {
    /// Fresh keys.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self {
            kem: KemKeyPair::generate(rng),
            signing: SigningKey::generate(rng),
        }
    }

    /// Keys restored from sealed storage (the broker's long-term identity).
    pub fn from_secrets(kem: &[u8; 32], signing: &[u8; 32]) -> Result<Self, ProtoError> {
        Ok(Self {
            kem: KemKeyPair::from_secret(kem)?,
            signing: SigningKey::from_bytes(signing),
        })
    }

    /// The secrets, for sealed storage.
    pub fn secrets(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        (
            self.kem.secret_bytes(),
            Zeroizing::new(self.signing.to_bytes()),
        )
    }

    /// The HPKE key pair.
    pub fn kem(&self) -> &KemKeyPair {
        &self.kem
    }

    /// The public keys.
    pub fn public(&self) -> EnclavePublicKeys {
        EnclavePublicKeys {
            kem: self.kem.public(),
            signing: SigningPublicKey(self.signing.verifying_key().to_bytes()),
        }
    }

    /// Signs a transcript.
    pub fn sign(&self, transcript: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(transcript).to_bytes()
    }
}

impl std::fmt::Debug for EnclaveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnclaveKeys({:?}, secrets: <redacted>)", self.public())
    }
}

/// The public keys of an enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnclavePublicKeys {
    /// Where secrets for the enclave are sealed to.
    pub kem: KemPublicKey,
    /// What its signatures verify with.
    pub signing: SigningPublicKey,
}

impl EnclavePublicKeys {
    /// The 64 bytes of report data that bind these keys into evidence:
    /// SHA-512 over a domain string and both keys.
    pub fn report_data(&self) -> [u8; 64] {
        let mut hash = Sha512::new();
        hash.update(b"clemmys/report-data/v1");
        hash.update(self.kem.as_bytes());
        hash.update(self.signing.as_bytes());
        hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::os_rng;

    #[test]
    fn signatures_verify_only_for_their_signer_and_transcript() {
        let client = ClientIdentity::generate(&mut os_rng());
        let signature = client.sign(b"transcript");
        client
            .id()
            .verify(b"transcript", &signature, "t")
            .expect("valid");
        assert!(client.id().verify(b"other", &signature, "t").is_err());
        let other = ClientIdentity::generate(&mut os_rng());
        assert!(other.id().verify(b"transcript", &signature, "t").is_err());
        let restored = ClientIdentity::from_secret(&client.secret_bytes());
        assert_eq!(restored.id(), client.id());
    }

    #[test]
    fn report_data_binds_both_keys() {
        let keys = EnclaveKeys::generate(&mut os_rng());
        let public = keys.public();
        let mut swapped = public;
        swapped.kem = EnclaveKeys::generate(&mut os_rng()).public().kem;
        assert_ne!(public.report_data(), swapped.report_data());
        let (kem, signing) = keys.secrets();
        let restored = EnclaveKeys::from_secrets(&kem, &signing).expect("valid");
        assert_eq!(restored.public(), public);
    }
}
