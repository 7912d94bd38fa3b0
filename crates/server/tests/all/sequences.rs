//! Plain OpenWhisk sequences: order, error propagation, record shapes,
//! limits.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, annotation};

#[tokio::test]
async fn a_sequence_runs_its_components_in_order_and_records_them() {
    let server = TestServer::start().await;
    server.create("greet", "hello").await;
    server.create("count", "wordcount").await;
    server.create("echo", "echo").await;
    // hello → echo: the greeting flows through; echo → hello would greet "World".
    let created = server.create_sequence("pipeline", &["greet", "echo"]).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(
        created.json["exec"],
        json!({"kind": "sequence", "components": ["/guest/greet", "/guest/echo"]})
    );

    let answer = server.invoke("pipeline", json!({"name": "Ada"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let record = &answer.json;
    assert_eq!(
        record["response"]["result"],
        json!({"payload": "Hello, Ada!"})
    );
    assert_eq!(annotation(record, "topmost"), Some(&json!(true)));
    assert_eq!(annotation(record, "kind"), Some(&json!("sequence")));
    assert_eq!(annotation(record, "path"), Some(&json!("guest/pipeline")));
    assert!(annotation(record, "waitTime").is_some_and(Value::is_u64));
    let ids: Vec<String> = record["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let mut total = 0;
    for (id, expected) in ids.iter().zip(["greet", "echo"]) {
        let step = server.record(id).await;
        assert_eq!(step["name"], expected, "components ran in order");
        assert_eq!(
            step["cause"], record["activationId"],
            "component records carry the sequence as cause"
        );
        total += step["duration"].as_u64().expect("duration");
    }
    assert_eq!(
        record["duration"].as_u64(),
        Some(total),
        "duration is the sum of the components'"
    );

    // The other order gives another answer: order is really followed.
    server.create_sequence("reversed", &["echo", "greet"]).await;
    let reversed = server.invoke("reversed", json!({"name": "Ada"})).await;
    assert_eq!(
        reversed.json["response"]["result"],
        json!({"payload": "Hello, Ada!"})
    );
    server.create_sequence("twice", &["greet", "greet"]).await;
    let twice = server.invoke("twice", json!({"name": "Ada"})).await;
    assert_eq!(
        twice.json["response"]["result"],
        json!({"payload": "Hello, World!"}),
        "the 2nd greet saw the 1st's result"
    );
}

#[tokio::test]
async fn a_failing_component_stops_the_sequence_with_its_error() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    server.create("fail", "fail").await;
    server.create("greet", "hello").await;
    server
        .create_sequence("broken", &["echo", "fail", "greet"])
        .await;
    let answer = server.invoke("broken", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json["response"],
        json!({"status": "application error", "success": false, "result": {"error": "this action always fails"}})
    );
    assert_eq!(
        answer.json["logs"].as_array().map(Vec::len),
        Some(2),
        "greet never ran"
    );
    let greets = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=greet&count=true",
            None,
        )
        .await;
    assert_eq!(greets.json, json!({"activations": 0}));
}

#[tokio::test]
async fn non_blocking_sequences_answer_202_and_are_stored() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    server.create_sequence("seq", &["echo", "echo"]).await;
    let answer = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/seq",
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let id = answer.json["activationId"].as_str().expect("id").to_owned();
    assert_eq!(answer.headers["x-openwhisk-activation-id"], id.as_str());
    let record = server.wait_for_activation(&id).await;
    assert_eq!(record["response"]["result"], json!({"x": 1}));
}

#[tokio::test]
async fn invalid_sequences_are_refused() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let long: Vec<&str> = std::iter::repeat_n("echo", 51).collect();
    let too_long = server.create_sequence("long", &long).await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.json["error"], "Too many actions in the sequence.");
    let fifty: Vec<&str> = std::iter::repeat_n("echo", 50).collect();
    assert_eq!(
        server.create_sequence("fifty", &fifty).await.status,
        StatusCode::OK
    );

    let empty = server.create_sequence("empty", &[]).await;
    assert_eq!(
        empty.json["error"],
        "No component specified for the sequence."
    );
    let missing = server
        .create_sequence("missing", &["echo", "nowhere"])
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(
        missing.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist")
    );
    let itself = server.create_sequence("me", &["me"]).await;
    assert_eq!(itself.json["error"], "Sequence may not refer to itself.");

    // Nested sequences count every action they run, and cannot lead back.
    let thirty: Vec<&str> = std::iter::repeat_n("echo", 30).collect();
    server.create_sequence("thirty", &thirty).await;
    let sixty = server.create_sequence("sixty", &["thirty", "thirty"]).await;
    assert_eq!(sixty.status, StatusCode::BAD_REQUEST);
    assert_eq!(sixty.json["error"], "Too many actions in the sequence.");
    assert_eq!(
        server.create_sequence("inner", &["echo"]).await.status,
        StatusCode::OK
    );
    let outer = server.create_sequence("outer", &["inner", "echo"]).await;
    assert_eq!(outer.status, StatusCode::OK, "{:?}", outer.json);
    // inner → outer → inner would loop.
    let cycle = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/inner?overwrite=true",
            Some(json!({"exec": {"kind": "sequence", "components": ["/_/outer"]}})),
        )
        .await;
    assert_eq!(cycle.status, StatusCode::BAD_REQUEST);
    assert_eq!(cycle.json["error"], "Sequence may not refer to itself.");
}

