//! A restarted node keeps every acknowledged action and activation record.

use clemmys_whisk::{ActivationId, ActivationStatus};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn restart_keeps_actions_and_acknowledged_activations() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let answer = server.invoke("echo", json!({"n": n})).await;
        assert_eq!(answer.status, StatusCode::OK);
        ids.push(answer.json["activationId"].as_str().expect("id").to_owned());
    }
    let auth_before = server.auth.clone();

    let server = server.restart().await;
    assert_eq!(server.auth, auth_before, "the guest key survives a restart");
    let action = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/echo", None)
        .await;
    assert_eq!(action.status, StatusCode::OK);
    for (n, id) in ids.iter().enumerate() {
        let record = server.activation(id).await;
        assert_eq!(record.status, StatusCode::OK, "activation {id} lost");
        assert_eq!(record.json["response"]["result"], json!({"n": n}));
    }
    // And the restarted node still runs the stored code.
    let again = server.invoke("echo", json!({"after": "restart"})).await;
    assert_eq!(
        again.json["response"]["result"],
        json!({"after": "restart"})
    );
    let wskprops =
        std::fs::read_to_string(server.data_dir.path().join("data/wskprops")).expect("wskprops");
    assert!(
        wskprops.contains(&format!("APIHOST={}", server.base)),
        "{wskprops}"
    );
}

/// Invokes `sleep` for `ms` non-blocking: acknowledged with 202, still
/// running when a stop comes right after.
async fn accept_sleep(server: &TestServer, ms: u64) -> ActivationId {
    let accepted = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/sleep",
            Some(json!({ "ms": ms })),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.json);
    accepted.json["activationId"]
        .as_str()
        .expect("id")
        .parse()
        .expect("an activation id")
}

/// Stops the node and checks that, once the stop returns, every accepted
/// `(activation, ms)` has finished and is recorded (within the grace
/// period), not left to be recorded as interrupted at the next start.
async fn stop_and_expect_recorded(mut server: TestServer, accepted: &[(ActivationId, u64)]) {
    let running = server.server.take().expect("running");
    let store = running.store.clone();
    running.shutdown().await;
    for (id, ms) in accepted {
        let record = store
            .get_activation("guest", id)
            .await
            .expect("read")
            .expect("recorded before the stop returned");
        assert_eq!(record.response.status, ActivationStatus::Success);
        assert_eq!(record.response.result, Some(json!({ "slept": ms })));
    }
}

#[tokio::test]
async fn a_stopping_node_finishes_and_records_the_activations_it_accepted() {
    let server = TestServer::start().await;
    server.create("sleep", "sleep").await;
    let id = accept_sleep(&server, 400).await;
    stop_and_expect_recorded(server, &[(id, 400)]).await;
}

#[tokio::test]
async fn a_stopping_node_also_runs_the_activations_still_waiting_for_a_slot() {
    // One activation at a time: the second waits, off the bus, for the slot.
    let server = TestServer::start_with(|config| config.invoker.concurrency = 1).await;
    server.create("sleep", "sleep").await;
    let mut accepted = Vec::new();
    for ms in [300, 200] {
        accepted.push((accept_sleep(&server, ms).await, ms));
    }
    stop_and_expect_recorded(server, &accepted).await;
}
