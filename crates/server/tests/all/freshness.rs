//! Freshness attacks: the provider replays what it recorded on the wire
//! (to the broker, to a restarted node) or restores old copies of the
//! node's data directory, and each is refused; honest clients go on.

use std::path::Path;

use clemmys_broker::BrokerError;
use clemmys_client::confidential::{Confidential, ConfidentialError};
use clemmys_proto::broker::{BrokerOp, seal_broker_request};
use clemmys_tee::os_rng;
use hyper::StatusCode;
use serde_json::json;

use crate::chains::deliver;
use crate::common::{Owner, TestServer};

#[tokio::test]
async fn replayed_broker_request_is_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let identity = owner.client.home().identity().expect("identity");
    let (sealed, _key) = seal_broker_request(
        &identity,
        &owner.client.pin().keys.kem,
        BrokerOp::Describe {
            owner: identity.id(),
            namespace: "guest".into(),
            name: "echo".into(),
        },
        clemmys_whisk::now_ms(),
        &mut os_rng(),
    )
    .expect("seal");
    let first = server.post_broker_request(&sealed).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json);
    assert!(first.json["reply"].is_string());

    // The provider sends the same bytes again: a second reply under the
    // same reply key would leak the plaintext of both.
    let replay = server.post_broker_request(&sealed).await;
    assert_ne!(replay.status, StatusCode::OK, "{:?}", replay.json);
    assert!(
        replay.json.get("reply").is_none(),
        "a reply was sealed for the replay: {:?}",
        replay.json
    );
}

#[tokio::test]
async fn invoke_replayed_after_a_restart_is_refused_and_honest_clients_go_on() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    // An honest invoke opens a session, which the restart will end.
    owner
        .invoke("echo", json!({"before": true}))
        .await
        .expect("runs before the restart");
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"pay": 100}))
        .await
        .expect("seal");
    let recorded = Confidential::invoke_body(&sealed);
    let first = deliver(&server, "echo", &recorded).await;
    assert_eq!(first["response"]["status"], "success", "{first}");

    let server = server.restart().await;
    let replay = deliver(&server, "echo", &recorded).await;
    assert_eq!(
        replay["response"]["status"], "action developer error",
        "the recorded invoke ran again after the restart: {replay}"
    );
    assert!(
        replay["response"]["result"]["notBeforeMs"].is_u64(),
        "{replay}"
    );

    // The honest client, right after the restart, still gets its answer:
    // it re-stamps at the broker's floor and retries once.
    let opened = owner
        .invoke("echo", json!({"after": true}))
        .await
        .expect("an honest invoke right after the restart succeeds");
    assert_eq!(opened.result, json!({"after": true}));
    // And so does a client that never met the node before the restart.
    let fresh = server.owner().await;
    fresh.deploy("echo2", "echo").await;
    fresh
        .invoke("echo2", json!({"new": true}))
        .await
        .expect("a new client's first invoke after the restart succeeds");
}

/// Copies directory `from` into `to` (created), recursively.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Replaces directory `dir` with the copy `backup`, keeping the files named
/// in `keep` (those that exist) as they are now.
fn restore_dir(backup: &Path, dir: &Path, keep: &[&str]) {
    let kept = tempfile::tempdir().expect("tempdir");
    let keep: Vec<&&str> = keep.iter().filter(|name| dir.join(name).exists()).collect();
    for name in &keep {
        std::fs::copy(dir.join(name), kept.path().join(name)).expect("keep");
    }
    std::fs::remove_dir_all(dir).expect("remove");
    copy_dir(backup, dir);
    for name in &keep {
        std::fs::copy(kept.path().join(name), dir.join(name)).expect("put back");
    }
}

/// The node's data directory copied before `update` redeploys `echo` as
/// another action: the old state the provider keeps.
async fn backup_then_update(server: TestServer, owner: &Owner, backup: &Path) -> TestServer {
    owner.deploy("echo", "echo").await;
    let server = server
        .restart_after(|data| copy_dir(data, backup))
        .await
        .expect("restarts");
    let owner = owner.second_client(&server).await;
    owner.deploy("echo", "hello").await;
    let opened = owner
        .invoke("echo", json!({"name": "x"}))
        .await
        .expect("runs");
    assert_eq!(opened.result, json!({"payload": "Hello, x!"}));
    server
}

#[tokio::test]
async fn rolled_back_broker_state_is_refused_at_start() {
    let backup = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let server = backup_then_update(server, &owner, &backup.path().join("data")).await;
    // The provider restores the whole data directory (but the counter).
    let outcome = server
        .restart_after(|data| restore_dir(&backup.path().join("data"), data, &["broker.counter"]))
        .await;
    let error = outcome.err().expect("the node refuses to start");
    assert!(
        matches!(
            error.downcast_ref::<BrokerError>(),
            Some(BrokerError::RolledBack { .. })
        ),
        "{error:#}"
    );
}

