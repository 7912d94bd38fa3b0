//! Namespace throttles: 429 past `concurrentInvocations` and
//! `invocationsPerMinute`, and nothing runs for a refused invoke.

use std::time::Duration;

use clemmys_whisk::{EntityName, NamespaceLimits};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

async fn limit_guest(server: &TestServer, limits: NamespaceLimits) {
    // Before the first request, so the controller has not cached the record.
    let store = &server.node().store;
    let name = EntityName::new("guest").expect("name");
    let mut record = store
        .get_namespace(&name)
        .await
        .expect("read")
        .expect("guest");
    record.limits = limits;
    store.put_namespace(record).await.expect("write");
}

#[tokio::test]
async fn invocations_past_the_rate_limit_are_refused_with_429() {
    let server = TestServer::start().await;
    limit_guest(
        &server,
        NamespaceLimits {
            invocations_per_minute: 3,
            ..Default::default()
        },
    )
    .await;
    server.create("echo", "echo").await;
    for n in 0..3 {
        assert_eq!(
            server.invoke("echo", json!({"n": n})).await.status,
            StatusCode::OK
        );
    }
    let refused = server.invoke("echo", json!({"n": 4})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json["error"],
        "Too many requests in the last minute (count: 3, allowed: 3)."
    );
    let count = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true",
            None,
        )
        .await;
    assert_eq!(
        count.json,
        json!({"activations": 3}),
        "the refused invoke ran nothing"
    );
}

#[tokio::test]
async fn invocations_past_the_concurrency_limit_are_refused_until_one_completes() {
    let server = TestServer::start().await;
    limit_guest(
        &server,
        NamespaceLimits {
            concurrent_invocations: 1,
            ..Default::default()
        },
    )
    .await;
    server.create("sleep", "sleep").await;
    let slow = server.invoke("sleep", json!({"ms": 800}));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.invoke("sleep", json!({"ms": 1})).await
    };
    let (slow, probe) = tokio::join!(slow, probe);
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(probe.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        probe.json["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Too many concurrent requests in flight")
    );
    // Once the slow one completed, the namespace may invoke again.
    assert_eq!(
        server.invoke("sleep", json!({"ms": 1})).await.status,
        StatusCode::OK
    );
}