#[tokio::test]
async fn a_nested_sequence_runs_as_one_component_with_a_record_of_its_own() {
    let server = TestServer::start().await;
    server.create("greet", "hello").await;
    server.create("echo", "echo").await;
    server.create_sequence("inner", &["greet", "echo"]).await;
    let outer = server.create_sequence("outer", &["echo", "inner"]).await;
    assert_eq!(outer.status, StatusCode::OK, "{:?}", outer.json);

    let answer = server.invoke("outer", json!({"name": "Ada"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let record = &answer.json;
    assert_eq!(
        record["response"]["result"],
        json!({"payload": "Hello, Ada!"}),
        "the outer echo's result reached the inner greet"
    );
    let steps = record["logs"].as_array().expect("logs").clone();
    assert_eq!(steps.len(), 2, "the nested sequence is one step: {steps:?}");
    let inner = server.record(steps[1].as_str().expect("id")).await;
    assert_eq!(inner["name"], "inner");
    assert_eq!(inner["cause"], record["activationId"]);
    assert_eq!(annotation(&inner, "kind"), Some(&json!("sequence")));
    assert_eq!(annotation(&inner, "causedBy"), Some(&json!("sequence")));
    assert_eq!(
        annotation(&inner, "topmost"),
        None,
        "only the outer is topmost"
    );
    assert_eq!(annotation(record, "topmost"), Some(&json!(true)));
    let inner_steps = inner["logs"].as_array().expect("inner logs");
    assert_eq!(inner_steps.len(), 2);
    for (id, expected) in inner_steps.iter().zip(["greet", "echo"]) {
        let step = server.record(id.as_str().expect("id")).await;
        assert_eq!(step["name"], expected);
        assert_eq!(
            step["cause"], inner["activationId"],
            "caused by the inner sequence"
        );
    }
    assert_eq!(
        inner["response"]["result"],
        json!({"payload": "Hello, Ada!"})
    );
}

#[tokio::test]
async fn a_fifty_step_sequence_runs() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    let fifty: Vec<&str> = std::iter::repeat_n("echo", 50).collect();
    server.create_sequence("fifty", &fifty).await;
    let answer = server.invoke("fifty", json!({"n": 50})).await;
    assert_eq!(answer.json["response"]["result"], json!({"n": 50}));
    assert_eq!(answer.json["logs"].as_array().map(Vec::len), Some(50));
}
