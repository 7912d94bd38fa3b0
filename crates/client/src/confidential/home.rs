//! The client's own state directory (`$CLEMMYS_HOME`, default
//! `~/.config/clemmys`): its identity key, the brokers it pinned and the
//! keys of the answers it can still read. Everything here is secret to the
//! client; files are created mode 0600.
//!
//! A client whose directory is on a disk it does not trust (the attested
//! gateway, on the provider's machine) opens it with a [`HomeVault`]
//! ([`ClientHome::open_sealed`]): then no file there holds a secret or a
//! mark in the clear. The identity, the pins, the high-water marks and the
//! plan versions live in the vault, which seals them (and may bind them to
//! a monotonic counter against rollback); each keyring and session line
//! is sealed on its own by the vault before it is appended.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clemmys_proto::chain::{ChainKey, ChainStep};
use clemmys_proto::identity::{ClientIdentity, EnclavePublicKeys};
use clemmys_proto::invoke::{AnswerKeys, hex_bytes};
use clemmys_proto::session::SessionKeys;
use clemmys_proto::suite::ExportedKey;
use clemmys_proto::{ClientId, Digest, Measurement, SigningPublicKey, TeeKind};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ConfidentialError;

/// Where a [`ClientHome`] on an untrusted disk keeps its state: an
/// enclave's sealed storage.
pub trait HomeVault: Send + Sync + std::fmt::Debug {
    /// The current contents of the whole file `name` (the identity, the
    /// pins, the high-water marks, the plan versions), if any.
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConfidentialError>;
    /// Replaces the file `name` with `bytes`, kept before it returns.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), ConfidentialError>;
    /// Seals one line (`plaintext`) to be appended to the log `name`.
    fn seal_record(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, ConfidentialError>;
    /// Opens a line [`seal_record`](Self::seal_record) made for `name`;
    /// `None` if it does not open.
    fn open_record(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
}

/// The client's state directory.
#[derive(Debug, Clone)]
pub struct ClientHome {
    dir: PathBuf,
    /// For a directory on an untrusted disk: where its state is sealed.
    vault: Option<std::sync::Arc<dyn HomeVault>>,
    /// The keyring, appended through a buffer shared by all clones: one
    /// write per few dozen invocations instead of one each. It is flushed
    /// before every read and when the last clone is dropped; a client that
    /// is killed may lose the keys of its last few answers (which it has
    /// already read).
    keyring: std::sync::Arc<std::sync::Mutex<Option<std::io::BufWriter<std::fs::File>>>>,
}

/// The highest state version seen from one API host's broker, and the
/// highest version seen of each of its actions (`freshness.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HighWater {
    state_version: u64,
    #[serde(default)]
    actions: BTreeMap<String, u64>,
}

/// What the client pinned about one API host's key broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "StoredPin")]
pub struct BrokerPin {
    /// The kind of TEE the broker runs in.
    pub tee: TeeKind,
    /// The broker measurement the client accepted (of kind `tee`).
    pub measurement: Measurement,
    /// For `sim`: the platform key whose reports the client accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_platform: Option<SigningPublicKey>,
    /// The broker keys verified when it was pinned. A broker that presents
    /// other keys is not used until `clemmys broker trust` is run again.
    pub keys: EnclavePublicKeys,
    /// The namespace this client's confidential actions live in, fixed when
    /// the broker was pinned; never taken from a later answer of the
    /// controller (which could name a namespace the provider controls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Identities besides this client whose actions it accepts (their
    /// descriptors, their sequences' plans). Nobody else's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_owners: Vec<ClientId>,
}

/// A pin as stored, also as written before measurements were typed: a bare
/// digest then, measured by the pin's `tee`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPin {
    tee: TeeKind,
    measurement: String,
    #[serde(default)]
    sim_platform: Option<SigningPublicKey>,
    keys: EnclavePublicKeys,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    trusted_owners: Vec<ClientId>,
}

impl TryFrom<StoredPin> for BrokerPin {
    type Error = String;

