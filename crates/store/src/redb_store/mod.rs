//! The embedded default store: one redb file, written through a single
//! group-commit thread (see `writer`).
//!
//! Every write is queued to the writer thread, which takes everything queued
//! so far, applies it in one transaction and commits it with
//! `Durability::Immediate` (one fsync), then answers each caller. Under load
//! many writes share one fsync; a lone write pays exactly one. Under
//! [`RecordDurability::Group`] an activation record's write does not wait
//! for that: it is put in a pending set that every read consults, queued,
//! and committed within the commit interval. Reads run on the caller's
//! thread against the pending set and the last committed state.

mod tables;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use async_trait::async_trait;
use clemmys_whisk::{
    Action, Activation, ActivationId, EntityName, NamespaceRecord, Package, Rule, Trigger,
};
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use self::tables::{
    ACTIONS, ACTIVATION_IDS, ACTIVATION_KEYS, ACTIVATIONS, ACTIVATIONS_BY_NAME, AUTH_UUIDS, CODE,
    DocumentTable, EncodedRecord, ID_MAX, NAMESPACES, PACKAGES, Tables, action_key, decode, encode,
    package_action_key,
};
use self::writer::{Inbox, QueuedWrite, WriteOp, WriteOutcome, Writer};
use crate::pending::Pending;
use crate::{
    ActivationFilter, CrashRecovery, EntityStore, PutMode, RecordDurability, StoreConfig,
    StoreError,
};

/// Records written in one transaction at most by [`RedbStore::put_activations`].
const BULK_BATCH: usize = 10_000;

/// The embedded redb-backed [`EntityStore`].
///
/// Dropping it commits whatever it still holds and waits for that (at most
/// one commit) before the file is closed.
pub struct RedbStore {
    db: Arc<Database>,
    writes: mpsc::Sender<QueuedWrite>,
    /// Group-mode records for the writer, handed over without a wake-up
    /// each.
    inbox: Arc<Inbox>,
    writer: Option<thread::JoinHandle<()>>,
    pending: Arc<Pending>,
    record_durability: RecordDurability,
    crash_recovery: CrashRecovery,
    failed_records: Arc<AtomicU64>,
}

