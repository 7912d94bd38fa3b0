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
//! The owner and the namespace are sealed with the identity it was made
//! with and cannot change: an owner's delegation names that identity, and
//! a provider who restarted the same gateway without `--owner` (test mode,
//! which accepts namespace keys) or for itself would otherwise inherit the
//! delegation; one who restarted it for another namespace of the owner's
//! would have the callers' parameters run by that namespace's action of
//! the same name.
//!
//! What changes as it runs is a second sealed file ([`SealedState`]),
//! versioned against the TEE's monotonic counter so that restoring an
//! older copy is refused at start, and so that a second instance of the
//! gateway on a copy of its state directory (same measurement, same
//! platform, same counter) stops rather than fork it: every write and
//! every request first checks that the counter is still at the version
//! this instance last read or wrote, and a write steps the counter only
//! from that version ([`Tee::compare_and_advance_counter`]), so that of
//! two instances racing from one version one wins and the other's file
//! is never accepted ([`SealedStateError::Forked`]). The credentials the owner revoked
//! ([`Revocations`]), and the gateway's client state — its broker pins,
//! its high-water marks of the broker's and actions' versions, the plan
//! versions it signed. The client's logs (the keys of the answers it can
//! still open, the secrets of its sessions) grow with every invocation
//! and are appended line by line in `STATE_DIR/client`, each line sealed
//! under the same key ([`clemmys_client::confidential::HomeVault`]). They
//! are kept, not held in memory only, so that an answer invoked before a
//! restart (a non-blocking invocation) can still be read after it; they
//! are not counter-bound, since dropping lines only loses answers
//! (availability, which the provider controls anyway) and a line cannot
//! be forged or moved to another activation.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use clemmys_client::confidential::{ConfidentialError, HomeVault};
use clemmys_proto::ClientId;
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::suite::ExportedKey;
use clemmys_proto::wire::{Reader, Writer};
use clemmys_tee::{CounterError, StorageKey, Tee, os_rng};
use zeroize::Zeroizing;

use crate::credentials::{CredentialKey, MAX_UUID_LEN};