    fn try_from(stored: StoredPin) -> Result<Self, Self::Error> {
        let text = if stored.measurement.contains(':') {
            stored.measurement
        } else {
            format!("{}:{}", stored.tee.name(), stored.measurement)
        };
        let measurement: Measurement = text.parse().map_err(|error| format!("{error}"))?;
        if measurement.tee() != stored.tee {
            return Err(format!(
                "the pinned measurement {measurement} is not of the pinned TEE {}",
                stored.tee.name()
            ));
        }
        Ok(Self {
            tee: stored.tee,
            measurement,
            sim_platform: stored.sim_platform,
            keys: stored.keys,
            namespace: stored.namespace,
            trusted_owners: stored.trusted_owners,
        })
    }
}

/// What the client keeps about one confidential invocation, to read its
/// answer later (`activation result|logs|verify`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyringEntry {
    /// The activation id.
    pub activation_id: String,
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action (of the sequence, for a chain).
    pub action: String,
    /// Policy version invoked.
    pub version: u64,
    /// Code digest expected.
    pub code_digest: Digest,
    /// Entry export expected (the policy's).
    #[serde(default = "default_entry")]
    pub entry: String,
    /// The invocation nonce.
    #[serde(with = "hex_bytes")]
    pub nonce: [u8; 16],
    /// Digest of the sealed invocation sent.
    pub input_hash: Digest,
    /// Key of the sealed result (hex); none within a session, whose keys
    /// open the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_key: Option<HexKey>,
    /// Key of the sealed logs (hex); none within a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logs_key: Option<HexKey>,
    /// For a chain: its plan and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainEntry>,
    /// For a request within a session: the session and the counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionEntry>,
}

/// How a session was opened: the enclave's signed receipt of the opening
/// invocation (verified then), the TEE it ran in and, for an invocation
/// session, its secret.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenedSession {
    /// The signed receipt.
    pub receipt: clemmys_proto::invoke::SignedReceipt,
    /// The TEE kind.
    pub tee: TeeKind,
    /// The secret the session's keys derive from: kept once here, not in
    /// the keyring line of each of its requests. `None` for a chain
    /// session (its runs' keys are in their own keyring lines) and in
    /// records written before it was kept here (their requests' lines
    /// carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SessionSecret>,
}

/// A 32-byte key as the keyring stores it (hex): zeroed on drop, never
/// printed, never cloned.
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
struct HexKey(String);

impl HexKey {
    fn of(key: &[u8; 32]) -> Self {
        Self(hex::encode(key))
    }

    fn bytes(&self) -> Result<Zeroizing<[u8; 32]>, ConfidentialError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&self.0, key.as_mut_slice()).map_err(|_| corrupted())?;
        Ok(key)
    }
}

impl std::fmt::Debug for HexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A session secret as the client stores it (hex); zeroed on drop.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionSecret(HexKey);

impl SessionSecret {
    /// The secret of the session with `keys`.
    pub fn of(keys: &SessionKeys) -> Self {
        Self(HexKey::of(keys.secret().as_bytes()))
    }

    fn key(&self) -> Result<ExportedKey, ConfidentialError> {
        Ok(ExportedKey::from_bytes(*self.0.bytes()?))
    }
}

fn corrupted() -> ConfidentialError {
    ConfidentialError::State("a keyring entry is corrupted".into())
}

/// What the client keeps about one request of a session: which session,
/// and which of its requests. Written for every request, so it holds no
/// more: the session's secret is kept once, with its opening
/// ([`ClientHome::remember_session`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEntry {
    /// The session id (hex).
    session_id: String,
    /// The session secret, in lines written before it was kept with the
    /// session's opening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<SessionSecret>,
    /// The request's counter.
    pub counter: u64,
}

impl SessionEntry {
    /// An entry for request `counter` of the session with `keys`.
    pub fn new(keys: &SessionKeys, counter: u64) -> Self {
        Self {
            session_id: hex::encode(keys.id),
            secret: None,
            counter,
        }
    }

