//! Activations handed to the invoker directly ([`ActivationRunner`]), as the
//! controller of the same process does for blocking invokes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clemmys_bus::{ActivationMessage, ActivationRunner, CompletionRegistry};
use clemmys_invoker::{Invoker, InvokerConfig};
use clemmys_sandbox::{CodeDigest, Sandbox, SandboxConfig};
use clemmys_store::faults::{Failing, FailingWrites};
use clemmys_store::{EntityStore, PutMode, RedbStore};
use clemmys_whisk::{Action, ActivationId, ActivationStatus, EntityName, Exec, KeyValues};
use serde_json::json;

/// The compiled example action `name` (built by scripts/build-examples.sh).
pub(crate) fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/examples/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; run scripts/build-examples.sh first",
            path.display()
        )
    })
}

pub(crate) struct Node {
    pub(crate) invoker: Arc<Invoker>,
    pub(crate) store: Arc<dyn EntityStore>,
    _data: tempfile::TempDir,
}

/// An invoker over a fresh store (wrapped by `wrap`) holding action
/// `guest/<example>`.
pub(crate) async fn node_with(
    example_name: &str,
    wrap: fn(RedbStore) -> Arc<dyn EntityStore>,
) -> Node {
    let data = tempfile::tempdir().expect("temporary directory");
    let store = wrap(RedbStore::open(&data.path().join("store.redb")).expect("store"));
    let code = example(example_name);
    let action = Action {
        namespace: EntityName::new("guest").expect("name"),
        name: EntityName::new(example_name).expect("name"),
        version: "0.0.1".parse().expect("version"),
        publish: false,
        exec: Exec::Wasm {
            code_digest: CodeDigest::of(&code).to_string(),
            code_size: code.len() as u64,
            main: None,
        },
        limits: Default::default(),
        annotations: KeyValues::default(),
        parameters: KeyValues::default(),
        package: None,
        updated: 0,
    };
    store
        .put_action(action, Some(code), PutMode::CreateOnly)
        .await
        .expect("action stored");
    let sandbox = Arc::new(Sandbox::new(&SandboxConfig::default()).expect("sandbox"));
    let invoker = Invoker::new(
        sandbox,
        store.clone(),
        Arc::new(CompletionRegistry::default()),
        InvokerConfig::default(),
    );
    Node {
        invoker,
        store,
        _data: data,
    }
}

pub(crate) fn redb(store: RedbStore) -> Arc<dyn EntityStore> {
    Arc::new(store)
}

pub(crate) fn records_fail(store: RedbStore) -> Arc<dyn EntityStore> {
    Arc::new(FailingWrites::new(store, Failing::ActivationRecords))
}

pub(crate) async fn message(
    node: &Node,
    name: &str,
    payload: serde_json::Value,
) -> ActivationMessage {
    let action = node
        .store
        .get_action(
            &EntityName::new("guest").expect("name"),
            &EntityName::new(name).expect("name"),
        )
        .await
        .expect("store")
        .expect("action");
    ActivationMessage {
        activation_id: ActivationId::from_bytes([7; 16]),
        namespace: "guest".into(),
        subject: "guest".into(),
        action: Arc::new(action),
        payload,
        blocking: true,
        cause: None,
        accepted_at: clemmys_whisk::now_ms(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_run_answers_and_stores_its_record() {
    let node = node_with("echo", redb).await;
    let message = message(&node, "echo", json!({"k": "v"})).await;
    let id = message.activation_id;
    let activation = ActivationRunner::run(node.invoker.clone(), message)
        .await
        .expect("ran");
    assert_eq!(activation.response.status, ActivationStatus::Success);
    assert_eq!(activation.response.result, Some(json!({"k": "v"})));
    let stored = node
        .store
        .get_activation("guest", &id)
        .await
        .expect("store")
        .expect("recorded");
    assert_eq!(stored, *activation);
    assert_eq!(node.invoker.stats().records_not_stored, 0);
}

#[tokio::test]
async fn a_record_that_cannot_be_stored_still_answers_the_result() {
    let node = node_with("echo", records_fail).await;
    let message = message(&node, "echo", json!({"k": "v"})).await;
    let activation = ActivationRunner::run(node.invoker.clone(), message)
        .await
        .expect("ran");
    // The function ran: its result, not an error inviting a retry.
    assert_eq!(activation.response.status, ActivationStatus::Success);
    assert_eq!(activation.response.result, Some(json!({"k": "v"})));
    assert_eq!(node.invoker.stats().records_not_stored, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_run_whose_caller_stops_waiting_still_stores_its_record() {
    let node = node_with("sleep", redb).await;
    let message = message(&node, "sleep", json!({"ms": 300})).await;
    let id = message.activation_id;
    // The caller waits 10 ms, far less than the action's time limit: the
    // guest (asleep) gives the caller's task back, and the wait runs out
    // first.
    let waited = tokio::time::timeout(
        Duration::from_millis(10),
        ActivationRunner::run(node.invoker.clone(), message),
    )
    .await;
    assert!(waited.is_err(), "the caller gave up before the guest ended");
    // As a stopping node does: wait for every accepted activation.
    let activations = node.invoker.activations();
    activations.close();
    activations.wait().await;
    let stored = node
        .store
        .get_activation("guest", &id)
        .await
        .expect("store")
        .expect("recorded although nobody waited");
    assert_eq!(stored.response.result, Some(json!({"slept": 300})));
}
