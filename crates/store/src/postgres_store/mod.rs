//! The scale-out store: the same entities and records on a PostgreSQL
//! database, through a pool of connections (feature `postgres`).
//!
//! Every write but an activation record is one statement or one
//! transaction, durable when PostgreSQL commits it. Activation records go
//! through one writer task that inserts many in one multi-row statement
//! (see `writer`). Under [`RecordDurability::Group`] a record's write does
//! what the embedded store's does: the record goes into the pending set
//! that every read consults first, and the writer commits the records of
//! each commit interval together. Under [`RecordDurability::Sync`] the
//! write returns once the writer's next commit, which takes every record
//! queued by then, is durable: group commit, one round trip and one WAL
//! flush for all the records of concurrent writers. A writer that finds
//! the database gone keeps the records (pending ones still visible) and
//! retries for a while, so that a short outage loses none.
//!
//! The database holds exactly what the embedded store's file holds: the
//! same JSON documents and, for confidential actions, sealed code and
//! sealed results only.

mod writer;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clemmys_whisk::{
    Action, Activation, ActivationId, EntityName, NamespaceRecord, Package, Rule, Trigger,
};
use sqlx::Connection;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::writer::{Queued, Writer};
use crate::pending::Pending;
use crate::record::{EncodedRecord, decode, encode};
use crate::{ActivationFilter, EntityStore, PutMode, RecordDurability, StoreConfig, StoreError};

/// How to reach the database, and how many connections to keep.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`.
    pub url: String,
    /// Connections the pool opens at most.
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails with
    /// [`StoreError::Unavailable`]: while the database is away, this is
    /// how long an API call takes to answer 503.
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    /// The database at `url`, with the default pool.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The schema, applied in order on start (`migrations/`). Only ever append.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "entities and activations",
    include_str!("../../migrations/0001_entities_and_activations.sql"),
)];

/// What [`EmbeddedMigrations`] resolves to.
type ResolvedMigrations = std::pin::Pin<
    Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send>,
>;

/// [`MIGRATIONS`], for sqlx's migrator (which records what it applied in
/// `_sqlx_migrations` and refuses a database whose applied schema differs).
#[derive(Debug)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(self) -> ResolvedMigrations {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The PostgreSQL-backed [`EntityStore`].
///
/// Dropping it lets its writer insert what it still holds in the
/// background; a stopping node calls [`EntityStore::flush`] first to wait
/// for that.
pub struct PostgresStore {
    pool: PgPool,
    pending: Arc<Pending>,
    /// Records of other processes shown in `pending` until their deadline
    /// (see `show_until_stored`), oldest first.
    shown: std::sync::Mutex<std::collections::VecDeque<(Instant, Arc<EncodedRecord>)>>,
    records: mpsc::UnboundedSender<Queued>,
    record_durability: RecordDurability,
    failed_records: Arc<AtomicU64>,
    sweeper: Option<JoinHandle<()>>,
}

