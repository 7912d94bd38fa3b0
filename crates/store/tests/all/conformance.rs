//! The store conformance suite: the same tests against every backend, the
//! embedded [`RedbStore`] and the [`PostgresStore`] on a real PostgreSQL
//! (the test run's cluster, or one the test starts; see
//! `clemmys_store::test_postgres`). Each test below runs once per backend,
//! as `conformance::redb::NAME` and `conformance::postgres::NAME`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clemmys_store::test_postgres::TestDatabase;
use clemmys_store::{
    ActivationFilter, EntityStore, PostgresConfig, PostgresStore, PutMode, RecordDurability,
    RedbStore, StoreConfig, StoreError,
};
use clemmys_whisk::{
    Action, Activation, ActivationId, ActivationResponse, ActivationStatus, AuthKey, EntityRef,
    KeyValues, NamespaceLimits, NamespaceRecord, Package, Rule, Trigger,
};

use crate::{action, activation, name};

/// A backend to run a test against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Redb,
    Postgres,
}

/// An open store, and what must live as long as it does.
pub struct Opened {
    pub store: Arc<dyn EntityStore>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl Backend {
    /// A new, empty store of this backend persisting as `config` says;
    /// `None` when the test is skipped (PostgreSQL absent, off CI).
    pub async fn open(self, config: StoreConfig) -> Option<Opened> {
        match self {
            Self::Redb => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = RedbStore::open_with(&dir.path().join("store.redb"), config)
                    .expect("open store");
                Some(Opened {
                    store: Arc::new(store),
                    _dir: Some(dir),
                    _database: None,
                })
            }
            Self::Postgres => {
                let database = TestDatabase::create().await?;
                let store = PostgresStore::connect(&PostgresConfig::new(&database.url), config)
                    .await
                    .expect("connect to the test database");
                Some(Opened {
                    store: Arc::new(store),
                    _dir: None,
                    _database: Some(database),
                })
            }
        }
    }
}

/// Each test, once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Redb).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await
                }
            )*
        }
    };
}

conformance!(
    package_actions_are_kept_apart_from_the_namespaces_own,
    actions_round_trip_with_code_and_conflicts,
    actions_list_per_namespace_with_skip_and_limit,
    activations_filter_by_name_and_time_newest_first,
    namespaces_are_found_by_key_uuid_and_rekeyed,
    concurrent_writes_share_commits_and_all_land,
    stand_ins_are_settled_only_for_activations_never_stored,
    packages_are_kept_listed_per_namespace_and_deleted,
    triggers_and_rules_are_kept_with_conflicts,
    a_group_record_is_visible_as_soon_as_its_write_returns,
    listing_merges_pending_and_committed_records_in_order,
    a_record_wins_over_its_stand_in_in_either_order,
    sync_records_are_stored_when_their_write_returns,
    records_past_their_retention_are_deleted_in_the_background,
);

/// Group mode with an interval no test outlives: records stay pending
/// until a flush.
fn held_for_an_hour() -> StoreConfig {
    StoreConfig {
        record_durability: RecordDurability::Group,
        commit_interval: Duration::from_secs(3600),
        ..StoreConfig::default()
    }
}

fn all() -> ActivationFilter {
    ActivationFilter {
        limit: 100,
        ..ActivationFilter::default()
    }
}

fn id(n: u8) -> ActivationId {
    ActivationId::from_bytes([n; 16])
}

fn package(namespace: &str, n: &str) -> Package {
    Package {
        namespace: name(namespace),
        name: name(n),
        version: semver::Version::new(0, 0, 1),
        publish: false,
        binding: None,
        parameters: KeyValues::default(),
        annotations: KeyValues::default(),
        updated: 1,
    }
}

fn trigger(namespace: &str, n: &str) -> Trigger {
    Trigger {
        namespace: name(namespace),
        name: name(n),
        version: semver::Version::new(0, 0, 1),
        publish: false,
        parameters: KeyValues::default(),
        annotations: KeyValues::default(),
        rules: Default::default(),
        updated: 1,
    }
}

fn rule(n: &str) -> Rule {
    Rule {
        namespace: name("guest"),
        name: name(n),
        version: semver::Version::new(0, 0, 1),
        publish: false,
        trigger: EntityRef {
            path: "guest".into(),
            name: name("t"),
        },
        action: EntityRef {
            path: "guest".into(),
            name: name("a"),
        },
        annotations: KeyValues::default(),
        updated: 1,
    }
}

