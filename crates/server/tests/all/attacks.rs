//! Attacks on confidential execution: each test plays the untrusted
//! provider (store, controller, invoker host, network) and shows the attack
//! is detected with a clear error and that nothing runs on forged input.

use base64::Engine;
use clemmys_client::confidential::{
    BrokerIdentityDoc, ConfidentialError, DeployOptions, expected_runtime_measurement,
};
use clemmys_proto::broker::{ActionDescriptor, BrokerOp, KeyRequest, Policy, RegisteredKind};
use clemmys_proto::code::{CodeBinding, SealedCode};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::refusal::Refusal;
use clemmys_proto::{ClientId, Digest, Measurement};
use clemmys_tee::sim::SimPlatform;
use clemmys_tee::{AttestError, Role, measurement, os_rng};
use clemmys_whisk::EntityName;
use hyper::Method;
use serde_json::{Value, json};

use crate::common::{Owner, ProviderFront, TestServer, example, expect_tampered};

fn name(text: &str) -> EntityName {
    EntityName::new(text).expect("name")
}

/// The provider rewrites the stored code of `action` with `edit`.
async fn tamper_code(server: &TestServer, action: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let store = &server.node().store;
    let mut code = store
        .get_code(&name("guest"), &name(action))
        .await
        .expect("read")
        .expect("stored");
    edit(&mut code);
    let doc = store
        .get_action(&name("guest"), &name(action))
        .await
        .expect("read")
        .expect("stored");
    store
        .put_action(doc, Some(code), clemmys_store::PutMode::Overwrite)
        .await
        .expect("write");
    // The enclave prewarmed at deploy compiled the genuine code; evicting it
    // (the provider's call) makes the next invoke load what was written.
    server.enclaves().evict("guest", action);
}

fn flip_base64_bit(text: &str, from_end: usize) -> String {
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    let at = bytes.len() - from_end;
    bytes[at] ^= 0x01;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Flips a bit `from_end` base64 characters from the end of the sealed
/// result stored for activation `id`.
async fn flip_stored_result_bit(
    server: &TestServer,
    id: clemmys_whisk::ActivationId,
    from_end: usize,
) {
    server
        .tamper_record(id, |record| {
            let result = record.response.result.as_mut().expect("result");
            let text = result["sealed"].as_str().expect("sealed").to_owned();
            result["sealed"] = json!(flip_base64_bit(&text, from_end));
        })
        .await;
}

/// Asserts the enclave refused the invoke for `refusal`, with a message
/// containing `expected`.
fn refused(
    outcome: Result<clemmys_client::confidential::OpenedActivation, ConfidentialError>,
    refusal: Refusal,
    expected: &str,
) {
    match outcome {
        Err(ConfidentialError::EnclaveRefused {
            refusal: found,
            message,
        }) => {
            assert_eq!(found, refusal, "{message}");
            assert!(
                message.contains("confidential execution refused"),
                "{message}"
            );
            assert!(
                message.contains(expected),
                "expected {expected:?} in {message:?}"
            );
        }
        other => panic!("expected a refusal mentioning {expected:?}, got {other:?}"),
    }
}

/// Posts a raw body as the provider would, answering the activation.
async fn post_sealed(server: &TestServer, action: &str, body: &Value) -> Value {
    let answer = server
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/_/actions/{action}?blocking=true"),
            Some(body.clone()),
        )
        .await;
    answer.json
}

fn refusal_message(record: &Value) -> String {
    assert_eq!(
        record["response"]["status"], "action developer error",
        "{record}"
    );
    record["response"]["result"]["error"]
        .as_str()
        .expect("message")
        .to_owned()
}

#[tokio::test]
async fn flipped_bit_in_sealed_code_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    tamper_code(&server, "hello", |code| {
        let last = code.len() - 1;
        code[last] ^= 1;
    })
    .await;
    refused(
        owner.invoke("hello", json!({})).await,
        Refusal::CodeRejected,
        "does not match the action's policy",
    );
}

#[tokio::test]
async fn flipped_bit_in_sealed_parameters_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"secret": 1}))
        .await
        .expect("seal");
    let mut body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
    // A bit of the ciphertext's tag (the signature is the last 4+64 bytes).
    body["sealed"] = json!(flip_base64_bit(
        body["sealed"].as_str().expect("text"),
        68 + 5
    ));
    let record = post_sealed(&server, "echo", &body).await;
    let message = refusal_message(&record);
    assert!(
        message.contains("signature") || message.contains("failed authentication"),
        "{message}"
    );
    assert!(
        record["response"]["result"].get("sealed").is_none(),
        "nothing ran"
    );
}

