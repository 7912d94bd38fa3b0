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

/// `PUT` of action `path` (`pkg/name`) from example `example` with
/// `extra` fields merged into the body, as `auth`.
async fn put_action_as(
    server: &TestServer,
    auth: Option<&clemmys_whisk::AuthKey>,
    path: &str,
    example: &str,
    extra: Value,
) -> Answer {
    let mut body = crate::common::wasm_body(&crate::common::example(example));
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    match auth {
        Some(auth) => call_as(server, auth, Method::PUT, path, Some(body)).await,
        None => server.call(Method::PUT, path, Some(body)).await,
    }
}

#[tokio::test]
async fn actions_in_a_package_inherit_its_parameters() {
    let server = TestServer::start().await;
    let package = server
        .call(
            Method::PUT,
            TOOLS,
            Some(json!({"parameters": [
                {"key": "greeting", "value": "hi"},
                {"key": "who", "value": "package"}
            ]})),
        )
        .await;
    assert_eq!(package.status, StatusCode::OK);
    let created = put_action_as(
        &server,
        None,
        "/api/v1/namespaces/_/actions/tools/echo",
        "echo",
        json!({"parameters": [{"key": "who", "value": "action"}]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(created.json["namespace"], "guest/tools");

    let invoked = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/tools/echo?blocking=true&result=true",
            Some(json!({"extra": 1})),
        )
        .await;
    assert_eq!(invoked.status, StatusCode::OK, "{:?}", invoked.json);
    assert_eq!(
        invoked.json,
        json!({"greeting": "hi", "who": "action", "extra": 1}),
        "the action's parameters win over the package's"
    );
    let overridden = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/tools/echo?blocking=true&result=true",
            Some(json!({"who": "invoke", "greeting": "yo"})),
        )
        .await;
    assert_eq!(overridden.json, json!({"greeting": "yo", "who": "invoke"}));
    let record = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/tools/echo?blocking=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        crate::common::annotation(&record.json, "path"),
        Some(&json!("guest/tools/echo"))
    );

    let got = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/tools/echo", None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["name"], "echo");
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/tools/", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.json);
    assert_eq!(listed.json.as_array().map(Vec::len), Some(1));
    // As in OpenWhisk, the namespace's list shows them too, as `ns/pkg`.
    let own = server
        .call(Method::GET, "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(own.json[0]["namespace"], "guest/tools", "{:?}", own.json);
    let package = server.call(Method::GET, TOOLS, None).await;
    assert_eq!(package.json["actions"][0]["name"], "echo");

    // A non-empty package is not deleted; an empty one is.
    assert_error(
        &server.call(Method::DELETE, TOOLS, None).await,
        StatusCode::CONFLICT,
    );
    assert_eq!(
        server.call(Method::GET, TOOLS, None).await.status,
        StatusCode::OK
    );
    let deleted = server
        .call(
            Method::DELETE,
            "/api/v1/namespaces/_/actions/tools/echo",
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_error(
        &server
            .call(Method::GET, "/api/v1/namespaces/_/actions/tools/echo", None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        server.call(Method::DELETE, TOOLS, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn package_action_errors_follow_openwhisk() {
    let server = TestServer::start().await;
    // Unknown package: 404 on every route.
    assert_error(
        &put_action_as(
            &server,
            None,
            "/api/v1/namespaces/_/actions/nope/echo",
            "echo",
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    for method in [Method::GET, Method::POST, Method::DELETE] {
        assert_error(
            &server
                .call(method, "/api/v1/namespaces/_/actions/nope/echo", None)
                .await,
            StatusCode::NOT_FOUND,
        );
    }
    assert_error(
        &server
            .call(Method::GET, "/api/v1/namespaces/_/actions/nope/", None)
            .await,
        StatusCode::NOT_FOUND,
    );

    // `final` holds the package's parameters too.
    server
        .call(
            Method::PUT,
            TOOLS,
            Some(json!({"parameters": [{"key": "a", "value": 1}]})),
        )
        .await;
    let fixed = put_action_as(
        &server,
        None,
        "/api/v1/namespaces/_/actions/tools/fixed",
        "echo",
        json!({"annotations": [{"key": "final", "value": true}]}),
    )
    .await;
    assert_eq!(fixed.status, StatusCode::OK, "{:?}", fixed.json);
    assert_error(
        &server
            .call(
                Method::POST,
                "/api/v1/namespaces/_/actions/tools/fixed?blocking=true",
                Some(json!({"a": 2})),
            )
            .await,
        StatusCode::BAD_REQUEST,
    );

    // A confidential action joins only a confidential package (see
    // `confidential_packages`).
    let confidential = put_action_as(
        &server,
        None,
        "/api/v1/namespaces/_/actions/tools/secret",
        "echo",
        json!({"annotations": [{"key": "confidential", "value": true}]}),
    )
    .await;
    assert_error(&confidential, StatusCode::BAD_REQUEST);
    assert!(
        confidential.json["error"]
            .as_str()
            .is_some_and(|message| message.contains("can only join a confidential package")),
        "{:?}",
        confidential.json
    );
    // A sequence of a package may not name itself.
    let itself = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/tools/seq",
            Some(json!({"exec": {"kind": "sequence", "components": ["/_/tools/seq"]}})),
        )
        .await;
    assert_error(&itself, StatusCode::BAD_REQUEST);

    // A binding holds no actions of its own.
    server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/bound",
            Some(json!({"binding": {"name": "tools"}})),
        )
        .await;
    assert_error(
        &put_action_as(
            &server,
            None,
            "/api/v1/namespaces/_/actions/bound/echo",
            "echo",
            json!({}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn a_sequence_in_a_package_runs_with_its_parameters() {
    let server = TestServer::start().await;
    let package = server
        .call(
            Method::PUT,
            TOOLS,
            Some(json!({"parameters": [{"key": "greeting", "value": "hi"}]})),
        )
        .await;
    assert_eq!(package.status, StatusCode::OK);
    let echo = put_action_as(
        &server,
        None,
        "/api/v1/namespaces/_/actions/tools/echo",
        "echo",
        json!({}),
    )
    .await;
    assert_eq!(echo.status, StatusCode::OK, "{:?}", echo.json);
    server.create("plain", "echo").await;
    let sequence = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/tools/seq",
            Some(json!({
                "exec": {"kind": "sequence", "components": ["/_/tools/echo", "/_/plain"]},
                "parameters": [{"key": "who", "value": "sequence"}]
            })),
        )
        .await;
    assert_eq!(sequence.status, StatusCode::OK, "{:?}", sequence.json);
    assert_eq!(sequence.json["namespace"], "guest/tools");
    assert_eq!(
        sequence.json["exec"]["components"],
        json!(["/guest/tools/echo", "/guest/plain"])
    );

    let invoked = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/tools/seq?blocking=true",
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(invoked.status, StatusCode::OK, "{:?}", invoked.json);
    assert_eq!(
        invoked.json["response"]["result"],
        json!({"greeting": "hi", "who": "sequence", "x": 1}),
        "the package's and the sequence's parameters reach its first step"
    );
    assert_eq!(
        crate::common::annotation(&invoked.json, "path"),
        Some(&json!("guest/tools/seq"))
    );
    assert_eq!(invoked.json["logs"].as_array().map(Vec::len), Some(2));
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/tools/", None)
        .await;
    let names: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|action| action["name"].as_str())
        .collect();
    assert!(names.contains(&"seq"), "{names:?}");
}

#[tokio::test]
async fn shared_package_actions_run_for_others_and_through_bindings() {
    let server = TestServer::start().await;
    let other = server.add_namespace("other").await;
    for (name, publish) in [("shared", true), ("private", false)] {
        let answer = call_as(
            &server,
            &other,
            Method::PUT,
            &format!("/api/v1/namespaces/_/packages/{name}"),
            Some(json!({"publish": publish, "parameters": [
                {"key": "a", "value": 1}, {"key": "b", "value": 1}
            ]})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        let action = put_action_as(
            &server,
            Some(&other),
            &format!("/api/v1/namespaces/_/actions/{name}/echo"),
            "echo",
            json!({}),
        )
        .await;
        assert_eq!(action.status, StatusCode::OK, "{:?}", action.json);
    }

    let direct = server
        .call(
            Method::POST,
            "/api/v1/namespaces/other/actions/shared/echo?blocking=true",
            Some(json!({"c": 3})),
        )
        .await;
    assert_eq!(direct.status, StatusCode::OK, "{:?}", direct.json);
    assert_eq!(
        direct.json["response"]["result"],
        json!({"a": 1, "b": 1, "c": 3})
    );
    assert_eq!(
        direct.json["namespace"], "guest",
        "the invoker keeps the record"
    );

    assert_error(
        &server
            .call(
                Method::POST,
                "/api/v1/namespaces/other/actions/private/echo?blocking=true",
                Some(json!({})),
            )
            .await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &put_action_as(
            &server,
            None,
            "/api/v1/namespaces/other/actions/shared/mine",
            "echo",
            json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &server
            .call(
                Method::DELETE,
                "/api/v1/namespaces/other/actions/shared/echo",
                None,
            )
            .await,
        StatusCode::FORBIDDEN,
    );

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
    let through = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/mine/echo?blocking=true&result=true",
            Some(json!({"c": 3})),
        )
        .await;
    assert_eq!(through.status, StatusCode::OK, "{:?}", through.json);
    assert_eq!(
        through.json,
        json!({"a": 1, "b": 2, "c": 3}),
        "the binding's parameters win over the package's"
    );
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/mine/", None)
        .await;
    assert_eq!(listed.json[0]["name"], "echo");
    let package = server
        .call(Method::GET, "/api/v1/namespaces/_/packages/mine", None)
        .await;
    assert_eq!(package.json["actions"][0]["name"], "echo");

    // Once the package is no longer shared, the binding stops working.
    let unshared = call_as(
        &server,
        &other,
        Method::PUT,
        "/api/v1/namespaces/_/packages/shared?overwrite=true",
        Some(json!({"publish": false})),
    )
    .await;
    assert_eq!(unshared.status, StatusCode::OK);
    assert_error(
        &server
            .call(
                Method::POST,
                "/api/v1/namespaces/_/actions/mine/echo?blocking=true",
                Some(json!({})),
            )
            .await,
        StatusCode::FORBIDDEN,
    );
}

#[tokio::test]
async fn the_namespace_action_list_includes_the_actions_of_its_packages() {
    let server = TestServer::start().await;
    server.create("top", "hello").await;
    let package = server.call(Method::PUT, TOOLS, Some(json!({}))).await;
    assert_eq!(package.status, StatusCode::OK, "{:?}", package.json);
    let inner = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/tools/inner",
            Some(crate::common::wasm_body(&crate::common::example("hello"))),
        )
        .await;
    assert_eq!(inner.status, StatusCode::OK, "{:?}", inner.json);

    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions", None)
        .await;
    let names: Vec<(String, String)> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            (
                a["namespace"].as_str().unwrap_or_default().to_owned(),
                a["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("guest".to_owned(), "top".to_owned()),
            ("guest/tools".to_owned(), "inner".to_owned())
        ]
    );
    let count = server
        .call(Method::GET, "/api/v1/namespaces/_/actions?count=true", None)
        .await;
    assert_eq!(count.json, json!({"actions": 2}));
    let second = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/actions?skip=1&limit=1",
            None,
        )
        .await;
    assert_eq!(second.json.as_array().map(Vec::len), Some(1));
    assert_eq!(second.json[0]["name"], "inner");
}
