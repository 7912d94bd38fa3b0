//! Record durability: what a write's return promises under each policy,
//! and that nothing is lost or reordered on the way to the file (what
//! every backend must do is in `conformance`).

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
    assert_eq!(
        store
            .count_activations("guest", &all())
            .await
            .expect("count"),
        50
    );
    assert!(
        store
            .get_activation("guest", &id(49))
            .await
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
            .await
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
        store
            .count_activations("guest", &filter)
            .await
            .expect("count"),
        256
    );
    store.flush().await.expect("flush");
    assert_eq!(
        store
            .count_activations("guest", &filter)
            .await
            .expect("count"),
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
        store
            .count_activations("guest", &filter)
            .await
            .expect("count"),
        25_000
    );
    let newest = store
        .list_activations("guest", &filter)
        .await
        .expect("list");
    assert_eq!(newest.len(), 3);
    assert!(newest[0].start > newest[1].start, "newest first");
    let found = store
        .get_activation("guest", &newest[2].activation_id)
        .await
        .expect("get")
        .expect("found by id");
    assert_eq!(found, newest[2]);
}
