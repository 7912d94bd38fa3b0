//! The invoker's enclave pool and memory budget, through the real API:
//! confidential actions are provisioned when deployed, each action has an
//! enclave of its own serving its invocations concurrently, evicted
//! actions are provisioned again, and activations past the memory budget
//! queue instead of overlapping.

use std::sync::Arc;
use std::time::Duration;

use clemmys_client::confidential::OpenedActivation;
use clemmys_whisk::ActivationStatus;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::common::{Owner, TestServer, annotation};

/// Waits (at most 10 s) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// The stored record of a confidential activation.
async fn record_of(server: &TestServer, opened: &OpenedActivation) -> Value {
    server.record(&opened.activation_id.to_string()).await
}

/// Invokes `name` `count` times at once with `{"i": i, …params}`.
async fn invoke_concurrently(
    owner: &Arc<Owner>,
    name: &str,
    count: usize,
    params: Value,
) -> Vec<OpenedActivation> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let owner = owner.clone();
        let name = name.to_owned();
        let mut params = params.clone();
        params["i"] = json!(i);
        tasks.spawn(async move {
            let opened = owner.invoke(&name, params.clone()).await;
            (params, opened)
        });
    }
    let mut opened = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (params, outcome) = joined.expect("task");
        let outcome = outcome.unwrap_or_else(|error| panic!("invoke with {params}: {error}"));
        assert_eq!(outcome.status, ActivationStatus::Success, "{params}");
        opened.push(outcome);
    }
    opened
}

/// Asserts that no two of `records` ran at the same time.
fn assert_no_overlap(mut records: Vec<Value>) {
    let span = |record: &Value| {
        (
            record["start"].as_u64().expect("start"),
            record["end"].as_u64().expect("end"),
        )
    };
    records.sort_by_key(|record| span(record).0);
    for pair in records.windows(2) {
        let (earlier, later) = (span(&pair[0]), span(&pair[1]));
        assert!(
            later.0 >= earlier.1,
            "activations overlap: {earlier:?} and {later:?}"
        );
    }
}

#[tokio::test]
async fn a_deployed_confidential_action_is_ready_before_its_first_invoke() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let enclaves = &server.enclaves();
    eventually("provisioning hello ahead of time", || {
        enclaves.is_ready("guest", "hello")
    })
    .await;

    let opened = owner
        .invoke("hello", json!({"name": "pool"}))
        .await
        .expect("invoke");
    assert_eq!(opened.result, json!({"payload": "Hello, pool!"}));
    let record = record_of(&server, &opened).await;
    assert_eq!(annotation(&record, "initTime"), None, "{record}");
    let stats = enclaves.stats();
    assert_eq!((stats.prewarmed, stats.hits, stats.misses), (1, 1, 0));
    assert_eq!(stats.started_on_demand, 0);
    assert_eq!(
        enclaves.bound_enclave("guest", "hello"),
        Some(opened.receipt.enclave)
    );
}

#[tokio::test]
async fn a_restarted_node_provisions_the_confidential_actions_invoked_before_it_stopped() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    owner.deploy("unused", "hello").await;
    owner.invoke("hello", json!({})).await.expect("invoke");

    let server = server.restart().await;
    let enclaves = &server.enclaves();
    eventually("provisioning hello after the restart", || {
        enclaves.is_ready("guest", "hello")
    })
    .await;
    assert!(
        !enclaves.is_ready("guest", "unused"),
        "only actions invoked before the stop are provisioned"
    );
    assert_eq!(enclaves.stats().prewarmed, 1);

    // The first invoke after the restart finds key and code ready (the
    // client's session died with the old enclave: it opens a new one).
    let opened = owner
        .invoke("hello", json!({"name": "again"}))
        .await
        .expect("invoke after the restart");
    assert_eq!(opened.result, json!({"payload": "Hello, again!"}));
    let record = record_of(&server, &opened).await;
    assert_eq!(annotation(&record, "initTime"), None, "{record}");
    assert_eq!(enclaves.stats().misses, 0);
}

#[tokio::test]
async fn without_prewarm_the_first_invoke_provisions_an_idle_enclave() {
    let server = TestServer::start_with(|config| config.enclave_pool.prewarm = false).await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let enclaves = &server.enclaves();
    assert!(!enclaves.is_ready("guest", "hello"));

    let first = owner.invoke("hello", json!({})).await.expect("first");
    let record = record_of(&server, &first).await;
    assert!(
        annotation(&record, "initTime").is_some_and(Value::is_u64),
        "{record}"
    );
    // Attested ahead of time, so no enclave started on the critical path.
    let stats = enclaves.stats();
    assert_eq!((stats.prewarmed, stats.misses), (0, 1));
    assert_eq!(stats.started_on_demand, 0);

    // The second one is warm.
    let second = owner.invoke("hello", json!({})).await.expect("second");
    let record = record_of(&server, &second).await;
    assert_eq!(annotation(&record, "initTime"), None, "{record}");
    assert_eq!(first.receipt.enclave, second.receipt.enclave);
}

