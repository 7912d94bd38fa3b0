//! The gateway's long-lived secrets, kept on the provider's disk sealed
//! under its enclave's sealing key: its client identity (the Ed25519 key
//! the broker and enclaves know it by), its TLS key (the one its RA-TLS
//! certificate binds), the key its credentials are MACed under
//! ([`crate::credentials`]) and the owner it was first started for. A
//! restarted gateway of the same measurement on the same platform opens
//! them and presents the same identity and key, so delegations, pinned
//! certificates and credentials survive restarts; any other program (or
//! platform) cannot open them.
//!
//! The owner is sealed with the identity it was made with and cannot
//! change: an owner's delegation names that identity, and a provider who
//! restarted the same gateway without `--owner` (test mode, which accepts
//! namespace keys) or for itself would otherwise inherit the delegation.
//!
//! The credentials the owner revoked are a second sealed file
//! ([`Revocations`]), versioned against the TEE's monotonic counter so
//! that restoring an older copy (un-revoking) is refused at start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;
use std::sync::Arc;

use clemmys_proto::ClientId;
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::wire::{Reader, Writer};
use clemmys_tee::{CounterError, Tee, os_rng};
use zeroize::Zeroizing;

use crate::credentials::{CredentialKey, MAX_UUID_LEN};

/// The file holding the sealed secrets.
pub const SECRETS_FILE: &str = "gateway.sealed";
/// The file holding the sealed list of revoked credentials.
pub const REVOKED_FILE: &str = "revoked.sealed";
/// The secrets of gateways from before credentials: no credential key and
/// no owner binding; refused rather than upgraded (see [`SealedStateError::Outdated`]).
const FRAME_V1: &str = "clemmys/gateway-secrets/v1";
const FRAME: &str = "clemmys/gateway-secrets/v2";
const AAD: &[u8] = b"clemmys/gateway-secrets-aad/v1";
const REVOKED_FRAME: &str = "clemmys/gateway-revoked/v1";
const REVOKED_AAD: &[u8] = b"clemmys/gateway-revoked-aad/v1";
/// The most revoked credentials kept.
const MAX_REVOKED: usize = 4096;

/// The secrets could not be read, opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedStateError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not open under this enclave's sealing key: another
    /// measurement or platform sealed it, or it was altered.
    #[error(
        "{} does not open under this gateway's sealing key (sealed by another program or platform, or altered)",
        path.display()
    )]
    NotOpened {
        /// The file.
        path: PathBuf,
    },
    /// A new TLS key could not be made, or the stored one is not a key.
    #[error("the gateway's TLS key: {0}")]
    TlsKey(#[from] rcgen::Error),
    /// The secrets were sealed by a gateway from before credentials, which
    /// bound no owner: upgrading them would let a provider restart an
    /// owner's gateway in test mode under the identity the owner trusts.
    #[error(
        "{} was sealed by an older gateway (without credentials): start on a new state directory, and have the owner authorize its new identity",
        path.display()
    )]
    Outdated {
        /// The file.
        path: PathBuf,
    },
    /// The gateway was made for another owner (or none) than it is started
    /// for now.
    #[error(
        "this gateway's state was made for owner {}, and it is started for {}: an owner is fixed when the gateway's identity is made (start on a new state directory)",
        owner_text(.sealed),
        owner_text(.configured)
    )]
    OwnerChanged {
        /// The owner sealed with the identity.
        sealed: Option<ClientId>,
        /// The one asked for now.
        configured: Option<ClientId>,
    },
    /// The revocation list is older than the TEE's counter says: an old
    /// copy was restored.
    #[error(
        "the revoked credentials are at version {state_version}, but the monotonic counter is at {counter}: an older copy was restored"
    )]
    RolledBack {
        /// The version of the file found.
        state_version: u64,
        /// The counter's value.
        counter: u64,
    },
    /// The monotonic counter failed.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// The revocation list is full.
    #[error("no more than {MAX_REVOKED} credentials can be revoked")]
    TooManyRevoked,
}

