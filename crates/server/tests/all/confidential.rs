//! Confidential actions end to end: deploy, invoke, read results and logs,
//! with the provider seeing only ciphertext.

use clemmys_client::InvokeOptions;
use clemmys_client::confidential::ConfidentialInvoked;
use clemmys_whisk::ActivationStatus;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, annotation};

#[tokio::test]
async fn confidential_invoke_returns_the_result_and_logs_with_a_verified_receipt() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;

    let opened = owner
        .invoke("hello", json!({"name": "enclave"}))
        .await
        .expect("invoke");
    assert_eq!(opened.status, ActivationStatus::Success);
    assert_eq!(opened.result, json!({"payload": "Hello, enclave!"}));
    let logs = opened.logs.clone().expect("logs came with the record");
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0].ends_with("stderr: hello: greeting enclave"),
        "{logs:?}"
    );
    let receipt = &opened.receipt.receipt;
    assert_eq!(receipt.activation_id, opened.activation_id.to_string());
    assert_eq!(
        receipt.code_digest,
        clemmys_proto::Digest::of(&crate::common::example("hello"))
    );
    assert_eq!(
        receipt.measurement,
        clemmys_client::confidential::expected_runtime_measurement()
    );
    assert_eq!(opened.tee, clemmys_proto::TeeKind::Sim);

    // The provider's record holds ciphertext only.
    let id = opened.activation_id;
    let record = server.activation(id).await;
    assert_eq!(record.status, StatusCode::OK);
    let result = &record.json["response"]["result"];
    assert!(
        result["sealed"].is_string() && result.as_object().map(|o| o.len()) == Some(1),
        "{result}"
    );
    assert!(
        !record.json.to_string().contains("enclave!"),
        "plaintext in the record"
    );
    let action = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(annotation(&action.json, "confidential"), Some(&json!(true)));

    // Reading it back later uses the client's keyring.
    let again = owner.client.open_activation(id).await.expect("reopen");
    assert_eq!(again.result, opened.result);
}

#[tokio::test]
async fn non_blocking_confidential_invoke_can_be_opened_later() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let invoked = owner
        .client
        .invoke("echo", &json!({"k": [1, 2]}), InvokeOptions::default())
        .await
        .expect("invoke");
    let ConfidentialInvoked::Accepted { activation_id } = invoked else {
        panic!("expected 202")
    };
    server.wait_for_activation(&activation_id.to_string()).await;
    let opened = owner
        .client
        .open_activation(activation_id)
        .await
        .expect("open");
    assert_eq!(opened.result, json!({"k": [1, 2]}));
}

#[tokio::test]
async fn application_errors_stay_sealed_and_are_reported_to_the_client() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("fail", "fail").await;
    let opened = owner.invoke("fail", json!({})).await.expect("invoke");
    assert_eq!(opened.status, ActivationStatus::ApplicationError);
    assert_eq!(opened.result, json!({"error": "this action always fails"}));
    let record = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{}", opened.activation_id),
            None,
        )
        .await;
    assert!(!record.json.to_string().contains("always fails"));
}

#[tokio::test]
async fn an_update_runs_the_new_version_even_for_a_client_with_a_stale_view() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("act", "echo").await;
    assert_eq!(
        owner
            .invoke("act", json!({"v": 1}))
            .await
            .expect("v1")
            .result,
        json!({"v": 1})
    );

    // Another client of the same owner updates the action.
    let other = owner.second_client(&server).await;
    other
        .deploy_with("act", "hello", &Default::default(), true)
        .await;

    // The first client still caches version 1; the enclave says so and the
    // client refreshes and retries.
    let opened = owner
        .invoke("act", json!({"name": "v2"}))
        .await
        .expect("v2");
    assert_eq!(opened.result, json!({"payload": "Hello, v2!"}));
    assert_eq!(opened.receipt.receipt.version, 2);
}

