//! Durable storage of namespaces, actions (with their code), packages,
//! triggers, rules and activation records, behind the [`EntityStore`]
//! trait.
//!
//! The store is untrusted: for confidential actions it only ever receives
//! sealed code and sealed results, never plaintext. The default backend is
//! [`RedbStore`], an embedded, crash-safe store with group commit; the
//! scale-out backend, `PostgresStore` (feature `postgres`), implements the
//! same trait on a PostgreSQL database.
//!
//! Every method is async, so that a network database can serve it without
//! blocking a runtime worker. The embedded store answers its reads inline
//! when first polled (no thread hop): a redb read is a lookup in pages the
//! OS already caches.
//!
//! How durable an activation record is when its write returns is a policy,
//! [`RecordDurability`]: everything else is durable before its write
//! returns.

mod error;
#[cfg(feature = "test-support")]
pub mod faults;
mod pending;
#[cfg(feature = "postgres")]
mod postgres_store;
mod record;
mod redb_store;
#[cfg(all(feature = "test-support", feature = "postgres"))]
pub mod test_postgres;

use std::time::Duration;

use async_trait::async_trait;
use clemmys_whisk::{
    Action, Activation, ActivationId, EntityName, NamespaceRecord, Package, Rule, Trigger,
};

pub use error::StoreError;
#[cfg(feature = "postgres")]
pub use postgres_store::{PostgresConfig, PostgresStore};
pub use redb_store::RedbStore;

/// When `put_activation` returns, and so what a crash can lose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordDurability {
    /// Once the record is visible to reads: it is committed durably, with
    /// the other records of its interval, at most
    /// [`StoreConfig::commit_interval`] later. A crash (power cut,
    /// SIGKILL) loses the records written in that last interval: those of
    /// blocking invokes, whose callers already hold the result (and for a
    /// confidential action its receipt), and those of acknowledged (202)
    /// activations, which are then kept as interrupted by their stand-ins.
    /// A graceful stop loses nothing.
    #[default]
    Group,
    /// Once the record is durable (group-committed with whatever else is
    /// queued): a crash loses nothing that was acknowledged.
    Sync,
}

/// What a start after a crash (or a kill) costs, against what every
/// commit costs. Measured on a 2-core VM (`examples/commit_cost.rs`): a
/// durable write waiting for its own commit took 2.4-3.0 ms under `Full`
/// and 4.2-5.8 ms under `Quick`; a start after a SIGKILL took 17 s under
/// `Full` once a soak had written about a GB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CrashRecovery {
    /// Every commit also saves the store's allocator state (and commits in
    /// two phases, one more fsync), so a start after a crash loads it and
    /// serves at once, however large the store.
    Quick,
    /// Commits save nothing extra; a start after a crash first rebuilds the
    /// allocator state by reading the whole store file, which takes longer
    /// the larger the store is.
    #[default]
    Full,
}

/// How long a record may wait for its durable commit by default under
/// [`RecordDurability::Group`]: long enough that at thousands of invokes a
/// second one fsync serves hundreds of records, short enough that a crash
/// loses only what a tenth of a second of load wrote (blocking records
/// whose callers hold their results). At 10 ms, one warm request in 50
/// to 100 at one client waited behind a commit (p99 0.4-1.0 ms against a
/// p50 of 0.18 ms on a 2-core VM); at 100 ms the p99 was 0.29-0.37 ms
/// (docs/BENCHMARKS.md, "The commit interval").
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// How often the store looks for activation records past their retention
/// by default (each look deletes at most a bounded batch, and looks again
/// at once while there is more).
pub const DEFAULT_RETENTION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How a store persists what it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// When an activation record's write returns.
    pub record_durability: RecordDurability,
    /// Under [`RecordDurability::Group`], the longest a record waits for
    /// its durable commit.
    pub commit_interval: Duration,
    /// Activation records that started longer ago than this are deleted in
    /// the background; `None` keeps them forever.
    pub activation_retention: Option<Duration>,
    /// How often to look for records past `activation_retention`.
    pub retention_sweep_interval: Duration,
    /// What a start after a crash costs.
    pub crash_recovery: CrashRecovery,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            record_durability: RecordDurability::default(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            activation_retention: None,
            retention_sweep_interval: DEFAULT_RETENTION_SWEEP_INTERVAL,
            crash_recovery: CrashRecovery::default(),
        }
    }
}

/// What to do when `put_action` finds an action of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with [`StoreError::Conflict`] if the action exists.
    CreateOnly,
    /// Replace the action if it exists.
    Overwrite,
}

/// Filters of `GET …/activations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationFilter {
    /// Only activations of this action name.
    pub name: Option<String>,
    /// Only activations that started at or after this epoch-ms instant.
    pub since: Option<u64>,
    /// Only activations that started at or before this epoch-ms instant.
    pub upto: Option<u64>,
    /// Number of matching records to skip (newest first).
    pub skip: usize,
    /// Maximum number of records to return.
    pub limit: usize,
}

