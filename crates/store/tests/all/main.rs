//! Integration tests of the stores: the conformance suite that every
//! backend passes (`conformance`), and the embedded store's own, against a
//! real redb file, including reopening it as a restarted server would.

mod conformance;
mod durability;
mod retention;

use std::sync::Arc;

use clemmys_store::{ActivationFilter, EntityStore, PutMode, RedbStore, StoreError};
use clemmys_whisk::action::Exec;
use clemmys_whisk::{
    Action, ActionLimits, Activation, ActivationId, ActivationResponse, EntityName, KeyValues,
};
use serde_json::json;

fn name(text: &str) -> EntityName {
    EntityName::new(text).expect("valid name")
}

fn action(ns: &str, n: &str) -> Action {
    Action {
        namespace: name(ns),
        name: name(n),
        version: semver::Version::new(0, 0, 1),
        publish: false,
        exec: Exec::Wasm {
            code_digest: "ab".into(),
            code_size: 3,
            main: None,
        },
        limits: ActionLimits::default(),
        annotations: KeyValues::default(),
        parameters: KeyValues::default(),
        package: None,
        updated: 1,
    }
}

fn activation(ns: &str, n: &str, start: u64, id: u8) -> Activation {
    Activation {
        namespace: ns.into(),
        name: n.into(),
        subject: ns.into(),
        activation_id: ActivationId::from_bytes([id; 16]),
        version: "0.0.1".into(),
        publish: false,
        start,
        end: start + 1,
        duration: 1,
        cause: None,
        response: ActivationResponse::success(json!({"n": id})),
        logs: vec![],
        annotations: KeyValues::default(),
    }
}

fn open(dir: &tempfile::TempDir) -> Arc<RedbStore> {
    Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"))
}

#[tokio::test]
async fn acknowledged_writes_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        store
            .put_action(
                action("guest", "kept"),
                Some(b"code".to_vec()),
                PutMode::CreateOnly,
            )
            .await
            .expect("create");
        store
            .put_activation(activation("guest", "kept", 5, 9))
            .await
            .expect("put");
        // A second handle on the same file is refused while the first lives.
        assert!(matches!(
            RedbStore::open(&dir.path().join("store.redb")),
            Err(StoreError::Locked)
        ));
    }
    // The writer thread releases the file once the last handle is gone.
    let mut reopened = None;
    for _ in 0..100 {
        match RedbStore::open(&dir.path().join("store.redb")) {
            Ok(store) => {
                reopened = Some(store);
                break;
            }
            Err(StoreError::Locked) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(other) => panic!("reopen failed: {other}"),
        }
    }
    let store = reopened.expect("store reopened within 1 s");
    assert!(
        store
            .get_action(&name("guest"), &name("kept"))
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        store
            .get_code(&name("guest"), &name("kept"))
            .await
            .expect("read"),
        Some(b"code".to_vec())
    );
    let id = ActivationId::from_bytes([9; 16]);
    assert!(
        store
            .get_activation("guest", &id)
            .await
            .expect("read")
            .is_some()
    );
}

#[tokio::test]
async fn a_store_written_before_the_key_index_gets_it_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    // The tables as the store had them before `activation_keys` existed.
    {
        const ACTIVATIONS: redb::TableDefinition<(&str, u64, &[u8]), &[u8]> =
            redb::TableDefinition::new("activations");
        const BY_NAME: redb::TableDefinition<(&str, &str, u64, &[u8]), ()> =
            redb::TableDefinition::new("activations_by_name");
        const IDS: redb::TableDefinition<&[u8], (&str, u64)> =
            redb::TableDefinition::new("activation_ids");
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let mut records = txn.open_table(ACTIVATIONS).expect("table");
            let mut by_name = txn.open_table(BY_NAME).expect("table");
            let mut ids = txn.open_table(IDS).expect("table");
            for n in 1..=3u8 {
                let record = activation("guest", "old", u64::from(n), n);
                let id = [n; 16];
                let json = serde_json::to_vec(&record).expect("encode");
                records
                    .insert(("guest", u64::from(n), id.as_slice()), json.as_slice())
                    .expect("insert");
                by_name
                    .insert(("guest", "old", u64::from(n), id.as_slice()), ())
                    .expect("insert");
                ids.insert(id.as_slice(), ("guest", u64::from(n)))
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&path).expect("open");
    let all = ActivationFilter {
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store.count_activations("guest", &all).await.expect("count"),
        3
    );
    let starts: Vec<u64> = store
        .list_activations("guest", &all)
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.start)
        .collect();
    assert_eq!(starts, [3, 2, 1]);
}
