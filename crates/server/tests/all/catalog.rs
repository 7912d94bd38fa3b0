//! The built-in catalog: `/whisk.system/utils` (OpenWhisk's echo, cat,
//! split, sort, head, date, smash, namespace and hosturl) from every
//! namespace, through bindings and as sequence components.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, js_engine};

const UTILS: &str = "/api/v1/namespaces/whisk.system/actions/utils";

async fn catalog_server() -> TestServer {
    TestServer::start_with(|config| config.js_engine = Some(js_engine())).await
}

/// `…/utils/{name}?blocking=true&result=true` with `params`, as the guest.
async fn run_util(server: &TestServer, name: &str, params: Value) -> Value {
    let answer = server
        .call(
            Method::POST,
            &format!("{UTILS}/{name}?blocking=true&result=true"),
            Some(params),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{name}: {:?}", answer.json);
    answer.json
}

#[tokio::test]
async fn whisk_system_utils_answer_as_openwhisk_ships_them() {
    let server = catalog_server().await;
    let package = server
        .call(
            Method::GET,
            "/api/v1/namespaces/whisk.system/packages/utils",
            None,
        )
        .await;
    assert_eq!(package.status, StatusCode::OK, "{:?}", package.json);
    assert_eq!(package.json["publish"], true);
    let mut names: Vec<&str> = package.json["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cat",
            "date",
            "echo",
            "head",
            "hosturl",
            "namespace",
            "smash",
            "sort",
            "split"
        ]
    );

    assert_eq!(
        run_util(&server, "echo", json!({"payload": "Five fuzzy felines"})).await,
        json!({"payload": "Five fuzzy felines"})
    );
    assert_eq!(
        run_util(&server, "cat", json!({"lines": [4, 2, 3], "other": 1})).await,
        json!({"lines": [4, 2, 3], "payload": "4\n2\n3"})
    );
    assert_eq!(
        run_util(
            &server,
            "split",
            json!({"payload": "one,two,three", "separator": ","})
        )
        .await,
        json!({"lines": ["one", "two", "three"], "payload": "one,two,three"})
    );
    assert_eq!(
        run_util(&server, "split", json!({"payload": "a\nb\r\nc"})).await["lines"],
        json!(["a", "b", "c"])
    );
    assert_eq!(
        run_util(&server, "sort", json!({"lines": [4, 2, 3]})).await,
        json!({"lines": [2, 3, 4], "length": 3})
    );
    assert_eq!(
        run_util(&server, "head", json!({"lines": [4, 2, 3], "num": 2})).await,
        json!({"lines": [4, 2], "num": 2})
    );
    assert_eq!(
        run_util(
            &server,
            "smash",
            json!({"a": 1, "b": {"c": 2}, "$fieldName": "p"})
        )
        .await,
        json!({"p": {"a": 1, "b": {"c": 2}}})
    );
    assert_eq!(
        run_util(&server, "namespace", json!({})).await,
        json!({"namespace": "guest"})
    );
    assert_eq!(
        run_util(&server, "hosturl", json!({"web": true, "path": "hello"})).await,
        json!({"url": format!("{}/api/v1/web/guest/default/hello.json", server.base)})
    );
    assert_eq!(
        run_util(&server, "hosturl", json!({"path": "demo/hello"})).await,
        json!({"url": format!("{}/api/v1/namespaces/guest/actions/demo/hello", server.base)})
    );
    let date = run_util(&server, "date", json!({})).await;
    let text = date["date"].as_str().expect("date");
    assert!(text.ends_with('Z') && text.contains('T'), "{text}");

    // Another namespace uses them too; the record is the caller's.
    let other = server.add_namespace("other").await;
    let client = clemmys_client::Client::new(&server.base, other).expect("client");
    let answer = client
        .invoke(
            "/whisk.system/utils/echo",
            json!({"who": "other"}),
            clemmys_client::InvokeOptions::blocking(),
        )
        .await
        .expect("invoke");
    let clemmys_client::Invoked::Completed { status, body, .. } = answer else {
        panic!("not completed: {answer:?}");
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["namespace"], "other");
    assert_eq!(body["response"]["result"], json!({"who": "other"}));

    // Nobody but the node writes them.
    let refused = server
        .call(
            Method::PUT,
            &format!("{UTILS}/echo?overwrite=true"),
            Some(json!({"exec": {"kind": "nodejs:default", "code": "function main() { return {}; }"}})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.json);
    // No key can act as whisk.system: it has no stored record.
    let system = clemmys_whisk::EntityName::new("whisk.system").expect("name");
    assert!(
        server
            .node()
            .store
            .get_namespace(&system)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn utils_are_sequence_components_directly_and_through_a_binding() {
    let server = catalog_server().await;
    let body = json!({"exec": {"kind": "sequence", "components": [
        "/whisk.system/utils/split", "/whisk.system/utils/sort", "/whisk.system/utils/cat"
    ]}});
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/lines",
            Some(body),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server.invoke("lines", json!({"payload": "c\nb\na"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["result"],
        json!({"lines": ["a", "b", "c"], "payload": "a\nb\nc"})
    );
    assert_eq!(answer.json["logs"].as_array().map(Vec::len), Some(3));

    // A binding with its own parameters, mixed with an own action.
    let bound = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/myutils",
            Some(
                json!({"binding": {"namespace": "whisk.system", "name": "utils"},
                        "parameters": [{"key": "num", "value": 2}]}),
            ),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{:?}", bound.json);
    let own = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/shout",
            Some(json!({"exec": {"kind": "nodejs:default",
                "code": "function main(p) { return { lines: p.lines.map((l) => String(l).toUpperCase()) }; }"}})),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.json);
    let body = json!({"exec": {"kind": "sequence", "components": [
        "/guest/myutils/split", "/guest/shout", "/_/myutils/head"
    ]}});
    let created = server
        .call(Method::PUT, "/api/v1/namespaces/_/actions/top", Some(body))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server
        .invoke("top", json!({"payload": "x y z", "separator": " "}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["result"],
        json!({"lines": ["X", "Y"], "num": 2})
    );

    // Packages that do not exist, or are not shared, are refused at create.
    server.add_namespace("hidden").await;
    for component in ["/whisk.system/utils/missing", "/hidden/private/echo"] {
        let body = json!({"exec": {"kind": "sequence", "components": [component]}});
        let refused = server
            .call(Method::PUT, "/api/v1/namespaces/_/actions/bad", Some(body))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{component}");
        assert_eq!(
            refused.json["error"],
            format!("Sequence component does not exist: '{component}'.")
        );
    }
}

#[tokio::test]
async fn the_catalog_is_installed_once_and_only_with_the_engine() {
    let server = catalog_server().await;
    let before = server
        .call(Method::GET, &format!("{UTILS}/echo?code=false"), None)
        .await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.json);
    let server = server
        .restart_configured(|_| {}, |config| config.js_engine = Some(js_engine()))
        .await
        .expect("restarted");
    let after = server
        .call(Method::GET, &format!("{UTILS}/echo?code=false"), None)
        .await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.json);
    assert_eq!(after.json["version"], before.json["version"]);

    let bare = TestServer::start().await;
    let answer = bare
        .call(
            Method::GET,
            "/api/v1/namespaces/whisk.system/packages/utils",
            None,
        )
        .await;
    assert_ne!(answer.status, StatusCode::OK, "{:?}", answer.json);
}

#[tokio::test]
async fn a_confidential_chain_cannot_include_a_builtin() {
    let server = catalog_server().await;
    let owner = server.owner().await;
    owner.deploy("sealed", "echo").await;
    let body = json!({"exec": {"kind": "sequence", "components": [
        "/guest/sealed", "/whisk.system/utils/echo"
    ]}});
    let refused = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/mixed",
            Some(body),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.json
    );
    assert!(
        refused.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot mix confidential and plain"),
        "{:?}",
        refused.json
    );
}