impl PostgresStore {
    /// Connects to the database `postgres` names, applies the schema's
    /// migrations and starts the record writer (and, with a retention, the
    /// sweep). Fails with [`StoreError::Unavailable`] when the database
    /// cannot be reached.
    pub async fn connect(
        postgres: &PostgresConfig,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(&postgres.url)
            .map_err(|error| StoreError::InvalidLocation(error.to_string()))?
            .application_name("clemmys");
        let place = describe(&options);
        let unreachable = |error: sqlx::Error| match map_error(error) {
            StoreError::Unavailable(detail) => {
                StoreError::Unavailable(format!("cannot reach PostgreSQL at {place}: {detail}"))
            }
            other => other,
        };
        // One connection first, so that a refusal at start names its cause
        // (refused, unknown host, authentication) rather than a pool timeout.
        let first = tokio::time::timeout(
            postgres.acquire_timeout,
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "cannot reach PostgreSQL at {place}: no answer within {:?}",
                postgres.acquire_timeout
            ))
        })?
        .map_err(unreachable)?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(postgres.max_connections)
            .acquire_timeout(postgres.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|error| {
                StoreError::Backend(format!("reading the schema migrations: {error}"))
            })?
            .run(&pool)
            .await
            .map_err(|error| match error {
                sqlx::migrate::MigrateError::Execute(error) => map_error(error),
                other => StoreError::Backend(format!("migrating the schema at {place}: {other}")),
            })?;

        let pending = Arc::new(Pending::default());
        let failed_records = Arc::new(AtomicU64::new(0));
        let (records, queue) = mpsc::unbounded_channel();
        let writer = Writer::new(
            pool.clone(),
            pending.clone(),
            failed_records.clone(),
            config.commit_interval,
        );
        tokio::spawn(writer.run(queue));
        let sweeper = config.activation_retention.map(|retention| {
            tokio::spawn(writer::sweep_expired(
                pool.clone(),
                retention,
                config.retention_sweep_interval,
            ))
        });
        Ok(Self {
            pool,
            pending,
            shown: std::sync::Mutex::default(),
            records,
            record_durability: config.record_durability,
            failed_records,
            sweeper,
        })
    }

    /// Activation records accepted under [`RecordDurability::Group`] whose
    /// later write failed (each one is also logged). Their writers were
    /// answered already; the records are lost.
    pub fn failed_record_writes(&self) -> u64 {
        self.failed_records.load(Ordering::Relaxed)
    }

    /// Stores many activation records in large transactions of their own,
    /// past the writer: for loading a store before it serves (a
    /// benchmark's preload). Returns how many were stored.
    pub async fn put_activations(
        &self,
        records: impl IntoIterator<Item = Activation>,
    ) -> Result<usize, StoreError> {
        let mut records = records.into_iter().peekable();
        let mut stored = 0usize;
        while records.peek().is_some() {
            let batch = records
                .by_ref()
                .take(writer::BULK_BATCH)
                .map(|record| EncodedRecord::encode(record).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            let mut txn = self.pool.begin().await.map_err(map_error)?;
            writer::insert_records(&mut *txn, &batch).await?;
            txn.commit().await.map_err(map_error)?;
            stored = stored.saturating_add(batch.len());
        }
        Ok(stored)
    }

    /// Stores `count` records shaped like a plain echo action's, ending
    /// now, as [`RedbStore::preload_activations`](crate::RedbStore::preload_activations)
    /// does: a database as a long-running node would have it.
    pub async fn preload_activations(
        &self,
        namespace: &str,
        action: &str,
        count: usize,
    ) -> Result<usize, StoreError> {
        self.put_activations(crate::record::preloaded(namespace, action, count))
            .await
    }

    async fn fetch_doc<T: serde::de::DeserializeOwned>(
        &self,
        query: sqlx::query::QueryScalar<'_, sqlx::Postgres, Vec<u8>, sqlx::postgres::PgArguments>,
    ) -> Result<Option<T>, StoreError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?
            .map(|json| decode(&json))
            .transpose()
    }

    async fn fetch_docs<T: serde::de::DeserializeOwned>(
        &self,
        query: sqlx::query::QueryScalar<'_, sqlx::Postgres, Vec<u8>, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<T>, StoreError> {
        query
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?
            .iter()
            .map(|json| decode(json))
            .collect()
    }

    /// Writes `doc` as `namespace/name` of `table` (one of the document
    /// tables), failing on an existing one under `CreateOnly`.
    async fn put_document(
        &self,
        table: DocumentTable,
        namespace: &EntityName,
        name: &EntityName,
        doc: Vec<u8>,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        let table = table.name();
        let sql = match mode {
            PutMode::CreateOnly => format!(
                "INSERT INTO {table} (namespace, name, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, name) DO NOTHING"
            ),
            PutMode::Overwrite => format!(
                "INSERT INTO {table} (namespace, name, doc) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, name) DO UPDATE SET doc = EXCLUDED.doc"
            ),
        };
        let done = sqlx::query(&sql)
            .bind(namespace.as_str())
            .bind(name.as_str())
            .bind(doc)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn get_document<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!(
            "SELECT doc FROM {} WHERE namespace = $1 AND name = $2",
            table.name()
        );
        self.fetch_doc(
            sqlx::query_scalar(&sql)
                .bind(namespace.as_str())
                .bind(name.as_str()),
        )
        .await
    }

    async fn delete_document<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1 AND name = $2 RETURNING doc",
            table.name()
        );
        self.fetch_doc(
            sqlx::query_scalar(&sql)
                .bind(namespace.as_str())
                .bind(name.as_str()),
        )
        .await
    }

    async fn list_documents<T: serde::de::DeserializeOwned>(
        &self,
        table: DocumentTable,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!(
            "SELECT doc FROM {} WHERE namespace = $1 ORDER BY name LIMIT $2 OFFSET $3",
            table.name()
        );
        self.fetch_docs(
            sqlx::query_scalar(&sql)
                .bind(namespace.as_str())
                .bind(to_i64(limit))
                .bind(to_i64(skip)),
        )
        .await
    }

    async fn get_action_in(
        &self,
        namespace: &EntityName,
        package: &str,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.fetch_doc(
            sqlx::query_scalar(
                "SELECT doc FROM actions WHERE namespace = $1 AND package = $2 AND name = $3",
            )
            .bind(namespace.as_str())
            .bind(package)
            .bind(name.as_str()),
        )
        .await
    }

    async fn get_code_in(
        &self,
        namespace: &EntityName,
        package: &str,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let code: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT code FROM actions WHERE namespace = $1 AND package = $2 AND name = $3",
        )
        .bind(namespace.as_str())
        .bind(package)
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(code.flatten())
    }

    async fn delete_action_in(
        &self,
        namespace: &EntityName,
        package: &str,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.fetch_doc(
            sqlx::query_scalar(
                "DELETE FROM actions WHERE namespace = $1 AND package = $2 AND name = $3 \
                 RETURNING doc",
            )
            .bind(namespace.as_str())
            .bind(package)
            .bind(name.as_str()),
        )
        .await
    }

    async fn list_actions_in(
        &self,
        namespace: &EntityName,
        package: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.fetch_docs(
            sqlx::query_scalar(
                "SELECT doc FROM actions WHERE namespace = $1 AND package = $2 \
                 ORDER BY name LIMIT $3 OFFSET $4",
            )
            .bind(namespace.as_str())
            .bind(package)
            .bind(to_i64(limit))
            .bind(to_i64(skip)),
        )
        .await
    }

    /// The stored records of `namespace` matching `filter` as (start, id,
    /// JSON), newest first, after `skip`, at most `limit`.
    async fn stored_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>, Vec<u8>)>, StoreError> {
        let (since, upto) = time_bounds(filter);
        // Two statements, not one with `$2 IS NULL OR name = $2`, so that
        // each keeps a plan on its own index.
        let query = match &filter.name {
            Some(name) => sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>)>(
                "SELECT start_ms, id, doc FROM activations \
                 WHERE namespace = $1 AND name = $2 AND start_ms BETWEEN $3 AND $4 \
                 ORDER BY start_ms DESC, id DESC LIMIT $5 OFFSET $6",
            )
            .bind(namespace)
            .bind(name.as_str()),
            None => sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>)>(
                "SELECT start_ms, id, doc FROM activations \
                 WHERE namespace = $1 AND start_ms BETWEEN $2 AND $3 \
                 ORDER BY start_ms DESC, id DESC LIMIT $4 OFFSET $5",
            )
            .bind(namespace),
        };
        query
            .bind(since)
            .bind(upto)
            .bind(to_i64(limit))
            .bind(to_i64(skip))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }

    /// Number of stored records of `namespace` matching `filter`, and how
    /// many of `ids` are stored, read in one statement (one snapshot), so
    /// that a record committed meanwhile is counted in both or neither.
    async fn count_stored(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
        ids: Vec<Vec<u8>>,
    ) -> Result<(usize, usize), StoreError> {
        let (since, upto) = time_bounds(filter);
        let query = match &filter.name {
            Some(name) => sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT count(*) FROM activations \
                 WHERE namespace = $1 AND name = $2 AND start_ms BETWEEN $3 AND $4), \
                 (SELECT count(*) FROM activations WHERE id = ANY($5))",
            )
            .bind(namespace)
            .bind(name.as_str()),
            None => sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT count(*) FROM activations \
                 WHERE namespace = $1 AND start_ms BETWEEN $2 AND $3), \
                 (SELECT count(*) FROM activations WHERE id = ANY($4))",
            )
            .bind(namespace),
        };
        let (matching, of_ids) = query
            .bind(since)
            .bind(upto)
            .bind(ids)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        Ok((
            usize::try_from(matching).unwrap_or(0),
            usize::try_from(of_ids).unwrap_or(0),
        ))
    }

    /// Hands `record` to the writer to commit with what is queued now, and
    /// waits for that commit.
    async fn put_durable(&self, record: Arc<EncodedRecord>) -> Result<(), StoreError> {
        self.ask_writer(|reply| Queued::Durable(record, reply))
            .await
    }

    /// Sends the record writer what `queued` makes of a reply channel, and
    /// waits for its answer.
    async fn ask_writer(
        &self,
        queued: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Queued,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.records
            .send(queued(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The writer sees its queue close, inserts what it holds and stops.
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}

/// The tables of plain documents keyed (namespace, name).
#[derive(Debug, Clone, Copy)]
enum DocumentTable {
    Packages,
    Triggers,
    Rules,
}

impl DocumentTable {
    fn name(self) -> &'static str {
        match self {
            Self::Packages => "packages",
            Self::Triggers => "triggers",
            Self::Rules => "rules",
        }
    }
}

/// `value` as a BIGINT: `LIMIT`s of `usize::MAX` mean "no limit".
fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An epoch-ms instant as stored (BIGINT); past `i64::MAX` (never a real
/// instant) it is clamped.
pub(crate) fn to_ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn time_bounds(filter: &ActivationFilter) -> (i64, i64) {
    (
        to_ms(filter.since.unwrap_or(0)),
        to_ms(filter.upto.unwrap_or(u64::MAX)),
    )
}

/// Where `options` point, without the password, for error messages.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

/// A driver error as a store error: the database being unreachable (or
/// going away, or refusing connections while it starts or stops) is
/// [`StoreError::Unavailable`], decided by the error's kind and SQLSTATE
/// class, never its text.
pub(crate) fn map_error(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: the server is shutting
            // down, crashed or not accepting connections yet; 53300: too
            // many connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::backend(error)
    }
}

/// The package column of `action`: `''` for a namespace's own.
fn package_of(action: &Action) -> &str {
    action.package.as_ref().map_or("", EntityName::as_str)
}

#[async_trait]
impl EntityStore for PostgresStore {
    async fn put_namespace(&self, record: NamespaceRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO namespaces (name, auth_uuid, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET auth_uuid = EXCLUDED.auth_uuid, doc = EXCLUDED.doc",
        )
        .bind(record.name.as_str())
        .bind(record.auth.uuid.as_str())
        .bind(encode(&record)?)
        .execute(&self.pool)
        .await
        .map_err(map_error)
        .map(drop)
    }

    async fn get_namespace(
        &self,
        name: &EntityName,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.fetch_doc(
            sqlx::query_scalar("SELECT doc FROM namespaces WHERE name = $1").bind(name.as_str()),
        )
        .await
    }

    async fn find_namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.fetch_doc(
            sqlx::query_scalar(
                "SELECT doc FROM namespaces WHERE auth_uuid = $1 ORDER BY name LIMIT 1",
            )
            .bind(uuid),
        )
        .await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError> {
        self.fetch_docs(sqlx::query_scalar(
            "SELECT doc FROM namespaces ORDER BY name",
        ))
        .await
    }

    async fn put_action(
        &self,
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    ) -> Result<(), StoreError> {
        let sql = match mode {
            PutMode::CreateOnly => {
                "INSERT INTO actions (namespace, package, name, doc, code) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (namespace, package, name) DO NOTHING"
            }
            PutMode::Overwrite => {
                "INSERT INTO actions (namespace, package, name, doc, code) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (namespace, package, name) \
                 DO UPDATE SET doc = EXCLUDED.doc, code = EXCLUDED.code"
            }
        };
        let done = sqlx::query(sql)
            .bind(action.namespace.as_str())
            .bind(package_of(&action))
            .bind(action.name.as_str())
            .bind(encode(&action)?)
            .bind(code)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn get_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.get_action_in(namespace, "", name).await
    }

    async fn get_code(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_code_in(namespace, "", name).await
    }

    async fn delete_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.delete_action_in(namespace, "", name).await
    }

    async fn get_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.get_action_in(namespace, package.as_str(), name).await
    }

    async fn get_package_code(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_code_in(namespace, package.as_str(), name).await
    }

    async fn delete_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError> {
        self.delete_action_in(namespace, package.as_str(), name)
            .await
    }

    async fn list_package_actions(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.list_actions_in(namespace, package.as_str(), skip, limit)
            .await
    }

    async fn list_actions(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError> {
        self.list_actions_in(namespace, "", skip, limit).await
    }

    async fn count_actions(&self, namespace: &EntityName) -> Result<usize, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM actions WHERE namespace = $1 AND package = ''",
        )
        .bind(namespace.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    async fn put_package(&self, package: Package, mode: PutMode) -> Result<(), StoreError> {
        let doc = encode(&package)?;
        self.put_document(
            DocumentTable::Packages,
            &package.namespace,
            &package.name,
            doc,
            mode,
        )
        .await
    }

    async fn get_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        self.get_document(DocumentTable::Packages, namespace, name)
            .await
    }

    async fn delete_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError> {
        self.delete_document(DocumentTable::Packages, namespace, name)
            .await
    }

    async fn list_packages(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Package>, StoreError> {
        self.list_documents(DocumentTable::Packages, namespace, skip, limit)
            .await
    }

    async fn put_trigger(&self, trigger: Trigger, mode: PutMode) -> Result<(), StoreError> {
        let doc = encode(&trigger)?;
        self.put_document(
            DocumentTable::Triggers,
            &trigger.namespace,
            &trigger.name,
            doc,
            mode,
        )
        .await
    }

    async fn get_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.get_document(DocumentTable::Triggers, namespace, name)
            .await
    }

    async fn delete_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError> {
        self.delete_document(DocumentTable::Triggers, namespace, name)
            .await
    }

    async fn list_triggers(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Trigger>, StoreError> {
        self.list_documents(DocumentTable::Triggers, namespace, skip, limit)
            .await
    }

    async fn put_rule(&self, rule: Rule, mode: PutMode) -> Result<(), StoreError> {
        let doc = encode(&rule)?;
        self.put_document(DocumentTable::Rules, &rule.namespace, &rule.name, doc, mode)
            .await
    }

    async fn get_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.get_document(DocumentTable::Rules, namespace, name)
            .await
    }

    async fn delete_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError> {
        self.delete_document(DocumentTable::Rules, namespace, name)
            .await
    }

    async fn list_rules(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Rule>, StoreError> {
        self.list_documents(DocumentTable::Rules, namespace, skip, limit)
            .await
    }

    fn show_until_stored(&self, activation: &Activation, hold: Duration) {
        let now = Instant::now();
        let mut shown = self
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Those whose time is up first: their writers have committed them.
        while let Some((deadline, _)) = shown.front()
            && *deadline <= now
        {
            if let Some((_, record)) = shown.pop_front() {
                self.pending.remove(&record);
            }
        }
        let record = match EncodedRecord::encode(activation.clone()) {
            Ok(record) => Arc::new(record),
            Err(error) => {
                tracing::warn!(%error, id = %activation.activation_id, "an answered record could not be shown before it is stored");
                return;
            }
        };
        // A full pending set shows nothing more: the record appears once
        // its invoker commits it.
        if self.pending.try_insert(&record) {
            shown.push_back((now + hold, record));
        }
    }

    async fn put_activation(&self, activation: Activation) -> Result<(), StoreError> {
        let record = Arc::new(EncodedRecord::encode(activation)?);
        if self.record_durability == RecordDurability::Group && self.pending.try_insert(&record) {
            if self.records.send(Queued::Record(record.clone())).is_err() {
                self.pending.remove(&record);
                return Err(StoreError::Closed);
            }
            return Ok(());
        }
        // Sync, or too much is pending: wait for its commit (group-committed
        // with the other records queued meanwhile).
        self.put_durable(record).await
    }

    async fn put_stand_in(&self, stand_in: Activation) -> Result<(), StoreError> {
        let record = EncodedRecord::encode(stand_in)?;
        // A record stored meanwhile wins; a record stored later deletes
        // the stand-in in its own transaction.
        sqlx::query(
            "INSERT INTO stand_ins (id, namespace, name, start_ms, doc) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM activations WHERE id = $1) \
             ON CONFLICT (id) DO UPDATE SET namespace = EXCLUDED.namespace, \
             name = EXCLUDED.name, start_ms = EXCLUDED.start_ms, doc = EXCLUDED.doc",
        )
        .bind(record.id.as_bytes().as_slice())
        .bind(record.namespace.as_str())
        .bind(record.name.as_str())
        .bind(to_ms(record.start))
        .bind(record.json.as_slice())
        .execute(&self.pool)
        .await
        .map_err(map_error)
        .map(drop)
    }

    async fn settle_interrupted(&self) -> Result<usize, StoreError> {
        // Records still held are stored first: their stand-ins are not
        // interrupted activations.
        self.flush().await?;
        let settled = sqlx::query(
            "WITH interrupted AS (DELETE FROM stand_ins RETURNING id, namespace, name, start_ms, doc) \
             INSERT INTO activations (id, namespace, name, start_ms, doc) \
             SELECT id, namespace, name, start_ms, doc FROM interrupted \
             WHERE NOT EXISTS (SELECT 1 FROM activations a WHERE a.id = interrupted.id) \
             ON CONFLICT (id) DO NOTHING",
        )
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(usize::try_from(settled.rows_affected()).unwrap_or(usize::MAX))
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
        self.fetch_doc(
            sqlx::query_scalar("SELECT doc FROM activations WHERE id = $1 AND namespace = $2")
                .bind(id.as_bytes().as_slice())
                .bind(namespace),
        )
        .await
    }

    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<Vec<Activation>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        // The pending set before the database: see `get_activation`.
        let pending = self.pending.matching(namespace, filter);
        if pending.is_empty() {
            let rows = self
                .stored_activations(namespace, filter, filter.skip, filter.limit)
                .await?;
            return rows.iter().map(|(_, _, json)| decode(json)).collect();
        }
        let wanted = filter.skip.saturating_add(filter.limit);
        let stored = self
            .stored_activations(namespace, filter, 0, wanted)
            .await?;
        merge_newest_first(&pending, stored)
            .into_iter()
            .skip(filter.skip)
            .take(filter.limit)
            .map(|json| decode(&json))
            .collect()
    }

    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<usize, StoreError> {
        // The pending set before the database: see `get_activation`. A
        // pending record that is also stored (committed meanwhile) counts
        // once.
        let pending = self.pending.matching(namespace, filter);
        let ids = pending
            .iter()
            .map(|record| record.id.as_bytes().to_vec())
            .collect();
        let (stored, also_pending) = self.count_stored(namespace, filter, ids).await?;
        let count = stored.saturating_add(pending.len().saturating_sub(also_pending));
        Ok(count.saturating_sub(filter.skip))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.ask_writer(Queued::Flush).await
    }

    async fn committed(&self) -> Result<(), StoreError> {
        self.ask_writer(Queued::AfterCommit).await
    }
}

/// The JSON of `pending` and `stored` records (both newest first), merged
/// newest first; a record in both (committed meanwhile) comes once, as
/// pending.
fn merge_newest_first(
    pending: &[Arc<EncodedRecord>],
    stored: Vec<(i64, Vec<u8>, Vec<u8>)>,
) -> Vec<Vec<u8>> {
    let mut all: Vec<(i64, Vec<u8>, Vec<u8>)> = stored
        .into_iter()
        .filter(|(_, id, _)| {
            !pending
                .iter()
                .any(|record| record.id.as_bytes().as_slice() == id.as_slice())
        })
        .collect();
    all.extend(pending.iter().map(|record| {
        (
            to_ms(record.start),
            record.id.as_bytes().to_vec(),
            record.json.clone(),
        )
    }));
    all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    all.into_iter().map(|(_, _, json)| json).collect()
}
