//! Integration tests of the embedded store: every operation against a real
//! redb file, including reopening it as a restarted server would.

mod durability;
mod retention;

use std::sync::Arc;

use clemmys_store::{ActivationFilter, EntityStore, PutMode, RedbStore, StoreError};
use clemmys_whisk::action::Exec;
use clemmys_whisk::{
    Action, ActionLimits, Activation, ActivationId, ActivationResponse, AuthKey, EntityName,
    KeyValues, NamespaceLimits, NamespaceRecord,
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
async fn package_actions_are_kept_apart_from_the_namespaces_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
        names(store.list_actions(&name("guest"), 0, 10).expect("list")),
        ["a"]
    );
    assert_eq!(store.count_actions(&name("guest")).expect("count"), 1);
    assert_eq!(
        names(
            store
                .list_package_actions(&name("guest"), &name("tools"), 0, 10)
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            store
                .list_package_actions(&name("guest"), &name("tools"), 1, 10)
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(
        store
            .get_package_code(&name("guest"), &name("tools"), &name("a"))
            .expect("code"),
        Some(b"a".to_vec())
    );
    assert_eq!(
        store.get_code(&name("guest"), &name("a")).expect("code"),
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
            .expect("get")
            .is_some()
    );
    assert!(
        store
            .get_package_action(&name("guest"), &name("tools"), &name("a"))
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn actions_round_trip_with_code_and_conflicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
        store.get_code(&name("guest"), &name("a")).expect("read"),
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
        .expect("read")
        .expect("present");
    assert_eq!(got.version.to_string(), "0.0.2");
    assert_eq!(
        store.get_code(&name("guest"), &name("a")).expect("read"),
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
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .get_code(&name("guest"), &name("a"))
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

#[tokio::test]
async fn actions_list_per_namespace_with_skip_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
        names(store.list_actions(&name("guest"), 0, 30).expect("list")),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(store.list_actions(&name("guest"), 1, 1).expect("list")),
        ["b"]
    );
    assert_eq!(store.count_actions(&name("guest")).expect("count"), 3);
    assert_eq!(store.count_actions(&name("guest2")).expect("count"), 1);
}

#[tokio::test]
async fn activations_filter_by_name_and_time_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
        ids(store.list_activations("guest", &all).expect("list")),
        [300, 200, 100]
    );
    let by_name = ActivationFilter {
        name: Some("a".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_activations("guest", &by_name).expect("list")),
        [300, 100]
    );
    let window = ActivationFilter {
        since: Some(150),
        upto: Some(300),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_activations("guest", &window).expect("list")),
        [300, 200]
    );
    let paged = ActivationFilter {
        skip: 1,
        limit: 1,
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_activations("guest", &paged).expect("list")),
        [200]
    );
    assert_eq!(store.count_activations("guest", &all).expect("count"), 3);
    assert_eq!(
        store.count_activations("guest", &by_name).expect("count"),
        2
    );

    let id = ActivationId::from_bytes([3; 16]);
    assert_eq!(
        store
            .get_activation("guest", &id)
            .expect("get")
            .map(|a| a.start),
        Some(300)
    );
    // An activation is only visible in its own namespace.
    assert!(store.get_activation("other", &id).expect("get").is_none());
}

#[tokio::test]
async fn namespaces_are_found_by_key_uuid_and_rekeyed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let first = AuthKey::from_random([1; 16], [2; 64]);
    let record = NamespaceRecord {
        name: name("guest"),
        auth: first.clone(),
        limits: NamespaceLimits::default(),
    };
    store.put_namespace(record.clone()).await.expect("put");
    assert_eq!(
        store.find_namespace_by_uuid(&first.uuid).expect("find"),
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
            .expect("find")
            .is_none(),
        "old key revoked"
    );
    assert!(
        store
            .find_namespace_by_uuid(&second.uuid)
            .expect("find")
            .is_some()
    );
    assert_eq!(store.list_namespaces().expect("list").len(), 1);
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
            .expect("read")
            .is_some()
    );
    assert_eq!(
        store.get_code(&name("guest"), &name("kept")).expect("read"),
        Some(b"code".to_vec())
    );
    let id = ActivationId::from_bytes([9; 16]);
    assert!(store.get_activation("guest", &id).expect("read").is_some());
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
    assert_eq!(store.count_activations("guest", &all).expect("count"), 200);
}

#[tokio::test]
async fn stand_ins_are_settled_only_for_activations_never_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
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
            .expect("read")
            .is_none(),
        "a stand-in is not a record until settled"
    );

    assert_eq!(store.settle_interrupted().await.expect("settle"), 1);
    for (id, status) in [(1, "success"), (2, "success"), (3, "whisk internal error")] {
        let record = store
            .get_activation("guest", &ActivationId::from_bytes([id; 16]))
            .expect("read")
            .unwrap_or_else(|| panic!("activation {id} lost"));
        assert_eq!(record.response.status.as_str(), status, "activation {id}");
    }
    // Settling forgets every stand-in: a second pass stores nothing.
    assert_eq!(store.settle_interrupted().await.expect("settle"), 0);
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
    assert_eq!(store.count_activations("guest", &all).expect("count"), 3);
    let starts: Vec<u64> = store
        .list_activations("guest", &all)
        .expect("list")
        .into_iter()
        .map(|a| a.start)
        .collect();
    assert_eq!(starts, [3, 2, 1]);
}
