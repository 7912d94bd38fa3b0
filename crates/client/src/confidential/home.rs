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
//! a monotonic counter against rollback); each session line is sealed on
//! its own by the vault before it is appended, and the keyring's entries,
//! buffered a few dozen at a time, are sealed together as one line (one
//! key derivation and one AEAD per batch, not per invocation).
//!
//! The two logs (the keyring and the sessions) grow with every invocation,
//! so each is kept in two generations of at most half its limit
//! ([`ClientHome::with_log_limit`], [`DEFAULT_LOG_LIMIT`]): when the
//! current one is full it becomes the previous one, and the one before is
//! dropped. A client can no longer open the answers whose keys were
//! dropped (as OpenWhisk drops old activation records). A lookup reads
//! the newest generation first, newest line first, and opens lines only
//! until it finds its own.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, Write};
use std::path::{Path, PathBuf};

use clemmys_proto::chain::{ChainKey, ChainStep};
use clemmys_proto::code::DefaultParameters;
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

/// The most bytes each of a client's logs keeps on disk by default, over
/// its two generations.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;
/// The environment variable that sets the CLI's log limit, in MiB.
pub const LOG_LIMIT_VARIABLE: &str = "CLEMMYS_LOG_LIMIT_MIB";
/// The most bytes of keyring lines buffered before they are appended.
const KEYRING_BUFFER: u64 = 16 << 10;

/// The client's state directory.
#[derive(Debug, Clone)]
pub struct ClientHome {
    dir: PathBuf,
    /// For a directory on an untrusted disk: where its state is sealed.
    vault: Option<std::sync::Arc<dyn HomeVault>>,
    /// The keyring, appended through a buffer shared by all clones: one
    /// write per few dozen invocations instead of one each. It is written
    /// out before every read and when the last clone is dropped; a client
    /// that is killed may lose the keys of its last few answers (which it
    /// has already read).
    keyring: std::sync::Arc<Pending>,
    /// The sessions' openings, appended one by one.
    sessions: LogFiles,
}

/// One log's files: the current generation, which lines are appended to,
/// and the previous one; each at most half the limit.
#[derive(Debug, Clone)]
struct LogFiles {
    dir: PathBuf,
    /// The log's name (`keyring`, `sessions`).
    name: &'static str,
    /// `sealed` or `jsonl`: sealed logs have names of their own, so that a
    /// line written in the clear before is never read as sealed.
    extension: &'static str,
    /// The most bytes of both generations.
    limit: u64,
}