#[tokio::test]
async fn without_the_pool_the_first_invoke_starts_its_enclave() {
    let server = TestServer::start_with(|config| {
        config.enclave_pool.prewarm = false;
        config.enclave_pool.idle_target = 0;
    })
    .await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let opened = owner.invoke("hello", json!({})).await.expect("invoke");
    let record = record_of(&server, &opened).await;
    assert!(
        annotation(&record, "initTime").is_some_and(Value::is_u64),
        "{record}"
    );
    let stats = server.enclaves().stats();
    assert_eq!((stats.idle, stats.bound), (0, 1));
    assert_eq!(stats.started_on_demand, 1);
}

#[tokio::test]
async fn two_confidential_actions_run_in_two_enclaves() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    owner.deploy("echo", "echo").await;
    let hello = owner.invoke("hello", json!({})).await.expect("hello");
    let echo = owner.invoke("echo", json!({"k": 1})).await.expect("echo");
    assert_eq!(echo.result, json!({"k": 1}));
    assert_ne!(hello.receipt.enclave.signing, echo.receipt.enclave.signing);
    assert_ne!(hello.receipt.evidence, echo.receipt.evidence);
    // Each keeps serving its own action.
    let again = owner.invoke("hello", json!({})).await.expect("hello again");
    assert_eq!(again.receipt.enclave, hello.receipt.enclave);
    assert_eq!(server.enclaves().stats().bound, 2);
}

#[tokio::test]
async fn concurrent_invokes_of_one_action_all_succeed_in_its_enclave() {
    let server = TestServer::start().await;
    let owner = Arc::new(server.owner().await);
    owner.deploy("echo", "echo").await;
    let opened = invoke_concurrently(&owner, "echo", 8, json!({"v": "x"})).await;
    assert_eq!(opened.len(), 8);
    let mut seen: Vec<u64> = opened
        .iter()
        .map(|o| {
            assert_eq!(o.result["v"], "x");
            o.result["i"].as_u64().expect("i")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>(), "each got its own answer");
    let enclave = opened[0].receipt.enclave;
    assert!(opened.iter().all(|o| o.receipt.enclave == enclave));
    assert_eq!(server.enclaves().stats().bound, 1);
}

#[tokio::test]
async fn activations_past_the_memory_budget_queue_instead_of_overlapping() {
    let server = TestServer::start_with(|config| config.invoker.memory_budget_mb = 256).await;
    server.create("sleep", "sleep").await;
    let mut requests = tokio::task::JoinSet::new();
    let server = Arc::new(server);
    for _ in 0..4 {
        let server = server.clone();
        requests.spawn(async move { server.invoke("sleep", json!({"ms": 300})).await });
    }
    let mut records = Vec::new();
    while let Some(answer) = requests.join_next().await {
        let answer = answer.expect("task");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["response"]["result"], json!({"slept": 300}));
        assert_eq!(
            annotation(&answer.json, "limits").map(|l| &l["memory"]),
            Some(&json!(256))
        );
        records.push(answer.json);
    }
    assert_eq!(records.len(), 4);
    assert_no_overlap(records);
}

#[tokio::test]
async fn confidential_activations_past_the_memory_budget_queue_too() {
    let server = TestServer::start_with(|config| config.invoker.memory_budget_mb = 256).await;
    let owner = Arc::new(server.owner().await);
    owner.deploy("sleep", "sleep").await;
    let opened = invoke_concurrently(&owner, "sleep", 4, json!({"ms": 300})).await;
    let mut records = Vec::new();
    for opened in &opened {
        assert_eq!(opened.result["slept"], 300);
        records.push(record_of(&server, opened).await);
    }
    assert_no_overlap(records);
}

#[tokio::test]
async fn an_evicted_action_is_provisioned_again_on_its_next_invoke() {
    let server = TestServer::start_with(|config| {
        // Evict an enclave as soon as its action is idle.
        config.enclave_pool.keep_alive.fixed_keep_alive = Duration::ZERO;
        config.enclave_pool.maintenance_period = Duration::from_millis(10);
    })
    .await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let first = owner.invoke("echo", json!({"n": 1})).await.expect("first");
    let enclaves = &server.enclaves();
    eventually("evicting the idle enclave", || {
        enclaves.bound_enclave("guest", "echo").is_none()
    })
    .await;
    assert!(enclaves.stats().evicted >= 1);

    let second = owner.invoke("echo", json!({"n": 2})).await.expect("second");
    assert_eq!(second.result, json!({"n": 2}));
    // A fresh enclave, which had to get the key and compile again.
    assert_ne!(first.receipt.enclave, second.receipt.enclave);
    let record = record_of(&server, &second).await;
    assert!(
        annotation(&record, "initTime").is_some_and(Value::is_u64),
        "{record}"
    );
}