impl RedbStore {
    /// Opens (creating if needed) the store file at `path` with the default
    /// [`StoreConfig`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreConfig::default())
    }

    /// Opens (creating if needed) the store file at `path`, persisting as
    /// `config` says.
    pub fn open_with(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_repair_callback(log_repair_progress)
            .create(path)
            .map_err(|error| match error {
                DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
                other => StoreError::backend(other),
            })?;
        // Create every table up front so that reads never meet a missing one.
        let txn = writer::begin_durable(&db, config.crash_recovery)?;
        Tables::open(&txn)?.rebuild_key_index_if_needed()?;
        txn.commit().map_err(StoreError::backend)?;

        let db = Arc::new(db);
        let pending = Arc::new(Pending::default());
        let failed_records = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(db.clone(), pending.clone(), failed_records.clone(), &config);
        let inbox = writer.inbox();
        let (writes, queue) = mpsc::channel();
        let writer = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                writer::yield_cores_to_requests();
                writer.run(&queue)
            })
            .map_err(StoreError::backend)?;
        Ok(Self {
            db,
            writes,
            inbox,
            writer: Some(writer),
            pending,
            record_durability: config.record_durability,
            crash_recovery: config.crash_recovery,
            failed_records,
        })
    }

    /// Activation records accepted under [`RecordDurability::Group`] whose
    /// later write failed (each one is also logged). Their writers were
    /// answered already; the records are lost.
    pub fn failed_record_writes(&self) -> u64 {
        self.failed_records.load(Ordering::Relaxed)
    }

    /// Stores many activation records fast, in large durable transactions
    /// of their own, past the write queue: for loading a store before it
    /// serves (a benchmark's preload, an import). Returns how many were
    /// stored. The records land in the same tables and indexes as
    /// `put_activation`'s.
    pub fn put_activations(
        &self,
        records: impl IntoIterator<Item = Activation>,
    ) -> Result<usize, StoreError> {
        let mut records = records.into_iter().peekable();
        let mut stored = 0usize;
        while records.peek().is_some() {
            let txn = writer::begin_durable(&self.db, self.crash_recovery)?;
            {
                let mut tables = Tables::open(&txn)?;
                for record in records.by_ref().take(BULK_BATCH) {
                    tables.insert_record(&EncodedRecord::encode(record)?)?;
                    stored = stored.saturating_add(1);
                }
            }
            txn.commit().map_err(StoreError::backend)?;
        }
        Ok(stored)
    }

    /// Stores `count` successful activation records of action `action` in
    /// `namespace`, shaped like those of a plain echo action (annotations,
    /// a small result), with random ids and one start per millisecond
    /// ending now: a store as a long-running node would have it, for
    /// benchmarks. Uses [`put_activations`](Self::put_activations).
    pub fn preload_activations(
        &self,
        namespace: &str,
        action: &str,
        count: usize,
    ) -> Result<usize, StoreError> {
        self.put_activations(crate::record::preloaded(namespace, action, count))
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(QueuedWrite {
                op,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::backend)?;
        read(&txn)
    }

    /// The action stored under `key`.
    fn action_at(&self, key: &str) -> Result<Option<Action>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let found = table.get(key).map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    /// The code stored under `key`.
    fn code_at(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(CODE).map_err(StoreError::backend)?;
            let found = table.get(key).map_err(StoreError::backend)?;
            Ok(found.map(|guard| guard.value().to_vec()))
        })
    }

    /// Removes the action (and code) stored under `key`.
    async fn delete_action_at(&self, key: String) -> Result<Option<Action>, StoreError> {
        match self.write(WriteOp::DeleteAction { key }).await? {
            WriteOutcome::Deleted(removed) => Ok(removed.map(|action| *action)),
            WriteOutcome::Done
            | WriteOutcome::DeletedPackage(_)
            | WriteOutcome::DeletedDocument(_)
            | WriteOutcome::Settled(_) => Ok(None),
        }
    }

    /// The actions whose keys start with `prefix` and have no further `/`
    /// (a namespace's own, or one package's), by name, after `skip`, at
    /// most `limit`.
    fn list_actions_under(
        &self,
        prefix: String,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let entries = table
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut actions = Vec::new();
            let mut skipped = 0;
            for entry in entries {
                if actions.len() >= limit {
                    break;
                }
                let (key, value) = entry.map_err(StoreError::backend)?;
                let Some(rest) = key.value().strip_prefix(&prefix) else {
                    break;
                };
                if rest.contains('/') {
                    continue;
                }
                if skipped < skip {
                    skipped += 1;
                    continue;
                }
                actions.push(decode(value.value())?);
            }
            Ok(actions)
        })
    }
}

impl RedbStore {
    /// Stores `document` under `namespace/name` in `table`.
    async fn put_document<T: serde::Serialize>(
        &self,
        table: DocumentTable,
        key: String,
        document: &T,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        let json = encode(document)?;
        self.write(WriteOp::PutDocument {
            table,
            key,
            json,
            mode,
        })
        .await
        .map(drop)
    }

