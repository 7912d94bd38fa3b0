//! Default parameters of confidential actions: sealed with the code by the
//! owner's client, merged inside the enclave under each invoke's
//! parameters (and under a chain step's input), never shown by the node.

use clemmys_whisk::ActivationStatus;
use hyper::Method;
use serde_json::json;

use crate::common::TestServer;

/// A marker the node must never show.
const SECRET: &str = "default-parameter-secret-5e1f";

#[tokio::test]
async fn invoke_parameters_are_merged_over_sealed_defaults() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("echo", &json!({"secret": SECRET, "greeting": "hi"}), None)
        .await;
    // The first invoke opens a session; the second runs within it.
    for _ in 0..2 {
        let opened = owner
            .invoke("echo", json!({"greeting": "hey", "name": "Ada"}))
            .await
            .expect("invoke");
        assert_eq!(
            opened.result,
            json!({"secret": SECRET, "greeting": "hey", "name": "Ada"})
        );
    }
    // A chain step gets them under its input too, as a sequence's
    // component does in OpenWhisk.
    owner.create_sequence("seq", &["echo"]).await;
    let opened = owner
        .invoke("seq", json!({"name": "Bo"}))
        .await
        .expect("chain");
    assert_eq!(
        opened.result,
        json!({"secret": SECRET, "greeting": "hi", "name": "Bo"})
    );

    // The node shows no parameter, nor stores any in its document.
    let shown = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/echo", None)
        .await
        .json;
    assert_eq!(shown["parameters"], json!([]), "{shown}");
    assert!(!shown.to_string().contains(SECRET), "{shown}");
    let records = server.activation_records().await;
    assert!(!records.to_string().contains(SECRET), "{records}");
}

#[tokio::test]
async fn final_defaults_cannot_be_overridden() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults(
            "fixed",
            &json!({"mode": "safe"}),
            Some(&json!({"final": true})),
        )
        .await;
    let opened = owner
        .invoke("fixed", json!({"other": 1}))
        .await
        .expect("invoke");
    assert_eq!(opened.result, json!({"mode": "safe", "other": 1}));
    // The owner's client knows what it sealed: it refuses before sending
    // anything, as OpenWhisk answers 400 without running the action.
    let before = server.activation_count().await;
    let local = owner.invoke("fixed", json!({"mode": "unsafe"})).await;
    assert!(
        matches!(
            local,
            Err(clemmys_client::confidential::ConfidentialError::FinalParameterOverridden(_))
        ),
        "{local:?}"
    );
    assert_eq!(
        server.activation_count().await,
        before,
        "the refused invoke reached the node"
    );
    // Another of the owner's machines, without that copy, sends it: the
    // enclave refuses it with a sealed error and runs nothing.
    let elsewhere = owner.second_client(&server).await;
    std::fs::remove_file(owner.home.path().join("sealed-defaults.json"))
        .expect("the client kept a copy of what it sealed");
    let refused = elsewhere
        .invoke("fixed", json!({"mode": "unsafe"}))
        .await
        .expect("a sealed answer");
    assert_eq!(refused.status, ActivationStatus::ApplicationError);
    assert!(refused.result.get("mode").is_none(), "{}", refused.result);
    // Removing the annotation at the node changes nothing: the flag is
    // sealed with the defaults.
    let path = "/api/v1/namespaces/_/actions/fixed";
    let action = server
        .call(Method::GET, &format!("{path}?code=true"), None)
        .await
        .json;
    let put = json!({"exec": action["exec"].clone(), "annotations": [
        {"key": "confidential", "value": true}
    ]});
    let answer = server
        .call(Method::PUT, &format!("{path}?overwrite=true"), Some(put))
        .await;
    assert_eq!(answer.status, hyper::StatusCode::OK, "{:?}", answer.json);
    server.enclaves().evict("guest", "fixed");
    let still = elsewhere
        .invoke("fixed", json!({"mode": "unsafe"}))
        .await
        .expect("a sealed answer");
    assert_eq!(still.status, ActivationStatus::ApplicationError);
}

#[tokio::test]
async fn clear_parameters_are_never_sent_to_the_node() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("echo", &json!({"secret": SECRET}), None)
        .await;
    let stored = server
        .node()
        .store
        .get_action(
            &clemmys_whisk::EntityName::new("guest").expect("name"),
            &clemmys_whisk::EntityName::new("echo").expect("name"),
        )
        .await
        .expect("read")
        .expect("stored");
    assert!(stored.parameters.is_empty(), "{:?}", stored.parameters);
    // The node still refuses clear parameters for a confidential action.
    let path = "/api/v1/namespaces/_/actions/echo";
    let action = server
        .call(Method::GET, &format!("{path}?code=true"), None)
        .await
        .json;
    let put = json!({"exec": action["exec"].clone(), "annotations": action["annotations"].clone(),
        "parameters": [{"key": "k", "value": "v"}]});
    let answer = server
        .call(Method::PUT, &format!("{path}?overwrite=true"), Some(put))
        .await;
    assert_eq!(answer.status, hyper::StatusCode::BAD_REQUEST);
}
