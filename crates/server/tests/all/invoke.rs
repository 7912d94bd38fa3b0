//! Invoking actions: blocking, result-only, non-blocking, parameters and
//! payload limits.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, annotation, example, wasm_body};

#[tokio::test]
async fn blocking_invoke_answers_the_activation() {
    let server = TestServer::start().await;
    server.create("hello", "hello").await;
    let answer = server.invoke("hello", json!({"name": "Clemmys"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let activation = &answer.json;
    let id = activation["activationId"].as_str().expect("id");
    assert_eq!(id.len(), 32);
    assert_eq!(answer.headers["x-openwhisk-activation-id"], id);
    assert_eq!(
        activation["response"],
        json!({"status": "success", "success": true, "result": {"payload": "Hello, Clemmys!"}})
    );
    assert_eq!(activation["name"], "hello");
    assert_eq!(activation["namespace"], "guest");
    assert_eq!(activation["subject"], "guest");
    assert_eq!(activation["version"], "0.0.1");
    let (start, end, duration) = (
        activation["start"].as_u64(),
        activation["end"].as_u64(),
        activation["duration"].as_u64(),
    );
    assert_eq!(end.zip(start).map(|(e, s)| e - s), duration);
    assert_eq!(annotation(activation, "path"), Some(&json!("guest/hello")));
    assert_eq!(annotation(activation, "kind"), Some(&json!("wasm")));
    assert!(annotation(activation, "waitTime").is_some_and(Value::is_u64));
    assert_eq!(
        annotation(activation, "limits"),
        Some(&json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}))
    );
    let logs = activation["logs"].as_array().expect("logs");
    assert_eq!(logs.len(), 1);
    let line = logs[0].as_str().expect("line");
    assert!(line.ends_with(" stderr: hello: greeting Clemmys"), "{line}");
    assert!(
        line.starts_with("20") && line.contains('T') && line.contains("Z "),
        "ISO timestamp: {line}"
    );
}

#[tokio::test]
async fn result_only_answers_just_the_result() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"a": [1, 2]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({"a": [1, 2]}));
    assert!(answer.headers.contains_key("x-openwhisk-activation-id"));
}

#[tokio::test]
async fn non_blocking_invoke_answers_202_and_the_record_can_be_polled() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo",
            Some(json!({"k": "v"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let id = answer.json["activationId"]
        .as_str()
        .expect("activationId")
        .to_owned();
    assert_eq!(answer.headers["x-openwhisk-activation-id"], id.as_str());
    assert_eq!(
        answer.json.as_object().map(|o| o.len()),
        Some(1),
        "only the id: {:?}",
        answer.json
    );
    let activation = server.wait_for_activation(&id).await;
    assert_eq!(activation["response"]["result"], json!({"k": "v"}));
    let result = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{id}/result"),
            None,
        )
        .await;
    assert_eq!(
        result.json,
        json!({"result": {"k": "v"}, "success": true, "status": "success"})
    );
}

#[tokio::test]
async fn blocking_invoke_past_the_wait_answers_202_and_the_activation_still_completes() {
    let server = TestServer::start().await;
    server.create("sleep", "sleep").await;
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/sleep?blocking=true&timeout=100",
            Some(json!({"ms": 600})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.json);
    let id = answer.json["activationId"].as_str().expect("id").to_owned();
    let activation = server.wait_for_activation(&id).await;
    assert_eq!(activation["response"]["result"], json!({"slept": 600}));
    let bad = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/sleep?blocking=true&timeout=60001",
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json["error"],
        "Timeout must be number of milliseconds up to 60000."
    );
}

/// On a multi-threaded runtime, as `clemmys serve` runs, a blocking invoke
/// runs its guest in place on the request's worker; one whose wait is
/// shorter than its action's time limit still answers 202 when the wait
/// runs out, and its record is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_invokes_on_a_multi_threaded_node_answer_or_time_out() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    server.create("sleep", "sleep").await;
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"k": "v"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(answer.json, json!({"k": "v"}));
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/sleep?blocking=true&timeout=100",
            Some(json!({"ms": 600})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.json);
    let id = answer.json["activationId"].as_str().expect("id").to_owned();
    let activation = server.wait_for_activation(&id).await;
    assert_eq!(activation["response"]["result"], json!({"slept": 600}));
}

#[tokio::test]
async fn application_error_answers_502_with_the_activation() {
    let server = TestServer::start().await;
    server.create("fail", "fail").await;
    let answer = server.invoke("fail", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json["response"],
        json!({"status": "application error", "success": false, "result": {"error": "this action always fails"}})
    );
    let result_only = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/fail?blocking=true&result=true",
            None,
        )
        .await;
    assert_eq!(result_only.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        result_only.json,
        json!({"error": "this action always fails"})
    );
}

#[tokio::test]
async fn bound_parameters_merge_under_invoke_parameters_unless_final() {
    let server = TestServer::start().await;
    let mut body = wasm_body(&example("echo"));
    body["parameters"] = json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}]);
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/bound",
            Some(body.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let answer = server.invoke("bound", json!({"b": 3, "c": 4})).await;
    assert_eq!(
        answer.json["response"]["result"],
        json!({"a": 1, "b": 3, "c": 4})
    );

    body["annotations"] = json!([{"key": "final", "value": true}]);
    let updated = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/bound?overwrite=true",
            Some(body),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let refused = server.invoke("bound", json!({"a": 9})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let allowed = server.invoke("bound", json!({"z": 9})).await;
    assert_eq!(
        allowed.json["response"]["result"],
        json!({"a": 1, "b": 2, "z": 9})
    );
}

#[tokio::test]
async fn unknown_action_is_404_and_bad_bodies_are_400() {
    let server = TestServer::start().await;
    let missing = server.invoke("nothing-here", json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json["error"],
        "The requested resource does not exist."
    );
    server.create("echo", "echo").await;
    let array = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            Some(json!([1])),
        )
        .await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    let garbage = server
        .raw(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            "{".into(),
            Some(&server.auth),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(
        garbage.json["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("The request content was malformed")
    );
    let empty = server
        .raw(
            Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            "".into(),
            Some(&server.auth),
        )
        .await;
    assert_eq!(
        empty.status,
        StatusCode::OK,
        "an empty body means no parameters"
    );
    assert_eq!(empty.json["response"]["result"], json!({}));
}

#[tokio::test]
async fn oversized_payload_is_413_and_nothing_runs() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let big = json!({"blob": "x".repeat(1024 * 1024 + 1)});
    let answer = server.invoke("echo", big).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        answer.json
    );
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than allowed")
    );

    // Bound parameters count towards the payload too.
    let mut body = wasm_body(&example("echo"));
    body["parameters"] = json!([{"key": "half", "value": "y".repeat(600 * 1024)}]);
    server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/heavy",
            Some(body),
        )
        .await;
    let answer = server
        .invoke("heavy", json!({"other": "z".repeat(600 * 1024)}))
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    let listed = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true",
            None,
        )
        .await;
    assert_eq!(listed.json, json!({"activations": 0}), "no activation ran");
}