async fn packages_are_kept_listed_per_namespace_and_deleted(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    let guest = name("guest");
    for n in ["b", "a", "c"] {
        store
            .put_package(package("guest", n), PutMode::CreateOnly)
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
    let a = name("a");
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

async fn triggers_and_rules_are_kept_with_conflicts(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    let guest = name("guest");
    let t = name("t");
    for n in ["t", "s", "u"] {
        store
            .put_trigger(trigger("guest", n), PutMode::CreateOnly)
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
    let mut fired = trigger("guest", "t");
    fired.publish = true;
    store
        .put_trigger(fired.clone(), PutMode::Overwrite)
        .await
        .expect("overwrite");
    assert_eq!(
        store.get_trigger(&guest, &t).await.expect("get"),
        Some(fired)
    );
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
    let r = name("r");
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

async fn a_group_record_is_visible_as_soon_as_its_write_returns(backend: Backend) {
    let Some(opened) = backend.open(held_for_an_hour()).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_activation(activation("guest", "a", 100, 1))
        .await
        .expect("put");
    let reader = store.clone();
    let seen = tokio::spawn(async move {
        let record = reader.get_activation("guest", &id(1)).await.expect("get");
        let listed = reader
            .list_activations("guest", &all())
            .await
            .expect("list");
        let counted = reader
            .count_activations("guest", &all())
            .await
            .expect("count");
        (record.map(|r| r.start), listed.len(), counted)
    })
    .await
    .expect("reader task");
    assert_eq!(seen, (Some(100), 1, 1));
    // Still only in its own namespace.
    assert!(
        store
            .get_activation("other", &id(1))
            .await
            .expect("get")
            .is_none()
    );
    // And stored for good by a flush.
    store.flush().await.expect("flush");
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        1
    );
}

async fn listing_merges_pending_and_committed_records_in_order(backend: Backend) {
    let Some(opened) = backend.open(held_for_an_hour()).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_activation(activation("guest", "a", 100, 1))
        .await
        .expect("put");
    store
        .put_activation(activation("guest", "b", 300, 3))
        .await
        .expect("put");
    store.flush().await.expect("flush");
    // Pending now: 2 and 4, between and after the committed ones.
    for (start, n) in [(200, 2), (400, 4), (400, 4)] {
        // The last one rewrites a pending record: listed once.
        store
            .put_activation(activation("guest", "a", start, n))
            .await
            .expect("put");
    }
    let starts = async |filter: &ActivationFilter| {
        store
            .list_activations("guest", filter)
            .await
            .expect("list")
            .into_iter()
            .map(|a| a.start)
            .collect::<Vec<_>>()
    };
    assert_eq!(starts(&all()).await, [400, 300, 200, 100]);
    let page = ActivationFilter {
        skip: 1,
        limit: 2,
        ..all()
    };
    assert_eq!(starts(&page).await, [300, 200]);
    let by_name = ActivationFilter {
        name: Some("a".into()),
        since: Some(150),
        ..all()
    };
    assert_eq!(starts(&by_name).await, [400, 200]);
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        store
            .count_activations("guest", &page)
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        store
            .count_activations("guest", &by_name)
            .await
            .expect("count"),
        2
    );
    store.flush().await.expect("flush");
    assert_eq!(
        starts(&all()).await,
        [400, 300, 200, 100],
        "the same once stored"
    );
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        4
    );
}

async fn a_record_wins_over_its_stand_in_in_either_order(backend: Backend) {
    let Some(opened) = backend.open(held_for_an_hour()).await else {
        return;
    };
    let store = opened.store.clone();
    let interrupted = |n: u8| {
        let mut record = activation("guest", "slow", 10, n);
        record.response = ActivationResponse::error(ActivationStatus::InternalError, "interrupted");
        record
    };
    // 1: the record is still pending when its stand-in comes (a fast
    // non-blocking activation); 2: the stand-in is stored first.
    store
        .put_activation(activation("guest", "slow", 11, 1))
        .await
        .expect("record");
    store.put_stand_in(interrupted(1)).await.expect("stand-in");
    store.put_stand_in(interrupted(2)).await.expect("stand-in");
    store
        .put_activation(activation("guest", "slow", 12, 2))
        .await
        .expect("record");
    store.flush().await.expect("flush");
    assert_eq!(store.settle_interrupted().await.expect("settle"), 0);
    for n in [1, 2] {
        let record = store
            .get_activation("guest", &id(n))
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("activation {n} lost"));
        assert_eq!(record.response.status, ActivationStatus::Success, "{n}");
    }
    let slow = ActivationFilter {
        name: Some("slow".into()),
        ..all()
    };
    assert_eq!(
        store
            .count_activations("guest", &slow)
            .await
            .expect("count"),
        2
    );
}

