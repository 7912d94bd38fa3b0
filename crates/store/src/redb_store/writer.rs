//! The store's single writer thread: group commit, the commit interval of
//! `RecordDurability::Group`, and the retention sweep.
//!
//! A write that someone waits for (every write but a group-mode activation
//! record) is committed as soon as the writer takes it, together with
//! everything queued before it, in one `Durability::Immediate` transaction
//! (one fsync). Group-mode records are held, in order, until the commit
//! interval since the oldest of them has passed, or enough of them are
//! held, or a waited-for write comes; they are then committed first, so a
//! stand-in queued after a record finds it stored.
//!
//! Group-mode records do not come through the queue: they are put in an
//! [`Inbox`] that the writer empties whenever it wakes, and only the record
//! that starts a group (or fills one) wakes it. So a group of records costs
//! the writer one wake-up, not one per record.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use clemmys_whisk::{Action, Activation, NamespaceRecord, Package};
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::tables::{DocumentTable, EncodedRecord, ID_MAX, StoredKey, Tables, decode, encode};
use crate::pending::Pending;
use crate::{CrashRecovery, PutMode, StoreConfig, StoreError};

/// Writes taken from the queue into one transaction at most; also the most
/// group-mode records held before their commit is due.
pub(super) const MAX_BATCH: usize = 512;
/// Encoded bytes of held records past which their commit is due.
const MAX_HELD_BYTES: usize = 8 << 20;
/// Expired records deleted in one transaction at most.
const SWEEP_BATCH: usize = 1000;
/// Namespaces looked at in one sweep at most.
const SWEEP_NAMESPACES: usize = 256;

/// How much the writer thread lowers its own priority (its nice value).
const WRITER_NICE_INCREMENT: i32 = 10;

/// Lowers the calling thread's scheduling priority (on Linux a nice value
/// belongs to the thread). A commit's CPU work (encoding pages, checksums,
/// the retention sweep) then never holds a core that a request is waiting
/// for: the request preempts it. Measured with a warm invoke at one
/// client, this took the p99 from about 1.0 ms to 0.7 ms. Under full load
/// the writer still gets its share, and its groups simply grow.
pub(super) fn yield_cores_to_requests() {
    if let Err(error) = rustix::process::nice(WRITER_NICE_INCREMENT) {
        tracing::debug!(%error, "the store writer could not lower its priority");
    }
}

/// Group-mode records waiting for the writer to take them.
#[derive(Default)]
pub(super) struct Inbox {
    records: Mutex<InboxRecords>,
    /// Set while the writer holds records and so has a commit deadline: a
    /// new record then needs no wake-up.
    armed: AtomicBool,
}

#[derive(Default)]
struct InboxRecords {
    records: Vec<Arc<EncodedRecord>>,
    bytes: usize,
}

impl Inbox {
    /// Adds `record`; whether the writer must be woken for it (it has no
    /// commit deadline, or enough records are waiting for a commit).
    pub fn put(&self, record: Arc<EncodedRecord>) -> bool {
        let full = {
            let mut inbox = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            inbox.bytes = inbox.bytes.saturating_add(record.json.len());
            inbox.records.push(record);
            inbox.records.len() >= MAX_BATCH || inbox.bytes >= MAX_HELD_BYTES
        };
        // After the record is in: a writer that disarms itself looks at
        // the inbox afterwards and finds it (see `Writer::disarm`).
        full || !self.armed.load(Ordering::SeqCst)
    }

    fn take(&self) -> Vec<Arc<EncodedRecord>> {
        let mut inbox = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.bytes = 0;
        std::mem::take(&mut inbox.records)
    }
}

