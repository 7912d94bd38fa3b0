//! Authentication, authorisation and the answers to unknown routes.

use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let server = TestServer::start().await;
    let path = "/api/v1/namespaces/_/actions";
    let missing = server.raw(Method::GET, path, "".into(), None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.json["error"],
        "The supplied authentication is invalid."
    );
    assert!(missing.json["code"].is_string());

    let uuid = &server.node().guest_auth.uuid;
    let wrong_key = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{uuid}:wrong"))
    );
    let answer = server
        .raw(Method::GET, path, "".into(), Some(&wrong_key))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let unknown = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("nobody:nothing")
    );
    assert_eq!(
        server
            .raw(Method::GET, path, "".into(), Some(&unknown))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let garbage = server
        .raw(Method::GET, path, "".into(), Some("Basic !!!"))
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    let bearer = server
        .raw(Method::GET, path, "".into(), Some("Bearer token"))
        .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn other_namespaces_are_forbidden() {
    let server = TestServer::start().await;
    let answer = server
        .call(Method::GET, "/api/v1/namespaces/someone-else/actions", None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn namespaces_and_limits() {
    let server = TestServer::start().await;
    let namespaces = server.call(Method::GET, "/api/v1/namespaces", None).await;
    assert_eq!(namespaces.json, json!(["guest"]));
    let limits = server
        .call(Method::GET, "/api/v1/namespaces/_/limits", None)
        .await;
    assert_eq!(limits.json["concurrentInvocations"], 100);
    assert_eq!(limits.json["invocationsPerMinute"], 120);
}

#[tokio::test]
async fn unknown_routes_answer_json_404_with_cors() {
    let server = TestServer::start().await;
    let answer = server.call(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.json["error"],
        "The requested resource does not exist."
    );
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
}