    /// The session's id.
    pub fn session_id(&self) -> Result<[u8; 16], ConfidentialError> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(&self.session_id, &mut id).map_err(|_| corrupted())?;
        Ok(id)
    }

    /// The session's keys, from the secret kept with its opening (`kept`)
    /// or, in older lines, in this entry.
    pub fn keys(&self, kept: Option<&SessionSecret>) -> Result<SessionKeys, ConfidentialError> {
        let secret = self.secret.as_ref().or(kept).ok_or_else(corrupted)?;
        Ok(SessionKeys::from_secret(self.session_id()?, secret.key()?)?)
    }
}

/// What the client keeps about one confidential chain.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainEntry {
    /// The steps the ticket named.
    pub steps: Vec<ChainStep>,
    /// The chain key (hex); for a run of a chain session, that run's key.
    chain_key: HexKey,
    /// For a run of a chain session: the session id (hex). Its receipts are
    /// MACs under the run key, and the session's first run is remembered
    /// under this id (see [`ClientHome::recall_session`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
}

impl ChainEntry {
    /// An entry for `steps` under `key`; `session` for a chain session run.
    pub fn new(steps: Vec<ChainStep>, key: &ChainKey, session: Option<&[u8; 16]>) -> Self {
        Self {
            steps,
            chain_key: HexKey::of(key.as_bytes()),
            session: session.map(hex::encode),
        }
    }

    /// The chain session this run belongs to, if any.
    pub fn session(&self) -> Result<Option<[u8; 16]>, ConfidentialError> {
        let Some(text) = &self.session else {
            return Ok(None);
        };
        let mut id = [0u8; 16];
        hex::decode_to_slice(text, &mut id)
            .map_err(|_| ConfidentialError::State("a keyring entry is corrupted".into()))?;
        Ok(Some(id))
    }

    /// The chain key.
    pub fn key(&self) -> Result<ChainKey, ConfidentialError> {
        Ok(ChainKey::from_bytes(*self.chain_key.bytes()?))
    }
}

fn default_entry() -> String {
    clemmys_proto::code::DEFAULT_ENTRY.to_owned()
}

impl KeyringEntry {
    /// An entry whose answer opens with `keys`; `None` for a request
    /// within a session, whose keys (in `session`) open it: the client
    /// writes one per request, so it keeps only what opening needs.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        activation_id: String,
        namespace: String,
        action: String,
        version: u64,
        code_digest: Digest,
        nonce: [u8; 16],
        input_hash: Digest,
        keys: Option<&AnswerKeys>,
    ) -> Self {
        let hex_of = |key: &ExportedKey| HexKey::of(key.as_bytes());
        Self {
            activation_id,
            namespace,
            action,
            version,
            code_digest,
            entry: default_entry(),
            nonce,
            input_hash,
            result_key: keys.map(|keys| hex_of(&keys.result)),
            logs_key: keys.map(|keys| hex_of(&keys.logs)),
            chain: None,
            session: None,
        }
    }

    /// This entry, expecting `entry` to be the export that runs.
    pub fn with_entry(mut self, entry: &str) -> Self {
        entry.clone_into(&mut self.entry);
        self
    }

    /// The answer keys (not kept for a request within a session).
    pub fn keys(&self) -> Result<AnswerKeys, ConfidentialError> {
        let parse = |key: &Option<HexKey>| {
            let key = key.as_ref().ok_or_else(corrupted)?.bytes()?;
            Ok::<_, ConfidentialError>(ExportedKey::from_bytes(*key))
        };
        Ok(AnswerKeys {
            result: parse(&self.result_key)?,
            logs: parse(&self.logs_key)?,
        })
    }
}