#[tokio::test]
async fn flipped_bit_in_sealed_result_is_detected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let opened = owner.invoke("echo", json!({"v": 1})).await.expect("invoke");
    flip_stored_result_bit(&server, opened.activation_id, 1).await;
    let outcome = owner.client.open_activation(opened.activation_id).await;
    assert!(
        matches!(&outcome, Err(ConfidentialError::Tampered(e)) if e.to_string().contains("sealed result")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn flipped_bit_in_sealed_logs_is_detected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let opened = owner.invoke("hello", json!({})).await.expect("invoke");
    server
        .tamper_record(opened.activation_id, |record| {
            let line = record.logs[0]
                .strip_prefix("sealed:")
                .expect("sealed logs")
                .to_owned();
            record.logs[0] = format!("sealed:{}", flip_base64_bit(&line, 3));
        })
        .await;
    let outcome = owner.client.open_activation(opened.activation_id).await;
    assert!(
        matches!(&outcome, Err(ConfidentialError::Tampered(e)) if e.to_string().contains("sealed logs")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn parameters_swapped_between_actions_are_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    owner.deploy("hello", "hello").await;
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"for": "echo"}))
        .await
        .expect("seal");
    let body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
    let record = post_sealed(&server, "hello", &body).await;
    let message = refusal_message(&record);
    assert!(
        message.contains("belong to action guest/echo, not guest/hello"),
        "{message}"
    );
    // The genuine request still works on its own action: nothing consumed it.
    let genuine = post_sealed(&server, "echo", &body).await;
    assert_eq!(genuine["response"]["status"], "success", "{genuine}");
}

#[tokio::test]
async fn results_swapped_between_concurrent_requests_are_detected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let (first, second) = tokio::join!(
        owner.invoke("echo", json!({"who": "first"})),
        owner.invoke("echo", json!({"who": "second"}))
    );
    let (first, second) = (first.expect("first"), second.expect("second"));
    server
        .swap_responses(first.activation_id, second.activation_id)
        .await;
    for id in [first.activation_id, second.activation_id] {
        expect_tampered(&owner.client.open_activation(id).await);
    }
}

#[tokio::test]
async fn replayed_invocation_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"pay": 100}))
        .await
        .expect("seal");
    let body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
    let first = post_sealed(&server, "echo", &body).await;
    assert_eq!(first["response"]["status"], "success");
    let replay = post_sealed(&server, "echo", &body).await;
    let message = refusal_message(&replay);
    assert!(message.contains("replayed request"), "{message}");
}

#[tokio::test]
async fn rolled_back_code_version_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("act", "echo").await;
    let store = &server.node().store;
    let version_one = store
        .get_code(&name("guest"), &name("act"))
        .await
        .expect("read")
        .expect("v1");
    owner.deploy("act", "hello").await;
    // The provider serves the first version's sealed code again.
    tamper_code(&server, "act", |code| *code = version_one.clone()).await;
    refused(
        owner.invoke("act", json!({})).await,
        Refusal::CodeRejected,
        "does not match the action's policy",
    );

    // Nor can it roll the broker back by replaying the first registration.
    let identity = owner.client.home().identity().expect("identity");
    let replayed = BrokerOp::Register {
        namespace: "guest".into(),
        name: "act".into(),
        version: 1,
        code_digest: Digest::of(&example("echo")),
        policy: Policy {
            allowed_measurements: vec![expected_runtime_measurement()],
            require_hardware: false,
            allowed_clients: vec![],
            min_version: 1,
            entry: "_start".into(),
            kind: RegisteredKind::Action,
            limits: None,
        },
    };
    let reply = server
        .ask_broker(&identity, &owner.client.pin().keys.kem, replayed)
        .await;
    assert!(
        matches!(&reply, clemmys_proto::broker::BrokerReply::Refused { reason, .. } if reason.contains("not above the current version")),
        "{reply:?}"
    );
}

/// The `echo` module sealed by the provider to `guest/action`'s public
/// action key under the genuine binding `descriptor` names (version,
/// digest, entry), as the store would hold it.
fn echo_sealed_by_the_provider(action: &str, descriptor: &ActionDescriptor) -> Vec<u8> {
    let binding = CodeBinding {
        namespace: "guest",
        action,
        version: descriptor.version,
        code_digest: descriptor.code_digest,
        entry: &descriptor.policy.entry,
    };
    SealedCode::seal(
        &example("echo"),
        descriptor.owner,
        &descriptor.action_key,
        &binding,
        &mut os_rng(),
    )
    .expect("seal")
    .to_bytes()
}

#[tokio::test]
async fn substituted_code_under_the_same_name_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let descriptor = owner
        .client
        .describe("hello", true)
        .await
        .expect("describe");
    // The action key is public and the provider is assumed to know the
    // genuine digest and version: it seals other code under the genuine binding.
    let evil = echo_sealed_by_the_provider("hello", &descriptor);
    tamper_code(&server, "hello", |code| *code = evil).await;
    refused(
        owner.invoke("hello", json!({"name": "x"})).await,
        Refusal::CodeRejected,
        "its digest is not the policy's",
    );
}

fn key_request(
    evidence: clemmys_proto::Evidence,
    keys: &EnclaveKeys,
    owner: ClientId,
    action: &str,
) -> KeyRequest {
    KeyRequest {
        evidence,
        enclave: keys.public(),
        owner,
        namespace: "guest".into(),
        name: action.into(),
    }
}

