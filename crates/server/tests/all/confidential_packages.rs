//! Confidential actions in packages: a confidential package's parameters
//! are kept by its owner's client and sealed, under each action's own,
//! into the confidential actions deployed in it; the node stores none of
//! them, and the package is part of the name every action is sealed,
//! registered and run under.

use clemmys_client::confidential::ConfidentialError;
use clemmys_proto::refusal::Refusal;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::common::{TestServer, files_containing};

/// A package parameter the node must never hold.
const SECRET: &str = "package-parameter-secret-7c3a";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

/// Creates confidential package `name` through the API as the CLI does
/// (`clemmys package create NAME --confidential`): marked confidential on
/// the node, its parameters kept by `owner`'s client.
async fn create_confidential_package(
    server: &TestServer,
    owner: &crate::common::Owner,
    name: &str,
    parameters: Value,
) {
    let created = server
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/packages/{name}"),
            Some(json!({"annotations": [{"key": "confidential", "value": true}]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    owner
        .client
        .keep_package_defaults(name, Some(&object(parameters)))
        .expect("keep the package's parameters");
}

#[tokio::test]
async fn a_confidential_packages_parameters_are_sealed_into_its_actions() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    create_confidential_package(
        &server,
        &owner,
        "vault",
        json!({"token": SECRET, "region": "eu"}),
    )
    .await;
    owner
        .deploy_echo_with_defaults("vault/echo", &json!({"region": "us", "own": 1}), None)
        .await;

    // Package's, then the action's own, then the invoke's: as OpenWhisk
    // merges them, inside the enclave; in and out of a session.
    for _ in 0..2 {
        let opened = owner
            .invoke("vault/echo", json!({"name": "Ada", "own": 2}))
            .await
            .expect("invoke");
        assert_eq!(
            opened.result,
            json!({"token": SECRET, "region": "us", "own": 2, "name": "Ada"})
        );
    }
    // What the owner's client shows as the action's parameters.
    let shown = owner
        .client
        .current_defaults("vault/echo")
        .await
        .expect("read")
        .expect("sealed by this client");
    assert_eq!(
        shown.parameters(),
        &object(json!({"token": SECRET, "region": "us", "own": 1}))
    );

    // The node shows and stores none of them.
    let package = server
        .call(Method::GET, "/api/v1/namespaces/_/packages/vault", None)
        .await
        .json;
    assert_eq!(package["parameters"], json!([]), "{package}");
    assert_eq!(package["actions"][0]["name"], "echo", "{package}");
    let action = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/vault/echo", None)
        .await
        .json;
    assert_eq!(action["parameters"], json!([]), "{action}");
    let records = server.activation_records().await;
    assert!(!records.to_string().contains(SECRET), "{records}");
    let leaked = files_containing(server.data_dir.path(), SECRET);
    assert!(leaked.is_empty(), "in the node's data: {leaked:?}");
    // Positive control: the marker is where it should be, in the client.
    assert!(!files_containing(owner.home.path(), SECRET).is_empty());

    // An update of the action without parameters reseals the action's own
    // over the package's current ones.
    owner
        .client
        .keep_package_defaults("vault", Some(&object(json!({"token": "rotated"}))))
        .expect("keep");
    owner
        .client
        .deploy(
            "vault/echo",
            &crate::common::example("echo"),
            Default::default(),
            true,
            &Default::default(),
        )
        .await
        .expect("update");
    let opened = owner.invoke("vault/echo", json!({})).await.expect("invoke");
    assert_eq!(
        opened.result,
        json!({"token": "rotated", "region": "us", "own": 1})
    );
}

#[tokio::test]
async fn confidential_packages_refuse_clear_parameters_and_bindings() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    create_confidential_package(&server, &owner, "vault", json!({})).await;
    let error = |answer: &crate::common::Answer| answer.json["error"].as_str().map(str::to_owned);

    // Parameters sent to the node in the clear: refused, nothing stored.
    let clear = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/vault?overwrite=true",
            Some(json!({"parameters": [{"key": "k", "value": "v"}]})),
        )
        .await;
    assert_eq!(clear.status, StatusCode::BAD_REQUEST, "{:?}", clear.json);
    assert!(
        error(&clear).is_some_and(|text| text.contains("no parameters on the node")),
        "{:?}",
        clear.json
    );
    let kept = server
        .call(Method::GET, "/api/v1/namespaces/_/packages/vault", None)
        .await
        .json;
    assert_eq!(kept["parameters"], json!([]), "{kept}");

    // A binding would hand its parameters to the node to merge.
    let binding = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/bound",
            Some(json!({"binding": {"namespace": "_", "name": "vault"}})),
        )
        .await;
    assert_eq!(
        binding.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        binding.json
    );
    assert!(
        error(&binding).is_some_and(|text| text.contains("cannot be bound")),
        "{:?}",
        binding.json
    );

    // A confidential action in a package with clear parameters: refused,
    // by the node and so by the owner's client, which deploys nothing.
    let plain = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/tools",
            Some(json!({"parameters": [{"key": "k", "value": "v"}]})),
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{:?}", plain.json);
    let refused = owner
        .client
        .deploy(
            "tools/echo",
            &crate::common::example("echo"),
            Default::default(),
            false,
            &Default::default(),
        )
        .await;
    match refused {
        Err(ConfidentialError::Api(clemmys_client::ClientError::Api {
            status, message, ..
        })) => {
            assert_eq!(status, 400);
            assert!(
                message.contains("can only join a confidential package"),
                "{message}"
            );
        }
        other => panic!("deployed into a package with clear parameters: {other:?}"),
    }
    let absent = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/tools/echo", None)
        .await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
}