pub(super) enum WriteOp {
    PutNamespace(NamespaceRecord),
    PutAction {
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    },
    DeleteAction {
        key: String,
    },
    PutPackage {
        package: Package,
        mode: PutMode,
    },
    DeletePackage {
        key: String,
    },
    /// A trigger or rule document; `CreateOnly` fails on an existing key.
    PutDocument {
        table: DocumentTable,
        key: String,
        json: Vec<u8>,
        mode: PutMode,
    },
    DeleteDocument {
        table: DocumentTable,
        key: String,
    },
    PutActivation(Arc<EncodedRecord>),
    /// Nothing but a wake-up: records are waiting in the [`Inbox`].
    Wake,
    PutStandIn(Activation),
    SettleInterrupted,
    /// Commit everything held; nothing else.
    Flush,
    /// Commit everything held and stop.
    Close,
    /// A write whose transaction fails, for tests of the batch retry.
    #[cfg(test)]
    Fail,
}

pub(super) enum WriteOutcome {
    Done,
    Deleted(Option<Box<Action>>),
    DeletedPackage(Option<Box<Package>>),
    /// The JSON of the removed document, if there was one.
    DeletedDocument(Option<Vec<u8>>),
    Settled(usize),
}

pub(super) type Reply = oneshot::Sender<Result<WriteOutcome, StoreError>>;

/// A write on the queue, with where to answer when someone waits for it.
pub(super) struct QueuedWrite {
    pub op: WriteOp,
    pub reply: Option<Reply>,
}

impl QueuedWrite {
    /// Whether it must be committed as soon as it is taken.
    fn is_urgent(&self) -> bool {
        self.reply.is_some() || matches!(self.op, WriteOp::Close)
    }

    /// Whether it changes nothing in the file.
    fn is_marker(&self) -> bool {
        matches!(self.op, WriteOp::Flush | WriteOp::Close | WriteOp::Wake)
    }
}

/// Where the retention sweep stands.
struct Sweep {
    retention_ms: u64,
    every: Duration,
    next: Instant,
    /// The namespace to resume at; `None` starts a new pass.
    cursor: Option<String>,
}

pub(super) struct Writer {
    db: Arc<Database>,
    pending: Arc<Pending>,
    failed_records: Arc<AtomicU64>,
    commit_interval: Duration,
    recovery: CrashRecovery,
    /// Group-mode records taken off the queue, not committed yet.
    held: Vec<QueuedWrite>,
    held_bytes: usize,
    held_since: Option<Instant>,
    inbox: Arc<Inbox>,
    sweep: Option<Sweep>,
}

impl Writer {
    pub fn new(
        db: Arc<Database>,
        pending: Arc<Pending>,
        failed_records: Arc<AtomicU64>,
        config: &StoreConfig,
    ) -> Self {
        let sweep = config.activation_retention.map(|retention| Sweep {
            retention_ms: u64::try_from(retention.as_millis()).unwrap_or(u64::MAX),
            every: config.retention_sweep_interval,
            next: Instant::now(),
            cursor: None,
        });
        Self {
            db,
            pending,
            failed_records,
            commit_interval: config.commit_interval,
            recovery: config.crash_recovery,
            held: Vec::new(),
            held_bytes: 0,
            held_since: None,
            inbox: Arc::new(Inbox::default()),
            sweep,
        }
    }

    /// Where group-mode records are put for this writer.
    pub fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    /// Holds every record waiting in the inbox.
    fn take_inbox(&mut self) {
        for record in self.inbox.take() {
            self.hold(QueuedWrite {
                op: WriteOp::PutActivation(record),
                reply: None,
            });
        }
    }