    /// The document stored under `key` in `table`.
    fn get_document<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read(|txn| {
            let documents = txn
                .open_table(table.definition())
                .map_err(StoreError::backend)?;
            let found = documents.get(key).map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    /// Removes the document under `key` in `table`; returns it.
    async fn delete_document<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        match self.write(WriteOp::DeleteDocument { table, key }).await? {
            WriteOutcome::DeletedDocument(removed) => removed.map(|json| decode(&json)).transpose(),
            WriteOutcome::Done
            | WriteOutcome::Deleted(_)
            | WriteOutcome::DeletedPackage(_)
            | WriteOutcome::Settled(_) => Ok(None),
        }
    }

    /// The documents of `namespace` in `table` ordered by name, after
    /// `skip`, at most `limit`.
    fn list_documents<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let prefix = format!("{namespace}/");
        self.read(|txn| {
            let documents = txn
                .open_table(table.definition())
                .map_err(StoreError::backend)?;
            let entries = documents
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut found = Vec::new();
            let mut skipped = 0usize;
            for entry in entries {
                if found.len() >= limit {
                    break;
                }
                let (key, value) = entry.map_err(StoreError::backend)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                if skipped < skip {
                    skipped += 1;
                    continue;
                }
                found.push(decode(value.value())?);
            }
            Ok(found)
        })
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // The writer commits what it holds, then stops; waiting for it
        // makes the file closed (and reopenable) once the drop returns.
        let _ = self.writes.send(QueuedWrite {
            op: WriteOp::Close,
            reply: None,
        });
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

#[async_trait]
impl EntityStore for RedbStore {
    async fn put_namespace(&self, record: NamespaceRecord) -> Result<(), StoreError> {
        self.write(WriteOp::PutNamespace(record)).await.map(drop)
    }

    async fn get_namespace(
        &self,
        name: &EntityName,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
            let found = table.get(name.as_str()).map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    async fn find_namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.read(|txn| {
            let uuids = txn.open_table(AUTH_UUIDS).map_err(StoreError::backend)?;
            let Some(name) = uuids.get(uuid).map_err(StoreError::backend)? else {
                return Ok(None);
            };
            let namespaces = txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
            let found = namespaces.get(name.value()).map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
            let entries = table.iter().map_err(StoreError::backend)?;
            entries
                .map(|entry| {
                    let (_, value) = entry.map_err(StoreError::backend)?;
                    decode(value.value())
                })
                .collect()
        })
    }

    async fn put_action(
        &self,
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::PutAction { action, code, mode })
            .await
            .map(drop)
    }

    async fn get_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.action_at(&action_key(namespace, name))
    }

    async fn get_code(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.code_at(&action_key(namespace, name))
    }

