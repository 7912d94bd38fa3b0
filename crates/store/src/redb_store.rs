//! The embedded default store: one redb file, written through a single
//! group-commit thread.
//!
//! Every write is queued to the writer thread, which takes everything queued
//! so far, applies it in one transaction and commits it with
//! `Durability::Immediate` (one fsync), then answers each caller. Under load
//! many writes share one fsync; a lone write pays exactly one. Reads run on
//! the caller's thread against the last committed state.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use async_trait::async_trait;
use clemmys_whisk::{Action, Activation, ActivationId, EntityName, NamespaceRecord};
use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use tokio::sync::oneshot;

use crate::{ActivationFilter, EntityStore, PutMode, StoreError};

/// namespace name → JSON `NamespaceRecord`.
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
/// API key UUID → namespace name.
const AUTH_UUIDS: TableDefinition<&str, &str> = TableDefinition::new("auth_uuids");
/// `namespace/name` → JSON `Action`.
const ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("actions");
/// `namespace/name` → code bytes (sealed for confidential actions).
const CODE: TableDefinition<&str, &[u8]> = TableDefinition::new("code");
/// (namespace, start ms, id) → JSON `Activation`.
const ACTIVATIONS: TableDefinition<(&str, u64, &[u8]), &[u8]> = TableDefinition::new("activations");
/// (namespace, action name, start ms, id) → (), to filter by name quickly.
const ACTIVATIONS_BY_NAME: TableDefinition<(&str, &str, u64, &[u8]), ()> =
    TableDefinition::new("activations_by_name");
/// id → (namespace, start ms), to get one activation by id.
const ACTIVATION_IDS: TableDefinition<&[u8], (&str, u64)> = TableDefinition::new("activation_ids");
/// id → JSON `Activation`: the stand-in record of an acknowledged activation
/// whose own record is not stored yet (see `EntityStore::put_stand_in`).
const STAND_INS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stand_ins");

/// Writes taken from the queue in one transaction at most.
const MAX_BATCH: usize = 512;
/// Larger than any 16-byte activation id, as an inclusive upper bound.
const ID_MAX: [u8; 17] = [0xff; 17];

enum WriteOp {
    PutNamespace(NamespaceRecord),
    PutAction {
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    },
    DeleteAction {
        key: String,
    },
    PutActivation(Activation),
    PutStandIn(Activation),
    SettleInterrupted,
}

enum WriteOutcome {
    Done,
    Deleted(Option<Box<Action>>),
    Settled(usize),
}

struct PendingWrite {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// The embedded redb-backed [`EntityStore`].
pub struct RedbStore {
    db: std::sync::Arc<Database>,
    writes: mpsc::Sender<PendingWrite>,
}

impl RedbStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|error| match error {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => StoreError::backend(other),
        })?;
        // Create every table up front so that reads never meet a missing one.
        let txn = db.begin_write().map_err(StoreError::backend)?;
        create_tables(&txn)?;
        txn.commit().map_err(StoreError::backend)?;

        let db = std::sync::Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let writer_db = db.clone();
        thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&writer_db, &queue))
            .map_err(StoreError::backend)?;
        Ok(Self { db, writes })
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(PendingWrite { op, reply })
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
}

fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
    txn.open_table(AUTH_UUIDS).map_err(StoreError::backend)?;
    txn.open_table(ACTIONS).map_err(StoreError::backend)?;
    txn.open_table(CODE).map_err(StoreError::backend)?;
    txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
    txn.open_table(ACTIVATIONS_BY_NAME)
        .map_err(StoreError::backend)?;
    txn.open_table(ACTIVATION_IDS)
        .map_err(StoreError::backend)?;
    txn.open_table(STAND_INS).map_err(StoreError::backend)?;
    Ok(())
}

/// The group-commit loop: runs until every `RedbStore` handle is dropped.
fn run_writer(db: &Database, queue: &mpsc::Receiver<PendingWrite>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match apply_batch(db, &batch) {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller that stopped waiting no longer needs the answer.
                    let _ = pending.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "store commit failed");
                for pending in batch {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::Backend(error.to_string())));
                }
            }
        }
    }
}

/// Applies every write of `batch` in one durable transaction. A write that
/// fails on its own (a conflict) does not abort the others.
fn apply_batch(
    db: &Database,
    batch: &[PendingWrite],
) -> Result<Vec<Result<WriteOutcome, StoreError>>, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::backend)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::backend)?;
    let outcomes = batch
        .iter()
        .map(|pending| apply(&txn, &pending.op))
        .collect::<Result<Vec<_>, _>>()?;
    txn.commit().map_err(StoreError::backend)?;
    Ok(outcomes)
}