#[tokio::test]
async fn forged_or_unsigned_evidence_gets_no_key() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let broker = server.node().broker.as_ref().expect("in-process broker");
    let keys = EnclaveKeys::generate(&mut os_rng());
    let runtime = measurement::expected(Role::ActionRuntime);

    // Signed by a platform key the broker does not trust.
    let stranger = SimPlatform::generate();
    let foreign = stranger.report(runtime.digest(), &keys.public().report_data());
    let error = broker
        .grant(&key_request(
            foreign,
            &keys,
            owner.client.client_id(),
            "hello",
        ))
        .expect_err("refused");
    assert!(
        matches!(
            error,
            clemmys_broker::BrokerError::Attestation(AttestError::UntrustedPlatform(_))
        ),
        "{error}"
    );

    // No signature at all.
    let unsigned = clemmys_proto::Evidence {
        tee: clemmys_proto::TeeKind::Sim,
        data: b"trust me".to_vec(),
    };
    let error = broker
        .grant(&key_request(
            unsigned,
            &keys,
            owner.client.client_id(),
            "hello",
        ))
        .expect_err("refused");
    assert!(
        matches!(
            error,
            clemmys_broker::BrokerError::Attestation(AttestError::Malformed(_))
        ),
        "{error}"
    );

    // Genuine evidence, but presented with other keys than it binds.
    let platform =
        SimPlatform::load_or_create(&server.data_dir.path().join("data/sim-platform.key"))
            .expect("key");
    let genuine = platform.report(runtime.digest(), &keys.public().report_data());
    let thief = EnclaveKeys::generate(&mut os_rng());
    let error = broker
        .grant(&key_request(
            genuine.clone(),
            &thief,
            owner.client.client_id(),
            "hello",
        ))
        .expect_err("refused");
    assert!(
        matches!(
            error,
            clemmys_broker::BrokerError::Attestation(AttestError::KeysNotBound)
        ),
        "{error}"
    );

    // Genuine evidence with one bit of the measurement flipped.
    let mut tampered = genuine;
    let at = tampered.data.len() - 200;
    tampered.data[at] ^= 1;
    assert!(
        broker
            .grant(&key_request(
                tampered,
                &keys,
                owner.client.client_id(),
                "hello"
            ))
            .is_err()
    );
}

#[tokio::test]
async fn evidence_with_a_wrong_measurement_gets_no_key() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    let broker = server.node().broker.as_ref().expect("in-process broker");
    let keys = EnclaveKeys::generate(&mut os_rng());
    let platform =
        SimPlatform::load_or_create(&server.data_dir.path().join("data/sim-platform.key"))
            .expect("key");
    let modified_runtime = Measurement::sim([0x42; 32]);
    let evidence = platform.report(modified_runtime.digest(), &keys.public().report_data());
    let error = broker
        .grant(&key_request(
            evidence,
            &keys,
            owner.client.client_id(),
            "hello",
        ))
        .expect_err("refused");
    assert!(
        matches!(error, clemmys_broker::BrokerError::MeasurementNotAllowed(m) if m == modified_runtime),
        "{error}"
    );
    // The genuine measurement from the same platform is granted: the check is the measurement.
    let evidence = platform.report(
        &measurement::expected_digest(Role::ActionRuntime),
        &keys.public().report_data(),
    );
    assert!(
        broker
            .grant(&key_request(
                evidence,
                &keys,
                owner.client.client_id(),
                "hello"
            ))
            .is_ok()
    );
}

/// The MRENCLAVE of an SGX build of the action runtime that an owner
/// names in a policy or pin (any digest: the provider knows it, it is public).
const SGX_MR_ENCLAVE: [u8; 32] = [0x5a; 32];

#[tokio::test]
async fn sim_evidence_claiming_an_sgx_digest_gets_no_key() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    // The owner allows only an SGX build of the runtime; not requiring
    // hardware on top (the measurement already says SGX).
    let sgx_runtime = Measurement::sgx_dcap(SGX_MR_ENCLAVE);
    let identity = owner.client.home().identity().expect("identity");
    let register = BrokerOp::Register {
        namespace: "guest".into(),
        name: "vault".into(),
        version: 1,
        code_digest: Digest::of(&example("hello")),
        policy: Policy {
            allowed_measurements: vec![sgx_runtime],
            require_hardware: false,
            allowed_clients: vec![],
            min_version: 1,
            entry: "_start".into(),
            kind: RegisteredKind::Action,
            limits: None,
        },
    };
    let reply = server
        .ask_broker(&identity, &owner.client.pin().keys.kem, register)
        .await;
    assert!(
        matches!(reply, clemmys_proto::broker::BrokerReply::Action(_)),
        "{reply:?}"
    );

    // The provider holds the sim platform key and runs a sim enclave that
    // claims the SGX build's digest.
    let broker = server.node().broker.as_ref().expect("in-process broker");
    let keys = EnclaveKeys::generate(&mut os_rng());
    let platform =
        SimPlatform::load_or_create(&server.data_dir.path().join("data/sim-platform.key"))
            .expect("key");
    let evidence = platform.report(&SGX_MR_ENCLAVE, &keys.public().report_data());
    let error = broker
        .grant(&key_request(
            evidence,
            &keys,
            owner.client.client_id(),
            "vault",
        ))
        .expect_err("a sim enclave is no SGX enclave");
    assert!(
        matches!(
            error,
            clemmys_broker::BrokerError::MeasurementOfAnotherTee { presented, named }
                if presented == Measurement::sim(SGX_MR_ENCLAVE) && named == sgx_runtime
        ),
        "{error}"
    );
    assert_eq!(error.refusal(), Refusal::KeyRefused);
}

