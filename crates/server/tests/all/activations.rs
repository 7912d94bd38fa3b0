//! Listing and reading activation records.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;

async fn run(server: &TestServer, name: &str, params: Value) -> String {
    let answer = server.invoke(name, params).await;
    answer.json["activationId"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn list_filters_by_name_time_and_pages() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    server.create("noop", "noop").await;
    // Records are ordered by start time in milliseconds; runs within one
    // millisecond would tie (and then sort by id), so space them out.
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(3));
    let first = run(&server, "echo", json!({"n": 1})).await;
    pause().await;
    let second = run(&server, "noop", json!({})).await;
    pause().await;
    let third = run(&server, "echo", json!({"n": 3})).await;

    let all = server
        .call(Method::GET, "/api/v1/namespaces/_/activations", None)
        .await;
    assert_eq!(all.status, StatusCode::OK);
    let ids: Vec<_> = all
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["activationId"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], json!(third), "newest first");
    let summary = &all.json[0];
    assert!(
        summary.get("response").is_none() && summary.get("logs").is_none(),
        "summaries only"
    );
    assert_eq!(summary["statusCode"], 0);

    let echoes = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=echo",
            None,
        )
        .await;
    let ids: Vec<_> = echoes
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["activationId"].clone())
        .collect();
    assert_eq!(ids, [json!(third), json!(first)]);

    let docs = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=echo&docs=true&limit=1",
            None,
        )
        .await;
    assert_eq!(docs.json[0]["response"]["result"], json!({"n": 3}));

    let skipped = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?skip=1&limit=1",
            None,
        )
        .await;
    assert_eq!(skipped.json[0]["activationId"], json!(second));

    let second_start = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{second}"),
            None,
        )
        .await
        .json["start"]
        .as_u64()
        .expect("start");
    let since = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations?since={second_start}&upto={second_start}"),
            None,
        )
        .await;
    assert!(
        since
            .json
            .as_array()
            .expect("array")
            .iter()
            .any(|a| a["activationId"] == json!(second))
    );
    assert!(
        since
            .json
            .as_array()
            .expect("array")
            .iter()
            .all(|a| a["start"] == json!(second_start))
    );

    let count = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true&name=echo",
            None,
        )
        .await;
    assert_eq!(count.json, json!({"activations": 2}));
    let conflict = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true&docs=true",
            None,
        )
        .await;
    assert_eq!(conflict.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        conflict.json["error"],
        "The parameter 'docs' is not permitted with 'count'."
    );
    let bad_since = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?since=yesterday",
            None,
        )
        .await;
    assert_eq!(bad_since.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_result_and_logs_of_one_activation() {
    let server = TestServer::start().await;
    server.create("hello", "hello").await;
    let id = run(&server, "hello", json!({})).await;
    let got = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{id}"),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.json["response"]["result"],
        json!({"payload": "Hello, World!"})
    );
    let result = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/guest/activations/{id}/result"),
            None,
        )
        .await;
    assert_eq!(
        result.json,
        json!({"result": {"payload": "Hello, World!"}, "success": true, "status": "success"})
    );
    let logs = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{id}/logs"),
            None,
        )
        .await;
    let lines = logs.json["logs"].as_array().expect("logs");
    assert_eq!(lines.len(), 1);

    let unknown = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{}", "0".repeat(32)),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let invalid = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations/not-an-id",
            None,
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json["error"], "The activation id is not valid.");
}

#[tokio::test]
async fn an_answered_activation_is_readable_at_once_and_kept_by_a_stop() {
    // Under group durability with an interval no test outlives, only the
    // stop commits the record: reads find it in the store's pending set.
    let server = TestServer::start_with(|config| {
        config.store.commit_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    server.create("echo", "echo").await;
    let id = run(&server, "echo", json!({"n": 7})).await;
    let record = server.activation(&id).await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(record.json["response"]["result"], json!({"n": 7}));
    let listed = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=echo&count=true",
            None,
        )
        .await;
    assert_eq!(listed.json, json!({"activations": 1}));

    let server = server.restart().await;
    let record = server.activation(&id).await;
    assert_eq!(record.status, StatusCode::OK, "the stop lost {id}");
    assert_eq!(record.json["response"]["result"], json!({"n": 7}));
}