#[tokio::test]
async fn rolled_back_broker_state_and_counter_are_refused_by_the_owners_client() {
    let backup = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let server = backup_then_update(server, &owner, &backup.path().join("data")).await;
    // The provider restores everything, the sim counter file included.
    let server = server
        .restart_after(|data| restore_dir(&backup.path().join("data"), data, &[]))
        .await
        .expect("the sim counter gives no protection: the node starts");
    // The owner's client (a new process, nothing cached but its home)
    // refuses what the rolled-back broker says.
    let client = owner.second_client(&server).await;
    let outcome = client.invoke("echo", json!({"name": "x"})).await;
    assert!(
        matches!(
            outcome,
            Err(ConfidentialError::BrokerRolledBack { .. }
                | ConfidentialError::ActionRolledBack { .. })
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn delegation_replayed_after_its_revocation_and_a_restart_is_refused() {
    use clemmys_proto::broker::BrokerReply;

    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let identity = owner.client.home().identity().expect("identity");
    let broker_kem = owner.client.pin().keys.kem;
    let gateway = server.owner().await;
    let gateway_identity = gateway.client.home().identity().expect("identity");
    // The owner's delegation to the gateway, as the provider records it on
    // its way to the broker.
    let (delegation, _) = seal_broker_request(
        &identity,
        &broker_kem,
        BrokerOp::Delegate {
            gateway: gateway_identity.id(),
            measurement: clemmys_client::confidential::expected_runtime_measurement(),
            expires_ms: clemmys_whisk::now_ms() + 3_600_000,
        },
        clemmys_whisk::now_ms(),
        &mut os_rng(),
    )
    .expect("seal");
    let delegated = server.post_broker_request(&delegation).await;
    assert_eq!(delegated.status, StatusCode::OK, "{:?}", delegated.json);
    assert!(
        matches!(
            describe_for(&server, &broker_kem, &gateway_identity, identity.id()).await,
            BrokerReply::Action(_)
        ),
        "the delegation works before the revocation"
    );
    owner
        .client
        .revoke(gateway_identity.id())
        .await
        .expect("revoked");

    // The provider restarts the node (and its broker) on the same data
    // directory and replays the recorded delegation.
    let server = server.restart().await;
    let _ = server.post_broker_request(&delegation).await;
    let reply = describe_for(&server, &broker_kem, &gateway_identity, identity.id()).await;
    assert!(
        matches!(reply, BrokerReply::Refused { .. }),
        "the revoked gateway acts for the owner again: {reply:?}"
    );
}

/// The broker's answer to `delegate` describing `echo` for `owner`.
async fn describe_for(
    server: &TestServer,
    broker_kem: &clemmys_proto::KemPublicKey,
    delegate: &clemmys_proto::identity::ClientIdentity,
    owner: clemmys_proto::ClientId,
) -> clemmys_proto::broker::BrokerReply {
    let describe = BrokerOp::Describe {
        owner,
        namespace: "guest".into(),
        name: "echo".into(),
    };
    server
        .ask_broker_for(delegate, broker_kem, describe, Some(owner))
        .await
}

#[tokio::test]
async fn a_broker_throttled_by_replays_does_not_make_an_action_read_as_plain() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let identity = owner.client.home().identity().expect("identity");
    let broker_kem = owner.client.pin().keys.kem;
    // The owner's client asks the broker about its actions now and then;
    // the provider records every request (each answered once here).
    let mut recorded = Vec::new();
    for _ in 0..250 {
        let (sealed, _) = seal_broker_request(
            &identity,
            &broker_kem,
            BrokerOp::Describe {
                owner: identity.id(),
                namespace: "guest".into(),
                name: "echo".into(),
            },
            clemmys_whisk::now_ms(),
            &mut os_rng(),
        )
        .expect("seal");
        recorded.push(sealed);
    }
    for sealed in &recorded {
        server.post_broker_request(sealed).await;
        // Within the broker's sustained rate: all of them answered.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // After a restart the provider replays them all, spending the owner's
    // allowance of broker requests, then forwards the CLI's question
    // "is echo confidential?".
    let server = server.restart().await;
    let mut replays = tokio::task::JoinSet::new();
    for chunk in recorded.chunks(recorded.len() / 8) {
        let (api, chunk) = (server.api_client(), chunk.to_vec());
        replays.spawn(async move {
            for sealed in chunk {
                let body = json!({
                    "request": base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        sealed,
                    )
                });
                let _ = api
                    .request(
                        hyper::Method::POST,
                        "/broker/request",
                        Some(body.to_string().into()),
                    )
                    .await;
            }
        });
    }
    replays.join_all().await;
    let owner = owner.second_client(&server).await;
    match owner.client.is_confidential("echo").await {
        Ok(true) => {}
        Ok(false) => panic!("a throttled broker made a confidential action read as plain"),
        Err(error) => assert!(
            !matches!(error, ConfidentialError::NotRegistered(_)),
            "{error}"
        ),
    }
}