impl ClientHome {
    /// `$CLEMMYS_HOME`, else `$XDG_CONFIG_HOME/clemmys`, else `~/.config/clemmys`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("CLEMMYS_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("clemmys");
        }
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".config/clemmys"),
            None => PathBuf::from(".clemmys-client"),
        }
    }

    /// The state in `dir`, created (mode 0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ConfidentialError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error(&dir, e))?;
        }
        Ok(Self {
            dir,
            vault: None,
            keyring: Default::default(),
        })
    }

    /// The state in `dir` on a disk the client does not trust: everything
    /// it keeps is sealed by `vault` (see the module documentation); the
    /// directory holds only sealed logs and empty lock files.
    pub fn open_sealed(
        dir: impl Into<PathBuf>,
        vault: std::sync::Arc<dyn HomeVault>,
    ) -> Result<Self, ConfidentialError> {
        let mut home = Self::open(dir)?;
        home.vault = Some(vault);
        Ok(home)
    }

    /// The contents of the whole file `name`, if any.
    fn read_whole(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConfidentialError> {
        if let Some(vault) = &self.vault {
            return vault.read(name);
        }
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// Writes the whole file `name` (replacing it when `replace`, else
    /// only if it does not exist yet).
    fn write_whole(
        &self,
        name: &str,
        bytes: &[u8],
        replace: bool,
    ) -> Result<(), ConfidentialError> {
        match &self.vault {
            Some(vault) => {
                if !replace && vault.read(name)?.is_some() {
                    return Err(ConfidentialError::State(format!("{name} exists already")));
                }
                vault.replace(name, bytes)
            }
            None => write_private(&self.dir.join(name), bytes, replace),
        }
    }

    /// The file of log `name`: sealed logs have names of their own, so
    /// that a line written in the clear before is never read as sealed.
    fn log_path(&self, name: &str) -> PathBuf {
        match &self.vault {
            Some(_) => self.dir.join(format!("{name}.sealed")),
            None => self.dir.join(format!("{name}.jsonl")),
        }
    }

    /// One line of log `name`, newline included: `json`, or sealed.
    fn log_line(&self, name: &str, json: &[u8]) -> Result<Vec<u8>, ConfidentialError> {
        use base64::Engine as _;
        let mut line = match &self.vault {
            Some(vault) => base64::engine::general_purpose::STANDARD
                .encode(vault.seal_record(name, json)?)
                .into_bytes(),
            None => json.to_vec(),
        };
        line.push(b'\n');
        Ok(line)
    }

    /// The lines of log `name` that read (a torn or foreign line does
    /// not), oldest first.
    fn log_lines(&self, name: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, ConfidentialError> {
        use base64::Engine as _;
        let path = self.log_path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Zeroizing::new(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&path, error)),
        };
        Ok(text
            .lines()
            .filter_map(|line| match &self.vault {
                Some(vault) => {
                    let sealed = base64::engine::general_purpose::STANDARD
                        .decode(line)
                        .ok()?;
                    vault.open_record(name, &sealed)
                }
                None => Some(Zeroizing::new(line.as_bytes().to_vec())),
            })
            .collect())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The client identity, created on first use.
    pub fn identity(&self) -> Result<ClientIdentity, ConfidentialError> {
        const NAME: &str = "identity.key";
        match self.read_whole(NAME)? {
            Some(bytes) => {
                let secret: Zeroizing<[u8; 32]> =
                    Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                        ConfidentialError::State(format!(
                            "{} is not a 32-byte key",
                            self.dir.join(NAME).display()
                        ))
                    })?);
                Ok(ClientIdentity::from_secret(&secret))
            }
            None => {
                let identity = ClientIdentity::generate(&mut clemmys_tee::os_rng());
                self.write_whole(NAME, identity.secret_bytes().as_slice(), false)?;
                Ok(identity)
            }
        }
    }

    fn pins(&self) -> Result<BTreeMap<String, BrokerPin>, ConfidentialError> {
        self.read_json(PINS)
    }

    /// The whole file `name` as JSON; the default if there is none.
    fn read_json<T: Default + serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<T, ConfidentialError> {
        match self.read_whole(name)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ConfidentialError::State(format!("{}: {e}", self.dir.join(name).display()))
            }),
            None => Ok(T::default()),
        }
    }

    /// The broker pinned for `api_host`, if any.
    pub fn broker_pin(&self, api_host: &str) -> Result<Option<BrokerPin>, ConfidentialError> {
        Ok(self.pins()?.remove(api_host))
    }

    /// Pins (or re-pins) the broker of `api_host`.
    pub fn save_broker_pin(
        &self,
        api_host: &str,
        pin: &BrokerPin,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("pins")?;
        let mut pins = self.pins()?;
        pins.insert(api_host.to_owned(), pin.clone());
        let json = serde_json::to_vec_pretty(&pins)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        self.write_whole(PINS, &json, true)
    }

    /// Holds `{what}.lock` exclusively until the returned file is dropped:
    /// every read-modify-write of a file in this directory holds it, so
    /// that two clients sharing the directory (two CLI commands at once)
    /// never lose each other's update. A lost raise of a high-water mark
    /// would let a rollback through unseen.
    fn exclusive(&self, what: &str) -> Result<std::fs::File, ConfidentialError> {
        let path = self.dir.join(format!("{what}.lock"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|e| io_error(&path, e))?;
        file.lock().map_err(|e| io_error(&path, e))?;
        Ok(file)
    }

    /// Checks a broker answer against the highest versions this client has
    /// seen from `api_host`'s broker (its state version and, when the answer
    /// describes one, the action's version) and raises them: anything lower
    /// is a rollback. Written atomically (a file renamed over the old).
    pub fn check_fresh(
        &self,
        api_host: &str,
        state_version: u64,
        action: Option<(&str, u64)>,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("freshness")?;
        let mut marks: BTreeMap<String, HighWater> = self.read_json(FRESHNESS)?;
        let marks_of = marks.entry(api_host.to_owned()).or_default();
        if state_version < marks_of.state_version {
            return Err(ConfidentialError::BrokerRolledBack {
                found: state_version,
                highest: marks_of.state_version,
            });
        }
        let mut raised = state_version > marks_of.state_version;
        marks_of.state_version = state_version;
        if let Some((name, version)) = action {
            let highest = marks_of.actions.entry(name.to_owned()).or_insert(0);
            if version < *highest {
                return Err(ConfidentialError::ActionRolledBack {
                    action: name.to_owned(),
                    found: version,
                    highest: *highest,
                });
            }
            raised |= version > *highest;
            *highest = version;
        }
        if !raised {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&marks)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        self.write_whole(FRESHNESS, &json, true)
    }

    fn keyring_path(&self) -> PathBuf {
        self.log_path(KEYRING)
    }

    /// Remembers the keys of one invocation's answer (buffered).
    pub fn remember(&self, entry: &KeyringEntry) -> Result<(), ConfidentialError> {
        let json = Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        let line = self.log_line(KEYRING, &json)?;
        let mut keyring = self
            .keyring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keyring.is_none() {
            let path = self.keyring_path();
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let file = options.open(&path).map_err(|e| io_error(&path, e))?;
            *keyring = Some(std::io::BufWriter::with_capacity(16 * 1024, file));
        }
        match keyring.as_mut() {
            Some(writer) => writer
                .write_all(&line)
                .map_err(|e| io_error(&self.keyring_path(), e)),
            None => Ok(()),
        }
    }

    /// Writes out buffered keyring entries.
    pub fn flush(&self) -> Result<(), ConfidentialError> {
        let mut keyring = self
            .keyring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match keyring.as_mut() {
            Some(writer) => writer
                .flush()
                .map_err(|e| io_error(&self.keyring_path(), e)),
            None => Ok(()),
        }
    }

    /// Remembers the signed receipt that opened session `id` (once per
    /// session), so its requests can be verified later by any process.
    pub fn remember_session(
        &self,
        id: &[u8; 16],
        opening: &OpenedSession,
    ) -> Result<(), ConfidentialError> {
        let record = serde_json::json!({ "sessionId": hex::encode(id), "opening": opening });
        let json = Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        let line = self.log_line(SESSIONS, &json)?;
        let path = self.log_path(SESSIONS);
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| io_error(&path, e))?;
        file.write_all(&line).map_err(|e| io_error(&path, e))
    }

    /// The opening of session `id`, if this client opened it.
    pub fn recall_session(
        &self,
        id: &[u8; 16],
    ) -> Result<Option<OpenedSession>, ConfidentialError> {
        let wanted = hex::encode(id);
        Ok(self.log_lines(SESSIONS)?.iter().rev().find_map(|line| {
            let record: serde_json::Value = serde_json::from_slice(line).ok()?;
            (record["sessionId"] == wanted.as_str())
                .then(|| serde_json::from_value(record["opening"].clone()).ok())?
        }))
    }

    fn plan_versions(&self) -> Result<BTreeMap<String, u64>, ConfidentialError> {
        self.read_json(PLANS)
    }

    /// The newest version of sequence `sequence`'s signed chain plan this
    /// client has signed or accepted (`sequence` names the API host too).
    pub fn newest_plan(&self, sequence: &str) -> Result<Option<u64>, ConfidentialError> {
        Ok(self.plan_versions()?.get(sequence).copied())
    }

    /// Records that sequence `sequence`'s plan `version` was signed or
    /// accepted: the mark only grows, and the file is replaced atomically,
    /// so an older plan restored by the provider is refused later.
    pub fn see_plan(&self, sequence: &str, version: u64) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("chain-plans")?;
        let mut versions = self.plan_versions()?;
        let newest = versions.entry(sequence.to_owned()).or_insert(version);
        if *newest > version {
            return Ok(());
        }
        *newest = version;
        let json = serde_json::to_vec_pretty(&versions)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        self.write_whole(PLANS, &json, true)
    }

    /// The keys of activation `id`, if this client invoked it.
    pub fn recall(&self, activation_id: &str) -> Result<Option<KeyringEntry>, ConfidentialError> {
        self.flush()?;
        // Newest last; a torn last line (a crash mid-append) is skipped.
        Ok(self
            .log_lines(KEYRING)?
            .iter()
            .rev()
            .filter_map(|line| serde_json::from_slice::<KeyringEntry>(line).ok())
            .find(|entry| entry.activation_id == activation_id))
    }
}

