//! A node on the PostgreSQL store (`--store postgres://…`): the API and
//! confidential actions end to end, a clear refusal to start without the
//! database, and 503s (then recovery on its own) while the database is
//! away. Each test gets a database of its own (see
//! `clemmys_store::test_postgres`); off CI without PostgreSQL they are
//! skipped, on CI they fail.

use std::time::{Duration, Instant};

use clemmys_server::{RunningServer, ServerConfig, StoreLocation};
use clemmys_store::test_postgres::{Cluster, TestDatabase};
use clemmys_store::{
    ActivationFilter, EntityStore, PostgresConfig, PostgresStore, StoreConfig, StoreError,
};
use clemmys_whisk::{ActivationId, ActivationStatus};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

fn on_postgres(url: &str) -> impl FnOnce(&mut ServerConfig) + use<> {
    let url = url.to_owned();
    move |config| config.store_location = StoreLocation::Postgres(PostgresConfig::new(url))
}

#[tokio::test]
async fn a_node_on_postgres_serves_plain_and_confidential_actions() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let server = TestServer::start_with(on_postgres(&database.url)).await;
    server.create("hello", "hello").await;
    let answer = server.invoke("hello", json!({"name": "pg"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["result"],
        json!({"payload": "Hello, pg!"})
    );
    let plain_id = answer.json["activationId"].as_str().expect("id").to_owned();

    // Non-blocking: acknowledged, then found once it ran.
    let accepted = server
        .call(
            Method::POST,
            "/api/v1/namespaces/_/actions/hello",
            Some(json!({"name": "later"})),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.json);
    let later_id = accepted.json["activationId"]
        .as_str()
        .expect("id")
        .to_owned();
    let later = server.wait_for_activation(&later_id).await;
    assert_eq!(
        later["response"]["result"],
        json!({"payload": "Hello, later!"})
    );

    // Confidential: the result opens for the client, the record is sealed.
    let owner = server.owner().await;
    owner.deploy("secret", "hello").await;
    let opened = owner
        .invoke("secret", json!({"name": "enclave"}))
        .await
        .expect("confidential invoke");
    assert_eq!(opened.status, ActivationStatus::Success);
    assert_eq!(opened.result, json!({"payload": "Hello, enclave!"}));
    let sealed_record = server.activation(opened.activation_id).await;
    assert_eq!(sealed_record.status, StatusCode::OK);
    assert!(
        !sealed_record.json.to_string().contains("enclave!"),
        "plaintext in the record"
    );

    // Listing, filtered by name, newest first, with a count.
    let listed = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=hello&limit=10",
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let ids: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|record| record["activationId"].as_str())
        .collect();
    assert_eq!(ids, [later_id.as_str(), plain_id.as_str()]);
    let counted = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true",
            None,
        )
        .await;
    assert_eq!(counted.json, json!({"activations": 3}));
    let got = server.activation(&plain_id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.json["response"]["result"],
        json!({"payload": "Hello, pg!"})
    );

    // It is all in the database: a second store on it finds the records
    // once the node has written what it held.
    server.node().store.flush().await.expect("flush");
    let other = PostgresStore::connect(&PostgresConfig::new(&database.url), StoreConfig::default())
        .await
        .expect("a second store on the database");
    for id in [&plain_id, &later_id, &opened.activation_id.to_string()] {
        let id: ActivationId = id.parse().expect("an activation id");
        assert!(
            other
                .get_activation("guest", &id)
                .await
                .expect("read")
                .is_some(),
            "activation {id} is not in the database"
        );
    }
    let all = ActivationFilter {
        limit: 10,
        ..ActivationFilter::default()
    };
    assert_eq!(
        other.count_activations("guest", &all).await.expect("count"),
        3
    );
}

#[tokio::test]
async fn a_node_refuses_to_start_when_postgres_is_unreachable() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        dir.path().join("data"),
    );
    let url = format!("postgres://clemmys@127.0.0.1:{port}/clemmys");
    on_postgres(&url)(&mut config);
    let started = Instant::now();
    let Err(error) = RunningServer::start(config).await else {
        panic!("a node started without its database");
    };
    assert!(
        matches!(
            error.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ),
        "{error:#}"
    );
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}")),
        "the error names the database: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up in bounded time"
    );
}

#[tokio::test]
async fn the_api_answers_503_while_postgres_is_away_and_recovers_on_its_own() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let server = TestServer::start_with(on_postgres(cluster.url())).await;
    server.create("hello", "hello").await;
    let before = server.invoke("hello", json!({"name": "before"})).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.json);

    cluster.stop();
    let listed = server
        .call(Method::GET, "/api/v1/namespaces/_/actions", None)
        .await;
    assert_eq!(
        listed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        listed.json
    );
    assert_eq!(
        listed.json["error"],
        json!("The database is unavailable; try again shortly.")
    );
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/other",
            Some(crate::common::wasm_body(&crate::common::example("hello"))),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        created.json
    );
    // A blocking invoke of a known action is still answered first; its
    // record waits, visible, for the database.
    let during = server.invoke("hello", json!({"name": "during"})).await;
    assert_eq!(during.status, StatusCode::OK, "{:?}", during.json);
    let during_id = during.json["activationId"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = server
            .call(Method::GET, "/api/v1/namespaces/_/actions", None)
            .await;
        if listed.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            listed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            listed.json
        );
        assert!(
            Instant::now() < deadline,
            "not recovered 30 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.create("other", "hello").await;
    let after = server.invoke("other", json!({"name": "after"})).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.json);
    let record = server.activation(&during_id).await;
    assert_eq!(record.status, StatusCode::OK, "{:?}", record.json);
    assert_eq!(
        record.json["response"]["result"],
        json!({"payload": "Hello, during!"})
    );
    // The record written while the database was away reached it.
    server
        .node()
        .store
        .flush()
        .await
        .expect("flush after the outage");
    let other = PostgresStore::connect(&PostgresConfig::new(cluster.url()), StoreConfig::default())
        .await
        .expect("a second store on the database");
    let id: ActivationId = during_id.parse().expect("an activation id");
    assert!(
        other
            .get_activation("guest", &id)
            .await
            .expect("read")
            .is_some()
    );
}
