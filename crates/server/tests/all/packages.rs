//! Packages and bindings: OpenWhisk's routes, shapes and error cases,
//! sharing across namespaces.

use base64::Engine;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestServer};

const TOOLS: &str = "/api/v1/namespaces/_/packages/tools";

fn basic(auth: &clemmys_whisk::AuthKey) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth.to_string())
    )
}

/// A request as namespace `auth`.
async fn call_as(
    server: &TestServer,
    auth: &clemmys_whisk::AuthKey,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let body = body.map(|value| value.to_string()).unwrap_or_default();
    server
        .raw(method, path, Bytes::from(body), Some(&basic(auth)))
        .await
}

fn assert_error(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{:?}", answer.json);
    assert!(answer.json["error"].is_string(), "{:?}", answer.json);
    assert!(answer.json["code"].is_string(), "{:?}", answer.json);
}

#[tokio::test]
async fn a_package_is_created_read_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let created = server
        .call(
            Method::PUT,
            TOOLS,
            Some(json!({
                "parameters": [{"key": "greeting", "value": "hi"}],
                "annotations": [{"key": "description", "value": "tools"}]
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(created.json["name"], "tools");
    assert_eq!(created.json["namespace"], "guest");
    assert_eq!(created.json["version"], "0.0.1");
    assert_eq!(created.json["publish"], false);
    assert_eq!(created.json["binding"], json!({}));
    assert_eq!(
        created.json["parameters"],
        json!([{"key": "greeting", "value": "hi"}])
    );

    let got = server.call(Method::GET, TOOLS, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["actions"], json!([]));
    assert_eq!(got.json["parameters"], created.json["parameters"]);

    let again = server.call(Method::PUT, TOOLS, Some(json!({}))).await;
    assert_error(&again, StatusCode::CONFLICT);

    let updated = server
        .call(
            Method::PUT,
            &format!("{TOOLS}?overwrite=true"),
            Some(json!({"publish": true})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    assert_eq!(updated.json["version"], "0.0.2");
    assert_eq!(updated.json["publish"], true);
    assert_eq!(
        updated.json["parameters"], created.json["parameters"],
        "parameters not given are kept"
    );

    for name in ["b-pkg", "a-pkg"] {
        let answer = server
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/packages/{name}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let list = server
        .call(Method::GET, "/api/v1/namespaces/_/packages", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(names, ["a-pkg", "b-pkg", "tools"]);
    assert_eq!(list.json[0]["binding"], false);
    assert!(list.json[0].get("parameters").is_none());
    let page = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/packages?skip=1&limit=1",
            None,
        )
        .await;
    assert_eq!(page.json.as_array().map(Vec::len), Some(1));
    assert_eq!(page.json[0]["name"], "b-pkg");

    let deleted = server.call(Method::DELETE, TOOLS, None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json["name"], "tools");
    assert_error(
        &server.call(Method::GET, TOOLS, None).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &server.call(Method::DELETE, TOOLS, None).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn bad_package_requests_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    assert_error(
        &server
            .call(Method::GET, "/api/v1/namespaces/_/packages/missing", None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &server
            .call(
                Method::PUT,
                "/api/v1/namespaces/_/packages/b%20ad!",
                Some(json!({})),
            )
            .await,
        StatusCode::BAD_REQUEST,
    );
    let malformed = server
        .raw(
            Method::PUT,
            TOOLS,
            Bytes::from_static(b"{\"parameters\": 3}"),
            Some(&server.auth),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST);
    assert_error(
        &server.call(Method::GET, TOOLS, None).await,
        StatusCode::NOT_FOUND,
    );
    let unauthenticated = server.raw(Method::GET, TOOLS, Bytes::new(), None).await;
    assert_error(&unauthenticated, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bindings_refer_to_own_or_shared_packages_only() {
    let server = TestServer::start().await;
    let other = server.add_namespace("other").await;
    for (name, publish) in [("shared", true), ("private", false)] {
        let answer = call_as(
            &server,
            &other,
            Method::PUT,
            &format!("/api/v1/namespaces/other/packages/{name}"),
            Some(json!({"publish": publish, "parameters": [{"key": "a", "value": 1}]})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    }

    // Reading: a shared package, yes; a private one or a missing one, 403.
    let shared = server
        .call(
            Method::GET,
            "/api/v1/namespaces/other/packages/shared",
            None,
        )
        .await;
    assert_eq!(shared.status, StatusCode::OK, "{:?}", shared.json);
    assert_eq!(shared.json["namespace"], "other");
    for name in ["private", "missing"] {
        assert_error(
            &server
                .call(
                    Method::GET,
                    &format!("/api/v1/namespaces/other/packages/{name}"),
                    None,
                )
                .await,
            StatusCode::FORBIDDEN,
        );
    }
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/other/packages", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(names, ["shared"], "only shared packages of others");

    // Writing another namespace's package: never.
    assert_error(
        &server
            .call(
                Method::PUT,
                "/api/v1/namespaces/other/packages/shared?overwrite=true",
                Some(json!({})),
            )
            .await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &server
            .call(
                Method::DELETE,
                "/api/v1/namespaces/other/packages/shared",
                None,
            )
            .await,
        StatusCode::FORBIDDEN,
    );

    // Binding.
    let bound = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/mine",
            Some(json!({
                "binding": {"namespace": "other", "name": "shared"},
                "parameters": [{"key": "b", "value": 2}]
            })),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{:?}", bound.json);
    assert_eq!(
        bound.json["binding"],
        json!({"namespace": "other", "name": "shared"})
    );
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/packages", None)
        .await;
    assert_eq!(
        listed.json[0]["binding"],
        json!({"namespace": "other", "name": "shared"})
    );

    let refused = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/sneaky",
            Some(json!({"binding": {"namespace": "other", "name": "private"}})),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN);
    let missing = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/dangling",
            Some(json!({"binding": {"namespace": "other", "name": "missing"}})),
        )
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST);
    let to_binding = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/twice",
            Some(json!({"binding": {"namespace": "_", "name": "mine"}})),
        )
        .await;
    assert_error(&to_binding, StatusCode::BAD_REQUEST);
    for name in ["sneaky", "dangling", "twice"] {
        assert_error(
            &server
                .call(
                    Method::GET,
                    &format!("/api/v1/namespaces/_/packages/{name}"),
                    None,
                )
                .await,
            StatusCode::NOT_FOUND,
        );
    }

    // A package does not become a binding, nor a binding a package.
    server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/plain",
            Some(json!({})),
        )
        .await;
    assert_error(
        &server
            .call(
                Method::PUT,
                "/api/v1/namespaces/_/packages/plain?overwrite=true",
                Some(json!({"binding": {"namespace": "other", "name": "shared"}})),
            )
            .await,
        StatusCode::CONFLICT,
    );
    assert_error(
        &server
            .call(
                Method::PUT,
                "/api/v1/namespaces/_/packages/mine?overwrite=true",
                Some(json!({"binding": {}})),
            )
            .await,
        StatusCode::CONFLICT,
    );
    let kept = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/mine?overwrite=true",
            Some(json!({"parameters": [{"key": "b", "value": 3}]})),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{:?}", kept.json);
    assert_eq!(
        kept.json["binding"],
        json!({"namespace": "other", "name": "shared"}),
        "an update without binding keeps it"
    );
}
