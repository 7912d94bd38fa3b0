//! The gateway's long-lived secrets, kept on the provider's disk sealed
//! under its enclave's sealing key: its client identity (the Ed25519 key
//! the broker and enclaves know it by) and its TLS key (the one its RA-TLS
//! certificate binds). A restarted gateway of the same measurement on the
//! same platform opens them and presents the same identity and key, so
//! delegations and pinned certificates survive restarts; any other program
//! (or platform) cannot open them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::wire::{Reader, Writer};
use clemmys_tee::{Tee, os_rng};
use zeroize::Zeroizing;

/// The file holding the sealed secrets.
pub const SECRETS_FILE: &str = "gateway.sealed";
const FRAME: &str = "clemmys/gateway-secrets/v1";
const AAD: &[u8] = b"clemmys/gateway-secrets-aad/v1";

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
}

/// The gateway's secrets, open inside the enclave.
pub struct GatewaySecrets {
    /// Its client identity.
    pub identity: ClientIdentity,
    /// Its TLS key.
    pub tls_key: rcgen::KeyPair,
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
    /// there on first start.
    pub fn load_or_create(dir: &Path, tee: &dyn Tee) -> Result<Self, SealedStateError> {
        let path = dir.join(SECRETS_FILE);
        let io = |source| SealedStateError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(sealed) => Self::open(&sealed, tee, &path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let secrets = Self {
                    identity: ClientIdentity::generate(&mut os_rng()),
                    tls_key: rcgen::KeyPair::generate()?,
                };
                let plaintext = Zeroizing::new(
                    Writer::new(FRAME)
                        .bytes(secrets.identity.secret_bytes().as_slice())
                        .bytes(&Zeroizing::new(secrets.tls_key.serialize_der()))
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
        let mut reader = Reader::new(&plaintext, FRAME).map_err(|_| not_opened())?;
        let identity: Zeroizing<[u8; 32]> =
            Zeroizing::new(reader.array().map_err(|_| not_opened())?);
        let tls_der = Zeroizing::new(reader.bytes().map_err(|_| not_opened())?.to_vec());
        reader.finish().map_err(|_| not_opened())?;
        Ok(Self {
            identity: ClientIdentity::from_secret(&identity),
            tls_key: rcgen::KeyPair::try_from(tls_der.as_slice())?,
        })
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
    use std::sync::Arc;

    use clemmys_tee::sim::{SimPlatform, SimTee};
    use rcgen::PublicKeyData as _;

    use super::*;

    #[test]
    fn secrets_survive_a_restart_and_open_only_for_their_enclave() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let tee = SimTee::new(platform.clone(), &[1; 32]);
        let first = GatewaySecrets::load_or_create(dir.path(), &tee).expect("created");
        let again = GatewaySecrets::load_or_create(dir.path(), &tee).expect("opened");
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
        let other = SimTee::new(platform, &[2; 32]);
        assert!(matches!(
            GatewaySecrets::load_or_create(dir.path(), &other),
            Err(SealedStateError::NotOpened { .. })
        ));
    }
}
