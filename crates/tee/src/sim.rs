//! The simulated TEE. **It gives no hardware protection.**
//!
//! A [`SimPlatform`] stands in for the CPU: it holds an Ed25519 key (kept in
//! the data directory, readable by the provider) and signs reports binding
//! a measurement to 64 bytes of report data. Verifiers trust the platform
//! keys they are configured with. This makes every protocol step (evidence,
//! key release bound to it, receipts) run exactly as with hardware, and
//! lets tests forge, tamper and replay evidence; it cannot stop a provider
//! who holds the platform key or reads the process memory.

use std::path::Path;
use std::sync::Arc;

use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{Evidence, Measurement, ProtoError, SigningPublicKey, TeeKind};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::{AttestError, StorageKey, Tee};

const REPORT: &str = "clemmys/sim-report/v1";

/// A simulated platform: the key that signs sim evidence on this host.
pub struct SimPlatform {
    key: SigningKey,
}

impl SimPlatform {
    /// A platform with a fresh key (tests).
    pub fn generate() -> Self {
        Self {
            key: SigningKey::generate(&mut crate::os_rng()),
        }
    }

    /// The platform whose signing key is `secret` (fixed keys for fuzzing and
    /// reproducible tests; a real host uses [`SimPlatform::load_or_create`]).
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The platform key stored at `path`, created (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "sim platform key must be 32 bytes",
                    )
                })?;
                Ok(Self::from_secret(&Zeroizing::new(secret)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let platform = Self::generate();
                let secret = Zeroizing::new(platform.key.to_bytes());
                write_private(path, secret.as_slice())?;
                Ok(platform)
            }
            Err(error) => Err(error),
        }
    }

    /// The public key verifiers must trust to accept this platform's evidence.
    pub fn public_key(&self) -> SigningPublicKey {
        SigningPublicKey(self.key.verifying_key().to_bytes())
    }

    /// A report binding `report_data` to `measurement`.
    pub fn report(&self, measurement: &Measurement, report_data: &[u8; 64]) -> Evidence {
        let signature = self
            .key
            .sign(&signed_part(measurement, report_data))
            .to_bytes();
        let data = Writer::new(REPORT)
            .bytes(measurement.as_bytes())
            .bytes(report_data)
            .bytes(self.public_key().as_bytes())
            .bytes(&signature)
            .finish();
        Evidence {
            tee: TeeKind::Sim,
            data,
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

fn signed_part(measurement: &Measurement, report_data: &[u8; 64]) -> Vec<u8> {
    Writer::new("clemmys/sim-report-sig/v1")
        .bytes(measurement.as_bytes())
        .bytes(report_data)
        .finish()
}

/// A parsed (not yet verified) sim report.
pub(crate) struct SimReport {
    pub measurement: Measurement,
    pub report_data: [u8; 64],
    pub platform: SigningPublicKey,
    pub signature: [u8; 64],
}

impl SimReport {
    pub(crate) fn parse(data: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(data, REPORT)?;
        let report = Self {
            measurement: Measurement(reader.array()?),
            report_data: reader.array()?,
            platform: SigningPublicKey(reader.array()?),
            signature: reader.array()?,
        };
        reader.finish()?;
        Ok(report)
    }

    pub(crate) fn verify_signature(&self) -> Result<(), ProtoError> {
        self.platform.verify(
            &signed_part(&self.measurement, &self.report_data),
            &self.signature,
            "sim report",
        )
    }
}

/// An enclave's view of the simulated TEE.
pub struct SimTee {
    platform: Arc<SimPlatform>,
    measurement: Measurement,
}

impl SimTee {
    /// An enclave of `measurement` on `platform`.
    pub fn new(platform: Arc<SimPlatform>, measurement: Measurement) -> Self {
        Self {
            platform,
            measurement,
        }
    }
}

impl Tee for SimTee {
    fn kind(&self) -> TeeKind {
        TeeKind::Sim
    }

    fn measurement(&self) -> Measurement {
        self.measurement
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Ok(self.platform.report(&self.measurement, report_data))
    }

    /// Derived from the platform key, which the provider can read: sealed
    /// data is only as safe as that file.
    fn sealing_key(&self) -> StorageKey {
        let secret = Zeroizing::new(self.platform.key.to_bytes());
        let hkdf =
            hkdf::Hkdf::<sha2::Sha256>::new(Some(self.measurement.as_bytes()), secret.as_slice());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        hkdf.expand(b"clemmys/sim-sealing-key/v1", key.as_mut_slice())
            .expect("32-byte HKDF output");
        StorageKey::from_bytes(*key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_key_persists_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("platform.key");
        let first = SimPlatform::load_or_create(&path).expect("create");
        let again = SimPlatform::load_or_create(&path).expect("load");
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