/// Storage of every entity the controller and invokers persist.
///
/// Writes return once the data is durable: an acknowledged write survives a
/// crash of the server process. The one exception is `put_activation`
/// under [`RecordDurability::Group`], which returns once the record is
/// visible to every read and makes it durable shortly after; `flush` waits
/// for that.
#[async_trait]
pub trait EntityStore: Send + Sync + 'static {
    /// Creates or replaces a namespace record.
    async fn put_namespace(&self, record: NamespaceRecord) -> Result<(), StoreError>;
    /// The namespace of this name.
    async fn get_namespace(&self, name: &EntityName)
    -> Result<Option<NamespaceRecord>, StoreError>;
    /// The namespace whose API key has this UUID.
    async fn find_namespace_by_uuid(
        &self,
        uuid: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError>;
    /// Every namespace, ordered by name.
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>, StoreError>;

    /// Stores `action` (in its package, if it names one) and, for code
    /// actions, its code, atomically.
    async fn put_action(
        &self,
        action: Action,
        code: Option<Vec<u8>>,
        mode: PutMode,
    ) -> Result<(), StoreError>;
    /// The action `namespace/name`.
    async fn get_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError>;
    /// The stored code of action `namespace/name`.
    async fn get_code(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes an action and its code; returns what was removed.
    async fn delete_action(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError>;
    /// The action `name` of package `namespace/package`.
    async fn get_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError>;
    /// The stored code of action `name` of package `namespace/package`.
    async fn get_package_code(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes an action of a package and its code; returns what was
    /// removed.
    async fn delete_package_action(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Action>, StoreError>;
    /// Actions of package `namespace/package` ordered by name, after
    /// `skip`, at most `limit`.
    async fn list_package_actions(
        &self,
        namespace: &EntityName,
        package: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError>;
    /// Actions of a namespace (not those in its packages) ordered by name,
    /// after `skip`, at most `limit`.
    async fn list_actions(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Action>, StoreError>;
    /// Number of actions in a namespace (not in its packages).
    async fn count_actions(&self, namespace: &EntityName) -> Result<usize, StoreError>;

    /// Stores a package or binding; [`PutMode::CreateOnly`] fails with
    /// [`StoreError::Conflict`] if one of that name exists.
    async fn put_package(&self, package: Package, mode: PutMode) -> Result<(), StoreError>;
    /// The package (or binding) `namespace/name`.
    async fn get_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError>;
    /// Removes a package; returns what was removed.
    async fn delete_package(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Package>, StoreError>;
    /// Packages of a namespace ordered by name, after `skip`, at most
    /// `limit`.
    async fn list_packages(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Package>, StoreError>;

    /// Stores a trigger (with its rules' links); [`PutMode::CreateOnly`]
    /// fails with [`StoreError::Conflict`] if one of that name exists.
    async fn put_trigger(&self, trigger: Trigger, mode: PutMode) -> Result<(), StoreError>;
    /// The trigger `namespace/name`.
    async fn get_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError>;
    /// Removes a trigger; returns what was removed.
    async fn delete_trigger(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Trigger>, StoreError>;
    /// Triggers of a namespace ordered by name, after `skip`, at most
    /// `limit`.
    async fn list_triggers(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Trigger>, StoreError>;

    /// Stores a rule; [`PutMode::CreateOnly`] fails with
    /// [`StoreError::Conflict`] if one of that name exists.
    async fn put_rule(&self, rule: Rule, mode: PutMode) -> Result<(), StoreError>;
    /// The rule `namespace/name`.
    async fn get_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError>;
    /// Removes a rule; returns what was removed.
    async fn delete_rule(
        &self,
        namespace: &EntityName,
        name: &EntityName,
    ) -> Result<Option<Rule>, StoreError>;
    /// Rules of a namespace ordered by name, after `skip`, at most `limit`.
    async fn list_rules(
        &self,
        namespace: &EntityName,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Rule>, StoreError>;

    /// Stores an activation record (and forgets its stand-in, if any). Once
    /// it returns, `get_activation` finds the record from any thread; how
    /// durable it is by then is the store's [`RecordDurability`].
    async fn put_activation(&self, activation: Activation) -> Result<(), StoreError>;
    /// Shows `activation`, which another process answered and is storing
    /// (an invoker on a networked bus answers before its record is
    /// committed), to this store's reads at once, for about `hold`: by
    /// then that process has committed it. Best effort, never written by
    /// this store. Default: nothing (a store that only this process
    /// writes never needs it).
    fn show_until_stored(&self, _activation: &Activation, _hold: std::time::Duration) {}
    /// Remembers `stand_in`, the record to keep for an activation that was
    /// acknowledged before it finished, should the node stop before storing
    /// the activation's own record. Does nothing if that record is already
    /// stored; storing it later forgets the stand-in.
    async fn put_stand_in(&self, stand_in: Activation) -> Result<(), StoreError>;
    /// Stores the stand-in of every acknowledged activation whose own record
    /// was never stored, and forgets the rest; returns how many were stored.
    /// A node calls it once at start, before it serves.
    async fn settle_interrupted(&self) -> Result<usize, StoreError>;
    /// The activation `id` of `namespace`.
    async fn get_activation(
        &self,
        namespace: &str,
        id: &ActivationId,
    ) -> Result<Option<Activation>, StoreError>;
    /// Matching activations, newest first.
    async fn list_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<Vec<Activation>, StoreError>;
    /// Number of matching activations (ignoring `limit`, honouring `skip`).
    async fn count_activations(
        &self,
        namespace: &str,
        filter: &ActivationFilter,
    ) -> Result<usize, StoreError>;

    /// Returns once every write that returned before it is durable (a
    /// stopping node calls it last). Stores whose writes are all durable
    /// when they return have nothing to do.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Returns once every write that returned before it is durable, as
    /// [`flush`](Self::flush), but without hurrying the commit: under
    /// group durability it waits for the commit that is due anyway. For a
    /// writer that must know its record is durable but answers no one
    /// meanwhile (an invoker acknowledging a bus message).
    async fn committed(&self) -> Result<(), StoreError> {
        self.flush().await
    }
}
