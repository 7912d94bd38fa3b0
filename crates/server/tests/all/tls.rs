//! A node serving HTTPS: with a certificate from an authority of its own or
//! from files, plain and confidential actions work through it, clients
//! that do not trust it are refused, and one that asks for client
//! certificates refuses clients without one.

use std::time::Duration;

use clemmys_client::{ClientError, ClientTlsOptions};
use clemmys_server::{CertificateSource, ListenerTls};
use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::TestServer;

/// A node with a certificate from the authority it makes in its data
/// directory.
async fn tls_node() -> TestServer {
    TestServer::start_with(|config| {
        config.tls = Some(ListenerTls {
            certificate: CertificateSource::Local {
                extra_names: Vec::new(),
            },
            client_ca: None,
        });
    })
    .await
}

#[tokio::test]
async fn plain_and_confidential_actions_work_over_tls() {
    let server = tls_node().await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let ca_file = server
        .node()
        .ca_file
        .clone()
        .expect("the node made an authority");
    assert!(ca_file.ends_with("tls/ca.pem"), "{}", ca_file.display());
    // The node's own wskprops says where the API is and whom to trust.
    let props =
        std::fs::read_to_string(server.data_dir.path().join("data/wskprops")).expect("wskprops");
    assert!(
        props.contains(&format!("APIHOST={}", server.base)),
        "{props}"
    );
    assert!(
        props.contains(&format!("CACERT={}", ca_file.display())),
        "{props}"
    );
    // Actions learn the https:// API host.
    server.create("hello", "hello").await;
    let answer = server.invoke("hello", json!({"name": "TLS"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(answer.json["response"]["result"]["payload"], "Hello, TLS!");

    // The typed client, from a properties file like the node's.
    let props = clemmys_client::WskProps::load_from(&server.data_dir.path().join("data/wskprops"))
        .expect("load");
    let client = clemmys_client::Client::from_props(&props).expect("client");
    let namespaces = client.list_namespaces().await.expect("over TLS");
    assert_eq!(namespaces, ["guest"]);

    // Confidential: sealing, the broker's attestation and receipts, through
    // the same TLS listener.
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let opened = owner
        .invoke("echo", json!({"secret": "over tls"}))
        .await
        .expect("confidential invoke over TLS");
    assert_eq!(opened.result, json!({"secret": "over tls"}));
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_node_is_refused() {
    let server = tls_node().await;
    let key = server.node().guest_auth.clone();
    // Trusting the system's authorities only (or none at all): the node's
    // own authority is not among them.
    let another = tempfile::tempdir().expect("dir");
    let stranger = clemmys_tls::ensure_local_certificate(another.path(), &["localhost".into()])
        .expect("another authority");
    let client = clemmys_client::Client::with_tls(
        &server.base,
        key.clone(),
        &ClientTlsOptions {
            ca_file: Some(stranger.ca_path),
            ..ClientTlsOptions::default()
        },
    )
    .expect("client");
    let error = client.list_namespaces().await.expect_err("untrusted");
    match &error {
        ClientError::TlsHandshake { reason, .. } => {
            assert!(reason.contains("UnknownIssuer"), "{reason}");
        }
        other => panic!("not a TLS failure: {other:?}"),
    }
    assert!(error.to_string().contains("--cacert"), "{error}");

    // `-i` skips the check, as `wsk -i` does.
    let insecure = clemmys_client::Client::with_tls(
        &server.base,
        key.clone(),
        &ClientTlsOptions {
            insecure: true,
            ..ClientTlsOptions::default()
        },
    )
    .expect("client");
    assert_eq!(
        insecure.list_namespaces().await.expect("insecure"),
        ["guest"]
    );

    // The node is still serving those that trust it.
    let answer = server.call(Method::GET, "/api/v1/namespaces", None).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn plain_http_to_a_tls_port_gets_no_answer_and_breaks_nothing() {
    let server = tls_node().await;
    let mut stream = tokio::net::TcpStream::connect(server.node().addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /api/v1 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    // rustls answers a plain request with a TLS alert, never with HTTP, and
    // closes (or resets) the connection.
    let _read_or_reset =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the node closes the connection");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let ok = server.call(Method::GET, "/api/v1", None).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_node_asking_for_client_certificates_refuses_clients_without_one() {
    // The operator's files: a server certificate, and an authority whose
    // certificates clients must present. Both are made here with the same
    // helper a node uses for itself.
    let files = tempfile::tempdir().expect("dir");
    let server_files =
        clemmys_tls::ensure_local_certificate(&files.path().join("server"), &["127.0.0.1".into()])
            .expect("server certificate");
    let client_files = clemmys_tls::ensure_local_certificate(
        &files.path().join("clients"),
        &["client.example".into()],
    )
    .expect("client certificate");
    let server = TestServer::start_with(|config| {
        config.tls = Some(ListenerTls {
            certificate: CertificateSource::Files {
                cert: server_files.cert_path.clone(),
                key: server_files.key_path.clone(),
            },
            client_ca: Some(client_files.ca_path.clone()),
        });
    })
    .await;
    assert!(
        server.node().ca_file.is_none(),
        "the operator's certificate"
    );
    let key = server.node().guest_auth.clone();
    let trust = ClientTlsOptions {
        ca_file: Some(server_files.ca_path.clone()),
        ..ClientTlsOptions::default()
    };
    let anonymous =
        clemmys_client::Client::with_tls(&server.base, key.clone(), &trust).expect("client");
    let error = anonymous
        .list_namespaces()
        .await
        .expect_err("no client certificate");
    assert!(
        matches!(error, ClientError::TlsHandshake { .. }),
        "{error:?}"
    );

    // The `--cert`/`--key` pair, issued by the authority the node names.
    let identified = clemmys_client::Client::with_tls(
        &server.base,
        key,
        &ClientTlsOptions {
            identity: Some((
                client_files.cert_path.clone(),
                client_files.key_path.clone(),
            )),
            ..trust
        },
    )
    .expect("client");
    let outcome = identified.list_namespaces().await;
    assert_eq!(outcome.expect("with a client certificate"), ["guest"]);
}
