//! Creating, reading, listing, updating and deleting actions.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, annotation, example, wasm_body};

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let server = TestServer::start().await;
    let created = server.create("hello", "hello").await.json;
    assert_eq!(created["name"], "hello");
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["exec"]["kind"], "wasm");
    assert_eq!(created["exec"]["binary"], true);
    assert_eq!(
        created["limits"],
        json!({"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1})
    );
    assert_eq!(annotation(&created, "exec"), Some(&json!("wasm")));
    assert_eq!(created["publish"], false);

    let got = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["exec"]["code"], created["exec"]["code"]);
    let without_code = server
        .call(
            Method::GET,
            "/api/v1/namespaces/guest/actions/hello?code=false",
            None,
        )
        .await;
    assert!(without_code.json["exec"].get("code").is_none());

    let mut update = wasm_body(&example("echo"));
    update["limits"] = json!({"timeout": 1000});
    update["parameters"] = json!([{"key": "bound", "value": 1}]);
    let updated = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/hello?overwrite=true",
            Some(update),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    assert_eq!(updated.json["version"], "0.0.2");
    assert_eq!(updated.json["limits"]["timeout"], 1000);
    assert_eq!(
        updated.json["limits"]["memory"], 256,
        "limits not given keep their value"
    );

    // An update without exec keeps the code and bumps the version.
    let annotate = json!({"annotations": [{"key": "owner", "value": "me"}]});
    let annotated = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/hello?overwrite=true",
            Some(annotate),
        )
        .await;
    assert_eq!(annotated.status, StatusCode::OK, "{:?}", annotated.json);
    assert_eq!(annotated.json["version"], "0.0.3");
    assert_eq!(annotated.json["exec"]["code"], updated.json["exec"]["code"]);
    let run = server.invoke("hello", json!({"x": 1})).await;
    assert_eq!(
        run.json["response"]["result"],
        json!({"bound": 1, "x": 1}),
        "echo code kept"
    );

    let deleted = server
        .call(Method::DELETE, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json["name"], "hello");
    let gone = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.json["error"], "The requested resource does not exist.");
    assert!(gone.json["code"].is_string());
    let again = server
        .call(Method::DELETE, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_create_without_overwrite_is_a_conflict() {
    let server = TestServer::start().await;
    server.create("dup", "hello").await;
    let again = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/dup",
            Some(wasm_body(&example("echo"))),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json["error"], "resource already exists");
    let kept = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/dup", None)
        .await;
    assert_eq!(
        kept.json["version"], "0.0.1",
        "the first action is untouched"
    );
}

#[tokio::test]
async fn list_pages_and_counts() {
    let server = TestServer::start().await;
    for name in ["b", "a", "c"] {
        server.create(name, "noop").await;
    }
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<_> = listed
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
    let first = &listed.json[0];
    assert_eq!(
        first["exec"],
        json!({"binary": true}),
        "summaries carry no code"
    );
    assert!(first.get("parameters").is_none());
    let page = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/actions?skip=1&limit=1",
            None,
        )
        .await;
    assert_eq!(page.json.as_array().map(Vec::len), Some(1));
    assert_eq!(page.json[0]["name"], "b");
    let count = server
        .call(Method::GET, "/api/v1/namespaces/_/actions?count=true", None)
        .await;
    assert_eq!(count.json, json!({"actions": 3}));
    let too_many = server
        .call(Method::GET, "/api/v1/namespaces/_/actions?limit=201", None)
        .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        too_many.json["error"],
        "The value '201' is not in the range of 0 to 200 for actions."
    );
}

#[tokio::test]
async fn code_that_is_not_webassembly_is_refused_with_a_message_that_says_so() {
    let server = TestServer::start().await;
    let body = wasm_body(b"console.log('hello')");
    let answer = server
        .call(Method::PUT, "/api/v1/namespaces/_/actions/js", Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let message = answer.json["error"].as_str().expect("message");
    assert!(message.contains("not a WebAssembly module"), "{message}");

    let bad_base64 = json!({"exec": {"kind": "wasm", "code": "%%%"}});
    let answer = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/js",
            Some(bad_base64),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("base64")
    );

    let python = json!({"exec": {"kind": "python:3", "code": "def main(args): return args"}});
    let answer = server
        .call(Method::PUT, "/api/v1/namespaces/_/actions/js", Some(python))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("'python:3' is not supported")
    );

    let no_exec = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/js",
            Some(json!({})),
        )
        .await;
    assert_eq!(no_exec.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_exec.json["error"], "exec undefined");
    // Nothing was stored by any of these.
    let gone = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/js", None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn limits_out_of_range_are_refused() {
    let server = TestServer::start().await;
    for (limits, message) in [
        (
            json!({"timeout": 50}),
            "Timeout 50 milliseconds below allowed threshold of 100 milliseconds",
        ),
        (
            json!({"timeout": 300001}),
            "Timeout 300001 milliseconds exceeds allowed threshold of 300000 milliseconds",
        ),
        (
            json!({"memory": 64}),
            "Memory size 64 MB below allowed threshold of 128 MB",
        ),
        (
            json!({"memory": 1024}),
            "Memory size 1024 MB exceeds allowed threshold of 512 MB",
        ),
        (
            json!({"logs": 11}),
            "Log size 11 MB exceeds allowed threshold of 10 MB",
        ),
    ] {
        let mut body = wasm_body(&example("noop"));
        body["limits"] = limits.clone();
        let answer = server
            .call(
                Method::PUT,
                "/api/v1/namespaces/_/actions/limited",
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{limits}");
        assert_eq!(answer.json["error"], message);
    }
}

#[tokio::test]
async fn malformed_json_and_bad_names_are_refused() {
    let server = TestServer::start().await;
    let answer = server
        .raw(
            Method::PUT,
            "/api/v1/namespaces/_/actions/x",
            "{not json".into(),
            Some(&server.auth),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("The request content was malformed")
    );
    let bad_name = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/-bad",
            Some(wasm_body(&example("noop"))),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_name.json["error"],
        "The name of the entity contains illegal characters."
    );
}