/// The file holding the sealed secrets.
pub const SECRETS_FILE: &str = "gateway.sealed";
/// The file holding the sealed, counter-bound state.
pub const STATE_FILE: &str = "state.sealed";
/// The file that held the sealed list of revoked credentials before the
/// client state was sealed with it: read once, moved into [`STATE_FILE`].
pub const LEGACY_REVOKED_FILE: &str = "revoked.sealed";
/// The secrets of gateways from before credentials (no credential key and
/// no owner binding) and from before the namespace was bound: refused
/// rather than upgraded (see [`SealedStateError::Outdated`]).
const OLDER_FRAMES: [&str; 2] = ["clemmys/gateway-secrets/v1", "clemmys/gateway-secrets/v2"];
const FRAME: &str = "clemmys/gateway-secrets/v3";
const AAD: &[u8] = b"clemmys/gateway-secrets-aad/v1";
const REVOKED_FRAME: &str = "clemmys/gateway-revoked/v1";
const REVOKED_AAD: &[u8] = b"clemmys/gateway-revoked-aad/v1";
const REVOKED_LIST_FRAME: &str = "clemmys/gateway-revoked-list/v1";
/// A sealed state without the version it was written over: from before
/// [`SealedState`] detected forks; read, then rewritten as [`STATE_FRAME`].
const STATE_FRAME_V1: &str = "clemmys/gateway-state/v1";
const STATE_FRAME: &str = "clemmys/gateway-state/v2";
const STATE_AAD: &[u8] = b"clemmys/gateway-state-aad/v1";
/// The label of a client log line's key (the log's name, `/` and the
/// line's salt follow).
const LOG_LABEL: &str = "clemmys/gateway-client-log/v1/";
/// The bytes of a client log line's salt.
const LOG_SALT: usize = 16;
/// The entry of the key client log lines' keys derive from.
const LOG_KEY_ENTRY: &str = "log-key";
/// The entry of the revoked credentials in the sealed state.
const REVOKED_ENTRY: &str = "revoked";
/// The prefix of the client state's files in the sealed state.
const CLIENT_ENTRY: &str = "client/";
/// The most entries the sealed state holds.
const MAX_ENTRIES: u64 = 64;
/// The most revoked credentials kept.
const MAX_REVOKED: usize = 4096;
/// Each write advances the version (and the counter) by a random step in
/// `1..=MAX_STEP`, so that two instances forked from one version write
/// different versions: the file of the one whose counter step lost is
/// never the version the counter holds (but by a chance of about one in
/// `MAX_STEP / 2` when the counter later passes it). 2^64 / 2^24 leaves
/// room for some 2^40 writes.
const MAX_STEP: u64 = 1 << 24;
/// The lock file of a state directory (see [`DirLock`]).
pub const LOCK_FILE: &str = "gateway.lock";

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
    /// The secrets were sealed by an older gateway, which bound no owner
    /// or no namespace: upgrading them would let a provider restart an
    /// owner's gateway in test mode, or for another namespace, under the
    /// identity the owner trusts (and the older file stays a copy the
    /// provider could put back).
    #[error(
        "{} was sealed by an older gateway (which did not bind its owner and namespace): start on a new state directory, and have the owner authorize its new identity",
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
    /// The gateway was made for another namespace than it is started for
    /// now.
    #[error(
        "this gateway's state was made for namespace {sealed}, and it is started for {configured}: a namespace is fixed when the gateway's identity is made (start on a new state directory)"
    )]
    NamespaceChanged {
        /// The namespace sealed with the identity.
        sealed: String,
        /// The one asked for now.
        configured: String,
    },
    /// The sealed state (revoked credentials, client state) is older than
    /// the TEE's counter says: an old copy was restored.
    #[error(
        "the gateway's sealed state is at version {state_version}, but the monotonic counter is at {counter}: an older copy was restored"
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
    /// The sealed state has no room for another entry (or version).
    #[error("the gateway's sealed state is full")]
    StateFull,
    /// The monotonic counter is not at the version of the sealed state
    /// this instance last read or wrote (or at the one a file found at
    /// start was written over): another instance of this gateway, on a
    /// copy of its state directory, wrote its own state. The instance
    /// that finds it stops writing and serving.
    #[error(
        "the gateway's sealed state is at version {state_version}, but the monotonic counter is at {counter}: another instance of this gateway (on a copy of its state directory) wrote its own state; this one stops"
    )]
    Forked {
        /// The version this instance holds (or found on disk).
        state_version: u64,
        /// The counter's value.
        counter: u64,
    },
    /// Another process holds the state directory's lock.
    #[error(
        "{} is held by another gateway process: stop it first (two gateways on one state directory overwrite each other's state)",
        path.display()
    )]
    InUse {
        /// The lock file.
        path: PathBuf,
    },
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
    /// The namespace it serves, fixed when it was made.
    pub namespace: String,
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
    /// there on first start, for `owner` and `namespace`; refuses secrets
    /// made for another owner or namespace.
    pub fn load_or_create(
        dir: &Path,
        tee: &dyn Tee,
        owner: Option<ClientId>,
        namespace: &str,
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
                if secrets.namespace != namespace {
                    return Err(SealedStateError::NamespaceChanged {
                        sealed: secrets.namespace,
                        configured: namespace.to_owned(),
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
                    namespace: namespace.to_owned(),
                };
                let plaintext = Zeroizing::new(
                    Writer::new(FRAME)
                        .bytes(secrets.identity.secret_bytes().as_slice())
                        .bytes(&Zeroizing::new(secrets.tls_key.serialize_der()))
                        .bytes(secrets.credential_key.secret_bytes())
                        .bytes(owner.as_ref().map_or(&[][..], |id| id.as_bytes()))
                        .bytes(namespace.as_bytes())
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
            if OLDER_FRAMES
                .iter()
                .any(|older| Reader::new(&plaintext, older).is_ok())
            {
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
        let namespace = std::str::from_utf8(reader.bytes().map_err(|_| not_opened())?)
            .map_err(|_| not_opened())?
            .to_owned();
        reader.finish().map_err(|_| not_opened())?;
        Ok(Self {
            identity: ClientIdentity::from_secret(&identity),
            tls_key: rcgen::KeyPair::try_from(tls_der.as_slice())?,
            credential_key: CredentialKey::from_bytes(&credential_key),
            owner,
            namespace,
        })
    }
}

/// The gateway's state that changes as it runs, sealed in [`STATE_FILE`]
/// as named entries with a version that the TEE's monotonic counter
/// follows: every change writes the whole file and advances the counter
/// before it returns, and a file older than the counter is refused at
/// start. (With `sim`, the counter is a file the provider can restore
/// too: see [`clemmys_tee::sim::SimTee::with_counter_file`].)
///
/// It is also the vault of the gateway's client state
/// ([`HomeVault`]): the client's whole files are entries here, and its
/// log lines are sealed under the same key.
pub struct SealedState {
    path: PathBuf,
    tee: Arc<dyn Tee>,
    key: StorageKey,
    /// The key each log line's own key derives from (with a random salt
    /// per line): a line per invocation is too many for random nonces
    /// under one key.
    log_key: ExportedKey,
    current: Mutex<Versioned>,
}

/// The entries at one version.
struct Versioned {
    version: u64,
    entries: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// `Some(counter)` once another instance's write was seen: the
    /// counter's value then. Nothing is written after it.
    forked: Option<u64>,
}

impl std::fmt::Debug for SealedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = lock(&self.current);
        f.debug_struct("SealedState")
            .field("version", &current.version)
            .field("forked", &current.forked)
            .field("entries", &current.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SealedState {
    /// Opens the state sealed in `dir` (none yet: empty, at version 0, or
    /// the revocation list of an older gateway moved in), and refuses it
    /// when the counter is past its version.
    pub fn load(dir: &Path, tee: Arc<dyn Tee>) -> Result<Self, SealedStateError> {
        let path = dir.join(STATE_FILE);
        let key = tee.sealing_key();
        let (opened, legacy) = match std::fs::read(&path) {
            Ok(sealed) => (open_state(&key, &sealed, &path)?, None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                match open_legacy_revocations(dir, &key)? {
                    Some((version, revoked)) => (
                        OpenedState {
                            version,
                            previous: None,
                            entries: BTreeMap::new(),
                        },
                        Some(revoked),
                    ),
                    None => (
                        OpenedState {
                            version: 0,
                            previous: None,
                            entries: BTreeMap::new(),
                        },
                        None,
                    ),
                }
            }
            Err(source) => return Err(SealedStateError::Io { path, source }),
        };
        let OpenedState {
            version,
            previous,
            entries,
        } = opened;
        let counter = tee.read_counter()?;
        let forked = SealedStateError::Forked {
            state_version: version,
            counter,
        };
        match previous {
            _ if version == counter => {}
            _ if version < counter => {
                return Err(SealedStateError::RolledBack {
                    state_version: version,
                    counter,
                });
            }
            // A write whose counter step a crash lost, made over the
            // version the counter holds: the counter catches up, unless
            // another instance stepped it first.
            Some(previous) if previous == counter => {
                if let Err(held) = tee.compare_and_advance_counter(counter, version)? {
                    return Err(SealedStateError::Forked {
                        state_version: version,
                        counter: held,
                    });
                }
            }
            // Written over another version than the counter holds: by an
            // instance whose counter step lost to another's.
            Some(_) => return Err(forked),
            // Written before forks were detected: caught up as then.
            None => {
                tee.advance_counter(version)?;
            }
        }
        let stored_log_key = entries
            .get(LOG_KEY_ENTRY)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok());
        let new_log_key = stored_log_key.is_none();
        let state = Self {
            path,
            tee,
            key,
            log_key: ExportedKey::from_bytes(stored_log_key.unwrap_or_else(|| {
                let mut bytes = [0u8; 32];
                rand_core::Rng::fill_bytes(&mut os_rng(), &mut bytes);
                bytes
            })),
            current: Mutex::new(Versioned {
                version,
                entries,
                forked: None,
            }),
        };
        if new_log_key {
            let bytes = Zeroizing::new(*state.log_key.as_bytes());
            state.put(LOG_KEY_ENTRY, bytes.as_slice())?;
        }
        if let Some(revoked) = legacy {
            state.put(REVOKED_ENTRY, &encode_revoked(&revoked))?;
            let old = dir.join(LEGACY_REVOKED_FILE);
            std::fs::remove_file(&old)
                .map_err(|source| SealedStateError::Io { path: old, source })?;
        }
        Ok(state)
    }

    /// The entry `name`, if any.
    fn get(&self, name: &str) -> Option<Zeroizing<Vec<u8>>> {
        lock(&self.current).entries.get(name).cloned()
    }

    /// Whether this instance's state is still the one the counter
    /// acknowledged last: `Forked` (from now on) once another instance of
    /// the gateway wrote its own.
    pub fn check_current(&self) -> Result<(), SealedStateError> {
        let mut current = lock(&self.current);
        check_counter(&mut current, &*self.tee)
    }

    /// Sets entry `name` to `bytes`: sealed to disk at the next version
    /// and the counter advanced before it returns. Refused, and nothing
    /// written from then on, once the counter is not at the version this
    /// instance last read or wrote (another instance wrote its state);
    /// refused too when another instance's counter step comes between
    /// the check and its own ([`Tee::compare_and_advance_counter`]).
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), SealedStateError> {
        let mut current = lock(&self.current);
        check_counter(&mut current, &*self.tee)?;
        let mut step = [0u8; 8];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut step);
        let step = u64::from_be_bytes(step) % MAX_STEP + 1;
        let previous = current.version;
        let version = previous
            .checked_add(step)
            .ok_or(SealedStateError::StateFull)?;
        let mut entries = current.entries.clone();
        entries.insert(name.to_owned(), Zeroizing::new(bytes.to_vec()));
        if entries.len() as u64 > MAX_ENTRIES {
            return Err(SealedStateError::StateFull);
        }
        let mut writer = Writer::new(STATE_FRAME)
            .u64(version)
            .u64(previous)
            .u64(entries.len() as u64);
        for (name, value) in &entries {
            writer = writer.str(name).bytes(value);
        }
        let plaintext = Zeroizing::new(writer.finish());
        let sealed = self
            .key
            .seal(&plaintext, STATE_AAD, &mut os_rng())
            .map_err(|_| SealedStateError::NotOpened {
                path: self.path.clone(),
            })?;
        write_private(&self.path, &sealed).map_err(|source| SealedStateError::Io {
            path: self.path.clone(),
            source,
        })?;
        // A crash before this leaves a file written over the counter's
        // value: caught up at the next start.
        if let Err(held) = self.tee.compare_and_advance_counter(previous, version)? {
            tracing::error!(
                counter = held,
                "another instance of this gateway wrote its sealed state: this one stops"
            );
            current.forked = Some(held);
            return Err(SealedStateError::Forked {
                state_version: previous,
                counter: held,
            });
        }
        current.version = version;
        current.entries = entries;
        Ok(())
    }
}

/// `Forked` if the counter moved past `current` (or did before).
fn check_counter(current: &mut Versioned, tee: &dyn Tee) -> Result<(), SealedStateError> {
    let counter = match current.forked {
        Some(counter) => counter,
        None => {
            let counter = tee.read_counter()?;
            if counter == current.version {
                return Ok(());
            }
            tracing::error!(
                counter,
                version = current.version,
                "another instance of this gateway wrote its sealed state: this one stops"
            );
            current.forked = Some(counter);
            counter
        }
    };
    Err(SealedStateError::Forked {
        state_version: current.version,
        counter,
    })
}

/// What a sealed state file holds.
struct OpenedState {
    version: u64,
    /// The version it was written over (`None`: a [`STATE_FRAME_V1`] file).
    previous: Option<u64>,
    entries: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

/// The versions and entries of a sealed state file.
fn open_state(
    key: &StorageKey,
    sealed: &[u8],
    path: &Path,
) -> Result<OpenedState, SealedStateError> {
    let not_opened = || SealedStateError::NotOpened {
        path: path.to_owned(),
    };
    let plaintext = key
        .open(sealed, STATE_AAD, "gateway state")
        .map_err(|_| not_opened())?;
    let (mut reader, v1) = match Reader::new(&plaintext, STATE_FRAME) {
        Ok(reader) => (reader, false),
        Err(_) => (
            Reader::new(&plaintext, STATE_FRAME_V1).map_err(|_| not_opened())?,
            true,
        ),
    };
    let version = reader.u64().map_err(|_| not_opened())?;
    let previous = if v1 {
        None
    } else {
        Some(reader.u64().map_err(|_| not_opened())?)
    };
    let count = reader.u64().map_err(|_| not_opened())?;
    if count > MAX_ENTRIES {
        return Err(not_opened());
    }
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let name = reader.str().map_err(|_| not_opened())?.to_owned();
        let value = Zeroizing::new(reader.bytes().map_err(|_| not_opened())?.to_vec());
        entries.insert(name, value);
    }
    reader.finish().map_err(|_| not_opened())?;
    Ok(OpenedState {
        version,
        previous,
        entries,
    })
}

/// The version and list of an older gateway's [`LEGACY_REVOKED_FILE`], if
/// there is one.
fn open_legacy_revocations(
    dir: &Path,
    key: &StorageKey,
) -> Result<Option<(u64, BTreeSet<String>)>, SealedStateError> {
    let path = dir.join(LEGACY_REVOKED_FILE);
    let sealed = match std::fs::read(&path) {
        Ok(sealed) => sealed,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SealedStateError::Io { path, source }),
    };
    let not_opened = || SealedStateError::NotOpened { path: path.clone() };
    let plaintext = key
        .open(&sealed, REVOKED_AAD, "gateway revocations")
        .map_err(|_| not_opened())?;
    let mut reader = Reader::new(&plaintext, REVOKED_FRAME).map_err(|_| not_opened())?;
    let version = reader.u64().map_err(|_| not_opened())?;
    let revoked = read_uuids(&mut reader).map_err(|_| not_opened())?;
    reader.finish().map_err(|_| not_opened())?;
    Ok(Some((version, revoked)))
}