#[tokio::test]
async fn sim_broker_claiming_a_pinned_sgx_digest_is_not_pinned() {
    let server = TestServer::start().await;
    let client = server.api_client();
    // The provider answers the broker's identity with a sim report, signed
    // by its own platform key, claiming the digest of the SGX broker build
    // the user expects (`clemmys broker trust --expect-measurement
    // sgx-dcap:…`).
    let mut doc = BrokerIdentityDoc::fetch(&client)
        .await
        .expect("broker identity");
    let platform =
        SimPlatform::load_or_create(&server.data_dir.path().join("data/sim-platform.key"))
            .expect("key");
    doc.identity.evidence = platform.report(&SGX_MR_ENCLAVE, &doc.identity.keys.report_data());
    let expected = Measurement::sgx_dcap(SGX_MR_ENCLAVE);
    let error = doc
        .verify(expected, doc.sim_platform_key)
        .expect_err("a sim broker is no SGX broker");
    assert!(
        matches!(
            error,
            ConfidentialError::UnexpectedMeasurement { found, expected: wanted }
                if found == Measurement::sim(SGX_MR_ENCLAVE) && wanted == expected
        ),
        "{error}"
    );
}

#[tokio::test]
async fn sim_enclave_under_a_hardware_only_policy_gets_no_key() {
    let server = TestServer::start().await;
    let owner: Owner = server.owner().await;
    let options = DeployOptions {
        require_hardware: true,
        ..Default::default()
    };
    owner.deploy_with("vault", "hello", &options, false).await;
    let before = server.activation_count().await;
    refused(
        owner.invoke("vault", json!({})).await,
        Refusal::KeyRefused,
        "requires a hardware TEE",
    );
    assert_eq!(
        server.activation_count().await,
        before + 1,
        "one refused record, nothing else"
    );
}

/// The provider keeps the action key an enclave build was granted while
/// the owner's policy allowed it (an old runtime release with a known
/// flaw, say), and reads what is sealed for the versions after the owner
/// dropped that build: the key must not outlive the policy that let it go.
#[tokio::test]
async fn a_key_granted_to_a_build_the_owner_dropped_opens_nothing_sealed_after() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let dropped = Measurement::sim([0x42; 32]);
    let options = DeployOptions {
        extra_measurements: vec![dropped],
        ..Default::default()
    };
    owner.deploy_with("hello", "hello", &options, false).await;
    // The node holds the `sim` platform key: it reports any measurement.
    let broker = server.node().broker.as_ref().expect("in-process broker");
    let platform =
        SimPlatform::load_or_create(&server.data_dir.path().join("data/sim-platform.key"))
            .expect("key");
    let keys = EnclaveKeys::generate(&mut os_rng());
    let request = key_request(
        platform.report(dropped.digest(), &keys.public().report_data()),
        &keys,
        owner.client.client_id(),
        "hello",
    );
    let sealed_grant = broker
        .grant(&request)
        .expect("the first policy allows the build");
    let kept = clemmys_proto::broker::open_grant(
        &sealed_grant,
        &request,
        &keys,
        &broker.identity().keys.signing,
    )
    .expect("the grant opens");

    // The owner's next version allows only this release's runtime.
    owner.deploy("hello", "hello").await;
    let error = broker.grant(&request).expect_err("the build is dropped");
    assert!(
        matches!(error, clemmys_broker::BrokerError::MeasurementNotAllowed(m) if m == dropped),
        "{error}"
    );
    let (sealed, _, descriptor) = owner
        .client
        .seal("hello", &json!({"name": "a secret"}))
        .await
        .expect("seal");
    assert_eq!(descriptor.version, 2);
    assert!(
        sealed
            .open(&kept.action_keys, &descriptor.code_digest)
            .is_err(),
        "the kept key opened parameters sealed for the version that dropped its build"
    );
    // The action still runs under its new key.
    let opened = owner
        .invoke("hello", json!({"name": "x"}))
        .await
        .expect("runs");
    assert_eq!(opened.result["payload"], "Hello, x!");
}

/// Opens a session with `echo` and seals one session request without
/// sending it; answers the body.
async fn session_request(owner: &Owner) -> Value {
    owner.deploy("echo", "echo").await;
    owner
        .invoke("echo", json!({"open": "session"}))
        .await
        .expect("opening invoke");
    let descriptor = owner
        .client
        .describe("echo", false)
        .await
        .expect("describe");
    owner
        .client
        .seal_in_session(&descriptor, &json!({"in": "session"}))
        .expect("sealed in a session")
}

#[tokio::test]
async fn replayed_session_request_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let body = session_request(&owner).await;
    let first = post_sealed(&server, "echo", &body).await;
    assert_eq!(first["response"]["status"], "success", "{first}");
    let message = refusal_message(&post_sealed(&server, "echo", &body).await);
    assert!(message.contains("replayed request"), "{message}");
}