#[tokio::test]
async fn a_deploy_the_node_refuses_leaves_the_running_version_as_it_was() {
    use clemmys_client::ClientError;
    use clemmys_client::confidential::ConfidentialError;
    use clemmys_whisk::ActionPut;
    use clemmys_whisk::limits::ActionLimitsPut;

    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("act", "echo").await;
    let refused_with = |outcome: Result<_, ConfidentialError>| match outcome {
        Err(ConfidentialError::Api(ClientError::Api { status, .. })) => status,
        other => panic!("expected the node's refusal, got {other:?}"),
    };

    // A create of a name that exists (409), which the node refuses, then an
    // update whose limit is out of range, which the client refuses before
    // anything is registered (its limits are bound into the policy): the
    // broker must not have moved to a version whose code the node never
    // stored.
    let create = owner
        .client
        .deploy(
            "act",
            &crate::common::example("hello"),
            ActionPut::default(),
            false,
            &Default::default(),
        )
        .await;
    assert_eq!(refused_with(create), 409);
    let out_of_range = ActionPut {
        limits: Some(ActionLimitsPut {
            timeout: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    };
    let update = owner
        .client
        .deploy(
            "act",
            &crate::common::example("hello"),
            out_of_range,
            true,
            &Default::default(),
        )
        .await;
    assert!(
        matches!(update, Err(ConfidentialError::Limits(_))),
        "{update:?}"
    );

    // Both this client and one that never saw the refusals still run it.
    let opened = owner
        .invoke("act", json!({"kept": true}))
        .await
        .expect("v1");
    assert_eq!(opened.result, json!({"kept": true}));
    assert_eq!(opened.receipt.receipt.version, 1);
    let fresh = owner.second_client(&server).await;
    let opened = fresh.invoke("act", json!({"kept": 2})).await.expect("v1");
    assert_eq!(opened.result, json!({"kept": 2}));

    // And the next deploy that the node accepts is version 2.
    owner.deploy("act", "hello").await;
    let opened = owner
        .invoke("act", json!({"name": "v2"}))
        .await
        .expect("v2");
    assert_eq!(opened.result, json!({"payload": "Hello, v2!"}));
    assert_eq!(opened.receipt.receipt.version, 2);
}

#[tokio::test]
async fn creating_a_deleted_action_again_moves_its_version_past_the_old_one() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_with("act", "echo", &Default::default(), false)
        .await;
    let first = owner.invoke("act", json!({"v": 1})).await.expect("v1");
    assert_eq!(first.receipt.receipt.version, 1);

    // Deleted from the store, the action stays registered with the broker
    // at version 1. A client that never saw it creates it again: the broker
    // describes version 1, so the client seals and registers version 2.
    server
        .api_client()
        .delete_action("act")
        .await
        .expect("delete");
    let fresh = owner.second_client(&server).await;
    fresh
        .deploy_with("act", "hello", &Default::default(), false)
        .await;
    let opened = fresh
        .invoke("act", json!({"name": "again"}))
        .await
        .expect("v2");
    assert_eq!(opened.result, json!({"payload": "Hello, again!"}));
    assert_eq!(opened.receipt.receipt.version, 2);
}

#[tokio::test]
async fn a_confidential_action_refuses_plain_parameters_and_clear_bound_parameters() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let plain = server
        .invoke("hello", json!({"name": "in the clear"}))
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    assert!(
        plain.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("confidential")
    );

    // Bound parameters in the clear are refused too (the owner's client
    // seals them with the code instead: see `default_parameters`).
    let path = "/api/v1/namespaces/_/actions/hello";
    let action = server
        .call(hyper::Method::GET, &format!("{path}?code=true"), None)
        .await
        .json;
    let put = json!({"exec": action["exec"].clone(), "annotations": action["annotations"].clone(),
        "parameters": [{"key": "k", "value": 1}]});
    let refused = server
        .call(
            hyper::Method::PUT,
            &format!("{path}?overwrite=true"),
            Some(put),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.json
    );
}

#[tokio::test]
async fn a_restarted_node_keeps_serving_confidential_actions_to_pinned_clients() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    assert!(owner.invoke("echo", json!({"before": true})).await.is_ok());
    let home = owner.home;
    let server = server.restart().await;
    let client = clemmys_client::confidential::Confidential::connect(
        server.api_client(),
        clemmys_client::confidential::ClientHome::open(home.path()).expect("home"),
    )
    .await;
    let client = match client {
        Ok(client) => client,
        Err(error) => panic!("the pin must still verify after a restart: {error}"),
    };
    let invoked = client
        .invoke("echo", &json!({"after": true}), InvokeOptions::blocking())
        .await
        .expect("invoke");
    let ConfidentialInvoked::Completed(opened) = invoked else {
        panic!("202")
    };
    assert_eq!(opened.result, json!({"after": true}));
}