    async fn get_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.action_at(&package_action_key(namespace, package, name))
    }

    async fn get_package_code(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.code_at(&package_action_key(namespace, package, name))
    }

    async fn delete_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.delete_action_at(package_action_key(namespace, package, name))
            .await
    }

    async fn list_package_actions(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.list_actions_under(format!("{namespace}/{package}/"), skip, limit)
    }

    async fn delete_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.delete_action_at(action_key(namespace, name)).await
    }

    async fn list_actions(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.list_actions_under(format!("{namespace}/"), skip, limit)
    }

    async fn count_actions(&self, namespace: &EntityName) -> Result<usize, StoreError> {
        let prefix = format!("{namespace}/");
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let entries = table
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut count = 0;
            for entry in entries {
                let (key, _) = entry.map_err(StoreError::backend)?;
                let Some(rest) = key.value().strip_prefix(&prefix) else {
                    break;
                };
                // A package's actions are not the namespace's own.
                if !rest.contains('/') {
                    count += 1;
                }
            }
            Ok(count)
        })
    }

    async fn put_package(&self, package: Package, mode: PutMode) -> Result<(), StoreError> {
        self.write(WriteOp::PutPackage { package, mode })
            .await
            .map(drop)
    }

    async fn get_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(PACKAGES).map_err(StoreError::backend)?;
            let found = table
                .get(action_key(namespace, name).as_str())
                .map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    async fn delete_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        match self
            .write(WriteOp::DeletePackage {
                key: action_key(namespace, name),
            })
            .await?
        {
            WriteOutcome::DeletedPackage(removed) => Ok(removed.map(|package| *package)),
            WriteOutcome::Done
            | WriteOutcome::Deleted(_)
            | WriteOutcome::DeletedDocument(_)
            | WriteOutcome::Settled(_) => Ok(None),
        }
    }

    async fn list_packages(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Package>, StoreError> {
        let prefix = format!("{namespace}/");
        self.read(|txn| {
            let table = txn.open_table(PACKAGES).map_err(StoreError::backend)?;
            let entries = table
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut packages = Vec::new();
            for entry in entries.skip(skip) {
                if packages.len() >= limit {
                    break;
                }
                let (key, value) = entry.map_err(StoreError::backend)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                packages.push(decode(value.value())?);
            }
            Ok(packages)
        })
    }

    async fn put_trigger(&self, trigger: Trigger, mode: PutMode) -> Result<(), StoreError> {
        let key = action_key(&trigger.namespace, &trigger.name);
        self.put_document(DocumentTable::Triggers, key, &trigger, mode)
            .await
    }

    async fn get_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.get_document(DocumentTable::Triggers, &action_key(namespace, name))
    }

    async fn delete_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.delete_document(DocumentTable::Triggers, action_key(namespace, name))
            .await
    }

    async fn list_triggers(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Trigger>, StoreError> {
        self.list_documents(DocumentTable::Triggers, namespace, skip, limit)
    }

    async fn put_rule(&self, rule: Rule, mode: PutMode) -> Result<(), StoreError> {
        let key = action_key(&rule.namespace, &rule.name);
        self.put_document(DocumentTable::Rules, key, &rule, mode)
            .await
    }

    async fn get_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.get_document(DocumentTable::Rules, &action_key(namespace, name))
    }

    async fn delete_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.delete_document(DocumentTable::Rules, action_key(namespace, name))
            .await
    }

    async fn list_rules(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Rule>, StoreError> {
        self.list_documents(DocumentTable::Rules, namespace, skip, limit)
    }

    async fn put_activation(&self, activation: Activation) -> Result<(), StoreError> {
        let record = Arc::new(EncodedRecord::encode(activation)?);
        if self.record_durability == RecordDurability::Group && self.pending.try_insert(&record) {
            if self.inbox.put(record.clone()) {
                let wake = QueuedWrite {
                    op: WriteOp::Wake,
                    reply: None,
                };
                if self.writes.send(wake).is_err() {
                    self.pending.remove(&record);
                    return Err(StoreError::Closed);
                }
            }
            return Ok(());
        }
        // Sync, or too much is pending: wait for the commit.
        self.write(WriteOp::PutActivation(record)).await.map(drop)
    }

    async fn put_stand_in(&self, stand_in: Activation) -> Result<(), StoreError> {
        self.write(WriteOp::PutStandIn(stand_in)).await.map(drop)
    }

    async fn settle_interrupted(&self) -> Result<usize, StoreError> {
        match self.write(WriteOp::SettleInterrupted).await? {
            WriteOutcome::Settled(count) => Ok(count),
            WriteOutcome::Done
            | WriteOutcome::Deleted(_)
            | WriteOutcome::DeletedPackage(_)
            | WriteOutcome::DeletedDocument(_) => Ok(0),
        }
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> Result<Option<Activation>, StoreError> {
        // The pending set first: a record leaves it only once committed.
        if let Some(record) = self.pending.get(id) {
            if record.namespace != namespace {
                return Ok(None);
            }
            return decode(&record.json).map(Some);
        }
        self.read(|txn| {
            let ids = txn
                .open_table(ACTIVATION_IDS)
                .map_err(StoreError::backend)?;
            let Some(location) = ids
                .get(id.as_bytes().as_slice())
                .map_err(StoreError::backend)?
            else {
                return Ok(None);
            };
            let (stored_ns, start) = location.value();
            if stored_ns != namespace {
                return Ok(None);
            }
            let records = txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
            let found = records
                .get((namespace, start, id.as_bytes().as_slice()))
                .map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<Vec<Activation>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let wanted = filter.skip.saturating_add(filter.limit);
        // The pending set before the file: see `get_activation`.
        let pending = self.pending.matching(namespace, filter);
        self.read(|txn| {
            let mut stored = Vec::with_capacity(wanted.min(1024));
            visit_matching(txn, namespace, filter, |start, id| {
                stored.push((start, id.to_vec()));
                stored.len() < wanted
            })?;
            let records = txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
            merge_newest_first(&pending, &stored)
                .skip(filter.skip)
                .take(filter.limit)
                .filter_map(|found| match found {
                    Found::Pending(record) => Some(decode(&record.json)),
                    Found::Stored(start, id) => {
                        match records.get((namespace, start, id.as_slice())) {
                            Ok(Some(guard)) => Some(decode(guard.value())),
                            Ok(None) => None,
                            Err(error) => Some(Err(StoreError::backend(error))),
                        }
                    }
                })
                .collect()
        })
    }

    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<usize, StoreError> {
        let pending = self.pending.matching(namespace, filter);
        self.read(|txn| {
            let mut count = 0usize;
            visit_matching(txn, namespace, filter, |_, _| {
                count = count.saturating_add(1);
                true
            })?;
            let ids = txn
                .open_table(ACTIVATION_IDS)
                .map_err(StoreError::backend)?;
            for record in &pending {
                if ids
                    .get(record.id.as_bytes().as_slice())
                    .map_err(StoreError::backend)?
                    .is_none()
                {
                    count = count.saturating_add(1);
                }
            }
            Ok(count.saturating_sub(filter.skip))
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(WriteOp::Flush).await.map(drop)
    }
}

/// One record of a listing: still pending, or stored at (start, id).
enum Found<'a> {
    Pending(&'a EncodedRecord),
    Stored(u64, &'a Vec<u8>),
}

/// `pending` and `stored`, both newest first, merged newest first; a
/// record in both (committed meanwhile) comes once.
fn merge_newest_first<'a>(
    pending: &'a [Arc<EncodedRecord>],
    stored: &'a [(u64, Vec<u8>)],
) -> impl Iterator<Item = Found<'a>> {
    let mut pending = pending.iter().peekable();
    let mut stored = stored.iter().peekable();
    std::iter::from_fn(move || {
        let next_pending = pending
            .peek()
            .map(|record| (record.start, record.id.as_bytes().as_slice()));
        let next_stored = stored.peek().map(|(start, id)| (*start, id.as_slice()));
        match (next_pending, next_stored) {
            (Some(p), Some(s)) if p == s => {
                stored.next();
                pending.next().map(|record| Found::Pending(record))
            }
            (Some(p), Some(s)) if s > p => {
                stored.next().map(|(start, id)| Found::Stored(*start, id))
            }
            (Some(_), _) => pending.next().map(|record| Found::Pending(record)),
            (None, Some(_)) => stored.next().map(|(start, id)| Found::Stored(*start, id)),
            (None, None) => None,
        }
    })
}

/// Calls `visit` with (start, id) of each stored activation matching
/// `filter`, newest first, until it returns `false`. Reads only the
/// keys-only indexes: a caller that needs the first few of a long history
/// stops there, and a count reads no record.
fn visit_matching(
    txn: &redb::ReadTransaction,
    namespace: &str,
    filter: &ActivationFilter,
    mut visit: impl FnMut(u64, &[u8]) -> bool,
) -> Result<(), StoreError> {
    let since = filter.since.unwrap_or(0);
    let upto = filter.upto.unwrap_or(u64::MAX);
    if since > upto {
        return Ok(());
    }
    match &filter.name {
        Some(name) => {
            let table = txn
                .open_table(ACTIVATIONS_BY_NAME)
                .map_err(StoreError::backend)?;
            let low = (namespace, name.as_str(), since, &[][..]);
            let high = (namespace, name.as_str(), upto, &ID_MAX[..]);
            for entry in table.range(low..=high).map_err(StoreError::backend)?.rev() {
                let (key, _) = entry.map_err(StoreError::backend)?;
                let (_, _, start, id) = key.value();
                if !visit(start, id) {
                    break;
                }
            }
        }
        None => {
            let table = txn
                .open_table(ACTIVATION_KEYS)
                .map_err(StoreError::backend)?;
            let low = (namespace, since, &[][..]);
            let high = (namespace, upto, &ID_MAX[..]);
            for entry in table.range(low..=high).map_err(StoreError::backend)?.rev() {
                let (key, _) = entry.map_err(StoreError::backend)?;
                let (_, start, id) = key.value();
                if !visit(start, id) {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Says, now and then, how far the repair of a store that was not closed
/// cleanly (a crash, a kill) has come: it reads the whole file, so on a
/// large store a start can take a while, and the operator should know why.
fn log_repair_progress(session: &mut redb::RepairSession) {
    tracing::warn!(
        progress = format!("{:.0}%", session.progress() * 100.0),
        "the store was not closed cleanly; repairing it before serving"
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use clemmys_whisk::{ActivationResponse, KeyValues};
    use serde_json::json;

    use super::*;

    fn activation(id: u8, start: u64) -> Activation {
        Activation {
            namespace: "guest".into(),
            name: "a".into(),
            subject: "guest".into(),
            activation_id: ActivationId::from_bytes([id; 16]),
            version: "0.0.1".into(),
            publish: false,
            start,
            end: start,
            duration: 0,
            cause: None,
            response: ActivationResponse::success(json!({"id": id})),
            logs: vec![],
            annotations: KeyValues::default(),
        }
    }

    fn open(dir: &tempfile::TempDir, config: StoreConfig) -> RedbStore {
        RedbStore::open_with(&dir.path().join("store.redb"), config).expect("open")
    }

    /// Whether the file (not the pending set) holds record `id`.
    fn committed(store: &RedbStore, id: u8) -> bool {
        store
            .read(|txn| {
                let ids = txn
                    .open_table(ACTIVATION_IDS)
                    .map_err(StoreError::backend)?;
                Ok(ids
                    .get([id; 16].as_slice())
                    .map_err(StoreError::backend)?
                    .is_some())
            })
            .expect("read")
    }

    fn trigger(namespace: &str, name: &str) -> Trigger {
        Trigger {
            namespace: EntityName::new(namespace).expect("name"),
            name: EntityName::new(name).expect("name"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            parameters: KeyValues::default(),
            annotations: KeyValues::default(),
            rules: Default::default(),
            updated: 1,
        }
    }

    fn rule(name: &str) -> Rule {
        let guest = EntityName::new("guest").expect("name");
        Rule {
            namespace: guest,
            name: EntityName::new(name).expect("name"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            trigger: clemmys_whisk::EntityRef {
                path: "guest".into(),
                name: EntityName::new("t").expect("name"),
            },
            action: clemmys_whisk::EntityRef {
                path: "guest".into(),
                name: EntityName::new("a").expect("name"),
            },
            annotations: KeyValues::default(),
            updated: 1,
        }
    }

    #[tokio::test]
    async fn triggers_and_rules_are_kept_across_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let guest = EntityName::new("guest").expect("name");
        let t = EntityName::new("t").expect("name");
        {
            let store = open(&dir, StoreConfig::default());
            for name in ["t", "s", "u"] {
                store
                    .put_trigger(trigger("guest", name), PutMode::CreateOnly)
                    .await
                    .expect("put");
            }
            store
                .put_trigger(trigger("guestx", "t"), PutMode::CreateOnly)
                .await
                .expect("put");
            assert!(matches!(
                store
                    .put_trigger(trigger("guest", "t"), PutMode::CreateOnly)
                    .await,
                Err(StoreError::Conflict)
            ));
            store
                .put_rule(rule("r"), PutMode::CreateOnly)
                .await
                .expect("rule");
            assert!(matches!(
                store.put_rule(rule("r"), PutMode::CreateOnly).await,
                Err(StoreError::Conflict)
            ));
            let removed = store.delete_trigger(&guest, &t).await.expect("delete");
            assert_eq!(removed.map(|t| t.name.to_string()).as_deref(), Some("t"));
            assert_eq!(store.delete_trigger(&guest, &t).await.expect("again"), None);
        }
        let store = open(&dir, StoreConfig::default());
        let names: Vec<String> = store
            .list_triggers(&guest, 0, 10)
            .await
            .expect("list")
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, ["s", "u"], "ordered, and not another namespace's");
        assert_eq!(
            store.list_triggers(&guest, 1, 1).await.expect("list").len(),
            1
        );
        let r = EntityName::new("r").expect("name");
        assert_eq!(
            store.get_rule(&guest, &r).await.expect("get"),
            Some(rule("r"))
        );
        assert_eq!(
            store.list_rules(&guest, 0, 10).await.expect("list").len(),
            1
        );
        assert!(
            store
                .delete_rule(&guest, &r)
                .await
                .expect("delete")
                .is_some()
        );
        assert_eq!(store.get_rule(&guest, &r).await.expect("get"), None);
    }

    fn package(namespace: &str, name: &str) -> Package {
        Package {
            namespace: EntityName::new(namespace).expect("name"),
            name: EntityName::new(name).expect("name"),
            version: semver::Version::new(0, 0, 1),
            publish: false,
            binding: None,
            parameters: KeyValues::default(),
            annotations: KeyValues::default(),
            updated: 1,
        }
    }

    #[tokio::test]
    async fn packages_are_kept_listed_per_namespace_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, StoreConfig::default());
        let guest = EntityName::new("guest").expect("name");
        for name in ["b", "a", "c"] {
            store
                .put_package(package("guest", name), PutMode::CreateOnly)
                .await
                .expect("put");
        }
        store
            .put_package(package("guestx", "z"), PutMode::CreateOnly)
            .await
            .expect("put");
        assert!(matches!(
            store
                .put_package(package("guest", "a"), PutMode::CreateOnly)
                .await,
            Err(StoreError::Conflict)
        ));
        let mut updated = package("guest", "a");
        updated.publish = true;
        store
            .put_package(updated.clone(), PutMode::Overwrite)
            .await
            .expect("overwrite");
        let a = EntityName::new("a").expect("name");
        assert_eq!(
            store.get_package(&guest, &a).await.expect("get"),
            Some(updated)
        );
        let names = |packages: Vec<Package>| -> Vec<String> {
            packages.iter().map(|p| p.name.to_string()).collect()
        };
        assert_eq!(
            names(store.list_packages(&guest, 0, 10).await.expect("list")),
            ["a", "b", "c"],
            "ordered, and not another namespace's"
        );
        assert_eq!(
            names(store.list_packages(&guest, 1, 1).await.expect("list")),
            ["b"]
        );
        let removed = store.delete_package(&guest, &a).await.expect("delete");
        assert_eq!(removed.map(|p| p.name), Some(a.clone()));
        assert_eq!(store.get_package(&guest, &a).await.expect("get"), None);
        assert_eq!(store.delete_package(&guest, &a).await.expect("again"), None);
    }

    fn group(interval: Duration) -> StoreConfig {
        StoreConfig {
            commit_interval: interval,
            ..StoreConfig::default()
        }
    }

    #[tokio::test]
    async fn sync_records_are_committed_when_their_write_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(
            &dir,
            StoreConfig {
                record_durability: RecordDurability::Sync,
                ..StoreConfig::default()
            },
        );
        store.put_activation(activation(1, 10)).await.expect("put");
        assert!(committed(&store, 1));
        assert!(
            store
                .pending
                .get(&ActivationId::from_bytes([1; 16]))
                .is_none()
        );
    }

    #[tokio::test]
    async fn group_records_wait_for_the_interval_or_a_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, group(Duration::from_secs(3600)));
        store.put_activation(activation(1, 10)).await.expect("put");
        assert!(!committed(&store, 1), "committed before its interval");
        store.flush().await.expect("flush");
        assert!(committed(&store, 1), "a flush commits what is held");
        assert!(
            store
                .pending
                .get(&ActivationId::from_bytes([1; 16]))
                .is_none()
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, group(Duration::from_millis(20)));
        store.put_activation(activation(2, 10)).await.expect("put");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !committed(&store, 2) {
            assert!(
                Instant::now() < deadline,
                "not committed after its interval"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[tokio::test]
    async fn a_waited_for_write_commits_the_records_held_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, group(Duration::from_secs(3600)));
        store.put_activation(activation(1, 10)).await.expect("put");
        store
            .put_namespace(NamespaceRecord {
                name: EntityName::new("other").expect("name"),
                auth: clemmys_whisk::AuthKey::from_random([1; 16], [2; 64]),
                limits: clemmys_whisk::NamespaceLimits::default(),
            })
            .await
            .expect("put");
        assert!(committed(&store, 1));
    }
}