impl LogFiles {
    fn new(dir: &Path, name: &'static str, sealed: bool, limit: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            name,
            extension: if sealed { "sealed" } else { "jsonl" },
            limit,
        }
    }

    /// The current generation, then the previous one.
    fn generations(&self) -> [PathBuf; 2] {
        [
            self.dir.join(format!("{}.{}", self.name, self.extension)),
            self.dir.join(format!("{}.1.{}", self.name, self.extension)),
        ]
    }

    /// The most bytes of one generation.
    fn generation_limit(&self) -> u64 {
        (self.limit / 2).max(1)
    }

    /// Appends `lines` (whole lines) to the current generation, first
    /// making it the previous one (and dropping the one before) when they
    /// would take it past its limit. Under the log's lock, so that two
    /// clients sharing the directory neither lose lines nor rotate twice;
    /// after a torn last line (a crash mid-append), on a line of their own.
    fn append(&self, lines: &[u8]) -> Result<(), ConfidentialError> {
        if lines.is_empty() {
            return Ok(());
        }
        let _appending = exclusive(&self.dir, self.name)?;
        let [current, previous] = self.generations();
        let open = || {
            let mut options = std::fs::OpenOptions::new();
            options.read(true).append(true).create(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options.open(&current).map_err(|e| io_error(&current, e))
        };
        let mut file = open()?;
        let mut length = file.metadata().map_err(|e| io_error(&current, e))?.len();
        let adding = u64::try_from(lines.len()).unwrap_or(u64::MAX);
        if length > 0 && length.saturating_add(adding) > self.generation_limit() {
            drop(file);
            std::fs::rename(&current, &previous).map_err(|e| io_error(&previous, e))?;
            file = open()?;
            length = 0;
        }
        if length > 0 {
            let mut last = [0u8; 1];
            file.seek(std::io::SeekFrom::End(-1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|e| io_error(&current, e))?;
            if last != *b"\n" {
                file.write_all(b"\n").map_err(|e| io_error(&current, e))?;
            }
        }
        file.write_all(lines).map_err(|e| io_error(&current, e))
    }
}

/// Keyring entries not appended yet (JSON lines), shared by a home's
/// clones. A full batch is handed to a writer thread of the home's own, so
/// that no invocation waits for the file (or, with a vault, the sealing);
/// [`Pending::flush`] waits until all of it is appended, and so does the
/// last clone's drop. With a vault, a batch is sealed as one line.
#[derive(Debug)]
struct Pending {
    log: LogFiles,
    vault: Option<std::sync::Arc<dyn HomeVault>>,
    entries: std::sync::Mutex<Zeroizing<Vec<u8>>>,
    /// The writer thread, started with the first full batch.
    writer: std::sync::Mutex<Option<BatchWriter>>,
}

/// The thread that appends a home's keyring batches, in the order sent.
#[derive(Debug)]
struct BatchWriter {
    jobs: std::sync::mpsc::Sender<WriterJob>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a [`BatchWriter`] is asked to do.
enum WriterJob {
    /// Append this batch.
    Append(Zeroizing<Vec<u8>>),
    /// Answer once every batch sent before is appended: the first failure
    /// since the last answer, if any.
    Settle(std::sync::mpsc::Sender<Result<(), String>>),
}

/// The writer thread is gone (it panicked); what it was sent is lost.
fn writer_stopped() -> ConfidentialError {
    ConfidentialError::State("the keyring writer thread stopped".into())
}

impl Pending {
    fn new(log: LogFiles, vault: Option<std::sync::Arc<dyn HomeVault>>) -> Self {
        Self {
            log,
            vault,
            entries: std::sync::Mutex::new(Zeroizing::new(Vec::new())),
            writer: std::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Zeroizing<Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Option<BatchWriter>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Buffers one entry (`json`, without a newline); hands the batch to
    /// the writer once it holds a few dozen (at most an eighth of a
    /// generation).
    fn push(&self, json: &[u8]) -> Result<(), ConfidentialError> {
        let batch = KEYRING_BUFFER.min(self.log.generation_limit() / 8);
        let full = {
            let mut entries = self.lock();
            entries.extend_from_slice(json);
            entries.push(b'\n');
            (u64::try_from(entries.len()).unwrap_or(u64::MAX) >= batch)
                .then(|| std::mem::take(&mut *entries))
        };
        match full {
            Some(full) => self.hand_off(&mut self.lock_writer(), full),
            None => Ok(()),
        }
    }

    /// Sends `batch` to the writer, started if need be; appends it here if
    /// the thread cannot be had.
    fn hand_off(
        &self,
        writer: &mut Option<BatchWriter>,
        batch: Zeroizing<Vec<u8>>,
    ) -> Result<(), ConfidentialError> {
        if writer.is_none() {
            *writer = self.start_writer().ok();
        }
        let unsent = match writer.as_ref() {
            Some(running) => match running.jobs.send(WriterJob::Append(batch)) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::SendError(job)) => {
                    // The thread is gone: the next batch starts another.
                    *writer = None;
                    job
                }
            },
            None => WriterJob::Append(batch),
        };
        match unsent {
            WriterJob::Append(batch) => append_batch(&self.log, self.vault.as_deref(), &batch),
            WriterJob::Settle(_) => Ok(()),
        }
    }

    fn start_writer(&self) -> Result<BatchWriter, ConfidentialError> {
        let (jobs, received) = std::sync::mpsc::channel::<WriterJob>();
        let (log, vault) = (self.log.clone(), self.vault.clone());
        let thread = std::thread::Builder::new()
            .name("clemmys-keyring".into())
            .spawn(move || {
                let mut failure = None;
                for job in received {
                    match job {
                        WriterJob::Append(batch) => {
                            if let Err(error) = append_batch(&log, vault.as_deref(), &batch) {
                                failure.get_or_insert(error.to_string());
                            }
                        }
                        WriterJob::Settle(answer) => {
                            let _ = answer.send(failure.take().map_or(Ok(()), Err));
                        }
                    }
                }
            })
            .map_err(|error| {
                ConfidentialError::State(format!("starting the keyring writer: {error}"))
            })?;
        Ok(BatchWriter {
            jobs,
            thread: Some(thread),
        })
    }

    /// Appends what is buffered, and waits until the writer appended all
    /// it was sent: the first failure since the last flush, if any.
    fn flush(&self) -> Result<(), ConfidentialError> {
        let rest = std::mem::take(&mut *self.lock());
        let mut writer = self.lock_writer();
        if writer.is_none() {
            // Never started: nothing in flight, so append here.
            return append_batch(&self.log, self.vault.as_deref(), &rest);
        }
        if !rest.is_empty() {
            self.hand_off(&mut writer, rest)?;
        }
        let Some(running) = writer.as_ref() else {
            return Ok(());
        };
        let (answer, answered) = std::sync::mpsc::channel();
        let settled = match running.jobs.send(WriterJob::Settle(answer)) {
            Ok(()) => answered.recv().ok(),
            Err(_) => None,
        };
        match settled {
            Some(result) => result.map_err(ConfidentialError::State),
            None => {
                // What it was sent may be lost; the next batch starts
                // another thread.
                *writer = None;
                Err(writer_stopped())
            }
        }
    }
}

/// Appends `entries` (JSON lines) to `log`: as they are, or with `vault`
/// sealed as one line.
fn append_batch(
    log: &LogFiles,
    vault: Option<&dyn HomeVault>,
    entries: &[u8],
) -> Result<(), ConfidentialError> {
    if entries.is_empty() {
        return Ok(());
    }
    match vault {
        Some(vault) => {
            let batch = entries.strip_suffix(b"\n").unwrap_or(entries);
            log.append(&sealed_line(vault, log.name, batch)?)
        }
        None => log.append(entries),
    }
}

/// `plaintext` sealed by `vault` as one line of log `name`: base64, then
/// a newline.
fn sealed_line(
    vault: &dyn HomeVault,
    name: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, ConfidentialError> {
    use base64::Engine as _;
    let mut line = base64::engine::general_purpose::STANDARD
        .encode(vault.seal_record(name, plaintext)?)
        .into_bytes();
    line.push(b'\n');
    Ok(line)
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Nowhere to report it: the keys of the last few answers (which
        // this client has read or given up) are lost, as after a kill.
        let _ = self.flush();
        if let Some(mut writer) = self.lock_writer().take() {
            // Closing the queue ends the thread once it is empty.
            let thread = writer.thread.take();
            drop(writer);
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }
}

/// The API host and `namespace/short` of a key that names both, as
/// `super::home_key` makes it (chain plans, packages, sealed defaults).
fn host_and_entity(key: &str) -> Option<(&str, &str)> {
    key.split_once(" /")
}

/// The highest state version seen from one API host's broker, and the
/// highest version seen of each of its actions (`freshness.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// What a client's keyring says of an activation id it was answered under.
#[derive(Debug)]
pub enum Recalled {
    /// The one invocation it answered.
    Invoked(Box<KeyringEntry>),
    /// Two invocations were answered under it: the node reused it, and
    /// which of them a record is of cannot be told.
    Reused,
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
        let home = Self {
            keyring: std::sync::Arc::new(Pending::new(
                LogFiles::new(&dir, KEYRING, false, DEFAULT_LOG_LIMIT),
                None,
            )),
            sessions: LogFiles::new(&dir, SESSIONS, false, DEFAULT_LOG_LIMIT),
            dir,
            vault: None,
        };
        Ok(home)
    }

    /// The same home, keeping at most `bytes` of each log (the keyring,
    /// the sessions) over its two generations: older answers can no longer
    /// be opened. Set before the home is used.
    pub fn with_log_limit(mut self, bytes: u64) -> Self {
        self.set_logs(bytes);
        self
    }

    /// The limit `$CLEMMYS_LOG_LIMIT_MIB` sets, if any.
    pub fn log_limit_from_env() -> Result<Option<u64>, ConfidentialError> {
        let Some(value) = std::env::var_os(LOG_LIMIT_VARIABLE).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        value
            .to_str()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|mib| *mib > 0)
            .and_then(|mib| mib.checked_mul(1 << 20))
            .map(Some)
            .ok_or_else(|| {
                ConfidentialError::State(format!(
                    "{LOG_LIMIT_VARIABLE} must be a whole number of MiB above 0"
                ))
            })
    }

    /// Makes the logs' files anew (for a new limit or a vault).
    fn set_logs(&mut self, limit: u64) {
        let sealed = self.vault.is_some();
        self.keyring = std::sync::Arc::new(Pending::new(
            LogFiles::new(&self.dir, KEYRING, sealed, limit),
            self.vault.clone(),
        ));
        self.sessions = LogFiles::new(&self.dir, SESSIONS, sealed, limit);
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
        home.set_logs(DEFAULT_LOG_LIMIT);
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

    /// One line of log `name`, newline included: `json`, or sealed.
    fn log_line(&self, name: &str, json: &[u8]) -> Result<Vec<u8>, ConfidentialError> {
        match &self.vault {
            Some(vault) => sealed_line(vault.as_ref(), name, json),
            None => {
                let mut line = json.to_vec();
                line.push(b'\n');
                Ok(line)
            }
        }
    }

    /// What `wanted` finds in the newest entry of `log` that reads (a torn
    /// or foreign line does not) and that it finds something in: the
    /// current generation first, newest line first, opening each only
    /// when it is reached. A sealed line may hold several entries, one
    /// per line of its plaintext (a keyring batch).
    fn find_in_log<T>(
        &self,
        log: &LogFiles,
        wanted: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, ConfidentialError> {
        use base64::Engine as _;
        for path in log.generations() {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error(&path, error)),
            };
            let found =
                bytes
                    .split(|byte| *byte == b'\n')
                    .rev()
                    .find_map(|line| match &self.vault {
                        Some(vault) => {
                            let sealed = base64::engine::general_purpose::STANDARD
                                .decode(line)
                                .ok()?;
                            let batch = vault.open_record(log.name, &sealed)?;
                            batch.split(|byte| *byte == b'\n').rev().find_map(&wanted)
                        }
                        None => wanted(line),
                    });
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
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

    /// The API hosts other than `except` whose broker is pinned for
    /// `namespace`, with their pins.
    pub fn pinned_for(
        &self,
        namespace: &str,
        except: &str,
    ) -> Result<Vec<(String, BrokerPin)>, ConfidentialError> {
        Ok(self
            .pins()?
            .into_iter()
            .filter(|(host, pin)| host != except && pin.namespace.as_deref() == Some(namespace))
            .collect())
    }

    /// Whether this client saw a confidential action, or signed or
    /// accepted a chain plan, of `namespace` at `api_host`.
    pub fn saw_confidential_at(
        &self,
        api_host: &str,
        namespace: &str,
    ) -> Result<bool, ConfidentialError> {
        let of_namespace = |qualified: &str| {
            qualified
                .split_once('/')
                .is_some_and(|(ns, _)| ns == namespace)
        };
        let marks: BTreeMap<String, HighWater> = self.read_json(FRESHNESS)?;
        if marks.get(api_host).is_some_and(|marks| {
            marks.actions.keys().any(|action| {
                action
                    .split_once(':')
                    .is_some_and(|(_owner, qualified)| of_namespace(qualified))
            })
        }) {
            return Ok(true);
        }
        let plans: BTreeMap<String, u64> = self.read_json(PLANS)?;
        Ok(plans.keys().any(|key| {
            host_and_entity(key)
                .is_some_and(|(host, qualified)| host == api_host && of_namespace(qualified))
        }))
    }

    /// Raises `to`'s high-water marks (the broker's state version, the
    /// actions' versions, the chain plans' versions) to `from`'s, and
    /// keeps `from`'s confidential packages for `to`: both addresses reach
    /// the same broker, so what was seen through one bounds what the other
    /// may show. Once, when `to` is pinned: later marks are each host's.
    pub fn adopt_marks(&self, from: &str, to: &str) -> Result<(), ConfidentialError> {
        {
            let _updating = self.exclusive("freshness")?;
            let mut marks: BTreeMap<String, HighWater> = self.read_json(FRESHNESS)?;
            if let Some(seen) = marks.get(from).cloned() {
                let adopted = marks.entry(to.to_owned()).or_default();
                adopted.state_version = adopted.state_version.max(seen.state_version);
                for (action, version) in seen.actions {
                    let highest = adopted.actions.entry(action).or_insert(0);
                    *highest = (*highest).max(version);
                }
                let json = serde_json::to_vec_pretty(&marks)
                    .map_err(|e| ConfidentialError::State(e.to_string()))?;
                self.write_whole(FRESHNESS, &json, true)?;
            }
        }
        let plans: BTreeMap<String, u64> = self.read_json(PLANS)?;
        for (key, version) in plans {
            if let Some((host, qualified)) = host_and_entity(&key)
                && host == from
            {
                self.raise_mark(
                    (PLANS, "chain-plans"),
                    &format!("{to} /{qualified}"),
                    version,
                )?;
            }
        }
        // The confidential packages made through `from` are this client's
        // at `to` too (their parameters are sealed into their actions).
        let packages: BTreeMap<String, Parameters> = self.read_json(PACKAGE_DEFAULTS)?;
        for (key, parameters) in &packages {
            if let Some((host, qualified)) = host_and_entity(key)
                && host == from
            {
                let adopted = format!("{to} /{qualified}");
                if !packages.contains_key(&adopted) {
                    self.keep_package_defaults(&adopted, Some(parameters))?;
                }
            }
        }
        Ok(())
    }

    /// Holds `{what}.lock` exclusively until the returned file is dropped
    /// (see [`exclusive`]).
    fn exclusive(&self, what: &str) -> Result<std::fs::File, ConfidentialError> {
        exclusive(&self.dir, what)
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

    /// Records that gateway `gateway` (its identity) issued credential
    /// `uuid` to this client, so that a revocation is sent to that gateway
    /// and no other.
    pub fn keep_issued_credential(
        &self,
        uuid: &str,
        gateway: ClientId,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("gateway-credentials")?;
        let mut issued: BTreeMap<String, ClientId> = self.read_json(ISSUED_CREDENTIALS)?;
        issued.insert(uuid.to_owned(), gateway);
        let json = serde_json::to_vec_pretty(&issued)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        self.write_whole(ISSUED_CREDENTIALS, &json, true)
    }

    /// The gateway that issued credential `uuid` to this client, if it
    /// recorded one.
    pub fn credential_issuer(&self, uuid: &str) -> Result<Option<ClientId>, ConfidentialError> {
        let issued: BTreeMap<String, ClientId> = self.read_json(ISSUED_CREDENTIALS)?;
        Ok(issued.get(uuid).copied())
    }

    /// The highest version of action `action` (`owner:namespace/name`)
    /// this client has seen from `api_host`'s broker, if any.
    pub fn highest_seen(
        &self,
        api_host: &str,
        action: &str,
    ) -> Result<Option<u64>, ConfidentialError> {
        let marks: BTreeMap<String, HighWater> = self.read_json(FRESHNESS)?;
        Ok(marks
            .get(api_host)
            .and_then(|marks| marks.actions.get(action).copied()))
    }

    /// The API hosts other than `api_host` from whose brokers this client
    /// saw a confidential action `short` (`[package/]name`) of `namespace`
    /// (of any namespace when `None`), where it signed or accepted a chain
    /// plan of a sequence of that name, or keeps the parameters of a
    /// confidential package of that name. The same deployment may be
    /// reached by another address (another controller of a cluster,
    /// another spelling of the URL), where this client has pinned nothing.
    pub fn confidential_elsewhere(
        &self,
        api_host: &str,
        namespace: Option<&str>,
        short: &str,
    ) -> Result<Vec<String>, ConfidentialError> {
        // `namespace/short`, as both files name an entity.
        let names_it = |qualified: &str| {
            qualified.split_once('/').is_some_and(|(ns, rest)| {
                rest == short && namespace.is_none_or(|wanted| ns == wanted)
            })
        };
        let marks: BTreeMap<String, HighWater> = self.read_json(FRESHNESS)?;
        let mut hosts: Vec<String> = marks
            .into_iter()
            .filter(|(host, marks)| {
                host != api_host
                    && marks.actions.keys().any(|action| {
                        action
                            .split_once(':')
                            .is_some_and(|(_owner, qualified)| names_it(qualified))
                    })
            })
            .map(|(host, _)| host)
            .collect();
        // Chain plans and confidential packages, both kept by `HOST /ns/short`.
        let plans: BTreeMap<String, u64> = self.read_json(PLANS)?;
        let packages: BTreeMap<String, Parameters> = self.read_json(PACKAGE_DEFAULTS)?;
        for key in plans.keys().chain(packages.keys()) {
            if let Some((host, qualified)) = host_and_entity(key)
                && host != api_host
                && names_it(qualified)
                && !hosts.iter().any(|known| known == host)
            {
                hosts.push(host.to_owned());
            }
        }
        Ok(hosts)
    }

    /// Remembers the keys of one invocation's answer (buffered: appended
    /// with a few dozen others, at most an eighth of a generation).
    pub fn remember(&self, entry: &KeyringEntry) -> Result<(), ConfidentialError> {
        let json = Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        self.keyring.push(&json)
    }

    /// Writes out buffered keyring entries.
    pub fn flush(&self) -> Result<(), ConfidentialError> {
        self.keyring.flush()
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
        self.sessions.append(&line)
    }

    /// The opening of session `id`, if this client opened it.
    pub fn recall_session(
        &self,
        id: &[u8; 16],
    ) -> Result<Option<OpenedSession>, ConfidentialError> {
        let wanted = hex::encode(id);
        self.find_in_log(&self.sessions, |line| {
            let record: serde_json::Value = serde_json::from_slice(line).ok()?;
            (record["sessionId"] == wanted.as_str())
                .then(|| serde_json::from_value(record["opening"].clone()).ok())?
        })
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
        self.raise_mark((PLANS, "chain-plans"), sequence, version)
    }

    /// Raises `key`'s mark in the whole-file map `file` (updated under the
    /// lock `lock`) to `version`, never lowering it.
    fn raise_mark(
        &self,
        (file, lock): (&str, &str),
        key: &str,
        version: u64,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive(lock)?;
        let mut marks: BTreeMap<String, u64> = self.read_json(file)?;
        let newest = marks.entry(key.to_owned()).or_insert(version);
        if *newest > version {
            return Ok(());
        }
        *newest = version;
        let json = serde_json::to_vec_pretty(&marks)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        self.write_whole(file, &json, true)
    }

    /// The default parameters this client sealed into the code of
    /// `version` of action `action` (a key that names the API host and
    /// namespace too), if it sealed that version. Nobody outside an enclave
    /// can read the sealed copy, so an update that names no parameters
    /// seals this one again, as OpenWhisk keeps an action's parameters on
    /// such an update.
    pub fn sealed_defaults(
        &self,
        action: &str,
        version: u64,
    ) -> Result<Option<DefaultParameters>, ConfidentialError> {
        let kept: BTreeMap<String, KeptDefaults> = self.read_json(DEFAULTS)?;
        Ok(kept
            .get(action)
            .filter(|kept| {
                kept.version == version && (!kept.parameters.is_empty() || kept.final_parameters)
            })
            .map(|kept| DefaultParameters::new(kept.parameters.clone(), kept.final_parameters)))
    }

    /// The whole set this client sealed into `version` of `action`: as
    /// [`Self::sealed_defaults`], over its package's parameters of then.
    pub fn sealed_set(
        &self,
        action: &str,
        version: u64,
    ) -> Result<Option<DefaultParameters>, ConfidentialError> {
        let kept: BTreeMap<String, KeptDefaults> = self.read_json(DEFAULTS)?;
        Ok(kept
            .get(action)
            .filter(|kept| kept.version == version)
            .map(|kept| {
                let mut parameters = kept.package.clone().unwrap_or_default();
                parameters.extend(kept.parameters.clone());
                DefaultParameters::new(parameters, kept.final_parameters)
            }))
    }

    /// The parameters this client keeps for its confidential package
    /// `package` (a key that names the API host and namespace too).
    pub fn package_defaults(&self, package: &str) -> Result<Option<Parameters>, ConfidentialError> {
        let mut kept: BTreeMap<String, Parameters> = self.read_json(PACKAGE_DEFAULTS)?;
        Ok(kept.remove(package))
    }

    /// Keeps `parameters` as those of confidential package `package`, or
    /// forgets them.
    pub fn keep_package_defaults(
        &self,
        package: &str,
        parameters: Option<&Parameters>,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("package-defaults")?;
        let mut kept: BTreeMap<String, Parameters> = self.read_json(PACKAGE_DEFAULTS)?;
        match parameters {
            Some(parameters) => {
                kept.insert(package.to_owned(), parameters.clone());
            }
            None => {
                if kept.remove(package).is_none() {
                    return Ok(());
                }
            }
        }
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&kept)
                .map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        self.write_whole(PACKAGE_DEFAULTS, &json, true)
    }

    /// The newest version action `action` (a key that names the API host
    /// and namespace too) had when it was deleted through this client, if
    /// it ever was.
    pub fn deleted_version(&self, action: &str) -> Result<Option<u64>, ConfidentialError> {
        let mut deleted: BTreeMap<String, u64> = self.read_json(DELETED)?;
        Ok(deleted.remove(action))
    }

    /// Records that action `action` was deleted through this client while
    /// its newest version was `version` (never lowering a record).
    pub fn keep_deleted_version(
        &self,
        action: &str,
        version: u64,
    ) -> Result<(), ConfidentialError> {
        self.raise_mark((DELETED, "deleted"), action, version)
    }

    /// Records what was just sealed into the code of `version` of action
    /// `action`: `defaults` (the action's own) over `package` (its
    /// package's), the whole set final or not, or none.
    pub fn keep_sealed_defaults(
        &self,
        action: &str,
        version: u64,
        (defaults, package): (Option<&DefaultParameters>, Option<&Parameters>),
        final_parameters: bool,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("defaults")?;
        let mut kept: BTreeMap<String, KeptDefaults> = self.read_json(DEFAULTS)?;
        let package = package.filter(|package| !package.is_empty());
        if defaults.is_none() && package.is_none() {
            if kept.remove(action).is_none() {
                return Ok(());
            }
        } else {
            kept.insert(
                action.to_owned(),
                KeptDefaults {
                    version,
                    parameters: defaults
                        .map(|defaults| defaults.parameters().clone())
                        .unwrap_or_default(),
                    final_parameters,
                    package: package.cloned(),
                },
            );
        }
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&kept)
                .map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        self.write_whole(DEFAULTS, &json, true)
    }

    /// Keeps what this client sealed into `from` of `action` as sealed into
    /// `to`: version `to` was registered, but its code was not stored, so
    /// the node still runs `from`'s, and an update over it keeps `from`'s
    /// defaults.
    pub fn carry_sealed_defaults(
        &self,
        action: &str,
        from: u64,
        to: u64,
    ) -> Result<(), ConfidentialError> {
        let _updating = self.exclusive("defaults")?;
        let mut kept: BTreeMap<String, KeptDefaults> = self.read_json(DEFAULTS)?;
        match kept.get_mut(action) {
            Some(defaults) if defaults.version == from => defaults.version = to,
            _ => return Ok(()),
        }
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&kept)
                .map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
        self.write_whole(DEFAULTS, &json, true)
    }

    /// The keys of activation `id`, if this client invoked it. Every line
    /// is read: an id this client was answered under twice is refused
    /// ([`ConfidentialError::ActivationIdReused`]), since the node names
    /// ids, and one it reused would have this client show one
    /// invocation's verified answer as the other's.
    pub fn recall(&self, activation_id: &str) -> Result<Option<KeyringEntry>, ConfidentialError> {
        self.flush()?;
        let found = std::cell::RefCell::new(Vec::new());
        // Only lines naming the id are parsed.
        let id = memchr::memmem::Finder::new(activation_id.as_bytes());
        // A torn line (a crash mid-append) is skipped.
        self.find_in_log(&self.keyring.log, |line| {
            id.find(line)?;
            if let Some(entry) = serde_json::from_slice::<KeyringEntry>(line)
                .ok()
                .filter(|entry| entry.activation_id == activation_id)
            {
                found.borrow_mut().push(entry);
            }
            None::<()>
        })?;
        let mut found = found.into_inner();
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => Err(ConfidentialError::ActivationIdReused(
                activation_id.to_owned(),
            )),
        }
    }

    /// What this client's keyring says of each of `activation_ids`, in one
    /// read of it (for a list of activations): the entry of each it
    /// invoked, or that it was answered under that id twice (which
    /// [`Self::recall`] refuses). Ids it did not invoke are left out.
    pub fn recall_each(
        &self,
        activation_ids: &[&str],
    ) -> Result<BTreeMap<String, Recalled>, ConfidentialError> {
        const ID_FIELD: &[u8] = b"\"activationId\":\"";
        if activation_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.flush()?;
        let wanted: std::collections::HashSet<&[u8]> =
            activation_ids.iter().map(|id| id.as_bytes()).collect();
        let field = memchr::memmem::Finder::new(ID_FIELD);
        let found = std::cell::RefCell::new(BTreeMap::new());
        self.find_in_log(&self.keyring.log, |line| {
            // One look per line: the id it names, parsed only if wanted.
            let at = field.find(line)? + ID_FIELD.len();
            let rest = line.get(at..)?;
            let id = rest.get(..memchr::memchr(b'"', rest)?)?;
            if !wanted.contains(id) {
                return None::<()>;
            }
            if let Ok(entry) = serde_json::from_slice::<KeyringEntry>(line) {
                let mut found = found.borrow_mut();
                let id = entry.activation_id.clone();
                let recalled = if found.contains_key(&id) {
                    Recalled::Reused
                } else {
                    Recalled::Invoked(Box::new(entry))
                };
                found.insert(id, recalled);
            }
            None
        })?;
        Ok(found.into_inner())
    }
}

/// The gateway credentials this client was issued, by UUID, with the
/// identity of the gateway that issued each (a whole file).
const ISSUED_CREDENTIALS: &str = "gateway-credentials.json";
/// The pinned brokers (a whole file).
const PINS: &str = "brokers.json";
/// The high-water marks (a whole file).
const FRESHNESS: &str = "freshness.json";
/// The newest chain plan versions seen (a whole file).
const PLANS: &str = "chain-plans.json";
/// The default parameters sealed into each action's code (a whole file).
const DEFAULTS: &str = "sealed-defaults.json";
/// The parameters of confidential packages, per package (a whole file).
const PACKAGE_DEFAULTS: &str = "package-defaults.json";
/// The actions deleted through this client, each with the newest version
/// it had then (a whole file).
const DELETED: &str = "deleted-actions.json";
/// The keys of the answers (a log).
const KEYRING: &str = "keyring";
/// The openings of sessions (a log).
const SESSIONS: &str = "sessions";

/// One action's default parameters as [`ClientHome::keep_sealed_defaults`]
/// keeps them.
#[derive(Serialize, Deserialize)]
struct KeptDefaults {
    /// The action version they were sealed into.
    version: u64,
    parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "final")]
    final_parameters: bool,
    /// The package's parameters sealed under them, for an action of a
    /// confidential package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    package: Option<Parameters>,
}