fn owner_text(owner: &Option<ClientId>) -> String {
    owner.map_or_else(|| "none (test mode)".to_owned(), |id| id.to_string())
}

/// The gateway's secrets, open inside the enclave.
pub struct GatewaySecrets {
    /// Its client identity.
    pub identity: ClientIdentity,
    /// Its TLS key.
    pub tls_key: rcgen::KeyPair,
    /// The key its credentials are MACed under.
    pub credential_key: CredentialKey,
    /// The owner it acts for, fixed when it was made.
    pub owner: Option<ClientId>,
}

impl std::fmt::Debug for GatewaySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySecrets")
            .field("identity", &self.identity.id())
            .finish_non_exhaustive()
    }
}

impl GatewaySecrets {
    /// Opens the secrets sealed in `dir`, or makes and seals new ones
    /// there on first start, for `owner`; refuses secrets made for another
    /// owner.
    pub fn load_or_create(
        dir: &Path,
        tee: &dyn Tee,
        owner: Option<ClientId>,
    ) -> Result<Self, SealedStateError> {
        let path = dir.join(SECRETS_FILE);
        let io = |source| SealedStateError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(sealed) => {
                let secrets = Self::open(&sealed, tee, &path)?;
                if secrets.owner != owner {
                    return Err(SealedStateError::OwnerChanged {
                        sealed: secrets.owner,
                        configured: owner,
                    });
                }
                Ok(secrets)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let secrets = Self {
                    identity: ClientIdentity::generate(&mut os_rng()),
                    tls_key: rcgen::KeyPair::generate()?,
                    credential_key: CredentialKey::generate(&mut os_rng()),
                    owner,
                };
                let plaintext = Zeroizing::new(
                    Writer::new(FRAME)
                        .bytes(secrets.identity.secret_bytes().as_slice())
                        .bytes(&Zeroizing::new(secrets.tls_key.serialize_der()))
                        .bytes(secrets.credential_key.secret_bytes())
                        .bytes(owner.as_ref().map_or(&[][..], |id| id.as_bytes()))
                        .finish(),
                );
                let sealed = tee
                    .sealing_key()
                    .seal(&plaintext, AAD, &mut os_rng())
                    .map_err(|_| SealedStateError::NotOpened { path: path.clone() })?;
                write_private(&path, &sealed).map_err(io)?;
                Ok(secrets)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn open(sealed: &[u8], tee: &dyn Tee, path: &Path) -> Result<Self, SealedStateError> {
        let not_opened = || SealedStateError::NotOpened {
            path: path.to_owned(),
        };
        let plaintext = tee
            .sealing_key()
            .open(sealed, AAD, "gateway secrets")
            .map_err(|_| not_opened())?;
        let Ok(mut reader) = Reader::new(&plaintext, FRAME) else {
            if Reader::new(&plaintext, FRAME_V1).is_ok() {
                return Err(SealedStateError::Outdated {
                    path: path.to_owned(),
                });
            }
            return Err(not_opened());
        };
        let identity: Zeroizing<[u8; 32]> =
            Zeroizing::new(reader.array().map_err(|_| not_opened())?);
        let tls_der = Zeroizing::new(reader.bytes().map_err(|_| not_opened())?.to_vec());
        let credential_key: Zeroizing<[u8; 32]> =
            Zeroizing::new(reader.array().map_err(|_| not_opened())?);
        let owner = match reader.bytes().map_err(|_| not_opened())? {
            [] => None,
            bytes => Some(ClientId(bytes.try_into().map_err(|_| not_opened())?)),
        };
        reader.finish().map_err(|_| not_opened())?;
        Ok(Self {
            identity: ClientIdentity::from_secret(&identity),
            tls_key: rcgen::KeyPair::try_from(tls_der.as_slice())?,
            credential_key: CredentialKey::from_bytes(&credential_key),
            owner,
        })
    }
}

/// The UUIDs of the credentials the owner revoked, sealed in
/// [`REVOKED_FILE`] with a version that the TEE's monotonic counter
/// follows. (With `sim`, the counter is a file the provider can restore
/// too: see [`clemmys_tee::sim::SimTee::with_counter_file`].)
pub struct Revocations {
    path: PathBuf,
    tee: Arc<dyn Tee>,
    version: u64,
    revoked: BTreeSet<String>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("version", &self.version)
            .field("revoked", &self.revoked.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Opens the list sealed in `dir` (none yet: empty, at version 0), and
    /// refuses it when the counter is past its version.
    pub fn load(dir: &Path, tee: Arc<dyn Tee>) -> Result<Self, SealedStateError> {
        let path = dir.join(REVOKED_FILE);
        let not_opened = || SealedStateError::NotOpened { path: path.clone() };
        let (version, revoked) = match std::fs::read(&path) {
            Ok(sealed) => {
                let plaintext = tee
                    .sealing_key()
                    .open(&sealed, REVOKED_AAD, "gateway revocations")
                    .map_err(|_| not_opened())?;
                let mut reader =
                    Reader::new(&plaintext, REVOKED_FRAME).map_err(|_| not_opened())?;
                let version = reader.u64().map_err(|_| not_opened())?;
                let count = reader.u64().map_err(|_| not_opened())?;
                let mut revoked = BTreeSet::new();
                for _ in 0..count.min(MAX_REVOKED as u64) {
                    revoked.insert(reader.str().map_err(|_| not_opened())?.to_owned());
                }
                reader.finish().map_err(|_| not_opened())?;
                (version, revoked)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (0, BTreeSet::new()),
            Err(source) => return Err(SealedStateError::Io { path, source }),
        };
        let counter = tee.read_counter()?;
        if version < counter {
            return Err(SealedStateError::RolledBack {
                state_version: version,
                counter,
            });
        }
        // A write whose counter step a crash lost: the counter catches up.
        tee.advance_counter(version)?;
        Ok(Self {
            path,
            tee,
            version,
            revoked,
        })
    }

    /// Whether the credential of `uuid` was revoked.
    pub fn contains(&self, uuid: &str) -> bool {
        self.revoked.contains(uuid)
    }

    /// Revokes the credential of `uuid`: sealed to disk and the counter
    /// advanced before it returns. Answers whether it was new.
    pub fn revoke(&mut self, uuid: &str) -> Result<bool, SealedStateError> {
        if self.revoked.contains(uuid) {
            return Ok(false);
        }
        if self.revoked.len() >= MAX_REVOKED || uuid.len() > MAX_UUID_LEN {
            return Err(SealedStateError::TooManyRevoked);
        }
        let version = self
            .version
            .checked_add(1)
            .ok_or(SealedStateError::TooManyRevoked)?;
        let mut revoked = self.revoked.clone();
        revoked.insert(uuid.to_owned());
        let mut writer = Writer::new(REVOKED_FRAME)
            .u64(version)
            .u64(revoked.len() as u64);
        for uuid in &revoked {
            writer = writer.str(uuid);
        }
        let sealed = self
            .tee
            .sealing_key()
            .seal(&writer.finish(), REVOKED_AAD, &mut os_rng())
            .map_err(|_| SealedStateError::NotOpened {
                path: self.path.clone(),
            })?;
        write_private(&self.path, &sealed).map_err(|source| SealedStateError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.tee.advance_counter(version)?;
        self.version = version;
        self.revoked = revoked;
        Ok(true)
    }
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use clemmys_tee::sim::{SimPlatform, SimTee};
    use rcgen::PublicKeyData as _;

    use clemmys_proto::identity::ClientIdentity;

    use super::*;

    #[test]
    fn secrets_survive_a_restart_and_open_only_for_their_enclave() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let tee = SimTee::new(platform.clone(), &[1; 32]);
        let first = GatewaySecrets::load_or_create(dir.path(), &tee, None).expect("created");
        let again = GatewaySecrets::load_or_create(dir.path(), &tee, None).expect("opened");
        assert_eq!(first.identity.id(), again.identity.id());
        assert_eq!(
            first.tls_key.subject_public_key_info(),
            again.tls_key.subject_public_key_info()
        );
        let sealed = std::fs::read(dir.path().join(SECRETS_FILE)).expect("file");
        let secret = first.identity.secret_bytes();
        assert!(
            !sealed.windows(32).any(|window| window == secret.as_slice()),
            "the identity key is on disk in the clear"
        );
        // Another program on the same platform cannot open them.
        assert_eq!(
            first.credential_key.secret_bytes(),
            again.credential_key.secret_bytes()
        );
        let other = SimTee::new(platform, &[2; 32]);
        assert!(matches!(
            GatewaySecrets::load_or_create(dir.path(), &other, None),
            Err(SealedStateError::NotOpened { .. })
        ));
    }

    #[test]
    fn a_gateway_made_for_an_owner_cannot_restart_for_none_or_another() {
        let dir = tempfile::tempdir().expect("dir");
        let tee = SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]);
        let owner = ClientIdentity::generate(&mut os_rng()).id();
        let made = GatewaySecrets::load_or_create(dir.path(), &tee, Some(owner)).expect("made");
        assert_eq!(made.owner, Some(owner));
        for other in [None, Some(ClientIdentity::generate(&mut os_rng()).id())] {
            assert!(matches!(
                GatewaySecrets::load_or_create(dir.path(), &tee, other),
                Err(SealedStateError::OwnerChanged { .. })
            ));
        }
        // And a test-mode gateway does not become an owner's.
        let test_mode = tempfile::tempdir().expect("dir");
        GatewaySecrets::load_or_create(test_mode.path(), &tee, None).expect("made");
        assert!(matches!(
            GatewaySecrets::load_or_create(test_mode.path(), &tee, Some(owner)),
            Err(SealedStateError::OwnerChanged { .. })
        ));
    }

    #[test]
    fn secrets_of_the_version_without_credentials_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let tee = SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]);
        let v1 = Writer::new(FRAME_V1).bytes(&[3; 32]).bytes(b"der").finish();
        let sealed = tee
            .sealing_key()
            .seal(&v1, AAD, &mut os_rng())
            .expect("sealed");
        std::fs::write(dir.path().join(SECRETS_FILE), sealed).expect("written");
        assert!(matches!(
            GatewaySecrets::load_or_create(dir.path(), &tee, None),
            Err(SealedStateError::Outdated { .. })
        ));
    }

    #[test]
    fn revocations_survive_a_restart_and_a_restored_copy_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let counter = dir.path().join("gateway.counter");
        let tee = || -> Arc<dyn Tee> {
            Arc::new(SimTee::with_counter_file(platform.clone(), &[1; 32], &counter).expect("tee"))
        };
        let mut revocations = Revocations::load(dir.path(), tee()).expect("empty");
        assert!(!revocations.contains("a"));
        assert!(revocations.revoke("a").expect("revoked"));
        let old = std::fs::read(dir.path().join(REVOKED_FILE)).expect("file");
        assert!(!revocations.revoke("a").expect("again"));
        assert!(revocations.revoke("b").expect("revoked"));
        let reopened = Revocations::load(dir.path(), tee()).expect("reopened");
        assert!(reopened.contains("a") && reopened.contains("b"));
        // The provider restores the copy from before "b" was revoked.
        std::fs::write(dir.path().join(REVOKED_FILE), &old).expect("restored");
        assert!(matches!(
            Revocations::load(dir.path(), tee()),
            Err(SealedStateError::RolledBack {
                state_version: 1,
                counter: 2
            })
        ));
        // Or deletes it.
        std::fs::remove_file(dir.path().join(REVOKED_FILE)).expect("removed");
        assert!(matches!(
            Revocations::load(dir.path(), tee()),
            Err(SealedStateError::RolledBack { .. })
        ));
    }
}