async fn sync_records_are_stored_when_their_write_returns(backend: Backend) {
    let config = StoreConfig {
        record_durability: RecordDurability::Sync,
        ..StoreConfig::default()
    };
    let Some(opened) = backend.open(config).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_activation(activation("guest", "a", 5, 7))
        .await
        .expect("put");
    assert!(
        store
            .get_activation("guest", &id(7))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        1
    );
}

async fn records_past_their_retention_are_deleted_in_the_background(backend: Backend) {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    let config = StoreConfig {
        record_durability: RecordDurability::Sync,
        activation_retention: Some(Duration::from_millis(DAY_MS)),
        retention_sweep_interval: Duration::from_millis(20),
        ..StoreConfig::default()
    };
    let Some(opened) = backend.open(config).await else {
        return;
    };
    let store = opened.store.clone();
    let now = clemmys_whisk::now_ms();
    let old = now - 2 * DAY_MS;
    // More than one sweep's batch (1000), over two namespaces.
    let mut writes = tokio::task::JoinSet::new();
    for n in 0..1200u32 {
        let store = store.clone();
        writes.spawn(async move {
            let ns = if n % 2 == 0 { "guest" } else { "other" };
            let mut record = activation(ns, "a", old + u64::from(n), 0);
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            record.activation_id = ActivationId::from_bytes(bytes);
            store.put_activation(record).await
        });
    }
    while let Some(written) = writes.join_next().await {
        written.expect("join").expect("put");
    }
    store
        .put_activation(activation("guest", "a", now, 0xee))
        .await
        .expect("put");
    let count = async |ns: &str, name: Option<&str>| {
        let filter = ActivationFilter {
            name: name.map(str::to_owned),
            limit: 1,
            ..ActivationFilter::default()
        };
        store.count_activations(ns, &filter).await.expect("count")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("guest", None).await + count("other", None).await > 1 {
        assert!(Instant::now() < deadline, "old records not deleted in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The recent one stays, found by every index.
    assert_eq!(count("guest", None).await, 1);
    assert_eq!(count("guest", Some("a")).await, 1);
    assert_eq!(count("other", Some("a")).await, 0);
    assert!(
        store
            .get_activation("guest", &id(0xee))
            .await
            .expect("get")
            .is_some()
    );
}

async fn package_actions_are_kept_apart_from_the_namespaces_own(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_action(
            action("guest", "a"),
            Some(b"own".to_vec()),
            PutMode::CreateOnly,
        )
        .await
        .expect("own action");
    for n in ["b", "a"] {
        let mut packaged = action("guest", n);
        packaged.package = Some(name("tools"));
        store
            .put_action(packaged, Some(n.as_bytes().to_vec()), PutMode::CreateOnly)
            .await
            .expect("package action, even of a name the namespace uses");
    }
    let names = |actions: Vec<Action>| -> Vec<String> {
        actions.iter().map(|a| a.name.to_string()).collect()
    };
    assert_eq!(
        names(
            store
                .list_actions(&name("guest"), 0, 10)
                .await
                .expect("list")
        ),
        ["a"]
    );
    assert_eq!(store.count_actions(&name("guest")).await.expect("count"), 1);
    assert_eq!(
        names(
            store
                .list_package_actions(&name("guest"), &name("tools"), 0, 10)
                .await
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            store
                .list_package_actions(&name("guest"), &name("tools"), 1, 10)
                .await
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(
        store
            .get_package_code(&name("guest"), &name("tools"), &name("a"))
            .await
            .expect("code"),
        Some(b"a".to_vec())
    );
    assert_eq!(
        store
            .get_code(&name("guest"), &name("a"))
            .await
            .expect("code"),
        Some(b"own".to_vec())
    );
    let removed = store
        .delete_package_action(&name("guest"), &name("tools"), &name("a"))
        .await
        .expect("delete");
    assert_eq!(removed.and_then(|a| a.package), Some(name("tools")));
    assert!(
        store
            .get_action(&name("guest"), &name("a"))
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        store
            .get_package_action(&name("guest"), &name("tools"), &name("a"))
            .await
            .expect("get")
            .is_none()
    );
}

async fn actions_round_trip_with_code_and_conflicts(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_action(
            action("guest", "a"),
            Some(b"abc".to_vec()),
            PutMode::CreateOnly,
        )
        .await
        .expect("create");
    let again = store
        .put_action(action("guest", "a"), None, PutMode::CreateOnly)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)));
    assert_eq!(
        store
            .get_code(&name("guest"), &name("a"))
            .await
            .expect("read"),
        Some(b"abc".to_vec())
    );

    let mut updated = action("guest", "a");
    updated.version = semver::Version::new(0, 0, 2);
    store
        .put_action(updated, Some(b"xyz".to_vec()), PutMode::Overwrite)
        .await
        .expect("overwrite");
    let got = store
        .get_action(&name("guest"), &name("a"))
        .await
        .expect("read")
        .expect("present");
    assert_eq!(got.version.to_string(), "0.0.2");
    assert_eq!(
        store
            .get_code(&name("guest"), &name("a"))
            .await
            .expect("read"),
        Some(b"xyz".to_vec())
    );

    let removed = store
        .delete_action(&name("guest"), &name("a"))
        .await
        .expect("delete");
    assert_eq!(removed.map(|a| a.name), Some(name("a")));
    assert!(
        store
            .get_action(&name("guest"), &name("a"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .get_code(&name("guest"), &name("a"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .delete_action(&name("guest"), &name("a"))
            .await
            .expect("delete")
            .is_none()
    );
}

async fn actions_list_per_namespace_with_skip_and_limit(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    for n in ["c", "a", "b"] {
        store
            .put_action(action("guest", n), None, PutMode::CreateOnly)
            .await
            .expect("create");
    }
    // A namespace whose name extends "guest" must not leak into its listing.
    store
        .put_action(action("guest2", "z"), None, PutMode::CreateOnly)
        .await
        .expect("create");
    let names = |actions: Vec<Action>| {
        actions
            .into_iter()
            .map(|a| a.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            store
                .list_actions(&name("guest"), 0, 30)
                .await
                .expect("list")
        ),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(
            store
                .list_actions(&name("guest"), 1, 1)
                .await
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(store.count_actions(&name("guest")).await.expect("count"), 3);
    assert_eq!(
        store.count_actions(&name("guest2")).await.expect("count"),
        1
    );
}

async fn activations_filter_by_name_and_time_newest_first(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    store
        .put_activation(activation("guest", "a", 100, 1))
        .await
        .expect("put");
    store
        .put_activation(activation("guest", "b", 200, 2))
        .await
        .expect("put");
    store
        .put_activation(activation("guest", "a", 300, 3))
        .await
        .expect("put");
    store
        .put_activation(activation("other", "a", 400, 4))
        .await
        .expect("put");
    let ids = |list: Vec<Activation>| list.into_iter().map(|a| a.start).collect::<Vec<_>>();
    let all = ActivationFilter {
        limit: 30,
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_activations("guest", &all).await.expect("list")),
        [300, 200, 100]
    );
    let by_name = ActivationFilter {
        name: Some("a".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(store
            .list_activations("guest", &by_name)
            .await
            .expect("list")),
        [300, 100]
    );
    let window = ActivationFilter {
        since: Some(150),
        upto: Some(300),
        ..all.clone()
    };
    assert_eq!(
        ids(store
            .list_activations("guest", &window)
            .await
            .expect("list")),
        [300, 200]
    );
    let paged = ActivationFilter {
        skip: 1,
        limit: 1,
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_activations("guest", &paged).await.expect("list")),
        [200]
    );
    assert_eq!(
        store.count_activations("guest", &all).await.expect("count"),
        3
    );
    assert_eq!(
        store
            .count_activations("guest", &by_name)
            .await
            .expect("count"),
        2
    );

    let id = ActivationId::from_bytes([3; 16]);
    assert_eq!(
        store
            .get_activation("guest", &id)
            .await
            .expect("get")
            .map(|a| a.start),
        Some(300)
    );
    // An activation is only visible in its own namespace.
    assert!(
        store
            .get_activation("other", &id)
            .await
            .expect("get")
            .is_none()
    );
}

async fn namespaces_are_found_by_key_uuid_and_rekeyed(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    let first = AuthKey::from_random([1; 16], [2; 64]);
    let record = NamespaceRecord {
        name: name("guest"),
        auth: first.clone(),
        limits: NamespaceLimits::default(),
    };
    store.put_namespace(record.clone()).await.expect("put");
    assert_eq!(
        store
            .find_namespace_by_uuid(&first.uuid)
            .await
            .expect("find"),
        Some(record.clone())
    );

    let second = AuthKey::from_random([3; 16], [4; 64]);
    let rekeyed = NamespaceRecord {
        auth: second.clone(),
        ..record
    };
    store.put_namespace(rekeyed).await.expect("put");
    assert!(
        store
            .find_namespace_by_uuid(&first.uuid)
            .await
            .expect("find")
            .is_none(),
        "old key revoked"
    );
    assert!(
        store
            .find_namespace_by_uuid(&second.uuid)
            .await
            .expect("find")
            .is_some()
    );
    assert_eq!(store.list_namespaces().await.expect("list").len(), 1);
}

async fn concurrent_writes_share_commits_and_all_land(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_activation(activation("guest", "many", u64::from(i), i))
                .await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("write");
    }
    let all = ActivationFilter {
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(
        store.count_activations("guest", &all).await.expect("count"),
        200
    );
}

async fn stand_ins_are_settled_only_for_activations_never_stored(backend: Backend) {
    let Some(opened) = backend.open(StoreConfig::default()).await else {
        return;
    };
    let store = opened.store.clone();
    let interrupted = |id: u8| {
        let mut record = activation("guest", "slow", 10, id);
        record.response = ActivationResponse::error(
            clemmys_whisk::ActivationStatus::InternalError,
            "interrupted",
        );
        record
    };
    // 1: finished after its stand-in; 2: finished before it (the stand-in
    // is ignored); 3: never finished.
    store.put_stand_in(interrupted(1)).await.expect("stand-in");
    store
        .put_activation(activation("guest", "slow", 11, 1))
        .await
        .expect("record");
    store
        .put_activation(activation("guest", "slow", 12, 2))
        .await
        .expect("record");
    store.put_stand_in(interrupted(2)).await.expect("stand-in");
    store.put_stand_in(interrupted(3)).await.expect("stand-in");
    let unknown = ActivationId::from_bytes([3; 16]);
    assert!(
        store
            .get_activation("guest", &unknown)
            .await
            .expect("read")
            .is_none(),
        "a stand-in is not a record until settled"
    );

    assert_eq!(store.settle_interrupted().await.expect("settle"), 1);
    for (id, status) in [(1, "success"), (2, "success"), (3, "whisk internal error")] {
        let record = store
            .get_activation("guest", &ActivationId::from_bytes([id; 16]))
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("activation {id} lost"));
        assert_eq!(record.response.status.as_str(), status, "activation {id}");
    }
    // Settling forgets every stand-in: a second pass stores nothing.
    assert_eq!(store.settle_interrupted().await.expect("settle"), 0);
}

/// Durable writes of concurrent writers share commits; a record that
/// PostgreSQL refuses (a NUL in its name, which `text` cannot hold) fails
/// its own writer only, and the others of its commit are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_record_fails_alone_in_its_group_commit() {
    let config = StoreConfig {
        record_durability: RecordDurability::Sync,
        ..StoreConfig::default()
    };
    let Some(opened) = Backend::Postgres.open(config).await else {
        return;
    };
    let store = opened.store.clone();
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let store = store.clone();
        let name = if i == 13 { "bad\0name" } else { "good" };
        tasks.push(tokio::spawn(async move {
            store
                .put_activation(activation("guest", name, u64::from(i), i))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let written = task.await.expect("join");
        if i == 13 {
            assert!(
                matches!(written, Err(StoreError::Backend(_))),
                "{written:?}"
            );
        } else {
            written.expect("a good record is stored");
        }
    }
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        63
    );
    assert!(
        store
            .get_activation("guest", &id(13))
            .await
            .expect("get")
            .is_none()
    );
}
