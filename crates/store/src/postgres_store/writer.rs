//! The PostgreSQL store's record writer (group commit of
//! `RecordDurability::Group` records) and its retention sweep.
//!
//! Records are held, in order, until the commit interval since the oldest
//! of them has passed, or enough of them are held, or a flush comes; they
//! are then inserted in one multi-row statement in one transaction, which
//! also deletes their stand-ins. A commit that finds the database away is
//! retried (the records stay pending, so reads still find them) for
//! [`RETRY_FOR`]; one that fails otherwise is retried record by record, so
//! that one bad record fails alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{map_error, to_ms};
use crate::StoreError;
use crate::pending::Pending;
use crate::record::EncodedRecord;

/// Records held at most before their commit is due.
const MAX_BATCH: usize = 512;
/// Encoded bytes of held records past which their commit is due.
const MAX_HELD_BYTES: usize = 8 << 20;
/// Records inserted in one transaction at most by a bulk load.
pub(super) const BULK_BATCH: usize = 5_000;
/// How long a commit is retried while the database is unavailable before
/// its records are given up (and counted as failed).
const RETRY_FOR: Duration = Duration::from_secs(60);
/// The longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Expired records deleted in one statement at most.
const SWEEP_BATCH: i64 = 1000;

/// What the writer is sent.
pub(super) enum Queued {
    /// A group-mode record, already in the pending set.
    Record(Arc<EncodedRecord>),
    /// Commit everything held, then answer.
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

pub(super) struct Writer {
    pool: PgPool,
    pending: Arc<Pending>,
    failed_records: Arc<AtomicU64>,
    commit_interval: Duration,
    held: Vec<Arc<EncodedRecord>>,
    held_bytes: usize,
    held_since: Option<Instant>,
}

impl Writer {
    pub fn new(
        pool: PgPool,
        pending: Arc<Pending>,
        failed_records: Arc<AtomicU64>,
        commit_interval: Duration,
    ) -> Self {
        Self {
            pool,
            pending,
            failed_records,
            commit_interval,
            held: Vec::new(),
            held_bytes: 0,
            held_since: None,
        }
    }

    /// Runs until the store is dropped, committing what it holds before it
    /// returns.
    pub async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Queued>) {
        loop {
            let next = match self.held_since {
                None => queue.recv().await,
                Some(since) => {
                    match tokio::time::timeout_at(since + self.commit_interval, queue.recv()).await
                    {
                        Ok(next) => next,
                        Err(_elapsed) => {
                            // A failure is logged and counted by `commit`;
                            // no one waits for this one.
                            let _ = self.commit().await;
                            continue;
                        }
                    }
                }
            };
            match next {
                None => break,
                Some(Queued::Record(record)) => {
                    self.held_bytes = self.held_bytes.saturating_add(record.json.len());
                    self.held_since.get_or_insert_with(Instant::now);
                    self.held.push(record);
                    if self.held.len() >= MAX_BATCH || self.held_bytes >= MAX_HELD_BYTES {
                        let _ = self.commit().await;
                    }
                }
                Some(Queued::Flush(reply)) => {
                    let outcome = self.commit().await;
                    // A caller that stopped waiting no longer needs it.
                    let _ = reply.send(outcome);
                }
            }
        }
        let _ = self.commit().await;
    }

    /// Inserts what is held; answers whether every held record is stored.
    async fn commit(&mut self) -> Result<(), StoreError> {
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        self.held_since = None;
        if held.is_empty() {
            return Ok(());
        }
        let outcome = match self.insert_retrying(&held).await {
            Ok(()) => Ok(()),
            Err(StoreError::Unavailable(detail)) => {
                self.give_up(&held, &StoreError::Unavailable(detail.clone()));
                Err(StoreError::Unavailable(detail))
            }
            Err(error) => {
                tracing::warn!(%error, records = held.len(), "a batch of activation records failed: retrying them one by one");
                let mut outcome = Ok(());
                for record in &held {
                    if let Err(error) = self.insert_retrying(std::slice::from_ref(record)).await {
                        self.give_up(std::slice::from_ref(record), &error);
                        outcome = Err(error);
                    }
                }
                outcome
            }
        };
        for record in &held {
            self.pending.remove(record);
        }
        outcome
    }

