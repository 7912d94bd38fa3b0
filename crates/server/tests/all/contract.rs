//! OpenWhisk's action contract for wasm actions: the last stdout line is
//! the result, earlier lines are logs, and the guest's environment carries
//! its activation's `__OW_*` context.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, annotation, example, wasm_body};

#[tokio::test]
async fn stdout_lines_before_the_result_are_logs_and_the_context_is_in_the_env() {
    let server = TestServer::start().await;
    server.create("chatty", "chatty").await;
    let answer = server.invoke("chatty", json!({"a": 1})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let record = &answer.json;
    let env = &record["response"]["result"]["env"];
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/chatty");
    assert_eq!(env["__OW_ACTION_VERSION"], record["version"]);
    assert_eq!(env["__OW_ACTIVATION_ID"], record["activationId"]);
    assert_eq!(env["__OW_NAMESPACE"], "guest");
    assert_eq!(env["__OW_API_HOST"], server.node().api_host().as_str());
    assert!(env.get("__OW_API_KEY").is_none(), "no key unless asked for");
    let deadline: u64 = env["__OW_DEADLINE"]
        .as_str()
        .and_then(|ms| ms.parse().ok())
        .expect("a deadline in ms");
    let start = record["start"].as_u64().expect("start");
    assert!(
        (start..=start + 60_000 + 1_000).contains(&deadline),
        "deadline {deadline} is the start {start} plus the 60 s default limit"
    );

    let stored = server
        .wait_for_activation(record["activationId"].as_str().expect("id"))
        .await;
    let logs: Vec<&str> = stored["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|line| line.split_once(' ').map(|(_, text)| text))
        .collect();
    assert_eq!(
        logs,
        [
            "stdout: starting",
            "stdout: working on 1 parameters",
            "stderr: chatty: done"
        ]
    );
}

#[tokio::test]
async fn provide_api_key_gives_the_invokers_key() {
    let server = TestServer::start().await;
    let mut body = wasm_body(&example("chatty"));
    body["annotations"] = json!([{"key": "provide-api-key", "value": true}]);
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/keyed",
            Some(body),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server.invoke("keyed", json!({})).await;
    assert_eq!(
        answer.json["response"]["result"]["env"]["__OW_API_KEY"],
        server.node().guest_auth.to_string().as_str()
    );
}

#[tokio::test]
async fn sequence_components_are_marked_caused_by_the_sequence() {
    let server = TestServer::start().await;
    server.create("greet", "hello").await;
    server.create("echo", "echo").await;
    server.create_sequence("pipeline", &["greet", "echo"]).await;
    let answer = server.invoke("pipeline", json!({"name": "Ada"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        annotation(&answer.json, "causedBy"),
        None,
        "the topmost one"
    );
    for id in answer.json["logs"].as_array().expect("component ids") {
        let step = server.wait_for_activation(id.as_str().expect("id")).await;
        assert_eq!(step["cause"], answer.json["activationId"]);
        assert_eq!(annotation(&step, "causedBy"), Some(&json!("sequence")));
    }
}

#[tokio::test]
async fn a_confidential_action_gets_its_context_but_never_a_key_and_logs_stay_sealed() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let put = clemmys_whisk::ActionPut {
        annotations: Some(clemmys_whisk::KeyValues::from_object(
            json!({"provide-api-key": true})
                .as_object()
                .expect("object"),
        )),
        ..Default::default()
    };
    owner
        .client
        .deploy("chatty", &example("chatty"), put, true, &Default::default())
        .await
        .expect("deploy");
    let opened = owner
        .invoke("chatty", json!({"a": 1}))
        .await
        .expect("invoke");
    let env = &opened.result["env"];
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/chatty");
    assert_eq!(env["__OW_NAMESPACE"], "guest");
    assert_eq!(
        env["__OW_ACTIVATION_ID"],
        opened.activation_id.to_string().as_str()
    );
    assert!(env["__OW_DEADLINE"].is_string());
    assert!(
        env.get("__OW_API_KEY").is_none(),
        "never a key in an enclave"
    );
    assert!(env.get("__OW_API_HOST").is_none());
    let logs = opened.logs.expect("the owner opens the logs");
    assert!(
        logs.iter().any(|line| line.ends_with(" stdout: starting")),
        "{logs:?}"
    );

    // The provider's record holds no plaintext of them.
    let record = server.record(&opened.activation_id.to_string()).await;
    let stored = record.to_string();
    for plaintext in ["starting", "__OW_", "chatty: done"] {
        assert!(!stored.contains(plaintext), "{plaintext} in {stored}");
    }
}
