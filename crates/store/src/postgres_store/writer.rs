//! The PostgreSQL store's record writer (group commit) and its retention
//! sweep.
//!
//! `RecordDurability::Group` records are held, in order, until the commit
//! interval since the oldest of them has passed, or enough of them are
//! held, or a flush comes. A durable record (`RecordDurability::Sync`)
//! does not wait for the interval: it is committed at once with whatever
//! else is queued by then, and its writer is answered after that commit.
//! While one commit is in flight the next records queue up, so under load
//! one commit (one round trip, one WAL flush) stores many records, and a
//! lone record waits for no one.
//!
//! A commit is one multi-row statement, which also deletes the records'
//! stand-ins (one statement is one transaction: no `BEGIN`/`COMMIT` round
//! trips). A commit that finds the database away is retried (group records
//! stay pending, so reads still find them; durable writers keep waiting)
//! for [`RETRY_FOR`]; one that fails otherwise is retried record by record,
//! so that one bad record fails alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clemmys_whisk::ActivationId;
use sqlx::postgres::PgPool;
use sqlx::{Executor, Postgres};
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
    /// A durable record (not in the pending set): commit it with what is
    /// queued, now, then answer.
    Durable(Arc<EncodedRecord>, oneshot::Sender<Result<(), StoreError>>),
    /// Commit everything held, then answer.
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Answer after the commit of everything held, when it is due (at
    /// once if nothing is held: all queued before is committed).
    AfterCommit(oneshot::Sender<Result<(), StoreError>>),
}

pub(super) struct Writer {
    pool: PgPool,
    pending: Arc<Pending>,
    failed_records: Arc<AtomicU64>,
    commit_interval: Duration,
    held: Vec<Arc<EncodedRecord>>,
    held_bytes: usize,
    held_since: Option<Instant>,
    /// Writers of held durable records, answered after the commit.
    waiting: Vec<(ActivationId, oneshot::Sender<Result<(), StoreError>>)>,
    /// Flushes answered after the commit.
    flushes: Vec<oneshot::Sender<Result<(), StoreError>>>,
    /// The last commit's outcome, for an `AfterCommit` that finds nothing
    /// held: it answers for records that commit stored or gave up.
    last_outcome: Result<(), StoreError>,
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
            waiting: Vec::new(),
            flushes: Vec::new(),
            last_outcome: Ok(()),
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
            let Some(next) = next else { break };
            let mut due = self.take(next);
            if due {
                // Group commit: everything queued by now goes in too.
                while let Ok(next) = queue.try_recv() {
                    due |= self.take(next);
                }
            }
            if due {
                let _ = self.commit().await;
            }
        }
        let _ = self.commit().await;
    }

    /// Holds what `queued` brings; whether a commit is due now.
    fn take(&mut self, queued: Queued) -> bool {
        match queued {
            Queued::Record(record) => {
                self.hold(record);
                self.held.len() >= MAX_BATCH || self.held_bytes >= MAX_HELD_BYTES
            }
            Queued::Durable(record, reply) => {
                self.waiting.push((record.id, reply));
                self.hold(record);
                true
            }
            Queued::Flush(reply) => {
                self.flushes.push(reply);
                true
            }
            Queued::AfterCommit(reply) => {
                if self.held.is_empty() {
                    // The writer commits in order: what was queued before
                    // is committed (or given up) by now.
                    let _ = reply.send(self.last_outcome.clone());
                } else {
                    self.flushes.push(reply);
                }
                false
            }
        }
    }

    fn hold(&mut self, record: Arc<EncodedRecord>) {
        self.held_bytes = self.held_bytes.saturating_add(record.json.len());
        self.held_since.get_or_insert_with(Instant::now);
        self.held.push(record);
    }

    /// Inserts what is held, then answers the durable writers (each with
    /// its own record's outcome) and the flushes (with the whole
    /// commit's); answers whether every held record is stored.
    async fn commit(&mut self) -> Result<(), StoreError> {
        let held = std::mem::take(&mut self.held);
        let waiting = std::mem::take(&mut self.waiting);
        let flushes = std::mem::take(&mut self.flushes);
        self.held_bytes = 0;
        self.held_since = None;
        let mut failed: HashMap<ActivationId, StoreError> = HashMap::new();
        let outcome = if held.is_empty() {
            Ok(())
        } else {
            match self.insert_retrying(&held).await {
                Ok(()) => Ok(()),
                Err(StoreError::Unavailable(detail)) => {
                    let error = StoreError::Unavailable(detail);
                    for record in &held {
                        failed.insert(record.id, error.clone());
                    }
                    Err(error)
                }
                Err(error) => {
                    tracing::warn!(%error, records = held.len(), "a batch of activation records failed: retrying them one by one");
                    let mut outcome = Ok(());
                    for record in &held {
                        if let Err(error) = self.insert_retrying(std::slice::from_ref(record)).await
                        {
                            failed.insert(record.id, error.clone());
                            outcome = Err(error);
                        }
                    }
                    outcome
                }
            }
        };
        // Durable writers hear of their failure and say so themselves;
        // group-mode records were answered already.
        let durable: std::collections::HashSet<ActivationId> =
            waiting.iter().map(|(id, _)| *id).collect();
        for record in &held {
            if !durable.contains(&record.id)
                && let Some(error) = failed.get(&record.id)
            {
                self.give_up(record, error);
            }
            self.pending.remove(record);
        }
        for (id, reply) in waiting {
            // A writer that stopped waiting no longer needs it.
            let _ = reply.send(failed.get(&id).map_or(Ok(()), |error| Err(error.clone())));
        }
        for reply in flushes {
            let _ = reply.send(outcome.clone());
        }
        if !held.is_empty() {
            self.last_outcome = outcome.clone();
        }
        outcome
    }

    /// Inserts `records` in one statement, retrying while the database
    /// is unavailable, for at most [`RETRY_FOR`].
    async fn insert_retrying(&self, records: &[Arc<EncodedRecord>]) -> Result<(), StoreError> {
        let deadline = Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            match insert_records(&self.pool, records).await {
                Err(StoreError::Unavailable(detail)) if Instant::now() < deadline => {
                    tracing::warn!(%detail, records = records.len(), "the database is unavailable: activation records wait, still visible");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                outcome => return outcome,
            }
        }
    }

    fn give_up(&self, record: &EncodedRecord, error: &StoreError) {
        // Its writer was answered already: all that is left is to say so
        // and count it.
        self.failed_records.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%error, id = %record.id, "an activation record could not be stored");
    }
}

/// Inserts (or replaces, by id) `records` and deletes their stand-ins, in
/// one statement (so one transaction) on `executor`. Of records of one id,
/// the last one wins.
pub(super) async fn insert_records<'e>(
    executor: impl Executor<'e, Database = Postgres>,
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
    // The two tables are distinct, so the statement's two parts never see
    // each other's rows.
    sqlx::query(
        "WITH settled AS (DELETE FROM stand_ins WHERE id = ANY($1)) \
         INSERT INTO activations (id, namespace, name, start_ms, doc) \
         SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (id) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
         start_ms = EXCLUDED.start_ms, doc = EXCLUDED.doc",
    )
    .bind(&ids)
    .bind(&namespaces)
    .bind(&names)
    .bind(&starts)
    .bind(&docs)
    .execute(executor)
    .await
    .map_err(map_error)
    .map(drop)
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
