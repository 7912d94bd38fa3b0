//! The simulated TEE. **It gives no hardware protection.**
//!
//! A [`SimPlatform`] stands in for the CPU: it holds an Ed25519 key (kept in
//! the data directory, readable by the provider) and signs reports binding
//! a measurement to 64 bytes of report data. Verifiers trust the platform
//! keys they are configured with. This makes every protocol step (evidence,
//! key release bound to it, receipts) run exactly as with hardware, and
//! lets tests forge, tamper and replay evidence; it cannot stop a provider
//! who holds the platform key or reads the process memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{Evidence, Measurement, ProtoError, SigningPublicKey, TeeKind};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::{AttestError, CounterError, StorageKey, Tee};

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

    /// A report binding `report_data` to the `sim` measurement `digest`.
    /// The platform signs whatever digest it is given: a `sim` measurement
    /// is a claim of the provider's software, and is typed as one (it never
    /// equals an `sgx-dcap` measurement of the same digest).
    pub fn report(&self, digest: &[u8; 32], report_data: &[u8; 64]) -> Evidence {
        let signature = self.key.sign(&signed_part(digest, report_data)).to_bytes();
        let data = Writer::new(REPORT)
            .bytes(digest)
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

fn signed_part(digest: &[u8; 32], report_data: &[u8; 64]) -> Vec<u8> {
    Writer::new("clemmys/sim-report-sig/v1")
        .bytes(digest)
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
            measurement: Measurement::sim(reader.array()?),
            report_data: reader.array()?,
            platform: SigningPublicKey(reader.array()?),
            signature: reader.array()?,
        };
        reader.finish()?;
        Ok(report)
    }

    pub(crate) fn verify_signature(&self) -> Result<(), ProtoError> {
        self.platform.verify(
            &signed_part(self.measurement.digest(), &self.report_data),
            &self.signature,
            "sim report",
        )
    }
}

/// The platform key that signed `evidence`, if it is a well-formed `sim`
/// report (before any verification: for showing it, and for a verifier
/// that trusts it on first use, as `sim` cannot avoid).
pub fn claimed_platform(evidence: &Evidence) -> Option<SigningPublicKey> {
    if evidence.tee != TeeKind::Sim {
        return None;
    }
    SimReport::parse(&evidence.data)
        .ok()
        .map(|report| report.platform)
}

/// An enclave's view of the simulated TEE.
pub struct SimTee {
    platform: Arc<SimPlatform>,
    measurement: Measurement,
    counter: SimCounter,
}

/// The simulated monotonic counter. **It gives no protection against a
/// provider**: the file lives in the provider's data directory, and a
/// provider who restores an old copy of it along with old sealed state
/// rolls both back undetected (hardware counters, or a quorum of broker
/// replicas, are the answer: `docs/SGX.md`). It still catches a restore of
/// the sealed state alone, and exercises the protocol.
struct SimCounter {
    /// `None`: in memory only (tests, fuzzing).
    path: Option<PathBuf>,
    value: Mutex<u64>,
}

impl SimTee {
    /// An enclave whose `sim` measurement is `digest`, on `platform`, with
    /// a counter in memory only (it starts at 0 in every process).
    pub fn new(platform: Arc<SimPlatform>, digest: &[u8; 32]) -> Self {
        Self {
            platform,
            measurement: Measurement::sim(*digest),
            counter: SimCounter {
                path: None,
                value: Mutex::new(0),
            },
        }
    }

    /// An enclave whose `sim` measurement is `digest` and whose monotonic
    /// counter is the file `path` (created at 0 if absent). The provider can
    /// restore that file, so this gives **no protection** against a provider.
    pub fn with_counter_file(
        platform: Arc<SimPlatform>,
        digest: &[u8; 32],
        path: &Path,
    ) -> Result<Self, CounterError> {
        let value = match std::fs::read(path) {
            Ok(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| CounterError::Corrupted(path.display().to_string()))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(CounterError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(Self {
            platform,
            measurement: Measurement::sim(*digest),
            counter: SimCounter {
                path: Some(path.to_owned()),
                value: Mutex::new(value),
            },
        })
    }
}

/// Writes the counter atomically: a temporary file, synced, renamed over.
fn write_counter(path: &Path, value: u64) -> Result<(), CounterError> {
    use std::io::Write;
    let io = |source| CounterError::Io {
        path: path.display().to_string(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(&value.to_be_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

impl Tee for SimTee {
    fn kind(&self) -> TeeKind {
        TeeKind::Sim
    }

    fn measurement(&self) -> Measurement {
        self.measurement
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Ok(self.platform.report(self.measurement.digest(), report_data))
    }

    /// Derived from the platform key, which the provider can read: sealed
    /// data is only as safe as that file.
    fn sealing_key(&self) -> StorageKey {
        let secret = Zeroizing::new(self.platform.key.to_bytes());
        let hkdf =
            hkdf::Hkdf::<sha2::Sha256>::new(Some(self.measurement.digest()), secret.as_slice());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        hkdf.expand(b"clemmys/sim-sealing-key/v1", key.as_mut_slice())
            .expect("32-byte HKDF output");
        StorageKey::from_bytes(*key)
    }

    fn read_counter(&self) -> Result<u64, CounterError> {
        Ok(*self
            .counter
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes the file (when there is one) before answering.
    fn advance_counter(&self, value: u64) -> Result<u64, CounterError> {
        let mut current = self
            .counter
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if value > *current {
            if let Some(path) = &self.counter.path {
                write_counter(path, value)?;
            }
            *current = value;
        }
        Ok(*current)
    }

    /// Under the same lock as [`SimTee::advance_counter`], so within one
    /// process; two processes on one counter file are not serialized.
    fn compare_and_advance_counter(
        &self,
        expected: u64,
        value: u64,
    ) -> Result<Result<(), u64>, CounterError> {
        let mut current = self
            .counter
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current != expected || value <= expected {
            return Ok(Err(*current));
        }
        if let Some(path) = &self.counter.path {
            write_counter(path, value)?;
        }
        *current = value;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_only_goes_up_and_persists_in_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broker.counter");
        let platform = Arc::new(SimPlatform::generate());
        let tee = SimTee::with_counter_file(platform.clone(), &[1; 32], &path).expect("counter");
        assert_eq!(tee.read_counter().expect("read"), 0);
        assert_eq!(tee.advance_counter(5).expect("advance"), 5);
        assert_eq!(tee.advance_counter(3).expect("never lowered"), 5);
        assert_eq!(tee.compare_and_advance_counter(4, 9).expect("read"), Err(5));
        assert_eq!(tee.compare_and_advance_counter(5, 5).expect("read"), Err(5));
        assert_eq!(tee.compare_and_advance_counter(5, 7).expect("swap"), Ok(()));
        let again = SimTee::with_counter_file(platform, &[1; 32], &path).expect("counter");
        assert_eq!(again.read_counter().expect("read"), 7);
        std::fs::write(&path, b"junk").expect("write");
        assert!(matches!(
            SimTee::with_counter_file(Arc::new(SimPlatform::generate()), &[1; 32], &path),
            Err(CounterError::Corrupted(_))
        ));
    }

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