    /// Inserts `records` in one transaction, retrying while the database
    /// is unavailable, for at most [`RETRY_FOR`].
    async fn insert_retrying(&self, records: &[Arc<EncodedRecord>]) -> Result<(), StoreError> {
        let deadline = Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            match insert_in_one_transaction(&self.pool, records).await {
                Err(StoreError::Unavailable(detail)) if Instant::now() < deadline => {
                    tracing::warn!(%detail, records = records.len(), "the database is unavailable: activation records wait, still visible");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                outcome => return outcome,
            }
        }
    }

    fn give_up(&self, records: &[Arc<EncodedRecord>], error: &StoreError) {
        // Their writers were answered already: all that is left is to say
        // so and count them.
        let lost = u64::try_from(records.len()).unwrap_or(u64::MAX);
        self.failed_records.fetch_add(lost, Ordering::Relaxed);
        for record in records {
            tracing::error!(%error, id = %record.id, "an activation record could not be stored");
        }
    }
}

async fn insert_in_one_transaction(
    pool: &PgPool,
    records: &[Arc<EncodedRecord>],
) -> Result<(), StoreError> {
    let mut txn = pool.begin().await.map_err(map_error)?;
    insert_records(&mut txn, records).await?;
    txn.commit().await.map_err(map_error)
}

/// Inserts (or replaces, by id) `records` and deletes their stand-ins, in
/// `txn`. Of records of one id, the last one wins.
pub(super) async fn insert_records(
    txn: &mut Transaction<'_, Postgres>,
    records: &[Arc<EncodedRecord>],
) -> Result<(), StoreError> {
    // One statement may not touch a row twice: keep the last of each id.
    let mut last_of_id = HashMap::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        last_of_id.insert(record.id, index);
    }
    let mut ids = Vec::with_capacity(last_of_id.len());
    let mut namespaces = Vec::with_capacity(last_of_id.len());
    let mut names = Vec::with_capacity(last_of_id.len());
    let mut starts = Vec::with_capacity(last_of_id.len());
    let mut docs = Vec::with_capacity(last_of_id.len());
    for (index, record) in records.iter().enumerate() {
        if last_of_id.get(&record.id) != Some(&index) {
            continue;
        }
        ids.push(record.id.as_bytes().to_vec());
        namespaces.push(record.namespace.clone());
        names.push(record.name.clone());
        starts.push(to_ms(record.start));
        docs.push(record.json.clone());
    }
    sqlx::query(
        "INSERT INTO activations (id, namespace, name, start_ms, doc) \
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (id) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
         start_ms = EXCLUDED.start_ms, doc = EXCLUDED.doc",
    )
    .bind(&ids)
    .bind(&namespaces)
    .bind(&names)
    .bind(&starts)
    .bind(&docs)
    .execute(&mut **txn)
    .await
    .map_err(map_error)?;
    sqlx::query("DELETE FROM stand_ins WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut **txn)
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Deletes, every `every`, the records that started longer than
/// `retention` ago, a bounded batch per statement and again at once while
/// there is more. Runs until aborted.
pub(super) async fn sweep_expired(pool: PgPool, retention: Duration, every: Duration) {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    loop {
        let cutoff = to_ms(clemmys_whisk::now_ms().saturating_sub(retention_ms));
        loop {
            let deleted = sqlx::query(
                "DELETE FROM activations WHERE id IN \
                 (SELECT id FROM activations WHERE start_ms < $1 ORDER BY start_ms LIMIT $2)",
            )
            .bind(cutoff)
            .bind(SWEEP_BATCH)
            .execute(&pool)
            .await;
            match deleted {
                Ok(done) if done.rows_affected() >= u64::try_from(SWEEP_BATCH).unwrap_or(0) => {
                    tracing::debug!(
                        deleted = done.rows_affected(),
                        "deleted activation records past their retention"
                    );
                }
                Ok(done) => {
                    if done.rows_affected() > 0 {
                        tracing::debug!(
                            deleted = done.rows_affected(),
                            "deleted activation records past their retention"
                        );
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = %map_error(error), "deleting expired activation records failed");
                    break;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
