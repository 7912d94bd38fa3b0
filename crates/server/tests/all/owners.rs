//! Attacks on *whose* action a client uses (issue 15, findings 1, 7, 9).
//! The provider holds every namespace key, runs the controller (so it can
//! answer anything to any API call), owns the disk and can register
//! actions at the broker under identities of its own. None of that may
//! make a client send its parameters to code its owner did not deploy.

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use clemmys_client::confidential::{ConfidentialError, DeployOptions};
use clemmys_proto::broker::{BrokerOp, BrokerReply, Policy, RegisteredKind};
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::refusal::Refusal;
use clemmys_tee::os_rng;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::common::{Owner, TestServer, pin_and_connect};

/// The provider's controller, as seen by one victim: a proxy in front of
/// the real node that answers `GET /namespaces` with `namespace` and
/// reroutes every invoke of action `action` of the caller's namespace (`_`)
/// to the same name in `namespace`, with `auth`, the provider's key there.
async fn lying_controller(
    upstream: String,
    namespace: &'static str,
    auth: clemmys_whisk::AuthKey,
    action: &'static str,
) -> String {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth.to_string())
    );
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (http, upstream, basic) = (http.clone(), upstream.clone(), basic.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("request body");
            if parts.method == Method::GET && parts.uri.path() == "/api/v1/namespaces" {
                return axum::response::IntoResponse::into_response(axum::Json(json!([namespace])));
            }
            let mut path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let mut headers = parts.headers.clone();
            let victims = format!("/api/v1/namespaces/_/actions/{action}");
            if parts.method == Method::POST && path.starts_with(&victims) {
                path = path.replacen("/namespaces/_/", &format!("/namespaces/{namespace}/"), 1);
                headers.insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&basic).expect("header"),
                );
            }
            let mut forwarded = Request::builder()
                .method(parts.method)
                .uri(format!("{upstream}{path}"));
            for (name, value) in &headers {
                if name != hyper::header::HOST {
                    forwarded = forwarded.header(name, value);
                }
            }
            let response = http
                .request(forwarded.body(Full::new(body)).expect("request"))
                .await
                .expect("upstream answers");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("response body").to_bytes();
            axum::response::Response::from_parts(parts, axum::body::Body::from(body))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Deploys `example` as confidential action `name` of `namespace` under a
/// fresh identity of the provider's, allowing `victim` to invoke it (the
/// victim's client id is in every invocation it sends).
async fn provider_deploys(
    server: &TestServer,
    namespace: &str,
    auth: clemmys_whisk::AuthKey,
    name: &str,
    example: &str,
    victim: clemmys_proto::ClientId,
) -> Owner {
    let client = clemmys_client::Client::new(&server.base, auth).expect("client");
    let provider = server.owner_via(client, namespace).await;
    let options = DeployOptions {
        allowed_clients: vec![victim],
        ..Default::default()
    };
    provider.deploy_with(name, example, &options, true).await;
    provider
}

#[tokio::test]
async fn namespace_named_by_the_controller_is_not_used() {
    let server = TestServer::start().await;
    let evil_auth = server.add_namespace("evil").await;
    // The victim's own action, in its own namespace.
    let victim = server.owner().await;
    victim.deploy("secret", "hello").await;
    // The provider's action of the same name in its own namespace, which
    // echoes whatever parameters it gets.
    provider_deploys(
        &server,
        "evil",
        evil_auth.clone(),
        "secret",
        "echo",
        victim.client.client_id(),
    )
    .await;
    // The victim's client (same identity and home), through the provider's
    // controller, which now names `evil` as the victim's namespace.
    let api_host = lying_controller(server.base.clone(), "evil", evil_auth, "secret").await;
    let via =
        clemmys_client::Client::new(&api_host, server.node().guest_auth.clone()).expect("client");
    let client = pin_and_connect(via, victim.home.path(), "guest").await;
    let victim = Owner {
        client,
        home: victim.home,
    };
    let outcome = victim
        .invoke("secret", json!({"password": "hunter2"}))
        .await;
    match &outcome {
        Ok(opened) => panic!("the provider's code ran on the victim's parameters: {opened:?}"),
        // Sealed for guest/secret, delivered to evil/secret: refused there.
        Err(ConfidentialError::EnclaveRefused {
            refusal: Refusal::WrongAction,
            ..
        }) => {}
        Err(other) => panic!("unexpected error: {other:?}"),
    }
}

