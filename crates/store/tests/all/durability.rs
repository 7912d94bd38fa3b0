//! Record durability: what a write's return promises under each policy,
//! and that nothing is lost or reordered on the way to the file.

use std::sync::Arc;
use std::time::Duration;

use clemmys_store::{ActivationFilter, EntityStore, RecordDurability, RedbStore, StoreConfig};
use clemmys_whisk::{ActivationId, ActivationResponse, ActivationStatus};

use crate::activation;

/// Group mode with an interval no test outlives: records stay pending
/// until a flush, a waited-for write or the store's close.
fn held_for_an_hour() -> StoreConfig {
    StoreConfig {
        record_durability: RecordDurability::Group,
        commit_interval: Duration::from_secs(3600),
        ..StoreConfig::default()
    }
}

fn open_with(dir: &tempfile::TempDir, config: StoreConfig) -> Arc<RedbStore> {
    Arc::new(RedbStore::open_with(&dir.path().join("store.redb"), config).expect("open store"))
}

fn id(n: u8) -> ActivationId {
    ActivationId::from_bytes([n; 16])
}

fn all() -> ActivationFilter {
    ActivationFilter {
        limit: 100,
        ..ActivationFilter::default()
    }
}

#[tokio::test]
async fn a_group_record_is_visible_to_every_thread_as_soon_as_its_write_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(&dir, held_for_an_hour());
    store
        .put_activation(activation("guest", "a", 100, 1))
        .await
        .expect("put");
    let reader = store.clone();
    let seen = std::thread::spawn(move || {
        let record = reader.get_activation("guest", &id(1)).expect("get");
        let listed = reader.list_activations("guest", &all()).expect("list");
        let counted = reader.count_activations("guest", &all()).expect("count");
        (record.map(|r| r.start), listed.len(), counted)
    })
    .join()
    .expect("reader thread");
    assert_eq!(seen, (Some(100), 1, 1));
    // Still only in its own namespace.
    assert!(
        store
            .get_activation("other", &id(1))
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn listing_merges_pending_and_committed_records_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(&dir, held_for_an_hour());
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
    store
        .put_activation(activation("guest", "a", 200, 2))
        .await
        .expect("put");
    store
        .put_activation(activation("guest", "a", 400, 4))
        .await
        .expect("put");
    // A record rewritten while pending (as a provider might): listed once.
    store
        .put_activation(activation("guest", "a", 400, 4))
        .await
        .expect("put");
    let starts = |filter: &ActivationFilter| {
        store
            .list_activations("guest", filter)
            .expect("list")
            .into_iter()
            .map(|a| a.start)
            .collect::<Vec<_>>()
    };
    assert_eq!(starts(&all()), [400, 300, 200, 100]);
    let page = ActivationFilter {
        skip: 1,
        limit: 2,
        ..all()
    };
    assert_eq!(starts(&page), [300, 200]);
    let by_name = ActivationFilter {
        name: Some("a".into()),
        since: Some(150),
        ..all()
    };
    assert_eq!(starts(&by_name), [400, 200]);
    assert_eq!(store.count_activations("guest", &all()).expect("count"), 4);
    assert_eq!(store.count_activations("guest", &page).expect("count"), 3);
    assert_eq!(
        store.count_activations("guest", &by_name).expect("count"),
        2
    );
}

#[tokio::test]
async fn group_records_are_durable_after_the_store_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_with(&dir, held_for_an_hour());
        for n in 0..50u8 {
            store
                .put_activation(activation("guest", "a", u64::from(n), n))
                .await
                .expect("put");
        }
    }
    // The drop committed them and closed the file: it opens at once.
    let store = open_with(&dir, StoreConfig::default());
    assert_eq!(store.count_activations("guest", &all()).expect("count"), 50);
    assert!(
        store
            .get_activation("guest", &id(49))
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn sync_records_are_durable_after_the_store_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sync = StoreConfig {
        record_durability: RecordDurability::Sync,
        ..StoreConfig::default()
    };
    {
        let store = open_with(&dir, sync.clone());
        store
            .put_activation(activation("guest", "a", 5, 9))
            .await
            .expect("put");
    }
    let store = open_with(&dir, sync);
    assert!(
        store
            .get_activation("guest", &id(9))
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn a_record_wins_over_its_stand_in_in_either_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let interrupted = |n: u8| {
        let mut record = activation("guest", "slow", 10, n);
        record.response = ActivationResponse::error(ActivationStatus::InternalError, "interrupted");
        record
    };
    {
        let store = open_with(&dir, held_for_an_hour());
        // 1: the record is still pending when its stand-in comes (a fast
        // non-blocking activation); 2: the stand-in is durable first and
        // the record stays pending until the store closes.
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
    }
    let store = open_with(&dir, StoreConfig::default());
    assert_eq!(store.settle_interrupted().await.expect("settle"), 0);
    for n in [1, 2] {
        let record = store
            .get_activation("guest", &id(n))
            .expect("get")
            .unwrap_or_else(|| panic!("activation {n} lost"));
        assert_eq!(record.response.status, ActivationStatus::Success, "{n}");
    }
    let slow = ActivationFilter {
        name: Some("slow".into()),
        ..all()
    };
    assert_eq!(store.count_activations("guest", &slow).expect("count"), 2);
}

#[tokio::test]
async fn many_concurrent_group_writes_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(
        &dir,
        StoreConfig {
            commit_interval: Duration::from_millis(1),
            ..StoreConfig::default()
        },
    );
    let mut tasks = Vec::new();
    for n in 0..=255u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_activation(activation("guest", "many", u64::from(n), n))
                .await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("write");
    }
    let filter = ActivationFilter {
        limit: 1000,
        ..ActivationFilter::default()
    };
    assert_eq!(
        store.count_activations("guest", &filter).expect("count"),
        256
    );
    store.flush().await.expect("flush");
    assert_eq!(
        store.count_activations("guest", &filter).expect("count"),
        256
    );
    assert_eq!(store.failed_record_writes(), 0);
}

#[tokio::test]
async fn preloaded_records_are_real_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with(&dir, StoreConfig::default());
    let stored = store
        .preload_activations("guest", "echo", 25_000)
        .expect("preload");
    assert_eq!(stored, 25_000);
    let filter = ActivationFilter {
        name: Some("echo".into()),
        limit: 3,
        ..ActivationFilter::default()
    };
    assert_eq!(
        store.count_activations("guest", &filter).expect("count"),
        25_000
    );
    let newest = store.list_activations("guest", &filter).expect("list");
    assert_eq!(newest.len(), 3);
    assert!(newest[0].start > newest[1].start, "newest first");
    let found = store
        .get_activation("guest", &newest[2].activation_id)
        .expect("get")
        .expect("found by id");
    assert_eq!(found, newest[2]);
}