#[tokio::test]
async fn flipped_bit_in_a_session_request_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let mut body = session_request(&owner).await;
    body["sealed"] = json!(flip_base64_bit(body["sealed"].as_str().expect("text"), 3));
    let message = refusal_message(&post_sealed(&server, "echo", &body).await);
    assert!(message.contains("failed authentication"), "{message}");
}

#[tokio::test]
async fn session_request_sent_to_another_action_is_rejected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let body = session_request(&owner).await;
    owner.deploy("hello", "hello").await;
    let message = refusal_message(&post_sealed(&server, "hello", &body).await);
    assert!(message.contains("unknown session"), "{message}");
}

#[tokio::test]
async fn session_request_to_an_enclave_kept_from_an_update_is_rejected() {
    // The provider never provisions the new version (no prewarm) and keeps
    // serving the session from the enclave that holds the old grant, the
    // old code and the session's keys: once the enclave's session lease
    // has run out, the broker, asked to admit the session request, knows
    // the version moved on.
    let server = TestServer::start_with(|config| config.enclave_pool.prewarm = false).await;
    let owner = server.owner().await;
    let body = session_request(&owner).await;
    owner.deploy("echo", "hello").await;
    tokio::time::sleep(clemmys_enclave::SESSION_LEASE).await;
    let message = refusal_message(&post_sealed(&server, "echo", &body).await);
    assert!(
        message.contains("is for version 1 but the action is at version 2"),
        "{message}"
    );
}

#[tokio::test]
async fn revoked_delegates_session_request_on_the_owners_lease_is_refused() {
    // An enclave leases a broker admission to later session requests of
    // the same grant, version and delegate, stamped within a second of the
    // admitted one. The provider delivers a session request of a gateway
    // the owner has just revoked right after the owner's own request was
    // admitted by the broker in the same enclave: the fresh lease is the
    // owner's, not the gateway's, so the broker is asked and refuses.
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    owner
        .invoke("echo", json!({"open": "session"}))
        .await
        .expect("the owner's opening invoke");
    let (gateway, gateway_id) = server.delegated_gateway(&owner).await;
    gateway
        .invoke("echo", json!({"open": "session"}))
        .await
        .expect("the gateway's opening invoke");
    // What the gateway's client holds of echo before the revocation (it
    // asks again a second later, and is then refused).
    let descriptor = gateway
        .client
        .describe("echo", false)
        .await
        .expect("describe");
    // The gateway's own lease lapses; the owner revokes it, then runs
    // echo in its session (admitted by the broker: a fresh lease, the
    // owner's, stamped as the gateway's next request will be).
    tokio::time::sleep(clemmys_enclave::SESSION_LEASE).await;
    owner.client.revoke(gateway_id).await.expect("revoked");
    owner
        .invoke("echo", json!({"owner": "runs"}))
        .await
        .expect("the owner's session request");
    // The revoked gateway, which does not know it yet, goes on.
    let request = gateway
        .client
        .seal_in_session(&descriptor, &json!({"after": "the revocation"}))
        .expect("sealed in the gateway's session");
    let record = post_sealed(&server, "echo", &request).await;
    let message = refusal_message(&record);
    assert_eq!(
        record["response"]["result"]["refusal"], "client_not_allowed",
        "{message}"
    );
}

#[tokio::test]
async fn flipped_bit_in_a_session_answer_is_detected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hello", "hello").await;
    owner
        .invoke("hello", json!({}))
        .await
        .expect("opening invoke");
    let opened = owner
        .invoke("hello", json!({"name": "session"}))
        .await
        .expect("in session");
    assert!(opened.session.is_some(), "a session request");
    // Result and logs are one message: a flip anywhere in it (here near
    // the end, where the logs are) fails the whole answer.
    flip_stored_result_bit(&server, opened.activation_id, 24).await;
    let outcome = owner.client.open_activation(opened.activation_id).await;
    assert!(
        matches!(&outcome, Err(ConfidentialError::Tampered(e)) if e.to_string().contains("sealed result")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn session_answers_swapped_between_requests_are_detected() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    owner
        .invoke("echo", json!({}))
        .await
        .expect("opening invoke");
    let first = owner.invoke("echo", json!({"n": 1})).await.expect("first");
    let second = owner.invoke("echo", json!({"n": 2})).await.expect("second");
    assert!(first.session.is_some() && second.session.is_some());
    server
        .swap_responses(first.activation_id, second.activation_id)
        .await;
    for id in [first.activation_id, second.activation_id] {
        expect_tampered(&owner.client.open_activation(id).await);
    }
}

#[tokio::test]
async fn confidential_action_exported_to_the_web_is_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("sealed", "secret").await;
    // Through the API: the annotation is accepted, the web route refuses.
    let shown = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/actions/sealed?code=false",
            None,
        )
        .await;
    let mut annotations = shown.json["annotations"].clone();
    if let Some(list) = annotations.as_array_mut() {
        list.push(json!({"key": "web-export", "value": true}));
    }
    let updated = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/sealed?overwrite=true",
            Some(json!({ "annotations": annotations })),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json);
    let before = server.activation_count().await;
    let answer = server
        .raw(
            Method::GET,
            "/api/v1/web/guest/default/sealed.json?secret=hello",
            bytes::Bytes::new(),
            None,
        )
        .await;
    assert_eq!(answer.status, 501, "{:?}", answer.json);
    assert_eq!(server.activation_count().await, before, "nothing ran");
}

