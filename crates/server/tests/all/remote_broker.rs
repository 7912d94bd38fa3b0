//! The key broker as its own process: a node reaches it over HTTPS, and
//! everything confidential works, and stays attack-proof, through it.

use clemmys_client::ClientTlsOptions;
use clemmys_server::broker_node::{BrokerConfig, RunningBroker};
use clemmys_server::{BrokerLocation, CertificateSource, ListenerTls, RunningServer, ServerConfig};
use hyper::Method;
use serde_json::{Value, json};

use crate::common::TestServer;

/// The broker's TLS: a certificate from an authority of its own, kept in
/// its data directory across restarts.
fn broker_tls() -> ListenerTls {
    ListenerTls {
        certificate: CertificateSource::Local {
            extra_names: Vec::new(),
        },
        client_ca: None,
    }
}

/// A broker serving on loopback and a node using it; both processes of
/// one host share the simulated platform key.
async fn node_with_remote_broker() -> (TestServer, RunningBroker, tempfile::TempDir) {
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let platform = broker_dir.path().join("host-platform.key");
    let broker = RunningBroker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: broker_dir.path().join("broker"),
        sim_platform_key: Some(platform.clone()),
        trust_sim_platforms: Vec::new(),
        http: Default::default(),
        tls: Some(broker_tls()),
    })
    .await
    .expect("broker starts");
    let node_dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        node_dir.path().join("data"),
    );
    config.sandbox = clemmys_sandbox::SandboxConfig::with_slots(16);
    config.invoker.concurrency = 16;
    // The link speaks TLS, trusting only the broker's own authority.
    assert!(broker.url().starts_with("https://"), "{}", broker.url());
    config.broker = BrokerLocation::Remote {
        url: broker.url(),
        tls: ClientTlsOptions {
            ca_file: broker.ca_file.clone(),
            ..ClientTlsOptions::default()
        },
    };
    config.sim_platform_key = Some(platform);
    let server = RunningServer::start(config).await.expect("node starts");
    (TestServer::wrap(server, node_dir), broker, broker_dir)
}

#[tokio::test]
async fn confidential_actions_work_through_a_broker_in_its_own_process() {
    let (server, broker, _dir) = node_with_remote_broker().await;
    assert!(server.node().broker.is_none(), "no broker in the node");
    let identity = server
        .call(Method::GET, "/api/v1/broker/identity", None)
        .await;
    assert_eq!(identity.json["tee"], "sim");
    assert!(
        identity.json["warning"]
            .as_str()
            .unwrap_or_default()
            .contains("NO hardware protection")
    );

    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let opened = owner
        .invoke("echo", json!({"via": "remote broker"}))
        .await
        .expect("invoke");
    assert_eq!(opened.result, json!({"via": "remote broker"}));
    let again = owner
        .invoke("echo", json!({"n": 2}))
        .await
        .expect("in a session");
    assert!(again.session.is_some());

    // A replay is still refused: the admission goes to the remote broker.
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"pay": 1}))
        .await
        .expect("seal");
    let body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
    let path = "/api/v1/namespaces/_/actions/echo?blocking=true";
    let first = server.call(Method::POST, path, Some(body.clone())).await;
    assert_eq!(
        first.json["response"]["status"], "success",
        "{:?}",
        first.json
    );
    let replay = server.call(Method::POST, path, Some(body)).await;
    let message = replay.json["response"]["result"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("replayed request"), "{message}");

    // The broker restarts on its address: it forgets the grants it gave,
    // and the enclave asks for its key again.
    let (addr, dir) = (broker.addr, _dir);
    broker.shutdown().await;
    let restarted = RunningBroker::start(BrokerConfig {
        listen: addr,
        data_dir: dir.path().join("broker"),
        sim_platform_key: Some(dir.path().join("host-platform.key")),
        trust_sim_platforms: Vec::new(),
        http: Default::default(),
        tls: Some(broker_tls()),
    })
    .await
    .expect("broker restarts");
    // The node gives its clients the restarted broker's floor, not the one
    // it met when it connected.
    let floor = |document: &Value| {
        document["replayFloorMs"]
            .as_u64()
            .unwrap_or_else(|| panic!("no replay floor: {document}"))
    };
    let restarted_identity = server
        .call(Method::GET, "/api/v1/broker/identity", None)
        .await;
    assert!(
        floor(&restarted_identity.json) > floor(&identity.json),
        "the node serves the floor of the broker before its restart"
    );
    let after = owner
        .invoke("echo", json!({"after": "restart"}))
        .await
        .expect("after the broker restarted");
    assert_eq!(after.result, json!({"after": "restart"}));
    restarted.shutdown().await;
}
