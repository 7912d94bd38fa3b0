//! Functions that trap, exit, print garbage, loop forever, eat memory or
//! flood the logs: each ends with its own developer-error record, and the
//! server keeps serving everyone else.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, annotation, example, wasm_body};

async fn create_with_limits(server: &TestServer, name: &str, example_name: &str, limits: Value) {
    let mut body = wasm_body(&example(example_name));
    body["limits"] = limits;
    let answer = server
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}"),
            Some(body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
}

fn developer_error(answer: &crate::common::Answer) -> String {
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{:?}", answer.json);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert_eq!(answer.json["response"]["success"], false);
    answer.json["response"]["result"]["error"]
        .as_str()
        .expect("error message")
        .to_owned()
}

#[tokio::test]
async fn a_trap_is_a_developer_error_with_its_logs() {
    let server = TestServer::start().await;
    server.create("trap", "trap").await;
    let answer = server.invoke("trap", json!({})).await;
    let message = developer_error(&answer);
    assert!(message.contains("trap"), "{message}");
    assert!(
        !answer.json["logs"].as_array().expect("logs").is_empty(),
        "the line before the trap is kept"
    );
}

#[tokio::test]
async fn a_non_zero_exit_is_a_developer_error() {
    let server = TestServer::start().await;
    server.create("exit", "exit-nonzero").await;
    let message = developer_error(&server.invoke("exit", json!({})).await);
    assert!(
        message.contains("exit") && message.contains('3'),
        "{message}"
    );
}

#[tokio::test]
async fn output_that_is_not_json_is_a_developer_error() {
    let server = TestServer::start().await;
    server.create("garbage", "not-json").await;
    let message = developer_error(&server.invoke("garbage", json!({})).await);
    assert!(
        message.starts_with("The action did not produce a valid JSON"),
        "{message}"
    );
    assert!(message.contains("this is not JSON"), "{message}");
}

#[tokio::test]
async fn an_infinite_loop_ends_at_its_timeout_and_others_keep_running() {
    let server = TestServer::start().await;
    create_with_limits(&server, "loop", "infinite-loop", json!({"timeout": 1500})).await;
    server.create("hello", "hello").await;
    // Compiled and warm, so its answer below times only the wait for a slot.
    assert_eq!(
        server.invoke("hello", json!({})).await.status,
        StatusCode::OK
    );
    let began = Instant::now();
    let looping = async {
        let answer = server.invoke("loop", json!({})).await;
        (answer, began.elapsed())
    };
    let greeting = async {
        // While the loop spins, other requests are served, well before the
        // loop's time limit (even on a loaded machine).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = server.invoke("hello", json!({})).await;
        (answer, began.elapsed())
    };
    let ((looped, looped_after), (greeted, greeted_after)) = tokio::join!(looping, greeting);
    assert_eq!(greeted.status, StatusCode::OK);
    assert!(
        greeted_after < Duration::from_millis(1000) && greeted_after < looped_after,
        "hello waited for the loop: answered after {greeted_after:?}, the loop after {looped_after:?}"
    );
    let message = developer_error(&looped);
    assert_eq!(
        message,
        "The action exceeded its time limits of 1500 milliseconds."
    );
    assert_eq!(annotation(&looped.json, "timeout"), Some(&json!(true)));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the loop was stopped"
    );
}

#[tokio::test]
async fn a_memory_hog_is_stopped_at_its_limit() {
    let server = TestServer::start().await;
    create_with_limits(&server, "hog", "memory-hog", json!({"memory": 128})).await;
    let message = developer_error(&server.invoke("hog", json!({})).await);
    assert_eq!(message, "The action exhausted its memory and was aborted.");
    server.create("hello", "hello").await;
    assert_eq!(
        server.invoke("hello", json!({})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_log_flood_is_truncated_at_the_log_limit_and_the_action_still_succeeds() {
    let server = TestServer::start().await;
    create_with_limits(&server, "chatty", "huge-log", json!({"logs": 1})).await;
    let answer = server.invoke("chatty", json!({"mb": 3})).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{:?}",
        answer.json["response"]
    );
    assert_eq!(answer.json["response"]["result"], json!({"done": true}));
    let logs = answer.json["logs"].as_array().expect("logs");
    let last = logs.last().and_then(Value::as_str).expect("a last line");
    assert!(
        last.ends_with(
            "Logs were truncated because the total bytes size exceeds the limit of 1048576 bytes."
        ),
        "{last}"
    );
    let kept: usize = logs.iter().filter_map(Value::as_str).map(str::len).sum();
    assert!(
        kept < 2 * 1024 * 1024,
        "about 1 MB of log kept, got {kept} bytes"
    );
}

#[tokio::test]
async fn a_result_over_one_megabyte_is_a_developer_error() {
    let server = TestServer::start().await;
    server.create("big", "big-result").await;
    let message = developer_error(&server.invoke("big", json!({"kb": 2048})).await);
    assert!(
        message.starts_with("The action produced a response that exceeded the allowed length"),
        "{message}"
    );
    let fine = server.invoke("big", json!({"kb": 16})).await;
    assert_eq!(fine.status, StatusCode::OK);
}