    /// Runs until `Close` or until every sender is gone, committing what
    /// it holds before it returns.
    pub fn run(mut self, queue: &mpsc::Receiver<QueuedWrite>) {
        loop {
            let first = match self.deadline() {
                None => match queue.recv() {
                    Ok(write) => Some(write),
                    Err(mpsc::RecvError) => break,
                },
                Some(at) => {
                    match queue.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(write) => Some(write),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch = Vec::new();
            if let Some(first) = first {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
            }
            batch.retain(|write| !matches!(write.op, WriteOp::Wake));
            // Records put before anything of the batch was sent are
            // committed before it (a stand-in finds its record stored).
            self.take_inbox();
            let closing = batch.iter().any(|write| matches!(write.op, WriteOp::Close));
            if batch.iter().any(QueuedWrite::is_urgent) {
                self.commit(batch);
            } else {
                for write in batch {
                    self.hold(write);
                }
                if self.held_is_due() {
                    self.commit(Vec::new());
                }
            }
            if closing {
                return;
            }
            self.sweep_if_due();
        }
        self.take_inbox();
        self.commit(Vec::new());
    }

    /// When the loop must wake up without a new write.
    fn deadline(&self) -> Option<Instant> {
        let commit = self.held_since.map(|since| since + self.commit_interval);
        let sweep = self.sweep.as_ref().map(|sweep| sweep.next);
        match (commit, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn hold(&mut self, write: QueuedWrite) {
        if let WriteOp::PutActivation(record) = &write.op {
            self.held_bytes = self.held_bytes.saturating_add(record.json.len());
        }
        self.held_since.get_or_insert_with(Instant::now);
        self.held.push(write);
        self.inbox.armed.store(true, Ordering::SeqCst);
    }

    /// Forgets the commit deadline, once nothing is held; a record put in
    /// the inbox meanwhile (whose writer saw the deadline and did not wake
    /// this one) is taken now and starts the next group.
    fn disarm(&mut self) {
        self.inbox.armed.store(false, Ordering::SeqCst);
        self.take_inbox();
    }

    fn held_is_due(&self) -> bool {
        self.held.len() >= MAX_BATCH
            || self.held_bytes >= MAX_HELD_BYTES
            || self
                .held_since
                .is_some_and(|since| since.elapsed() >= self.commit_interval)
    }

    /// Commits what is held, then `batch`, in one transaction; if that
    /// fails, each write in a transaction of its own, so that only the
    /// writes that fail alone fail. Answers every waiting writer and
    /// forgets committed records from the pending set.
    pub fn commit(&mut self, batch: Vec<QueuedWrite>) {
        let mut writes = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        self.held_since = None;
        writes.extend(batch);
        if writes.is_empty() {
            self.disarm();
            return;
        }
        let outcomes = match apply_in_one_transaction(&self.db, self.recovery, &writes) {
            Ok(outcomes) => outcomes,
            Err(error) if writes.len() > 1 => {
                tracing::warn!(%error, writes = writes.len(), "a batch commit failed: retrying its writes one by one");
                writes
                    .iter()
                    .map(|write| apply_alone(&self.db, self.recovery, write))
                    .collect()
            }
            Err(error) => vec![Err(error)],
        };
        for (write, outcome) in writes.into_iter().zip(outcomes) {
            self.finish(write, outcome);
        }
        self.disarm();
    }

    fn finish(&self, write: QueuedWrite, outcome: Result<WriteOutcome, StoreError>) {
        if let WriteOp::PutActivation(record) = &write.op {
            self.pending.remove(record);
            if write.reply.is_none()
                && let Err(error) = &outcome
            {
                // Its writer was answered already: all that is left is to
                // say so and count it.
                self.failed_records.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, id = %record.id, "an activation record could not be stored");
            }
        }
        if let Some(reply) = write.reply {
            // A caller that stopped waiting no longer needs the answer.
            let _ = reply.send(outcome);
        }
    }

    fn sweep_if_due(&mut self) {
        let Some(sweep) = &mut self.sweep else {
            return;
        };
        let now = Instant::now();
        if now < sweep.next {
            return;
        }
        let cutoff = clemmys_whisk::now_ms().saturating_sub(sweep.retention_ms);
        match delete_expired(&self.db, self.recovery, cutoff, &mut sweep.cursor) {
            Ok(SweepProgress { deleted, more }) => {
                if deleted > 0 {
                    tracing::debug!(deleted, "deleted activation records past their retention");
                }
                // Go on right after the queued writes while there is more.
                sweep.next = if more { now } else { now + sweep.every };
            }
            Err(error) => {
                tracing::warn!(%error, "deleting expired activation records failed");
                sweep.next = now + sweep.every;
            }
        }
    }
}

/// A write transaction that is durable when it commits, and that saves
/// what `recovery` needs to start quickly after a crash.
pub(super) fn begin_durable(
    db: &Database,
    recovery: CrashRecovery,
) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::backend)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::backend)?;
    txn.set_quick_repair(recovery == CrashRecovery::Quick);
    Ok(txn)
}