#[tokio::test]
async fn action_replaced_by_a_sequence_of_the_providers_action_is_refused() {
    let server = TestServer::start().await;
    let victim = server.owner().await;
    victim.deploy("secret", "hello").await;
    // In the victim's own namespace (the provider holds its key), an action
    // registered under the provider's identity that allows the victim...
    provider_deploys(
        &server,
        "guest",
        server.node().guest_auth.clone(),
        "thief",
        "echo",
        victim.client.client_id(),
    )
    .await;
    // ...and the victim's action replaced by a sequence of it.
    let replaced = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/secret?overwrite=true",
            Some(json!({"exec": {"kind": "sequence", "components": ["/guest/thief"]}})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.json);
    let victim = victim.second_client(&server).await;
    let outcome = victim
        .invoke("secret", json!({"password": "hunter2"}))
        .await;
    assert!(
        matches!(
            &outcome,
            Err(ConfidentialError::Refused(_)
                | ConfidentialError::NotRegistered(_)
                | ConfidentialError::UntrustedOwner { .. }
                | ConfidentialError::ChainPlan(_))
        ),
        "the victim's parameters went to the provider's code: {outcome:?}"
    );
}

/// Registers `name` in `guest` at the broker under `identity`, through the
/// API as any client can.
async fn register_at_broker(
    server: &TestServer,
    owner: &Owner,
    identity: &ClientIdentity,
    name: &str,
) -> BrokerReply {
    let op = BrokerOp::Register {
        namespace: "guest".into(),
        name: name.into(),
        version: 1,
        code_digest: clemmys_proto::Digest::of(b"squatter"),
        policy: Policy {
            allowed_measurements: vec![clemmys_client::confidential::expected_runtime_measurement()],
            require_hardware: false,
            allowed_clients: vec![],
            min_version: 1,
            entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
            kind: RegisteredKind::Action,
            limits: None,
        },
    };
    server
        .ask_broker(identity, &owner.client.pin().keys.kem, op)
        .await
}

#[tokio::test]
async fn name_squatted_at_the_broker_neither_blocks_nor_shadows_the_owner() {
    let server = TestServer::start().await;
    let victim = server.owner().await;
    // The provider registers the name first, under an identity of its own.
    let squatter = ClientIdentity::generate(&mut os_rng());
    let squatted = register_at_broker(&server, &victim, &squatter, "hello").await;
    assert!(matches!(squatted, BrokerReply::Action(_)), "{squatted:?}");
    // The victim can still deploy it, and its client runs its own code.
    victim.deploy("hello", "hello").await;
    let opened = victim
        .invoke("hello", json!({"name": "owner"}))
        .await
        .expect("the owner's action runs");
    assert_eq!(opened.result, json!({"payload": "Hello, owner!"}));
    assert_eq!(
        victim
            .client
            .describe("hello", true)
            .await
            .expect("describe")
            .owner,
        victim.client.client_id()
    );
}

#[tokio::test]
async fn changed_broker_keys_stop_the_client_until_trusted_again() {
    let server = TestServer::start().await;
    let victim = server.owner().await;
    victim.deploy("hello", "hello").await;
    // The provider wipes the broker's sealed state (and, with `sim`, the
    // counter file it holds too): a new broker identity.
    let server = server
        .restart_with(|data_dir| {
            std::fs::remove_file(data_dir.join("broker.redb")).expect("broker state removed");
            let _ = std::fs::remove_file(data_dir.join("broker.counter"));
        })
        .await;
    let home = clemmys_client::confidential::ClientHome::open(victim.home.path()).expect("home");
    let connected =
        clemmys_client::confidential::Confidential::connect(server.api_client(), home).await;
    let Err(ConfidentialError::BrokerChanged { changes, .. }) = connected else {
        panic!("the client accepted a broker it had not pinned");
    };
    assert!(changes.contains("HPKE key"), "{changes}");
}
