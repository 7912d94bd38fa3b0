//! The API's own description: `GET /`, `GET /api/v1`, and a namespace's
//! limits, in OpenWhisk's shapes.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn the_root_and_the_api_describe_themselves_without_credentials() {
    let server = TestServer::start().await;
    let root = server.raw(Method::GET, "/", Bytes::new(), None).await;
    assert_eq!(root.status, StatusCode::OK, "{:?}", root.json);
    assert_eq!(root.json["api_paths"], json!(["/api/v1"]));
    let limits = &root.json["limits"];
    assert_eq!(limits["max_action_duration"], 300_000);
    assert_eq!(limits["min_action_memory"], 128 * 1024 * 1024);
    assert_eq!(limits["max_action_memory"], 512 * 1024 * 1024);
    assert_eq!(limits["max_action_logs"], 10 * 1024 * 1024);
    assert_eq!(limits["sequence_length"], 50);
    assert_eq!(root.json["runtimes"]["wasm"][0]["kind"], "wasm");
    // This node has no JavaScript engine.
    assert!(
        root.json["runtimes"].get("nodejs").is_none(),
        "{:?}",
        root.json
    );

    let api = server.raw(Method::GET, "/api/v1", Bytes::new(), None).await;
    assert_eq!(api.status, StatusCode::OK, "{:?}", api.json);
    assert_eq!(api.json["api_version"], "1.0.0");
    assert_eq!(api.json["api_version_path"], "v1");
    assert!(api.json["build"].is_string());
    assert!(api.json.get("swagger_paths").is_none(), "no OpenAPI yet");
}

#[tokio::test]
async fn namespace_limits_report_memory_and_logs_in_mb() {
    let server = TestServer::start().await;
    let limits = server
        .call(Method::GET, "/api/v1/namespaces/_/limits", None)
        .await;
    assert_eq!(limits.status, StatusCode::OK, "{:?}", limits.json);
    assert_eq!(limits.json["minActionMemory"], 128);
    assert_eq!(limits.json["maxActionMemory"], 512);
    assert_eq!(limits.json["minActionLogs"], 0);
    assert_eq!(limits.json["maxActionLogs"], 10);
    assert_eq!(limits.json["maxActionTimeout"], 300_000);
    assert_eq!(limits.json["concurrentInvocations"], 100);
}

#[tokio::test]
async fn a_node_with_the_javascript_engine_lists_the_nodejs_kinds() {
    let server =
        TestServer::start_with(|config| config.js_engine = Some(crate::common::js_engine())).await;
    for path in ["/", "/api/v1"] {
        let info = server.raw(Method::GET, path, Bytes::new(), None).await;
        assert_eq!(info.status, StatusCode::OK, "{:?}", info.json);
        let kinds: Vec<&str> = info.json["runtimes"]["nodejs"]
            .as_array()
            .map(|kinds| kinds.iter().filter_map(|k| k["kind"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            kinds,
            ["nodejs:20", "nodejs:18", "nodejs:default"],
            "{path}"
        );
        assert_eq!(info.json["runtimes"]["wasm"][0]["kind"], "wasm");
    }
}