/// The provider holds the namespace key and the store. It copies the
/// sealed code of the owner's top-level `echo` (other defaults) over
/// `vault/echo`, and then over `other/echo` in a confidential package of
/// its own making. The package is part of the name the code is sealed
/// and registered under, so the enclave runs neither.
#[tokio::test]
async fn sealed_code_moved_between_packages_runs_nothing() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    create_confidential_package(&server, &owner, "vault", json!({"where": "vault"})).await;
    owner
        .deploy_echo_with_defaults("echo", &json!({"where": "top"}), None)
        .await;
    owner
        .deploy_echo_with_defaults("vault/echo", &json!({}), None)
        .await;
    let first = owner.invoke("vault/echo", json!({})).await.expect("invoke");
    assert_eq!(first.result, json!({"where": "vault"}));

    let top = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/actions/echo?code=true",
            None,
        )
        .await
        .json;
    let put = json!({"exec": top["exec"].clone(), "annotations": top["annotations"].clone()});
    let moved = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/vault/echo?overwrite=true",
            Some(put.clone()),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.json);
    server.enclaves().evict("guest", "vault/echo");
    let refused = |ran: &Result<_, ConfidentialError>| {
        matches!(
            ran,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::CodeRejected,
                ..
            })
        )
    };
    // In the session the first invoke opened, and with a fresh signed
    // invocation from another of the owner's clients.
    let in_session = owner.invoke("vault/echo", json!({})).await;
    assert!(
        refused(&in_session),
        "the top-level action's code ran as vault/echo: {in_session:?}"
    );
    let fresh = owner.second_client(&server).await;
    let signed = fresh.invoke("vault/echo", json!({})).await;
    assert!(
        refused(&signed),
        "the top-level action's code ran as vault/echo: {signed:?}"
    );

    // The same code under the same short name in another confidential
    // package: the broker knows no `other/echo`, so nothing is sealed for
    // it, and the owner's client sends nothing.
    server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/other",
            Some(json!({"annotations": [{"key": "confidential", "value": true}]})),
        )
        .await;
    let copied = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/other/echo",
            Some(put),
        )
        .await;
    assert_eq!(copied.status, StatusCode::OK, "{:?}", copied.json);
    let unknown = owner.invoke("other/echo", json!({})).await;
    assert!(
        matches!(unknown, Err(ConfidentialError::NotRegistered(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_confidential_chain_runs_actions_of_a_confidential_package() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    create_confidential_package(&server, &owner, "vault", json!({"token": SECRET})).await;
    owner
        .deploy_echo_with_defaults("vault/echo", &json!({"step": 1}), None)
        .await;
    owner.deploy("echo", "echo").await;
    owner
        .create_sequence("chain", &["vault/echo", "echo"])
        .await;
    for _ in 0..2 {
        let opened = owner.invoke("chain", json!({"n": 1})).await.expect("chain");
        assert_eq!(opened.result, json!({"token": SECRET, "step": 1, "n": 1}));
    }
}
