//! Activation records written under `RecordDurability::Group` that the
//! writer has not committed yet: what reads consult before the file, so
//! that a record is visible from the moment its write returns.
//!
//! The writer removes a record only after the commit that stored it, so a
//! reader that looks here first and in the file second never misses it; it
//! may find it in both, and keeps one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use clemmys_whisk::ActivationId;

use crate::ActivationFilter;
use crate::record::EncodedRecord;

/// Records waiting at most, past which writes wait for their commit
/// (back-pressure on a writer that falls behind).
const MAX_PENDING_RECORDS: usize = 8192;
/// Encoded bytes waiting at most (records may carry 1 MB results and
/// 10 MB of logs).
const MAX_PENDING_BYTES: usize = 64 << 20;

/// The uncommitted records, by id.
#[derive(Default)]
pub(crate) struct Pending {
    inner: Mutex<PendingRecords>,
}

#[derive(Default)]
struct PendingRecords {
    by_id: HashMap<ActivationId, Arc<EncodedRecord>>,
    bytes: usize,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingRecords> {
        // Every update below leaves the map whole; a panic elsewhere while
        // holding the lock cannot corrupt it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `record` unless that would pass the bounds; `false` then.
    pub fn try_insert(&self, record: &Arc<EncodedRecord>) -> bool {
        let mut pending = self.lock();
        if pending.by_id.len() >= MAX_PENDING_RECORDS
            || pending.bytes.saturating_add(record.json.len()) > MAX_PENDING_BYTES
        {
            return false;
        }
        pending.bytes = pending.bytes.saturating_add(record.json.len());
        if let Some(replaced) = pending.by_id.insert(record.id, record.clone()) {
            pending.bytes = pending.bytes.saturating_sub(replaced.json.len());
        }
        true
    }

    /// Forgets `record` once it is committed (or failed), unless a newer
    /// write of the same id replaced it meanwhile.
    pub fn remove(&self, record: &Arc<EncodedRecord>) {
        let mut pending = self.lock();
        if pending
            .by_id
            .get(&record.id)
            .is_some_and(|current| Arc::ptr_eq(current, record))
        {
            pending.by_id.remove(&record.id);
            pending.bytes = pending.bytes.saturating_sub(record.json.len());
        }
    }

    /// The uncommitted record `id`.
    pub fn get(&self, id: &ActivationId) -> Option<Arc<EncodedRecord>> {
        self.lock().by_id.get(id).cloned()
    }

    /// The uncommitted records of `namespace` matching `filter` (ignoring
    /// `skip` and `limit`), newest first as the store orders them.
    pub fn matching(&self, namespace: &str, filter: &ActivationFilter) -> Vec<Arc<EncodedRecord>> {
        let since = filter.since.unwrap_or(0);
        let upto = filter.upto.unwrap_or(u64::MAX);
        let mut found: Vec<_> = {
            let pending = self.lock();
            if pending.by_id.is_empty() {
                return Vec::new();
            }
            pending
                .by_id
                .values()
                .filter(|record| {
                    record.namespace == namespace
                        && (since..=upto).contains(&record.start)
                        && filter.name.as_ref().is_none_or(|name| *name == record.name)
                })
                .cloned()
                .collect()
        };
        found.sort_by(|a, b| {
            (b.start, b.id.as_bytes().as_slice()).cmp(&(a.start, a.id.as_bytes().as_slice()))
        });
        found
    }
}