#[tokio::test]
async fn confidential_action_relabelled_plain_for_the_web_runs_nothing() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("sealed", "secret").await;
    // The provider drops the confidential mark and exports the action.
    let store = &server.node().store;
    let mut doc = store
        .get_action(&name("guest"), &name("sealed"))
        .await
        .expect("read")
        .expect("stored");
    doc.annotations.set("confidential", Value::Bool(false));
    doc.annotations.set("web-export", Value::Bool(true));
    let code = store
        .get_code(&name("guest"), &name("sealed"))
        .await
        .expect("read")
        .expect("stored");
    store
        .put_action(doc, Some(code), clemmys_store::PutMode::Overwrite)
        .await
        .expect("write");
    // A restart empties the controller's cache, as the provider could.
    let server = server.restart().await;
    let answer = server
        .raw(
            Method::GET,
            "/api/v1/web/guest/default/sealed.json?secret=hello",
            bytes::Bytes::new(),
            None,
        )
        .await;
    // The code is sealed: outside an enclave it is not even a module.
    assert_eq!(answer.status, 400, "{:?}", answer.json);
    assert_eq!(
        answer.json["error"],
        "There was an error processing your request."
    );
    assert!(
        !answer.json.to_string().contains("HELLO"),
        "{:?}",
        answer.json
    );
    let id = answer.headers["x-openwhisk-activation-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let record = server.wait_for_activation(&id).await;
    assert_eq!(record["response"]["status"], "action developer error");
    assert!(!record.to_string().contains("HELLO"), "{record}");
}

/// The action's sealed code as the provider stores it.
async fn stored_code(server: &TestServer, action: &str) -> Vec<u8> {
    server
        .node()
        .store
        .get_code(&name("guest"), &name(action))
        .await
        .expect("read")
        .expect("stored")
}

/// `owner` invoking with a fresh signed invocation each time.
fn without_sessions(owner: Owner) -> Owner {
    Owner {
        client: owner.client.without_sessions(),
        home: owner.home,
    }
}

/// Asserts the enclave refused to open the action's code: nothing ran and
/// the client has no result to print.
fn code_refused(
    outcome: &Result<clemmys_client::confidential::OpenedActivation, ConfidentialError>,
) {
    assert!(
        matches!(
            outcome,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::CodeRejected,
                ..
            })
        ),
        "the client took a result: {outcome:?}"
    );
}

#[tokio::test]
async fn default_parameters_swapped_from_another_action_are_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("a", &json!({"secret": "of-a"}), None)
        .await;
    owner
        .deploy_echo_with_defaults("b", &json!({"secret": "of-b"}), None)
        .await;
    let opened = owner.invoke("b", json!({})).await.expect("invoke");
    assert_eq!(opened.result, json!({"secret": "of-b"}));
    // The provider moves a's sealed code, and the defaults in it, onto b.
    let of_a = stored_code(&server, "a").await;
    tamper_code(&server, "b", |code| *code = of_a).await;
    code_refused(&owner.invoke("b", json!({})).await);
    let fresh = without_sessions(owner.second_client(&server).await);
    code_refused(&fresh.invoke("b", json!({})).await);
}

#[tokio::test]
async fn default_parameters_rolled_back_after_an_update_are_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("act", &json!({"secret": "old"}), None)
        .await;
    let version_one = stored_code(&server, "act").await;
    // The owner updates the defaults (same code): version 2.
    owner
        .deploy_echo_with_defaults("act", &json!({"secret": "new"}), None)
        .await;
    let opened = owner.invoke("act", json!({})).await.expect("invoke");
    assert_eq!(opened.result, json!({"secret": "new"}));
    // The provider serves version 1's sealed code and defaults again.
    tamper_code(&server, "act", |code| *code = version_one).await;
    code_refused(&owner.invoke("act", json!({})).await);
    let fresh = without_sessions(owner.second_client(&server).await);
    code_refused(&fresh.invoke("act", json!({})).await);
}

#[tokio::test]
async fn stripped_default_parameters_are_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("act", &json!({"secret": "kept"}), None)
        .await;
    let descriptor = owner.client.describe("act", true).await.expect("describe");
    // The module is public (the provider has it); the action key, the
    // version and the digest are too: it seals the module alone, without
    // the defaults, under the genuine binding.
    let stripped = echo_sealed_by_the_provider("act", &descriptor);
    tamper_code(&server, "act", |code| *code = stripped).await;
    code_refused(&owner.invoke("act", json!({})).await);

    // Nor can it strip them by serving a version that had none.
    owner.deploy("two", "echo").await;
    let without = stored_code(&server, "two").await;
    owner
        .deploy_echo_with_defaults("two", &json!({"secret": "added"}), None)
        .await;
    tamper_code(&server, "two", |code| *code = without).await;
    code_refused(&owner.invoke("two", json!({})).await);
}