/// Applies one write. The outer `Result` is a storage failure that dooms
/// the whole transaction; the inner one is this write's own outcome.
fn apply(
    txn: &WriteTransaction,
    op: &WriteOp,
) -> Result<Result<WriteOutcome, StoreError>, StoreError> {
    match op {
        WriteOp::PutNamespace(record) => {
            let mut namespaces = txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
            let mut uuids = txn.open_table(AUTH_UUIDS).map_err(StoreError::backend)?;
            let name = record.name.as_str();
            if let Some(old) = namespaces.get(name).map_err(StoreError::backend)? {
                let old: NamespaceRecord = decode(old.value())?;
                uuids
                    .remove(old.auth.uuid.as_str())
                    .map_err(StoreError::backend)?;
            }
            namespaces
                .insert(name, encode(record)?.as_slice())
                .map_err(StoreError::backend)?;
            uuids
                .insert(record.auth.uuid.as_str(), name)
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::PutAction { action, code, mode } => {
            let key = action_key(&action.namespace, &action.name);
            let mut actions = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            if *mode == PutMode::CreateOnly
                && actions
                    .get(key.as_str())
                    .map_err(StoreError::backend)?
                    .is_some()
            {
                return Ok(Err(StoreError::Conflict));
            }
            actions
                .insert(key.as_str(), encode(action)?.as_slice())
                .map_err(StoreError::backend)?;
            let mut codes = txn.open_table(CODE).map_err(StoreError::backend)?;
            match code {
                Some(code) => codes.insert(key.as_str(), code.as_slice()).map(drop),
                None => codes.remove(key.as_str()).map(drop),
            }
            .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::DeleteAction { key } => {
            let mut actions = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let removed = match actions.remove(key.as_str()).map_err(StoreError::backend)? {
                Some(old) => Some(Box::new(decode::<Action>(old.value())?)),
                None => None,
            };
            let mut codes = txn.open_table(CODE).map_err(StoreError::backend)?;
            codes.remove(key.as_str()).map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Deleted(removed)))
        }
        WriteOp::PutActivation(activation) => {
            insert_activation(txn, activation)?;
            let mut stand_ins = txn.open_table(STAND_INS).map_err(StoreError::backend)?;
            stand_ins
                .remove(activation.activation_id.as_bytes().as_slice())
                .map_err(StoreError::backend)?;
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::PutStandIn(stand_in) => {
            let id = stand_in.activation_id.as_bytes().as_slice();
            if !is_stored(txn, id)? {
                let mut stand_ins = txn.open_table(STAND_INS).map_err(StoreError::backend)?;
                stand_ins
                    .insert(id, encode(stand_in)?.as_slice())
                    .map_err(StoreError::backend)?;
            }
            Ok(Ok(WriteOutcome::Done))
        }
        WriteOp::SettleInterrupted => {
            let mut stand_ins = txn.open_table(STAND_INS).map_err(StoreError::backend)?;
            let mut settled = 0;
            while let Some((_, record)) = stand_ins.pop_first().map_err(StoreError::backend)? {
                let stand_in: Activation = decode(record.value())?;
                drop(record);
                if !is_stored(txn, stand_in.activation_id.as_bytes())? {
                    insert_activation(txn, &stand_in)?;
                    settled += 1;
                }
            }
            Ok(Ok(WriteOutcome::Settled(settled)))
        }
    }
}

/// Whether the activation `id` has a stored record.
fn is_stored(txn: &WriteTransaction, id: &[u8]) -> Result<bool, StoreError> {
    let ids = txn
        .open_table(ACTIVATION_IDS)
        .map_err(StoreError::backend)?;
    Ok(ids.get(id).map_err(StoreError::backend)?.is_some())
}

/// Writes `activation` and its two indexes.
fn insert_activation(txn: &WriteTransaction, activation: &Activation) -> Result<(), StoreError> {
    let id = activation.activation_id.as_bytes().as_slice();
    let ns = activation.namespace.as_str();
    let mut records = txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
    records
        .insert((ns, activation.start, id), encode(activation)?.as_slice())
        .map_err(StoreError::backend)?;
    let mut by_name = txn
        .open_table(ACTIVATIONS_BY_NAME)
        .map_err(StoreError::backend)?;
    by_name
        .insert((ns, activation.name.as_str(), activation.start, id), ())
        .map_err(StoreError::backend)?;
    let mut ids = txn
        .open_table(ACTIVATION_IDS)
        .map_err(StoreError::backend)?;
    ids.insert(id, (ns, activation.start))
        .map_err(StoreError::backend)?;
    Ok(())
}

fn action_key(namespace: &EntityName, name: &EntityName) -> String {
    format!("{namespace}/{name}")
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Corrupted(error.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupted(error.to_string()))
}

#[async_trait]
impl EntityStore for RedbStore {
    async fn put_namespace(&self, record: NamespaceRecord) -> Result<(), StoreError> {
        self.write(WriteOp::PutNamespace(record)).await.map(drop)
    }

    fn get_namespace(&self, name: &EntityName) -> Result<Option<NamespaceRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(NAMESPACES).map_err(StoreError::backend)?;
            let found = table.get(name.as_str()).map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    fn find_namespace_by_uuid(&self, uuid: &str) -> Result<Option<NamespaceRecord>, StoreError> {
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

    fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
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

    fn get_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let found = table
                .get(action_key(namespace, name).as_str())
                .map_err(StoreError::backend)?;
            found.map(|guard| decode(guard.value())).transpose()
        })
    }

    fn get_code(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(CODE).map_err(StoreError::backend)?;
            let found = table
                .get(action_key(namespace, name).as_str())
                .map_err(StoreError::backend)?;
            Ok(found.map(|guard| guard.value().to_vec()))
        })
    }

    async fn delete_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        match self
            .write(WriteOp::DeleteAction {
                key: action_key(namespace, name),
            })
            .await?
        {
            WriteOutcome::Deleted(removed) => Ok(removed.map(|action| *action)),
            WriteOutcome::Done | WriteOutcome::Settled(_) => Ok(None),
        }
    }

    fn list_actions(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        let prefix = format!("{namespace}/");
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let entries = table
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut actions = Vec::new();
            for entry in entries {
                let (key, value) = entry.map_err(StoreError::backend)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                actions.push(value.value().to_vec());
            }
            actions
                .into_iter()
                .skip(skip)
                .take(limit)
                .map(|bytes| decode(&bytes))
                .collect()
        })
    }

    fn count_actions(&self, namespace: &EntityName) -> Result<usize, StoreError> {
        let prefix = format!("{namespace}/");
        self.read(|txn| {
            let table = txn.open_table(ACTIONS).map_err(StoreError::backend)?;
            let entries = table
                .range(prefix.as_str()..)
                .map_err(StoreError::backend)?;
            let mut count = 0;
            for entry in entries {
                let (key, _) = entry.map_err(StoreError::backend)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                count += 1;
            }
            Ok(count)
        })
    }

    async fn put_activation(&self, activation: Activation) -> Result<(), StoreError> {
        self.write(WriteOp::PutActivation(activation))
            .await
            .map(drop)
    }

    async fn put_stand_in(&self, stand_in: Activation) -> Result<(), StoreError> {
        self.write(WriteOp::PutStandIn(stand_in)).await.map(drop)
    }

    async fn settle_interrupted(&self) -> Result<usize, StoreError> {
        match self.write(WriteOp::SettleInterrupted).await? {
            WriteOutcome::Settled(count) => Ok(count),
            WriteOutcome::Done | WriteOutcome::Deleted(_) => Ok(0),
        }
    }

    fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> Result<Option<Activation>, StoreError> {
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

    fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<Vec<Activation>, StoreError> {
        self.read(|txn| {
            let records = txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
            if filter.limit == 0 {
                return Ok(Vec::new());
            }
            let wanted = filter.skip.saturating_add(filter.limit);
            let mut keys = Vec::with_capacity(wanted.min(1024));
            visit_matching(txn, namespace, filter, |start, id| {
                keys.push((start, id.to_vec()));
                keys.len() < wanted
            })?;
            keys.into_iter()
                .skip(filter.skip)
                .filter_map(
                    |(start, id)| match records.get((namespace, start, id.as_slice())) {
                        Ok(Some(guard)) => Some(decode(guard.value())),
                        Ok(None) => None,
                        Err(error) => Some(Err(StoreError::backend(error))),
                    },
                )
                .collect()
        })
    }

    fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<usize, StoreError> {
        self.read(|txn| {
            let mut count = 0usize;
            visit_matching(txn, namespace, filter, |_, _| {
                count += 1;
                true
            })?;
            Ok(count.saturating_sub(filter.skip))
        })
    }
}

/// Calls `visit` with (start, id) of each activation matching `filter`,
/// newest first, until it returns `false`. Reads keys only: a caller that
/// needs the first few of a long history stops there.
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
            let table = txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?;
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