/// Applies `writes` in one durable transaction. The outer `Result` is a
/// failure of the transaction; the inner ones are each write's own outcome
/// (a conflict fails only its write).
fn apply_in_one_transaction(
    db: &Database,
    recovery: CrashRecovery,
    writes: &[QueuedWrite],
) -> Result<Vec<Result<WriteOutcome, StoreError>>, StoreError> {
    if writes.iter().all(QueuedWrite::is_marker) {
        return Ok(writes.iter().map(|_| Ok(WriteOutcome::Done)).collect());
    }
    let txn = begin_durable(db, recovery)?;
    let outcomes = {
        let mut tables = Tables::open(&txn)?;
        writes
            .iter()
            .map(|write| apply(&mut tables, &write.op))
            .collect::<Result<Vec<_>, _>>()?
    };
    txn.commit().map_err(StoreError::backend)?;
    Ok(outcomes)
}

/// Applies `write` in a transaction of its own.
fn apply_alone(
    db: &Database,
    recovery: CrashRecovery,
    write: &QueuedWrite,
) -> Result<WriteOutcome, StoreError> {
    match apply_in_one_transaction(db, recovery, std::slice::from_ref(write))?.pop() {
        Some(outcome) => outcome,
        None => Err(StoreError::Backend(
            "a write was applied without an outcome".into(),
        )),
    }
}