/// A header's version is read before anything authenticates it: a caller
/// (the provider with the namespace key, or anyone it lets post) that
/// names a version above the enclave's grant must not make it drop its
/// compiled module, which every other client would then wait for.
#[tokio::test]
async fn a_forged_header_version_does_not_make_the_enclave_recompile() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("warm", "echo").await;
    owner
        .invoke("warm", serde_json::json!({}))
        .await
        .expect("warm");
    assert!(server.enclaves().is_ready("guest", "warm"));
    let stranger = clemmys_proto::identity::ClientIdentity::generate(&mut clemmys_tee::os_rng());
    for nonce in 0..5u8 {
        let header = clemmys_proto::invoke::InvocationHeader {
            namespace: "guest".into(),
            action: "warm".into(),
            version: u64::MAX,
            nonce: [nonce; 16],
            timestamp_ms: clemmys_whisk::now_ms(),
            client: stranger.id(),
            open_session: false,
        };
        let (sealed, _) = clemmys_proto::invoke::seal_invocation(
            &stranger,
            &owner.client.pin().keys.kem,
            header,
            &clemmys_proto::Digest::of(b"whatever"),
            b"{}",
            &mut clemmys_tee::os_rng(),
        )
        .expect("sealed");
        let answer = server
            .call(
                Method::POST,
                "/api/v1/namespaces/_/actions/warm?blocking=true",
                Some(clemmys_client::confidential::Confidential::invoke_body(
                    &sealed,
                )),
            )
            .await;
        assert_ne!(
            answer.json["response"]["status"], "success",
            "{}",
            answer.json
        );
    }
    assert!(
        server.enclaves().is_ready("guest", "warm"),
        "forged versions made the enclave drop its compiled module"
    );
}

/// The provider rewrites the node's record of `action`'s limits through the
/// API, with the namespace key it holds (an update without code keeps the
/// sealed code, as OpenWhisk keeps it).
async fn rewrite_limits(server: &TestServer, action: &str, limits: Value) {
    let answer = server
        .call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{action}?overwrite=true"),
            Some(json!({ "limits": limits })),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.json);
    // The node records what the provider wrote.
    for (key, value) in limits.as_object().expect("limits object") {
        assert_eq!(&answer.json["limits"][key], value, "{}", answer.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_the_provider_lowers_does_not_cut_a_confidential_run() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("slow", "sleep").await;
    rewrite_limits(&server, "slow", json!({ "timeout": 100 })).await;
    let opened = owner
        .invoke("slow", json!({ "ms": 400 }))
        .await
        .expect("a verified answer");
    assert_eq!(
        (opened.status, &opened.result),
        (
            clemmys_whisk::ActivationStatus::Success,
            &json!({ "slept": 400 })
        ),
        "the run was cut at the provider's timeout"
    );
}

/// The memory oracle: a chain step's stop is public, so a provider that
/// chose the memory limit would learn whether a run's memory use (which
/// may depend on secret input) is above a threshold of its choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_the_provider_lowers_does_not_bind_a_confidential_run() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("hog", "memory-hog").await;
    rewrite_limits(&server, "hog", json!({ "memory": 128 })).await;
    let opened = owner
        .invoke("hog", json!({}))
        .await
        .expect("a verified answer");
    let got_mib = memory_hog_got_mib(&opened);
    assert!(
        got_mib > 128,
        "the run got {got_mib} MiB: the provider's 128 MB, not the owner's 256"
    );
}

/// A [`ProviderFront`] that answers the first invokes of `action` with
/// the refusals `forged` holds, in order, in records it writes.
async fn forging_front(
    node: std::net::SocketAddr,
    action: &'static str,
    forged: Vec<Value>,
) -> ProviderFront {
    ProviderFront::rewriting(
        node,
        action,
        Box::new(move |n, status, answer| match forged.get(n) {
            Some(result) => {
                let mut record: Value = serde_json::from_slice(&answer).expect("a record");
                record["response"] = json!({
                    "status": "developer error",
                    "success": false,
                    "result": result,
                });
                (hyper::StatusCode::BAD_GATEWAY, record.to_string().into())
            }
            None => (status, answer),
        }),
    )
    .await
}

async fn runs_of(server: &TestServer, action: &str) -> usize {
    let listed = server
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations?name={action}&limit=200"),
            None,
        )
        .await;
    listed.json.as_array().expect("a list").len()
}