/// A JSON object of parameters.
type Parameters = serde_json::Map<String, serde_json::Value>;

/// Holds `{what}.lock` in `dir` exclusively until the returned file is
/// dropped: every read-modify-write of a file in the directory, and every
/// append to a log, holds it, so that two clients sharing the directory
/// (two CLI commands at once) never lose each other's update. A lost raise
/// of a high-water mark would let a rollback through unseen.
fn exclusive(dir: &Path, what: &str) -> Result<std::fs::File, ConfidentialError> {
    let path = dir.join(format!("{what}.lock"));
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
    fn sealed_defaults_serve_only_the_version_they_were_sealed_into() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        let mut parameters = serde_json::Map::new();
        parameters.insert("token".into(), "t-1".into());
        let defaults = DefaultParameters::new(parameters.clone(), true);
        home.keep_sealed_defaults("h /guest/echo", 3, (Some(&defaults), None), true)
            .expect("keep");
        let reopened = ClientHome::open(dir.path()).expect("home");
        let kept = reopened
            .sealed_defaults("h /guest/echo", 3)
            .expect("read")
            .expect("kept for version 3");
        assert_eq!(kept.parameters(), &parameters);
        assert!(kept.is_final());
        // Another client updated the action since: this copy is stale.
        assert!(
            reopened
                .sealed_defaults("h /guest/echo", 4)
                .expect("read")
                .is_none()
        );
        assert!(
            reopened
                .sealed_defaults("h /guest/other", 3)
                .expect("read")
                .is_none()
        );
        // An update that sealed none forgets them.
        reopened
            .keep_sealed_defaults("h /guest/echo", 4, (None, None), false)
            .expect("forget");
        assert!(
            reopened
                .sealed_defaults("h /guest/echo", 3)
                .expect("read")
                .is_none()
        );
    }

    #[test]
    fn a_deleted_version_is_kept_and_never_lowered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        assert_eq!(home.deleted_version("h /guest/a").expect("read"), None);
        home.keep_deleted_version("h /guest/a", 3).expect("keep");
        home.keep_deleted_version("h /guest/a", 2).expect("keep");
        assert_eq!(home.deleted_version("h /guest/a").expect("read"), Some(3));
        home.keep_deleted_version("h /guest/a", 4).expect("keep");
        let reopened = ClientHome::open(dir.path()).expect("home");
        assert_eq!(
            reopened.deleted_version("h /guest/a").expect("read"),
            Some(4)
        );
        assert_eq!(
            reopened.deleted_version("h /guest/p/a").expect("read"),
            None
        );
    }

    #[test]
    fn a_name_confidential_at_another_address_is_found_there_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        home.keep_package_defaults("http://a /guest/tools", Some(&Parameters::new()))
            .expect("keep");
        home.see_plan("http://a /guest/pipe", 3).expect("plan");
        home.check_fresh("http://a", 1, Some(("ab:guest/pkg/vault", 2)))
            .expect("mark");
        for (namespace, short) in [
            (Some("guest"), "tools"),
            (None, "tools"),
            (Some("guest"), "pipe"),
            (Some("guest"), "pkg/vault"),
            (None, "pkg/vault"),
        ] {
            assert_eq!(
                home.confidential_elsewhere("http://b", namespace, short)
                    .expect("read"),
                ["http://a"],
                "{namespace:?} {short}"
            );
        }
        for (api_host, namespace, short) in [
            ("http://a", Some("guest"), "tools"),
            ("http://b", Some("other"), "tools"),
            ("http://b", Some("guest"), "vault"),
            ("http://b", Some("guest"), "pkg"),
        ] {
            assert!(
                home.confidential_elsewhere(api_host, namespace, short)
                    .expect("read")
                    .is_empty(),
                "{api_host} {namespace:?} {short}"
            );
        }
    }

    #[test]
    fn a_packaged_actions_sealed_set_is_its_own_over_its_packages_of_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        let object = |value: serde_json::Value| match value {
            serde_json::Value::Object(object) => object,
            _ => unreachable!("an object literal"),
        };
        let package = object(serde_json::json!({"region": "eu", "token": "p-1"}));
        home.keep_package_defaults("h /guest/tools", Some(&package))
            .expect("keep the package's");
        assert_eq!(
            ClientHome::open(dir.path())
                .expect("home")
                .package_defaults("h /guest/tools")
                .expect("read"),
            Some(package.clone())
        );
        let own = DefaultParameters::new(object(serde_json::json!({"token": "a-1"})), false);
        home.keep_sealed_defaults(
            "h /guest/tools/echo",
            2,
            (Some(&own), Some(&package)),
            false,
        )
        .expect("keep");
        // The package changes later: the sealed set still shows what was
        // sealed, and an update reseals only the action's own.
        home.keep_package_defaults(
            "h /guest/tools",
            Some(&object(serde_json::json!({"region": "us"}))),
        )
        .expect("update the package's");
        let sealed = home
            .sealed_set("h /guest/tools/echo", 2)
            .expect("read")
            .expect("kept");
        assert_eq!(
            sealed.parameters(),
            &object(serde_json::json!({"region": "eu", "token": "a-1"}))
        );
        let own_kept = home
            .sealed_defaults("h /guest/tools/echo", 2)
            .expect("read")
            .expect("kept");
        assert_eq!(own_kept.parameters(), own.parameters());
        // Only the package's were sealed: nothing of the action's own.
        home.keep_sealed_defaults("h /guest/tools/bare", 1, (None, Some(&package)), false)
            .expect("keep");
        assert!(
            home.sealed_defaults("h /guest/tools/bare", 1)
                .expect("read")
                .is_none()
        );
        assert_eq!(
            home.sealed_set("h /guest/tools/bare", 1)
                .expect("read")
                .expect("kept")
                .parameters(),
            &package
        );
        // The same, under `final`: an update reseals it final, with no
        // parameters of the action's own.
        home.keep_sealed_defaults("h /guest/tools/bare", 2, (None, Some(&package)), true)
            .expect("keep");
        let own = home
            .sealed_defaults("h /guest/tools/bare", 2)
            .expect("read")
            .expect("final is kept");
        assert!(own.parameters().is_empty() && own.is_final());
        assert!(
            home.sealed_set("h /guest/tools/bare", 2)
                .expect("read")
                .expect("kept")
                .is_final()
        );
        home.keep_package_defaults("h /guest/tools", None)
            .expect("forget");
        assert_eq!(home.package_defaults("h /guest/tools").expect("read"), None);
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
        home.remember(&entry("act-1")).expect("remembered");
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
    fn an_activation_id_answered_twice_is_refused_not_recalled() {
        let dir = tempfile::tempdir().expect("dir");
        let home = ClientHome::open(dir.path()).expect("home");
        home.remember(&entry("act-1")).expect("remembered");
        home.remember(&entry("act-10")).expect("remembered");
        // The node answers another invocation under an id it gave before.
        let mut other = entry("act-1");
        other.action = "b".into();
        home.remember(&other).expect("remembered");
        assert!(matches!(
            home.recall("act-1"),
            Err(ConfidentialError::ActivationIdReused(id)) if id == "act-1"
        ));
        // An id that only contains the reused one is still found.
        let found = home.recall("act-10").expect("read").expect("kept");
        assert_eq!(found.activation_id, "act-10");
    }

    #[test]
    fn a_list_recalls_each_invoked_id_and_marks_a_reused_one() {
        let dir = tempfile::tempdir().expect("dir");
        let home = ClientHome::open(dir.path()).expect("home");
        for id in ["act-1", "act-10", "act-2", "act-1"] {
            home.remember(&entry(id)).expect("remembered");
        }
        let recalled = home
            .recall_each(&["act-1", "act-10", "act-3"])
            .expect("read");
        assert!(matches!(recalled.get("act-1"), Some(Recalled::Reused)));
        assert!(matches!(
            recalled.get("act-10"),
            Some(Recalled::Invoked(entry)) if entry.activation_id == "act-10"
        ));
        // Not listed, or not invoked here: left out.
        assert!(!recalled.contains_key("act-2"));
        assert!(!recalled.contains_key("act-3"));
        assert!(home.recall_each(&[]).expect("read").is_empty());
    }

    #[test]
    fn a_sealed_keyring_batch_is_one_line_and_each_entry_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = std::sync::Arc::new(TestVault {
            key: [9; 32],
            ..TestVault::default()
        });
        let home = ClientHome::open_sealed(dir.path(), vault.clone()).expect("home");
        for id in ["act-1", "act-2", "act-3"] {
            home.remember(&entry(id)).expect("remembered");
        }
        home.flush().expect("flushed");
        home.remember(&entry("act-4")).expect("remembered");
        home.flush().expect("flushed");
        let file = dir.path().join(format!("{KEYRING}.sealed"));
        let text = std::fs::read_to_string(&file).expect("keyring");
        // One sealed line per batch, none in the clear.
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("act-"), "{text}");
        let again = ClientHome::open_sealed(dir.path(), vault).expect("home");
        for id in ["act-1", "act-2", "act-3", "act-4"] {
            let found = again.recall(id).expect("read").expect("kept");
            assert_eq!(found.activation_id, id);
        }
        assert!(again.recall("act-5").expect("read").is_none());
    }

    #[test]
    fn batches_handed_to_the_writer_are_all_appended_by_flush_and_by_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limit = 1 << 20;
        let home = ClientHome::open(dir.path())
            .expect("home")
            .with_log_limit(limit);
        // Several batches of 16 KiB, each handed to the writer thread.
        for i in 0..200 {
            home.remember(&entry(&format!("act-{i}")))
                .expect("remembered");
        }
        home.flush().expect("flushed");
        let reader = ClientHome::open(dir.path())
            .expect("home")
            .with_log_limit(limit);
        for i in [0, 57, 123, 199] {
            assert!(
                reader.recall(&format!("act-{i}")).expect("read").is_some(),
                "act-{i} after flush"
            );
        }
        for i in 200..400 {
            home.remember(&entry(&format!("act-{i}")))
                .expect("remembered");
        }
        // The last clone's drop appends the rest and waits for the writer.
        drop(home);
        for i in [200, 311, 399] {
            assert!(
                reader.recall(&format!("act-{i}")).expect("read").is_some(),
                "act-{i} after drop"
            );
        }
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

    /// An entry whose result key is `0x5a…`.
    fn entry(id: &str) -> KeyringEntry {
        let keys = AnswerKeys {
            result: ExportedKey::from_bytes([0x5a; 32]),
            logs: ExportedKey::from_bytes([0x6b; 32]),
        };
        KeyringEntry::new(
            id.into(),
            "guest".into(),
            "a".into(),
            1,
            Digest::of(b"code"),
            [1; 16],
            Digest::of(b"input"),
            Some(&keys),
        )
    }

    /// The bytes of both generations of `log` in `dir`.
    fn log_bytes(dir: &Path, log: &str) -> u64 {
        std::fs::read_dir(dir)
            .expect("dir")
            .map(|file| file.expect("entry"))
            .filter(|file| file.file_name().to_string_lossy().starts_with(log))
            .filter(|file| !file.file_name().to_string_lossy().ends_with(".lock"))
            .map(|file| file.metadata().expect("metadata").len())
            .sum()
    }

    #[test]
    fn the_logs_stay_within_their_limit_and_keep_their_newest_lines() {
        const LIMIT: u64 = 16 << 10;
        let plain = tempfile::tempdir().expect("tempdir");
        let sealed = tempfile::tempdir().expect("tempdir");
        let vault = std::sync::Arc::new(TestVault {
            key: [9; 32],
            ..TestVault::default()
        });
        let homes = [
            ClientHome::open(plain.path())
                .expect("home")
                .with_log_limit(LIMIT),
            ClientHome::open_sealed(sealed.path(), vault)
                .expect("home")
                .with_log_limit(LIMIT),
        ];
        for (home, dir) in homes.iter().zip([plain.path(), sealed.path()]) {
            // Some 400 bytes a line: ten times what the limit holds.
            for n in 0..400 {
                home.remember(&entry(&format!("act-{n}"))).expect("kept");
                let line = format!("{{\"sessionId\":\"s-{n}\"}}\n");
                let sealed_line = home.log_line(SESSIONS, line.trim_end().as_bytes());
                home.sessions
                    .append(&sealed_line.expect("line"))
                    .expect("kept");
                if n % 50 == 0 {
                    home.flush().expect("flushed");
                    for log in [KEYRING, SESSIONS] {
                        let bytes = log_bytes(dir, log);
                        assert!(bytes <= LIMIT, "{log}: {bytes} bytes");
                    }
                }
            }
            // The newest entries survive rotation (a generation holds some
            // 18 lines, the previous one at least 7/8 of that), the oldest
            // are dropped.
            for n in 388..400 {
                let found = home.recall(&format!("act-{n}")).expect("read");
                assert!(found.is_some(), "act-{n} was dropped");
            }
            assert!(home.recall("act-0").expect("read").is_none());
            assert!(
                dir.join(format!("{KEYRING}.1.{}", home.keyring.log.extension))
                    .exists()
            );
            let newest = home
                .find_in_log(&home.sessions, |line| {
                    (line == br#"{"sessionId":"s-399"}"#).then_some(())
                })
                .expect("read");
            assert!(newest.is_some());
            assert!(log_bytes(dir, KEYRING) <= LIMIT && log_bytes(dir, SESSIONS) <= LIMIT);
        }
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_line_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = ClientHome::open(dir.path()).expect("home");
        home.remember(&entry("act-before")).expect("kept");
        home.flush().expect("flushed");
        // A crash in the middle of an append.
        let path = dir.path().join(format!("{KEYRING}.jsonl"));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("log");
        file.write_all(br#"{"activationId":"act-torn","names"#)
            .expect("torn");
        drop(file);
        let again = ClientHome::open(dir.path()).expect("home");
        again.remember(&entry("act-after")).expect("kept");
        again.flush().expect("flushed");
        for kept in ["act-before", "act-after"] {
            assert!(again.recall(kept).expect("read").is_some(), "{kept}");
        }
        assert!(again.recall("act-torn").expect("read").is_none());
    }

    /// Four clients sharing one home (four CLI commands), each with its
    /// own handle, append 40 lines each at once under `limit`.
    fn append_at_once(dir: &Path, limit: u64) {
        let threads: Vec<_> = (0..4)
            .map(|client| {
                let home = ClientHome::open(dir).expect("home").with_log_limit(limit);
                std::thread::spawn(move || {
                    for n in 0..40 {
                        home.remember(&entry(&format!("act-{client}-{n}")))
                            .expect("kept");
                        home.flush().expect("flushed");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
    }

    #[test]
    fn two_clients_appending_at_once_lose_no_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        append_at_once(dir.path(), DEFAULT_LOG_LIMIT);
        let home = ClientHome::open(dir.path()).expect("home");
        for client in 0..4 {
            for n in 0..40 {
                let id = format!("act-{client}-{n}");
                assert!(home.recall(&id).expect("read").is_some(), "{id} was lost");
            }
        }
        // And rotating as they go (a limit of some 50 lines), they keep to
        // it, and no more or fewer lines than two generations hold.
        let dir = tempfile::tempdir().expect("tempdir");
        append_at_once(dir.path(), 24 << 10);
        assert!(log_bytes(dir.path(), KEYRING) <= 24 << 10);
        let home = ClientHome::open(dir.path()).expect("home");
        let kept = (0..4)
            .flat_map(|client| (0..40).map(move |n| format!("act-{client}-{n}")))
            .filter(|id| home.recall(id).is_ok_and(|found| found.is_some()))
            .count();
        assert!((20..80).contains(&kept), "{kept} lines kept");
    }
}