/// A count, then that many UUIDs (at most [`MAX_REVOKED`] kept).
fn read_uuids(reader: &mut Reader<'_>) -> Result<BTreeSet<String>, clemmys_proto::ProtoError> {
    let count = reader.u64()?;
    let mut revoked = BTreeSet::new();
    for _ in 0..count.min(MAX_REVOKED as u64) {
        revoked.insert(reader.str()?.to_owned());
    }
    Ok(revoked)
}

fn encode_revoked(revoked: &BTreeSet<String>) -> Vec<u8> {
    let mut writer = Writer::new(REVOKED_LIST_FRAME).u64(revoked.len() as u64);
    for uuid in revoked {
        writer = writer.str(uuid);
    }
    writer.finish()
}

fn state_error(error: SealedStateError) -> ConfidentialError {
    ConfidentialError::State(error.to_string())
}

impl HomeVault for SealedState {
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConfidentialError> {
        Ok(self.get(&format!("{CLIENT_ENTRY}{name}")))
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), ConfidentialError> {
        self.put(&format!("{CLIENT_ENTRY}{name}"), bytes)
            .map_err(state_error)
    }

    fn seal_record(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, ConfidentialError> {
        let mut rng = os_rng();
        let mut salt = [0u8; LOG_SALT];
        rand_core::Rng::fill_bytes(&mut rng, &mut salt);
        let sealed = self
            .line_key(name, &salt)
            .and_then(|key| key.seal(plaintext, name.as_bytes(), &mut rng))
            .map_err(|error| ConfidentialError::State(error.to_string()))?;
        Ok([&salt[..], &sealed].concat())
    }

    fn open_record(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (salt, sealed) = sealed.split_at_checked(LOG_SALT)?;
        self.line_key(name, salt)
            .ok()?
            .open(sealed, name.as_bytes(), "client log line")
            .ok()
            .map(Zeroizing::new)
    }
}

impl SealedState {
    /// The key of one line of log `name`: its own, derived with a random
    /// salt, so that no two lines share a key.
    fn line_key(&self, name: &str, salt: &[u8]) -> Result<ExportedKey, clemmys_proto::ProtoError> {
        let label = [LOG_LABEL.as_bytes(), name.as_bytes(), b"/", salt].concat();
        self.log_key.derive(&label)
    }
}

/// The UUIDs of the credentials the owner revoked: an entry of the
/// gateway's [`SealedState`], so that restoring an older copy (un-revoking)
/// is refused at start.
pub struct Revocations {
    state: Arc<SealedState>,
    revoked: BTreeSet<String>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("revoked", &self.revoked.len())
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// The list kept in `state` (none yet: empty).
    pub fn load(state: Arc<SealedState>) -> Result<Self, SealedStateError> {
        let revoked = match state.get(REVOKED_ENTRY) {
            Some(bytes) => {
                let not_opened = || SealedStateError::NotOpened {
                    path: state.path.clone(),
                };
                let mut reader =
                    Reader::new(&bytes, REVOKED_LIST_FRAME).map_err(|_| not_opened())?;
                let revoked = read_uuids(&mut reader).map_err(|_| not_opened())?;
                reader.finish().map_err(|_| not_opened())?;
                revoked
            }
            None => BTreeSet::new(),
        };
        Ok(Self { state, revoked })
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
        let mut revoked = self.revoked.clone();
        revoked.insert(uuid.to_owned());
        self.state.put(REVOKED_ENTRY, &encode_revoked(&revoked))?;
        self.revoked = revoked;
        Ok(true)
    }
}

/// An exclusive lock on a state directory's [`LOCK_FILE`], held while a
/// gateway runs, so that a second gateway process started on the same
/// directory by mistake refuses to start rather than overwrite the first
/// one's state. An operator's safety net, not a defence: the provider can
/// remove the file, or run a second instance on a copy of the directory,
/// which only [`SealedState`]'s counter checks catch.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the lock of `dir` (made if absent), or answers `InUse`.
    pub fn acquire(dir: &Path) -> Result<Self, SealedStateError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| SealedStateError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(SealedStateError::InUse { path }),
            Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
        }
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
        let first =
            GatewaySecrets::load_or_create(dir.path(), &tee, None, "guest").expect("created");
        let again =
            GatewaySecrets::load_or_create(dir.path(), &tee, None, "guest").expect("opened");
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
            GatewaySecrets::load_or_create(dir.path(), &other, None, "guest"),
            Err(SealedStateError::NotOpened { .. })
        ));
    }

    #[test]
    fn a_gateway_made_for_an_owner_cannot_restart_for_none_or_another() {
        let dir = tempfile::tempdir().expect("dir");
        let tee = SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]);
        let owner = ClientIdentity::generate(&mut os_rng()).id();
        let made =
            GatewaySecrets::load_or_create(dir.path(), &tee, Some(owner), "guest").expect("made");
        assert_eq!(made.owner, Some(owner));
        for other in [None, Some(ClientIdentity::generate(&mut os_rng()).id())] {
            assert!(matches!(
                GatewaySecrets::load_or_create(dir.path(), &tee, other, "guest"),
                Err(SealedStateError::OwnerChanged { .. })
            ));
        }
        // And a test-mode gateway does not become an owner's.
        let test_mode = tempfile::tempdir().expect("dir");
        GatewaySecrets::load_or_create(test_mode.path(), &tee, None, "guest").expect("made");
        assert!(matches!(
            GatewaySecrets::load_or_create(test_mode.path(), &tee, Some(owner), "guest"),
            Err(SealedStateError::OwnerChanged { .. })
        ));
    }

    #[test]
    fn a_gateway_made_for_a_namespace_cannot_restart_for_another() {
        let dir = tempfile::tempdir().expect("dir");
        let tee = SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]);
        let owner = ClientIdentity::generate(&mut os_rng()).id();
        let made =
            GatewaySecrets::load_or_create(dir.path(), &tee, Some(owner), "guest").expect("made");
        assert_eq!(made.namespace, "guest");
        assert!(matches!(
            GatewaySecrets::load_or_create(dir.path(), &tee, Some(owner), "other"),
            Err(SealedStateError::NamespaceChanged { sealed, configured })
                if sealed == "guest" && configured == "other"
        ));
        GatewaySecrets::load_or_create(dir.path(), &tee, Some(owner), "guest").expect("opened");
    }

    #[test]
    fn secrets_of_older_versions_are_refused() {
        let tee = SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]);
        // Before credentials: no credential key, no owner.
        let v1 = Writer::new(OLDER_FRAMES[0])
            .bytes(&[3; 32])
            .bytes(b"der")
            .finish();
        // Before the namespace was bound.
        let v2 = Writer::new(OLDER_FRAMES[1])
            .bytes(&[3; 32])
            .bytes(b"der")
            .bytes(&[4; 32])
            .bytes(&[])
            .finish();
        for older in [v1, v2] {
            let dir = tempfile::tempdir().expect("dir");
            let sealed = tee
                .sealing_key()
                .seal(&older, AAD, &mut os_rng())
                .expect("sealed");
            std::fs::write(dir.path().join(SECRETS_FILE), sealed).expect("written");
            assert!(matches!(
                GatewaySecrets::load_or_create(dir.path(), &tee, None, "guest"),
                Err(SealedStateError::Outdated { .. })
            ));
        }
    }

    fn sim_tee(platform: &Arc<SimPlatform>, counter: &Path) -> Arc<dyn Tee> {
        Arc::new(SimTee::with_counter_file(platform.clone(), &[1; 32], counter).expect("tee"))
    }

    #[test]
    fn revocations_survive_a_restart_and_a_restored_copy_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let counter = dir.path().join("gateway.counter");
        let load = || {
            SealedState::load(dir.path(), sim_tee(&platform, &counter))
                .and_then(|state| Revocations::load(Arc::new(state)))
        };
        let mut revocations = load().expect("empty");
        assert!(!revocations.contains("a"));
        assert!(revocations.revoke("a").expect("revoked"));
        let old = std::fs::read(dir.path().join(STATE_FILE)).expect("file");
        assert!(!revocations.revoke("a").expect("again"));
        assert!(revocations.revoke("b").expect("revoked"));
        let reopened = load().expect("reopened");
        assert!(reopened.contains("a") && reopened.contains("b"));
        // The provider restores the copy from before "b" was revoked.
        std::fs::write(dir.path().join(STATE_FILE), &old).expect("restored");
        assert!(matches!(
            load(),
            Err(SealedStateError::RolledBack { state_version, counter })
                if state_version < counter
        ));
        // Or deletes it.
        std::fs::remove_file(dir.path().join(STATE_FILE)).expect("removed");
        assert!(matches!(load(), Err(SealedStateError::RolledBack { .. })));
    }

    #[test]
    fn an_older_gateways_revocations_move_into_the_sealed_state() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let counter = dir.path().join("gateway.counter");
        let tee = sim_tee(&platform, &counter);
        // As the gateway before this one wrote it, at version 2.
        let legacy = Writer::new(REVOKED_FRAME)
            .u64(2)
            .u64(2)
            .str("a")
            .str("b")
            .finish();
        let sealed = tee
            .sealing_key()
            .seal(&legacy, REVOKED_AAD, &mut os_rng())
            .expect("sealed");
        std::fs::write(dir.path().join(LEGACY_REVOKED_FILE), sealed).expect("written");
        tee.advance_counter(2).expect("counter");
        let state = Arc::new(SealedState::load(dir.path(), tee).expect("moved"));
        let revocations = Revocations::load(state).expect("read");
        assert!(revocations.contains("a") && revocations.contains("b"));
        assert!(!dir.path().join(LEGACY_REVOKED_FILE).exists());
        let again = SealedState::load(dir.path(), sim_tee(&platform, &counter)).expect("again");
        assert!(
            Revocations::load(Arc::new(again))
                .expect("read")
                .contains("b")
        );
    }

    #[test]
    fn the_client_state_is_sealed_kept_across_restarts_and_not_rolled_back() {
        let dir = tempfile::tempdir().expect("dir");
        let platform = Arc::new(SimPlatform::generate());
        let counter = dir.path().join("gateway.counter");
        let state = SealedState::load(dir.path(), sim_tee(&platform, &counter)).expect("state");
        state.replace("freshness.json", b"marks v1").expect("kept");
        let old = std::fs::read(dir.path().join(STATE_FILE)).expect("file");
        state.replace("freshness.json", b"marks v2").expect("kept");
        let line = state
            .seal_record("keyring", b"answer keys")
            .expect("sealed");
        let file = std::fs::read(dir.path().join(STATE_FILE)).expect("file");
        for sealed in [&file, &line] {
            assert!(!sealed.windows(5).any(|window| window == b"marks"));
            assert!(!sealed.windows(6).any(|window| window == b"answer"));
        }
        // A restart reads it back; a line opens only as a line of its log.
        let again = SealedState::load(dir.path(), sim_tee(&platform, &counter)).expect("again");
        assert_eq!(
            again
                .read("freshness.json")
                .expect("read")
                .map(|bytes| bytes.to_vec()),
            Some(b"marks v2".to_vec())
        );
        assert_eq!(
            again
                .open_record("keyring", &line)
                .map(|bytes| bytes.to_vec()),
            Some(b"answer keys".to_vec())
        );
        assert!(again.open_record("sessions", &line).is_none());
        // Another program on the platform opens neither.
        let other = Arc::new(SimTee::new(platform.clone(), &[2; 32]));
        assert!(matches!(
            SealedState::load(dir.path(), other),
            Err(SealedStateError::NotOpened { .. })
        ));
        // The provider restores the older marks: refused.
        std::fs::write(dir.path().join(STATE_FILE), &old).expect("restored");
        assert!(matches!(
            SealedState::load(dir.path(), sim_tee(&platform, &counter)),
            Err(SealedStateError::RolledBack { .. })
        ));
    }

    /// One platform's counter as a second instance sees it: it can be
    /// made to read a value from before another instance's write once (as
    /// when that write lands between its read and its own write), or to
    /// fail its next counter step (a crash between file and counter).
    struct Interleaved {
        inner: Arc<SimTee>,
        stale_read: Mutex<Option<u64>>,
        fail_step: Mutex<bool>,
    }

    impl Interleaved {
        fn over(inner: &Arc<SimTee>) -> Arc<Self> {
            Arc::new(Self {
                inner: inner.clone(),
                stale_read: Mutex::new(None),
                fail_step: Mutex::new(false),
            })
        }
    }

    impl Tee for Interleaved {
        fn kind(&self) -> clemmys_proto::TeeKind {
            self.inner.kind()
        }
        fn measurement(&self) -> clemmys_proto::Measurement {
            self.inner.measurement()
        }
        fn attest(
            &self,
            report_data: &[u8; 64],
        ) -> Result<clemmys_proto::Evidence, clemmys_tee::AttestError> {
            self.inner.attest(report_data)
        }
        fn sealing_key(&self) -> StorageKey {
            self.inner.sealing_key()
        }
        fn read_counter(&self) -> Result<u64, CounterError> {
            match lock(&self.stale_read).take() {
                Some(stale) => Ok(stale),
                None => self.inner.read_counter(),
            }
        }
        fn advance_counter(&self, value: u64) -> Result<u64, CounterError> {
            self.inner.advance_counter(value)
        }
        fn compare_and_advance_counter(
            &self,
            expected: u64,
            value: u64,
        ) -> Result<Result<(), u64>, CounterError> {
            if std::mem::take(&mut *lock(&self.fail_step)) {
                return Err(CounterError::Corrupted("crashed".to_owned()));
            }
            self.inner.compare_and_advance_counter(expected, value)
        }
    }

    /// Copies the state of one directory to another (the provider's copy).
    fn copy_state(from: &Path, to: &Path) {
        std::fs::copy(from.join(STATE_FILE), to.join(STATE_FILE)).expect("copied");
    }

    #[test]
    fn a_second_instance_on_a_copy_stops_rather_than_forget_a_revocation() {
        let (a_dir, b_dir) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        // One platform, one counter (a hardware one: with `sim` the
        // counter file is in the state directory and is copied with it).
        let tee: Arc<dyn Tee> = Arc::new(SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]));
        let a_state = Arc::new(SealedState::load(a_dir.path(), tee.clone()).expect("a"));
        let mut a = Revocations::load(a_state.clone()).expect("a");
        copy_state(a_dir.path(), b_dir.path());
        let b_state = Arc::new(SealedState::load(b_dir.path(), tee.clone()).expect("b"));
        let mut b = Revocations::load(b_state.clone()).expect("b");
        assert!(a.revoke("stolen").expect("revoked at a"));
        // B, which never saw the revocation, stops serving at once...
        assert!(matches!(
            b_state.check_current(),
            Err(SealedStateError::Forked { .. })
        ));
        // ...and cannot write a state of its own over the same version.
        assert!(matches!(
            b.revoke("other"),
            Err(SealedStateError::Forked { .. })
        ));
        assert!(!b.contains("other"));
        // A restart from B's copy is refused; from A's, the revocation holds.
        assert!(SealedState::load(b_dir.path(), tee.clone()).is_err());
        drop((a, a_state));
        let again = SealedState::load(a_dir.path(), tee).expect("a again");
        assert!(
            Revocations::load(Arc::new(again))
                .expect("read")
                .contains("stolen")
        );
    }

    #[test]
    fn an_instance_writing_just_after_anothers_revocation_cannot_fork_the_state() {
        let (a_dir, b_dir) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let counter = Arc::new(SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]));
        let a_state = Arc::new(SealedState::load(a_dir.path(), counter.clone()).expect("a"));
        let mut a = Revocations::load(a_state).expect("a");
        copy_state(a_dir.path(), b_dir.path());
        let b_tee = Interleaved::over(&counter);
        let b_state = Arc::new(SealedState::load(b_dir.path(), b_tee.clone()).expect("b"));
        let mut b = Revocations::load(b_state).expect("b");
        let before = counter.read_counter().expect("read");
        assert!(a.revoke("stolen").expect("revoked at a"));
        // B read the counter just before A's write landed: its check
        // passes, and only its counter step can tell.
        *lock(&b_tee.stale_read) = Some(before);
        assert!(matches!(
            b.revoke("other"),
            Err(SealedStateError::Forked { .. })
        ));
        // B's file, written over the version A stepped past, is refused at
        // a restart (as rolled back or forked, as the steps fell).
        assert!(matches!(
            SealedState::load(b_dir.path(), counter.clone()),
            Err(SealedStateError::Forked { .. } | SealedStateError::RolledBack { .. })
        ));
        let again = SealedState::load(a_dir.path(), counter).expect("a again");
        assert!(
            Revocations::load(Arc::new(again))
                .expect("read")
                .contains("stolen")
        );
    }

    #[test]
    fn a_write_whose_counter_step_a_crash_lost_is_kept_at_the_next_start() {
        let dir = tempfile::tempdir().expect("dir");
        let counter = Arc::new(SimTee::new(Arc::new(SimPlatform::generate()), &[1; 32]));
        let tee = Interleaved::over(&counter);
        let state = Arc::new(SealedState::load(dir.path(), tee.clone()).expect("state"));
        let mut revocations = Revocations::load(state).expect("read");
        *lock(&tee.fail_step) = true;
        assert!(matches!(
            revocations.revoke("a"),
            Err(SealedStateError::Counter(_))
        ));
        let again = SealedState::load(dir.path(), counter.clone()).expect("caught up");
        assert!(
            Revocations::load(Arc::new(again))
                .expect("read")
                .contains("a")
        );
        assert!(SealedState::load(dir.path(), counter).is_ok());
    }

    #[test]
    fn a_second_gateway_on_the_same_directory_is_refused_until_the_first_stops() {
        let dir = tempfile::tempdir().expect("dir");
        let first = DirLock::acquire(dir.path()).expect("first");
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(SealedStateError::InUse { .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).expect("after the first stopped");
    }
}
