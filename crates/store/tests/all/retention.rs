//! Activation retention: records past it are deleted in the background,
//! with their indexes, in bounded batches; newer ones stay.

use std::time::{Duration, Instant};

use clemmys_store::{ActivationFilter, EntityStore, RedbStore, StoreConfig};
use clemmys_whisk::{Activation, ActivationId};

use crate::activation;

const DAY_MS: u64 = 24 * 3600 * 1000;

fn record(ns: &str, name: &str, start: u64, n: u32) -> Activation {
    let mut record = activation(ns, name, start, 0);
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[4] = ns.len() as u8;
    record.activation_id = ActivationId::from_bytes(id);
    record
}

async fn count(store: &RedbStore, ns: &str, name: Option<&str>, upto: Option<u64>) -> usize {
    let filter = ActivationFilter {
        name: name.map(str::to_owned),
        upto,
        limit: 1,
        ..ActivationFilter::default()
    };
    store.count_activations(ns, &filter).await.expect("count")
}

#[tokio::test]
async fn records_past_their_retention_are_deleted_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let now = clemmys_whisk::now_ms();
    let old = now - 2 * DAY_MS;
    // More than one sweep's batch, over two namespaces, before retention
    // is switched on.
    {
        let store = RedbStore::open(&path).expect("open");
        let mut records = Vec::new();
        for n in 0..2500u32 {
            let ns = if n % 2 == 0 { "guest" } else { "other" };
            records.push(record(ns, "a", old + u64::from(n), n));
        }
        records.push(record("guest", "a", now, 10_000));
        records.push(record("other", "b", now, 10_001));
        assert_eq!(store.put_activations(records).expect("load"), 2502);
        assert_eq!(count(&store, "guest", None, None).await, 1251);
    }

    let store = RedbStore::open_with(
        &path,
        StoreConfig {
            activation_retention: Some(Duration::from_millis(DAY_MS)),
            retention_sweep_interval: Duration::from_millis(10),
            ..StoreConfig::default()
        },
    )
    .expect("open");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&store, "guest", None, Some(now - DAY_MS)).await
        + count(&store, "other", None, Some(now - DAY_MS)).await
        > 0
    {
        assert!(Instant::now() < deadline, "old records not deleted in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The recent ones stay, and the indexes of the old ones are gone too.
    assert_eq!(count(&store, "guest", None, None).await, 1);
    assert_eq!(count(&store, "other", None, None).await, 1);
    assert_eq!(count(&store, "guest", Some("a"), None).await, 1);
    assert_eq!(count(&store, "other", Some("a"), None).await, 0);
    let old_id = record("guest", "a", old, 0).activation_id;
    assert!(
        store
            .get_activation("guest", &old_id)
            .await
            .expect("get")
            .is_none()
    );
    let kept = record("guest", "a", now, 10_000).activation_id;
    assert!(
        store
            .get_activation("guest", &kept)
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn without_retention_nothing_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open_with(
        &dir.path().join("store.redb"),
        StoreConfig {
            retention_sweep_interval: Duration::from_millis(1),
            ..StoreConfig::default()
        },
    )
    .expect("open");
    store
        .put_activation(record("guest", "a", 1, 1))
        .await
        .expect("put");
    store.flush().await.expect("flush");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count(&store, "guest", None, None).await, 1);
}