/// The provider runs a client's invoke, keeps the answer and forges a
/// refusal that a fresh request would cure (a restarted broker's floor,
/// then a stale version): each made the client send, and the enclave
/// run, the same parameters again (three runs of one invoke before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_retryable_refusals_run_an_invoke_at_most_twice() {
    let server = TestServer::start().await;
    let floor = || {
        json!({
            "error": "confidential execution refused: stamped before the broker's floor",
            "notBeforeMs": clemmys_whisk::now_ms() + 1_000,
        })
    };
    let stale = json!({
        "error": "confidential execution refused: stale version",
        "refusal": "stale_version",
    });
    let front = forging_front(server.node().addr, "echo", vec![floor(), stale.clone()]).await;
    let owner = server.owner_via(front.client(&server), "guest").await;
    owner.deploy("echo", "echo").await;
    let refused = owner.invoke("echo", json!({"secret": 1})).await;
    assert!(
        matches!(
            refused,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::StaleVersion,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(runs_of(&server, "echo").await, 2, "runs of one invoke");

    // A stale version the broker does not confirm is not retried at all.
    let front = forging_front(server.node().addr, "twin", vec![stale]).await;
    let client = front.client(&server);
    let owner = server.owner_via(client.clone(), "guest").await;
    owner.deploy("twin", "echo").await;
    // Invoked by a client of the same owner that never described it (as
    // each `clemmys action invoke` is): it holds no version to compare.
    let fresh = crate::common::pin_and_connect(client, owner.home.path(), "guest").await;
    let refused = fresh
        .invoke(
            "twin",
            &json!({"secret": 2}),
            clemmys_client::InvokeOptions::blocking(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::StaleVersion,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(runs_of(&server, "twin").await, 1, "runs of one invoke");
}

/// An action registered before limits were bound has none in its policy.
/// The provider lowers the node's record of its memory; the owner's next
/// update with the code, naming no limits, must not bind the provider's
/// value for good (before, the client took the node's record as the
/// limits to keep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_an_action_from_before_bound_limits_does_not_bind_the_providers() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    let identity = clemmys_client::confidential::ClientHome::open(owner.home.path())
        .and_then(|home| home.identity())
        .expect("the owner's identity");
    // The registration as a client from before bound limits made it.
    let registered = server
        .ask_broker(
            &identity,
            &owner.client.pin().keys.kem,
            BrokerOp::Register {
                namespace: "guest".into(),
                name: "hog".into(),
                version: 1,
                code_digest: Digest::of(b"the first version"),
                policy: Policy {
                    allowed_measurements: vec![expected_runtime_measurement()],
                    require_hardware: false,
                    allowed_clients: vec![],
                    min_version: 1,
                    entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                    kind: RegisteredKind::Action,
                    limits: None,
                },
            },
        )
        .await;
    assert!(
        matches!(registered, clemmys_proto::broker::BrokerReply::Action(_)),
        "{registered:?}"
    );
    // The node's record of it (as the provider rewrites it, shown plain),
    // its memory lowered.
    let stored = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/hog",
            Some(json!({
                "exec": {
                    "kind": "wasm",
                    "code": base64::engine::general_purpose::STANDARD.encode(example("memory-hog")),
                },
                "limits": {"memory": 128},
            })),
        )
        .await;
    assert!(stored.status.is_success(), "{}", stored.json);

    owner
        .client
        .deploy(
            "hog",
            &example("memory-hog"),
            Default::default(),
            true,
            &DeployOptions::default(),
        )
        .await
        .expect("the owner's update");
    let opened = owner
        .invoke("hog", json!({}))
        .await
        .expect("a verified answer");
    let got_mib = memory_hog_got_mib(&opened);
    assert!(
        got_mib > 128,
        "the update bound the provider's 128 MB: the run got {got_mib} MiB"
    );
}

/// The provider answers a client's second invoke with the answer to its
/// first (after running the second): the id the client files the second
/// invoke's keys under is then the first's. Opening that activation later
/// must be refused, not done with whichever of the two keys comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_id_answered_twice_is_refused_when_opened() {
    let server = TestServer::start().await;
    let mut first = None;
    let front = ProviderFront::rewriting(
        server.node().addr,
        "echo",
        Box::new(move |n, status, answer| match n {
            0 => {
                first = Some((status, answer.clone()));
                (status, answer)
            }
            _ => first.clone().unwrap_or((status, answer)),
        }),
    )
    .await;
    let owner = without_sessions(server.owner_via(front.client(&server), "guest").await);
    owner.deploy("echo", "echo").await;
    let opened = owner
        .invoke("echo", json!({"first": 1}))
        .await
        .expect("the first invoke");
    let second = owner.invoke("echo", json!({"second": 2})).await;
    assert!(second.is_err(), "{second:?}");
    let reopened = owner.client.open_activation(opened.activation_id).await;
    assert!(
        matches!(reopened, Err(ConfidentialError::ActivationIdReused(_))),
        "{reopened:?}"
    );
}

/// How many MiB `memory-hog` got before its allocator failed, from its
/// opened (sealed) logs.
fn memory_hog_got_mib(opened: &clemmys_client::confidential::OpenedActivation) -> u64 {
    let logs = opened.logs.as_ref().expect("the sealed logs").join("\n");
    logs.split("allocator failed after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("no allocation report in {logs}"))
}

/// Where finding 41 matters most: a chain step's stop is public. The
/// provider lowers the timeout of a chain's first step; the chain must
/// run through under the owner's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_the_provider_lowers_does_not_stop_a_confidential_chain() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("slow", "sleep").await;
    owner.deploy("echo", "echo").await;
    owner.create_sequence("pipe", &["slow", "echo"]).await;
    rewrite_limits(&server, "slow", json!({ "timeout": 100 })).await;
    let opened = owner
        .invoke("pipe", json!({ "ms": 400 }))
        .await
        .expect("a verified answer");
    assert_eq!(
        (opened.status, &opened.result),
        (
            clemmys_whisk::ActivationStatus::Success,
            &json!({ "slept": 400 })
        ),
        "the chain stopped at the provider's timeout"
    );
    assert_eq!(
        opened.chain.as_ref().map(Vec::len),
        Some(2),
        "both steps ran"
    );
}