#[tokio::test]
async fn repeated_invokes_use_a_session_after_the_first() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let first = owner.invoke("echo", json!({"n": 1})).await.expect("first");
    assert!(
        first.session.is_none(),
        "the first invoke is sealed with HPKE and opens the session"
    );
    for n in 2..5 {
        let next = owner
            .invoke("echo", json!({"n": n}))
            .await
            .expect("in session");
        assert_eq!(next.result, json!({"n": n}));
        let session = next.session.as_ref().expect("a session request");
        assert_eq!(session.counter, n - 1);
        assert_eq!(
            next.receipt, first.receipt,
            "the session's opening receipt vouches for the enclave"
        );
        let again = owner
            .client
            .open_activation(next.activation_id)
            .await
            .expect("reopen from the keyring");
        assert_eq!(again.result, json!({"n": n}));
    }
    // After an update the session ends and the new version runs.
    owner.deploy("echo", "hello").await;
    let updated = owner
        .invoke("echo", json!({"name": "v2"}))
        .await
        .expect("after update");
    assert_eq!(updated.result, json!({"payload": "Hello, v2!"}));
}

#[tokio::test]
async fn a_session_invoke_seals_its_logs_inside_the_answer() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    owner
        .invoke("hello", json!({"name": "opening"}))
        .await
        .expect("the invoke that opens the session");
    let opened = owner
        .invoke("hello", json!({"name": "in-session"}))
        .await
        .expect("in session");
    assert!(opened.session.is_some(), "a session request");
    let expect_logs = |logs: &Option<Vec<String>>| {
        let logs = logs.clone().expect("a session answer carries its logs");
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(
            logs[0].ends_with("stderr: hello: greeting in-session"),
            "{logs:?}"
        );
    };
    expect_logs(&opened.logs);

    // The provider stores one sealed answer and no log lines beside it.
    let id = opened.activation_id;
    let record = server.activation(id).await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(record.json["logs"], json!([]), "{}", record.json);
    assert!(
        !record.json.to_string().contains("in-session"),
        "plaintext in the record: {}",
        record.json
    );
    let again = owner.client.open_activation(id).await.expect("reopen");
    expect_logs(&again.logs);
}

/// Floats whose shortest decimal form a best-effort parser reads one unit
/// in the last place off (found by round-tripping random doubles).
fn tricky_floats() -> serde_json::Value {
    json!({"values": [
        8.210489758862588e268,
        -1.4534766179566985e197,
        4.043184390901307e-108,
        3.975127821304032e146
    ]})
}

#[tokio::test]
async fn results_with_any_float_verify_in_every_mode() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    server.create("plain-echo", "echo").await;
    let plain = server.invoke("plain-echo", tricky_floats()).await;
    assert_eq!(plain.json["response"]["result"], tricky_floats(), "plain");
    // The first invoke (HPKE, signed receipt), then one in its session.
    for run in ["first", "session"] {
        let opened = owner
            .invoke("echo", tricky_floats())
            .await
            .unwrap_or_else(|error| panic!("{run} invoke: {error}"));
        assert_eq!(opened.result, tricky_floats(), "{run}");
    }
    // A chain's first run, then a run in its chain session.
    owner.create_sequence("twice", &["echo", "echo"]).await;
    for run in ["first", "session"] {
        let opened = owner
            .invoke("twice", tricky_floats())
            .await
            .unwrap_or_else(|error| panic!("{run} chain run: {error}"));
        assert_eq!(opened.result, tricky_floats(), "{run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoke_in_flight_while_its_client_deploys_a_new_version_is_retried() {
    let server = TestServer::start().await;
    let front = crate::common::ProviderFront::holding_first(server.node().addr, "act").await;
    let owner = server.owner_via(front.client(&server), "guest").await;
    owner.deploy("act", "echo").await;
    // One client invokes and deploys at once, as a gateway serves many
    // callers with one.
    let shared = &owner.client;
    let params = json!({"name": "v2"});
    let in_flight = owner.invoke("act", params);
    let deploy = async {
        front.holding.notified().await;
        shared
            .deploy(
                "act",
                &crate::common::example("hello"),
                Default::default(),
                true,
                &Default::default(),
            )
            .await
            .expect("v2 deployed while the invoke is held");
        front.release.notify_one();
    };
    let (invoked, ()) = tokio::join!(in_flight, deploy);
    let opened = invoked.expect("retried at the new version");
    assert_eq!(opened.result, json!({"payload": "Hello, v2!"}));
    assert_eq!(opened.receipt.receipt.version, 2);
}