/// Applies one write. The outer `Result` is a storage failure that dooms
/// the whole transaction; the inner one is this write's own outcome.
fn apply(
    tables: &mut Tables,
    op: &WriteOp,
) -> Result<Result<WriteOutcome, StoreError>, StoreError> {
    match op {
        WriteOp::PutNamespace(record) => {
            let name = record.name.as_str();
            let old = match tables.namespaces.get(name).map_err(StoreError::backend)? {
                Some(old) => Some(decode::<NamespaceRecord>(old.value())?),
                None => None,
            };
            if let Some(old) = old {
                tables
                    .auth_uuids
                    .remove(old.auth.uuid.as_str())
                    .map_err(StoreError::backend)?;
            }
            tables
                .namespaces
                .insert(name, encode(record)?.as_slice())
                .map_err(StoreError::backend)?;
            tables
                .auth_uuids
                .insert(record.auth.uuid.as_str(), name)
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::PutAction { action, code, mode } => {
            let key = super::tables::key_of(action);
            if *mode == PutMode::CreateOnly
                && tables
                    .actions
                    .get(key.as_str())
                    .map_err(StoreError::backend)?
                    .is_some()
            {
                return Ok(Err(StoreError::Conflict));
            }
            tables
                .actions
                .insert(key.as_str(), encode(action)?.as_slice())
                .map_err(StoreError::backend)?;
            match code {
                Some(code) => tables.code.insert(key.as_str(), code.as_slice()).map(drop),
                None => tables.code.remove(key.as_str()).map(drop),
            }
            .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::DeleteAction { key } => {
            let removed = match tables
                .actions
                .remove(key.as_str())
                .map_err(StoreError::backend)?
            {
                Some(old) => Some(Box::new(decode::<Action>(old.value())?)),
                None => None,
            };
            tables
                .code
                .remove(key.as_str())
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Deleted(removed)))
        }
        WriteOp::PutPackage { package, mode } => {
            let key = super::tables::action_key(&package.namespace, &package.name);
            if *mode == PutMode::CreateOnly
                && tables
                    .packages
                    .get(key.as_str())
                    .map_err(StoreError::backend)?
                    .is_some()
            {
                return Ok(Err(StoreError::Conflict));
            }
            tables
                .packages
                .insert(key.as_str(), encode(package)?.as_slice())
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::DeletePackage { key } => {
            let removed = match tables
                .packages
                .remove(key.as_str())
                .map_err(StoreError::backend)?
            {
                Some(old) => Some(Box::new(decode::<Package>(old.value())?)),
                None => None,
            };
            Ok(Ok(WriteOutcome::DeletedPackage(removed)))
        }
        WriteOp::PutDocument {
            table,
            key,
            json,
            mode,
        } => {
            let documents = tables.documents(*table);
            if *mode == PutMode::CreateOnly
                && documents
                    .get(key.as_str())
                    .map_err(StoreError::backend)?
                    .is_some()
            {
                return Ok(Err(StoreError::Conflict));
            }
            documents
                .insert(key.as_str(), json.as_slice())
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::DeleteDocument { table, key } => {
            let removed = tables
                .documents(*table)
                .remove(key.as_str())
                .map_err(StoreError::backend)?
                .map(|old| old.value().to_vec());
            Ok(Ok(WriteOutcome::DeletedDocument(removed)))
        }
        WriteOp::PutActivation(record) => {
            tables.insert_record(record)?;
            tables
                .stand_ins
                .remove(record.id.as_bytes().as_slice())
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::PutStandIn(stand_in) => {
            let id = stand_in.activation_id.as_bytes().as_slice();
            if !tables.is_stored(id)? {
                tables
                    .stand_ins
                    .insert(id, encode(stand_in)?.as_slice())
                    .map_err(StoreError::backend)?;
            }
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::SettleInterrupted => {
            let mut settled = 0;
            loop {
                let json = match tables.stand_ins.pop_first().map_err(StoreError::backend)? {
                    Some((_, json)) => json.value().to_vec(),
                    None => break,
                };
                let stand_in: Activation = decode(&json)?;
                if !tables.is_stored(stand_in.activation_id.as_bytes())? {
                    tables.insert_record(&EncodedRecord::with_json(stand_in, json))?;
                    settled += 1;
                }
            }
            Ok(Ok(WriteOutcome::Settled(settled)))
        }
        WriteOp::Flush | WriteOp::Close | WriteOp::Wake => Ok(Ok(WriteOutcome::Done)),
        #[cfg(test)]
        WriteOp::Fail => Err(StoreError::Backend("failure injected by a test".into())),
    }
}

/// What one retention sweep did.
struct SweepProgress {
    deleted: usize,
    /// Whether it stopped at a bound with more left to look at.
    more: bool,
}

/// Deletes records that started before `cutoff` (epoch ms), at most
/// [`SWEEP_BATCH`] of them over at most [`SWEEP_NAMESPACES`] namespaces,
/// resuming at `cursor` and leaving there where to resume.
fn delete_expired(
    db: &Database,
    recovery: CrashRecovery,
    cutoff: u64,
    cursor: &mut Option<String>,
) -> Result<SweepProgress, StoreError> {
    let Some(last_expired) = cutoff.checked_sub(1) else {
        return Ok(SweepProgress {
            deleted: 0,
            more: false,
        });
    };
    let txn = begin_durable(db, recovery)?;
    let (victims, more) = {
        let mut tables = Tables::open(&txn)?;
        let (victims, more) = find_expired(&tables, last_expired, cursor)?;
        for (key, name) in &victims {
            tables.remove_record(key, name)?;
        }
        (victims, more)
    };
    txn.commit().map_err(StoreError::backend)?;
    Ok(SweepProgress {
        deleted: victims.len(),
        more,
    })
}

/// The records (key and action name) that started at or before
/// `last_expired`, namespace by namespace from `cursor`, within the bounds
/// of one sweep; and whether there may be more.
fn find_expired(
    tables: &Tables,
    last_expired: u64,
    cursor: &mut Option<String>,
) -> Result<(Vec<(StoredKey, String)>, bool), StoreError> {
    let first_namespace_from =
        |from: Bound<(&str, u64, &[u8])>| -> Result<Option<String>, StoreError> {
            let mut range = tables
                .keys
                .range::<(&str, u64, &[u8])>((from, Bound::Unbounded))
                .map_err(StoreError::backend)?;
            match range.next() {
                Some(entry) => {
                    let (key, _) = entry.map_err(StoreError::backend)?;
                    Ok(Some(key.value().0.to_owned()))
                }
                None => Ok(None),
            }
        };
    let mut namespace = match cursor.as_deref() {
        Some(resume) => first_namespace_from(Bound::Included((resume, 0, &[][..])))?,
        None => first_namespace_from(Bound::Unbounded)?,
    };
    let mut victims = Vec::new();
    let mut visited = 0;
    while let Some(ns) = namespace {
        visited += 1;
        let low = (ns.as_str(), 0, &[][..]);
        let high = (ns.as_str(), last_expired, &ID_MAX[..]);
        for entry in tables.keys.range(low..=high).map_err(StoreError::backend)? {
            let (key, name) = entry.map_err(StoreError::backend)?;
            let (_, start, id) = key.value();
            let key = StoredKey {
                namespace: ns.clone(),
                start,
                id: id.to_vec(),
            };
            victims.push((key, name.value().to_owned()));
            if victims.len() >= SWEEP_BATCH {
                // This namespace may have more: resume at it.
                *cursor = Some(ns);
                return Ok((victims, true));
            }
        }
        namespace = first_namespace_from(Bound::Excluded((ns.as_str(), u64::MAX, &ID_MAX[..])))?;
        if visited >= SWEEP_NAMESPACES && namespace.is_some() {
            *cursor = namespace;
            return Ok((victims, true));
        }
    }
    *cursor = None;
    Ok((victims, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redb_store::tables::Tables;
    use clemmys_whisk::{ActivationId, ActivationResponse, KeyValues};
    use redb::ReadableDatabase;

    fn record(id: u8) -> Arc<EncodedRecord> {
        let activation = Activation {
            namespace: "guest".into(),
            name: "a".into(),
            subject: "guest".into(),
            activation_id: ActivationId::from_bytes([id; 16]),
            version: "0.0.1".into(),
            publish: false,
            start: u64::from(id),
            end: u64::from(id),
            duration: 0,
            cause: None,
            response: ActivationResponse::success(serde_json::json!({})),
            logs: vec![],
            annotations: KeyValues::default(),
        };
        Arc::new(EncodedRecord::encode(activation).expect("encodes"))
    }

    fn waited(
        op: WriteOp,
    ) -> (
        QueuedWrite,
        oneshot::Receiver<Result<WriteOutcome, StoreError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        (
            QueuedWrite {
                op,
                reply: Some(reply),
            },
            answer,
        )
    }

    fn stored(db: &Database, id: u8) -> bool {
        let txn = db.begin_read().expect("read");
        let ids = txn
            .open_table(super::super::tables::ACTIVATION_IDS)
            .expect("table");
        ids.get([id; 16].as_slice()).expect("get").is_some()
    }

    /// A writer on a fresh store file with its tables, and what it shares.
    struct Fixture {
        _dir: tempfile::TempDir,
        db: Arc<Database>,
        pending: Arc<Pending>,
        failed: Arc<AtomicU64>,
        writer: Writer,
    }

    fn fresh_writer() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Database::create(dir.path().join("store.redb")).expect("create"));
        let txn = db.begin_write().expect("write");
        drop(Tables::open(&txn).expect("tables"));
        txn.commit().expect("commit");
        let pending = Arc::new(Pending::default());
        let failed = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(
            db.clone(),
            pending.clone(),
            failed.clone(),
            &StoreConfig::default(),
        );
        Fixture {
            _dir: dir,
            db,
            pending,
            failed,
            writer,
        }
    }

    #[test]
    fn only_the_record_that_starts_or_fills_a_group_wakes_the_writer() {
        let Fixture {
            _dir,
            db,
            mut writer,
            ..
        } = fresh_writer();
        let inbox = writer.inbox();

        assert!(inbox.put(record(1)), "no group yet: the writer must wake");
        writer.take_inbox();
        assert!(
            !inbox.put(record(2)),
            "the writer has a deadline for its group"
        );
        writer.commit(Vec::new());
        assert!(stored(&db, 1));
        assert!(!stored(&db, 2), "put after the group was taken");
        // The record whose writer did not wake anyone starts the next group.
        assert_eq!(writer.held.len(), 1);
        assert!(!inbox.put(record(3)));
        writer.commit(Vec::new());
        assert!(stored(&db, 2));
        writer.commit(Vec::new());
        assert!(stored(&db, 3));
        assert!(writer.held.is_empty());
        assert!(
            inbox.put(record(4)),
            "nothing held: the next record wakes the writer"
        );
        writer.take_inbox();

        // A full inbox wakes the writer even within a group.
        let wakes = (0..MAX_BATCH)
            .map(|n| {
                inbox.put(record(
                    u8::try_from(n % 200).expect("small").saturating_add(5),
                ))
            })
            .filter(|woke| *woke)
            .count();
        assert_eq!(wakes, 1);
    }

    #[test]
    fn one_failed_write_fails_alone_in_its_batch() {
        let Fixture {
            _dir,
            db,
            pending,
            failed,
            mut writer,
        } = fresh_writer();

        // A group-mode record held, then a batch with a doomed write
        // between two good ones.
        let held = record(1);
        assert!(pending.try_insert(&held));
        writer.hold(QueuedWrite {
            op: WriteOp::PutActivation(held),
            reply: None,
        });
        let (before, before_answer) = waited(WriteOp::PutActivation(record(2)));
        let (doomed, doomed_answer) = waited(WriteOp::Fail);
        let (after, after_answer) = waited(WriteOp::PutActivation(record(3)));
        writer.commit(vec![before, doomed, after]);

        assert!(matches!(
            before_answer.blocking_recv().expect("answered"),
            Ok(WriteOutcome::Done)
        ));
        assert!(matches!(
            after_answer.blocking_recv().expect("answered"),
            Ok(WriteOutcome::Done)
        ));
        assert!(matches!(
            doomed_answer.blocking_recv().expect("answered"),
            Err(StoreError::Backend(_))
        ));
        for id in [1, 2, 3] {
            assert!(stored(&db, id), "record {id} lost with the failed write");
        }
        assert!(pending.get(&ActivationId::from_bytes([1; 16])).is_none());
        assert_eq!(failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_held_record_whose_write_fails_is_counted_and_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Database::create(dir.path().join("store.redb")).expect("create"));
        let pending = Arc::new(Pending::default());
        let failed = Arc::new(AtomicU64::new(0));
        let mut writer = Writer::new(
            db.clone(),
            pending.clone(),
            failed.clone(),
            &StoreConfig::default(),
        );
        let held = record(7);
        assert!(pending.try_insert(&held));
        writer.hold(QueuedWrite {
            op: WriteOp::PutActivation(held),
            reply: None,
        });
        // A table of another type under the records' table name makes
        // every transaction that opens the tables fail.
        let txn = db.begin_write().expect("write");
        let wrong: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("activations");
        txn.open_table(wrong)
            .expect("create a table of another type");
        txn.commit().expect("commit");
        writer.commit(Vec::new());
        assert_eq!(failed.load(Ordering::Relaxed), 1);
        assert!(pending.get(&ActivationId::from_bytes([7; 16])).is_none());
    }
}