/// The pinned brokers (a whole file).
const PINS: &str = "brokers.json";
/// The high-water marks (a whole file).
const FRESHNESS: &str = "freshness.json";
/// The newest chain plan versions seen (a whole file).
const PLANS: &str = "chain-plans.json";
/// The keys of the answers (a log).
const KEYRING: &str = "keyring";
/// The openings of sessions (a log).
const SESSIONS: &str = "sessions";

fn io_error(path: &Path, error: std::io::Error) -> ConfidentialError {
    ConfidentialError::State(format!("{}: {error}", path.display()))
}

/// Writes `bytes` to `path` with mode 0600 (replacing it when `replace`).
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<(), ConfidentialError> {
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let target = if replace { &temporary } else { path };
    if !replace {
        options.create_new(true).truncate(false);
    }
    let mut file = options.open(target).map_err(|e| io_error(target, e))?;
    file.write_all(bytes).map_err(|e| io_error(target, e))?;
    file.sync_all().map_err(|e| io_error(target, e))?;
    if replace {
        std::fs::rename(&temporary, path).map_err(|e| io_error(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_broker_or_action_versions_are_refused_as_rollbacks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        home.check_fresh("h", 3, Some(("guest/a", 2)))
            .expect("first");
        home.check_fresh("h", 3, Some(("guest/a", 2)))
            .expect("same");
        home.check_fresh("other", 1, None).expect("another host");
        let again = ClientHome::open(dir.path()).expect("home");
        assert!(matches!(
            again.check_fresh("h", 2, None),
            Err(ConfidentialError::BrokerRolledBack {
                found: 2,
                highest: 3
            })
        ));
        assert!(matches!(
            again.check_fresh("h", 4, Some(("guest/a", 1))),
            Err(ConfidentialError::ActionRolledBack {
                found: 1,
                highest: 2,
                ..
            })
        ));
        again
            .check_fresh("h", 4, Some(("guest/a", 3)))
            .expect("newer");
    }

    #[test]
    fn the_newest_plan_seen_only_grows_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        assert_eq!(home.newest_plan("h /guest/pipe").expect("read"), None);
        home.see_plan("h /guest/pipe", 5).expect("see");
        home.see_plan("h /guest/pipe", 3).expect("an older one");
        home.see_plan("h /guest/other", 1).expect("another");
        let reopened = ClientHome::open(dir.path()).expect("home");
        assert_eq!(
            reopened.newest_plan("h /guest/pipe").expect("read"),
            Some(5)
        );
        assert_eq!(
            reopened.newest_plan("h /guest/other").expect("read"),
            Some(1)
        );
    }

    #[test]
    fn pins_written_before_typed_measurements_read_with_their_tee() {
        let pin = BrokerPin {
            tee: TeeKind::SgxDcap,
            measurement: Measurement::sgx_dcap([5; 32]),
            sim_platform: None,
            keys: clemmys_proto::identity::EnclaveKeys::generate(&mut clemmys_tee::os_rng())
                .public(),
            namespace: None,
            trusted_owners: vec![],
        };
        let mut json = serde_json::to_value(&pin).expect("json");
        assert_eq!(
            serde_json::from_value::<BrokerPin>(json.clone()).expect("typed"),
            pin
        );
        json["measurement"] = hex::encode([5u8; 32]).into();
        assert_eq!(
            serde_json::from_value::<BrokerPin>(json.clone()).expect("legacy"),
            pin
        );
        // A measurement of another TEE than the pin's is refused.
        json["measurement"] = Measurement::sim([5; 32]).to_string().into();
        assert!(serde_json::from_value::<BrokerPin>(json).is_err());
    }

    fn keys() -> SessionKeys {
        SessionKeys::from_secret([3; 16], ExportedKey::from_bytes([7; 32])).expect("keys")
    }

    #[test]
    fn a_session_requests_line_keeps_no_secret_and_opens_with_the_kept_one() {
        let keys = keys();
        let entry = SessionEntry::new(&keys, 5);
        let line = serde_json::to_string(&entry).expect("json");
        assert!(
            !line.contains(&hex::encode(keys.secret().as_bytes())),
            "{line}"
        );
        let read: SessionEntry = serde_json::from_str(&line).expect("parse");
        assert!(read.keys(None).is_err(), "no secret anywhere");
        let kept = SessionSecret::of(&keys);
        let opened = read.keys(Some(&kept)).expect("keys");
        assert_eq!((opened.id, read.counter), (keys.id, 5));
        assert_eq!(opened.secret().as_bytes(), keys.secret().as_bytes());
    }

    #[test]
    fn older_lines_carrying_the_secret_still_open() {
        let keys = keys();
        let line = format!(
            r#"{{"sessionId":"{}","secret":"{}","counter":9}}"#,
            hex::encode(keys.id),
            hex::encode(keys.secret().as_bytes())
        );
        let read: SessionEntry = serde_json::from_str(&line).expect("parse");
        let opened = read.keys(None).expect("the line's own secret");
        assert_eq!(opened.secret().as_bytes(), keys.secret().as_bytes());
        assert!(!format!("{:?}", SessionSecret::of(&keys)).contains("07"));
    }

    /// A vault keeping whole files in memory and sealing lines under a
    /// key of its own.
    #[derive(Debug, Default)]
    struct TestVault {
        files: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
        key: [u8; 32],
    }

    impl HomeVault for TestVault {
        fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConfidentialError> {
            let files = self.files.lock().expect("not poisoned");
            Ok(files.get(name).cloned().map(Zeroizing::new))
        }

        fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), ConfidentialError> {
            let mut files = self.files.lock().expect("not poisoned");
            files.insert(name.to_owned(), bytes.to_vec());
            Ok(())
        }

        fn seal_record(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, ConfidentialError> {
            clemmys_proto::suite::StorageKey::from_bytes(self.key)
                .seal(plaintext, name.as_bytes(), &mut clemmys_tee::os_rng())
                .map_err(|e| ConfidentialError::State(e.to_string()))
        }

        fn open_record(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
            clemmys_proto::suite::StorageKey::from_bytes(self.key)
                .open(sealed, name.as_bytes(), "test record")
                .ok()
        }
    }

    #[test]
    fn a_sealed_home_writes_no_secret_and_reads_back_what_it_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = std::sync::Arc::new(TestVault {
            key: [9; 32],
            ..TestVault::default()
        });
        let home = ClientHome::open_sealed(dir.path(), vault.clone()).expect("home");
        let identity = home.identity().expect("identity");
        home.check_fresh("h", 3, Some(("guest/a", 2)))
            .expect("marks");
        home.see_plan("h /guest/pipe", 4).expect("plan");
        let keys = AnswerKeys {
            result: ExportedKey::from_bytes([0x5a; 32]),
            logs: ExportedKey::from_bytes([0x6b; 32]),
        };
        let entry = KeyringEntry::new(
            "act-1".into(),
            "guest".into(),
            "a".into(),
            1,
            Digest::of(b"code"),
            [1; 16],
            Digest::of(b"input"),
            Some(&keys),
        );
        home.remember(&entry).expect("remembered");
        home.flush().expect("flushed");

        // Nothing on disk in the clear: no key, no mark, no file the plain
        // home would read.
        let secrets = [
            hex::encode([0x5a; 32]),
            hex::encode(identity.secret_bytes().as_slice()),
        ];
        for file in std::fs::read_dir(dir.path()).expect("dir") {
            let path = file.expect("entry").path();
            let bytes = std::fs::read(&path).expect("file");
            let text = String::from_utf8_lossy(&bytes);
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{}", path.display());
            }
            assert!(
                !bytes
                    .windows(32)
                    .any(|w| w == identity.secret_bytes().as_slice())
            );
            assert!(!text.contains("guest/a"), "{}: {text}", path.display());
        }
        let plain = ClientHome::open(dir.path()).expect("plain");
        assert!(plain.recall("act-1").expect("read").is_none());
        assert_eq!(plain.newest_plan("h /guest/pipe").expect("read"), None);

        // The same vault reads it all back, in a new handle.
        let again = ClientHome::open_sealed(dir.path(), vault.clone()).expect("home");
        assert_eq!(again.identity().expect("identity").id(), identity.id());
        assert!(matches!(
            again.check_fresh("h", 2, None),
            Err(ConfidentialError::BrokerRolledBack { .. })
        ));
        assert_eq!(again.newest_plan("h /guest/pipe").expect("read"), Some(4));
        let recalled = again.recall("act-1").expect("read").expect("kept");
        assert_eq!(
            recalled.keys().expect("keys").result.as_bytes(),
            &[0x5a; 32]
        );
        // Another vault's key opens no line.
        let stranger = std::sync::Arc::new(TestVault {
            key: [8; 32],
            ..TestVault::default()
        });
        let other = ClientHome::open_sealed(dir.path(), stranger).expect("home");
        assert!(other.recall("act-1").expect("read").is_none());
    }

    #[test]
    fn two_clients_raising_marks_at_once_lose_none() {
        // Two CLI commands sharing one home are two processes, each with
        // its own handle: nothing but the file lock orders their updates.
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..6)
            .map(|client| {
                let home = ClientHome::open(dir.path()).expect("home");
                std::thread::spawn(move || {
                    let action = format!("guest/a{client}");
                    for version in 1..=40 {
                        home.check_fresh("h", 1, Some((&action, version)))
                            .expect("raise");
                        home.see_plan(&action, version).expect("plan");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        let home = ClientHome::open(dir.path()).expect("home");
        for client in 0..6 {
            let action = format!("guest/a{client}");
            assert!(
                matches!(
                    home.check_fresh("h", 1, Some((&action, 39))),
                    Err(ConfidentialError::ActionRolledBack { highest: 40, .. })
                ),
                "{action}'s mark was lost"
            );
            assert_eq!(home.newest_plan(&action).expect("plans"), Some(40));
        }
    }
}
