//! A forked key broker: the provider copies the broker's data directory,
//! starts a second broker on the copy, and routes an enclave's admission
//! requests to one or the other (the link between them is the provider's
//! network). Each broker admits a chain step once, so together they admit
//! it twice, and the step's enclave runs twice. With the `sim` TEE nothing
//! stops the fork (the counter that refuses an older copy is a file the
//! provider holds; docs/THREAT-MODEL.md); what must hold anyway is that
//! the enclave never seals two messages under one key and nonce, or the
//! XOR of the two ciphertexts is the XOR of the two plaintexts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use clemmys_broker::MAX_CLOCK_SKEW_MS;
use clemmys_server::broker_node::{BrokerConfig, RunningBroker};
use clemmys_server::{BrokerLocation, RunningServer, ServerConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::chains::{HopFrame, deliver, passed_on, refusal};
use crate::common::TestServer;
use crate::freshness::copy_dir;

/// The provider's network between the node and its broker: a TCP relay
/// that sends new connections to whichever broker it is told.
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepting: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let target = Arc::new(Mutex::new(target));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepting = tokio::spawn({
            let (target, connections) = (target.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let to = *target.lock().unwrap_or_else(PoisonError::into_inner);
                    let relaying = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(to).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(relaying);
                }
            }
        });
        Self {
            addr,
            target,
            connections,
            accepting,
        }
    }

    /// Sends every later connection to `target`, and cuts the open ones
    /// (the node's client then connects again, through to `target`).
    async fn switch_to(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = target;
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            connection.abort();
        }
        // Lets the node's pooled connections see the cut before the next
        // request.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The provider's network between a client and the node: a TCP relay
/// that keeps a copy of everything the client sends.
struct Wire {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    accepting: JoinHandle<()>,
}

impl Wire {
    async fn start(node: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let accepting = tokio::spawn({
            let sent = sent.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let Ok(outbound) = TcpStream::connect(node).await else {
                        continue;
                    };
                    let sent = sent.clone();
                    tokio::spawn(async move {
                        let (mut from_client, mut to_client) = inbound.into_split();
                        let (mut from_node, mut to_node) = outbound.into_split();
                        let upstream = async {
                            let mut buffer = [0u8; 16 * 1024];
                            while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
                                sent.lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .extend_from_slice(&buffer[..read]);
                                if to_node.write_all(&buffer[..read]).await.is_err() {
                                    break;
                                }
                            }
                            let _ = to_node.shutdown().await;
                        };
                        // Closed by the node (an idle keep-alive connection):
                        // closed for the client too.
                        let downstream = async {
                            let _ = tokio::io::copy(&mut from_node, &mut to_client).await;
                            let _ = to_client.shutdown().await;
                        };
                        let _ = tokio::join!(upstream, downstream);
                    });
                }
            }
        });
        Self {
            addr,
            sent,
            accepting,
        }
    }

    /// The sealed bodies (`{"sealed":"…"}`) the client sent so far, in order.
    fn sealed_bodies(&self) -> Vec<Value> {
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&sent);
        text.split("{\"sealed\":\"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"'))
            .map(|(sealed, _)| json!({ "sealed": sealed }))
            .collect()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn start_broker(data_dir: std::path::PathBuf, platform: &std::path::Path) -> RunningBroker {
    RunningBroker::start(BrokerConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir,
        sim_platform_key: Some(platform.to_owned()),
        trust_sim_platforms: Vec::new(),
        http: Default::default(),
        tls: None,
    })
    .await
    .expect("broker starts")
}

/// A node (16 sandbox slots) whose enclaves reach their broker at
/// `broker_url` (a relay or recorder the test controls), on the simulated
/// platform whose key is at `platform`.
async fn node_behind(broker_url: String, platform: &std::path::Path) -> TestServer {
    let node_dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        node_dir.path().join("data"),
    );
    config.sandbox = clemmys_sandbox::SandboxConfig::with_slots(16);
    config.broker = BrokerLocation::Remote {
        url: broker_url,
        tls: Default::default(),
    };
    config.sim_platform_key = Some(platform.to_owned());
    TestServer::wrap(
        RunningServer::start(config).await.expect("node starts"),
        node_dir,
    )
}

/// The longest run of positions where `a` and `b` hold the same byte. Two
/// ciphertexts under one key and nonce are equal wherever their plaintexts
/// are (the XOR of the keystream cancels), so sealed messages with a
/// common beginning show it as a long run; under independent keystreams a
/// byte matches by chance once in 256.
fn longest_equal_run(a: &[u8], b: &[u8]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for (x, y) in a.iter().zip(b) {
        run = if x == y { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

fn sealed_bytes(record: &Value) -> Vec<u8> {
    let sealed = record["response"]["result"]["sealed"]
        .as_str()
        .unwrap_or_else(|| panic!("a sealed result: {record}"));
    base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .expect("base64")
}

/// A node whose broker link goes through a [`Relay`] to broker A, an owner
/// with confidential `echo` and `greet` and sequence `pair` of them, and
/// broker B on a copy of A's directory taken then (the fork). The owner's
/// client has met B's replay floor (a broker refuses what is stamped
/// before its start plus the allowed clock skew: the provider lets the
/// client meet B first, B refuses its invoke naming that floor, and the
/// client stamps at it from then on, which A, whose skew reaches as far
/// ahead, accepts too). The relay points at A again.
struct Forked {
    server: TestServer,
    owner: crate::common::Owner,
    /// Between the owner's client and the node.
    wire: Wire,
    relay: Relay,
    broker_a: RunningBroker,
    broker_b: RunningBroker,
    /// When broker B started: it refuses what is stamped before this plus
    /// the allowed clock skew.
    b_started: std::time::Instant,
    _dir: tempfile::TempDir,
}

impl Forked {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let platform = dir.path().join("host-platform.key");
        let broker_a = start_broker(dir.path().join("broker-a"), &platform).await;
        let relay = Relay::start(broker_a.addr).await;
        let server = node_behind(format!("http://{}", relay.addr), &platform).await;
        let wire = Wire::start(server.node().addr).await;
        let client = clemmys_client::Client::with_tls(
            &format!("http://{}", wire.addr),
            server.node().guest_auth.clone(),
            &Default::default(),
        )
        .expect("client");
        let owner = server.owner_via(client, "guest").await;
        owner.deploy("echo", "echo").await;
        owner.deploy("twin", "echo").await;
        owner.deploy("greet", "hello").await;
        owner.create_sequence("pair", &["echo", "greet"]).await;

        copy_dir(&dir.path().join("broker-a"), &dir.path().join("broker-b"));
        let b_started = std::time::Instant::now();
        let broker_b = start_broker(dir.path().join("broker-b"), &platform).await;
        relay.switch_to(broker_b.addr).await;
        owner
            .invoke("echo", json!({}))
            .await
            .expect("an invoke re-stamped at B's floor");
        relay.switch_to(broker_a.addr).await;
        Self {
            server,
            owner,
            wire,
            relay,
            broker_a,
            broker_b,
            b_started,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.broker_b.shutdown().await;
        self.broker_a.shutdown().await;
    }
}

/// One chain's first hop goes to `echo` twice (admitted by A, then by B),
/// and its second hop to `greet` twice: each enclave runs twice and seals
/// the next hop, or the chain's answer, twice. No two of those may share
/// a keystream.
#[tokio::test]
async fn a_step_run_twice_through_a_forked_broker_never_reuses_a_key_and_nonce() {
    let forked = Forked::start().await;
    let (server, owner, relay) = (&forked.server, &forked.owner, &forked.relay);
    let components = vec!["/guest/echo".to_owned(), "/guest/greet".to_owned()];
    let (first_hop, _) = owner
        .client
        .seal_chain(&components, &json!({ "name": "fork" }))
        .await
        .expect("seal");
    let echo_a = deliver(server, "echo", &first_hop).await;
    assert_eq!(echo_a["response"]["status"], "success", "{echo_a}");
    let second_hop = passed_on(&echo_a);
    let greet_a = deliver(server, "greet", &second_hop).await;
    assert_eq!(greet_a["response"]["status"], "success", "{greet_a}");

    relay.switch_to(forked.broker_b.addr).await;
    let echo_b = deliver(server, "echo", &first_hop).await;
    assert_eq!(
        echo_b["response"]["status"], "success",
        "broker B admits the step A admitted: the fork worked: {echo_b}"
    );
    let greet_b = deliver(server, "greet", &second_hop).await;
    assert_eq!(greet_b["response"]["status"], "success", "{greet_b}");

    let (hop_a, hop_b) = (HopFrame::of(&second_hop), HopFrame::of(&passed_on(&echo_b)));
    assert_eq!(
        (hop_a.chain_id, hop_a.index, hop_a.link),
        (hop_b.chain_id, hop_b.index, hop_b.link),
        "echo's enclave sealed hop 1 of one chain twice, over the same link"
    );
    for (what, a, b) in [
        ("hop 1", hop_a.ciphertext, hop_b.ciphertext),
        ("the answer", sealed_bytes(&greet_a), sealed_bytes(&greet_b)),
    ] {
        let run = longest_equal_run(&a, &b);
        assert!(
            run < 16,
            "{what}, sealed twice, shares a keystream: {run} equal bytes in a row"
        );
    }
    forked.stop().await;
}

/// In a chain session a step seals a run's hop under the session's key
/// with the run counter as the AES-GCM nonce. A run admitted by A and then
/// by B reaches `echo` twice: the second time it must be refused by the
/// step itself, or it would seal under the same key and nonce again (which
/// under GCM also gives away the authentication key). Also when the
/// provider first delivers the chain's first-run hop again through B,
/// which would open the step's part of the chain session again.
#[tokio::test]
async fn a_chain_session_run_admitted_by_a_forked_broker_is_refused_by_the_step() {
    let forked = Forked::start().await;
    let (server, owner) = (&forked.server, &forked.owner);
    let already = forked.wire.sealed_bodies().len();
    let first = owner
        .invoke("pair", json!({ "name": "first" }))
        .await
        .expect("the first run opens a chain session");
    assert_eq!(first.result, json!({ "payload": "Hello, first!" }));
    let sent = forked.wire.sealed_bodies();
    let [first_hop] = &sent[already..] else {
        panic!(
            "one first-run hop on the wire, not {}",
            sent.len() - already
        );
    };
    let (run, _) = owner
        .client
        .seal_in_chain_session("pair", &json!({ "name": "Ada" }))
        .expect("the first run opened a session")
        .expect("sealed");
    let through_a = deliver(server, "echo", &run).await;
    assert_eq!(through_a["response"]["status"], "success", "{through_a}");

    forked.relay.switch_to(forked.broker_b.addr).await;
    // The first run's hop again, which B admits too: echo runs it again
    // (a forked broker gets that), but keeps the chain session it holds.
    let again = deliver(server, "echo", first_hop).await;
    assert_eq!(again["response"]["status"], "success", "{again}");
    let message = refusal(&deliver(server, "echo", &run).await);
    assert!(message.contains("replayed"), "{message}");
    forked.stop().await;
}

/// A session: the owner's client opens one with an HPKE invocation of
/// `twin`, then sends a request in it; the provider keeps both off the
/// wire. Through broker B it delivers the opening invocation again (the
/// enclave opens the session again) and then the request: each broker
/// admits each once, so the enclave runs the request twice. Its two
/// answers must not share a keystream (before: the same session keys and
/// the counter as AES-GCM nonce, which also gives away GCM's
/// authentication key). And the session the client kept must go on.
#[tokio::test]
async fn a_session_opened_again_through_a_forked_broker_never_reuses_a_key_and_nonce() {
    let forked = Forked::start().await;
    let (server, owner) = (&forked.server, &forked.owner);
    let already = forked.wire.sealed_bodies().len();
    let opening = owner
        .invoke("twin", json!({ "secret": "opening" }))
        .await
        .expect("the opening invoke");
    assert_eq!(opening.result, json!({ "secret": "opening" }));
    // A session request is stamped with the client's clock, not at a
    // floor: the provider waits until B's floor has passed.
    let floor_passed = forked.b_started + Duration::from_millis(MAX_CLOCK_SKEW_MS + 1_000);
    tokio::time::sleep_until(floor_passed.into()).await;
    let request = owner
        .invoke("twin", json!({ "secret": "in the session" }))
        .await
        .expect("a request in the session");
    let sent = forked.wire.sealed_bodies();
    let [opening_body, request_body] = &sent[already..] else {
        panic!(
            "two sealed bodies on the wire, not {}",
            sent.len() - already
        );
    };
    let genuine = server
        .activation_records()
        .await
        .as_array()
        .and_then(|records| {
            records
                .iter()
                .find(|record| record["activationId"] == request.activation_id.to_string())
                .cloned()
        })
        .expect("the request's record");

    forked.relay.switch_to(forked.broker_b.addr).await;
    let reopened = deliver(server, "twin", opening_body).await;
    assert_eq!(reopened["response"]["status"], "success", "{reopened}");
    let replayed = deliver(server, "twin", request_body).await;
    if replayed["response"]["status"] == "success" {
        let run = longest_equal_run(&sealed_bytes(&genuine), &sealed_bytes(&replayed));
        assert!(
            run < 16,
            "the request's answer, sealed twice, shares a keystream: {run} equal bytes in a row"
        );
    } else {
        refusal(&replayed);
        assert_ne!(
            replayed["response"]["result"]["refusal"], "stamped_before_floor",
            "the replay reached the enclave: {replayed}"
        );
    }
    // The session opened again sits beside the client's, which goes on.
    let after = owner
        .invoke("twin", json!({ "secret": "after" }))
        .await
        .expect("the client's session goes on");
    assert!(
        after.session.is_some(),
        "a request in the session: {after:?}"
    );
    assert_eq!(after.result, json!({ "secret": "after" }));
    forked.stop().await;
}

/// The host names the enclave's owner (the owner field of the stored
/// sealed code is clear), and a broker that forgot a grant makes the
/// enclave ask for its action's grant again, for that owner. A provider
/// that registers the owner's action name under an identity P of its own
/// and delegates P to an identity Q, points the warm enclave at P, and
/// then forks the broker (so that the grant the enclave holds is unknown)
/// would have Q's request, sealed to the owner's key and not allowed by
/// the owner's policy, admitted under P's registration and run with the
/// owner's code and sealed defaults: Q reads them.
#[tokio::test]
async fn a_host_that_switches_an_enclaves_owner_gets_no_run_admitted_under_another_registration() {
    use clemmys_proto::broker::{BrokerOp, BrokerReply, RegisteredKind};
    use clemmys_proto::code::{CodeBinding, DEFAULT_ENTRY, SealedCode};
    use clemmys_proto::identity::ClientIdentity;

    let dir = tempfile::tempdir().expect("tempdir");
    let platform = dir.path().join("host-platform.key");
    let broker_a = start_broker(dir.path().join("broker-a"), &platform).await;
    let relay = Relay::start(broker_a.addr).await;
    let server = node_behind(format!("http://{}", relay.addr), &platform).await;
    let owner = server.owner().await;
    owner
        .deploy_echo_with_defaults("vault", &json!({"token": "OWNER-SECRET"}), None)
        .await;
    let warm = owner
        .invoke("vault", json!({}))
        .await
        .expect("the owner runs it");
    assert_eq!(warm.result["token"], "OWNER-SECRET");

    // The provider's identities: P registers the name (squatting is
    // allowed, keyed by owner) at the owner's version and delegates to Q,
    // which the owner's policy does not allow. What a client once allowed
    // knew of the owner's action (its public key, version and code
    // digest), the provider knows too.
    let known = owner
        .client
        .describe("vault", false)
        .await
        .expect("described");
    let p = ClientIdentity::generate(&mut clemmys_tee::os_rng());
    let q = ClientIdentity::generate(&mut clemmys_tee::os_rng());
    let broker_kem = owner.client.pin().keys.kem;
    let registered = server
        .ask_broker(
            &p,
            &broker_kem,
            BrokerOp::Register {
                namespace: "guest".into(),
                name: "vault".into(),
                version: known.version,
                code_digest: clemmys_proto::Digest::of(b"provider"),
                policy: clemmys_proto::broker::Policy {
                    allowed_measurements: vec![
                        clemmys_client::confidential::expected_runtime_measurement(),
                    ],
                    require_hardware: false,
                    allowed_clients: vec![],
                    min_version: 1,
                    entry: DEFAULT_ENTRY.into(),
                    kind: RegisteredKind::Action,
                    limits: None,
                },
            },
        )
        .await;
    let BrokerReply::Action(p_vault) = registered else {
        panic!("P's registration: {registered:?}");
    };
    let delegated = server
        .ask_broker(
            &p,
            &broker_kem,
            BrokerOp::Delegate {
                gateway: q.id(),
                measurement: clemmys_client::confidential::expected_runtime_measurement(),
                expires_ms: clemmys_whisk::now_ms() + 600_000,
            },
        )
        .await;
    assert!(
        !matches!(delegated, BrokerReply::Refused { .. }),
        "{delegated:?}"
    );

    // Code naming P as its owner in the store, and a prewarm: the warm
    // enclave reads its owner from it.
    let binding = CodeBinding {
        namespace: "guest",
        action: "vault",
        version: 1,
        code_digest: clemmys_proto::Digest::of(b"provider"),
        entry: DEFAULT_ENTRY,
    };
    let p_code = SealedCode::seal(
        b"provider",
        p.id(),
        &p_vault.action_key,
        &binding,
        &mut clemmys_tee::os_rng(),
    )
    .expect("sealed");
    let store = &server.node().store;
    let name = |text: &str| clemmys_whisk::EntityName::new(text).expect("name");
    let doc = store
        .get_action(&name("guest"), &name("vault"))
        .await
        .expect("read")
        .expect("stored");
    store
        .put_action(
            doc,
            Some(p_code.to_bytes()),
            clemmys_store::PutMode::Overwrite,
        )
        .await
        .expect("write");
    let enclaves = server.enclaves().clone();
    let _ = tokio::task::spawn_blocking(move || enclaves.prewarm("guest", "vault"))
        .await
        .expect("prewarm thread");

    // The fork: broker B on a copy of A's state knows no grant A made.
    copy_dir(&dir.path().join("broker-a"), &dir.path().join("broker-b"));
    let broker_b = start_broker(dir.path().join("broker-b"), &platform).await;
    relay.switch_to(broker_b.addr).await;
    // Q's request, sealed to the owner's key for the owner's code and
    // stamped at B's floor (B started just now).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let header = clemmys_proto::invoke::InvocationHeader {
        namespace: "guest".into(),
        action: "vault".into(),
        version: known.version,
        nonce: [7; 16],
        timestamp_ms: clemmys_whisk::now_ms() + MAX_CLOCK_SKEW_MS - 1,
        client: q.id(),
        open_session: false,
    };
    let (sealed, pending) = clemmys_proto::invoke::seal_invocation(
        &q,
        &known.action_key,
        header,
        &known.code_digest,
        b"{}",
        &mut clemmys_tee::os_rng(),
    )
    .expect("sealed");
    let answer = server
        .call(
            hyper::Method::POST,
            "/api/v1/namespaces/_/actions/vault?blocking=true",
            Some(clemmys_client::confidential::Confidential::invoke_body(
                &sealed,
            )),
        )
        .await;
    let record = answer.json;
    let opened = record["response"]["result"]["sealed"]
        .as_str()
        .and_then(|sealed| {
            base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .ok()
        })
        .and_then(|sealed| {
            clemmys_proto::invoke::open_result(
                &sealed,
                &pending.keys,
                record["activationId"].as_str()?,
                &pending.nonce,
            )
            .ok()
        });
    assert!(
        opened.is_none(),
        "a client the owner never allowed ran the owner's code: {:?}",
        opened.map(|body| body.result)
    );
    assert_ne!(record["response"]["status"], "success", "{record}");
    broker_b.shutdown().await;
    broker_a.shutdown().await;
}

/// The provider replaces the key broker with a fresh one (its keys
/// change, so the client stops until its user trusts a broker again) and
/// has the user re-pin: the new broker knows none of the owner's actions.
/// A client that took "not registered" for "plain" would then send the
/// action's parameters, or its new code, in the clear; one that has seen
/// the action before knows the broker forgot it.
#[tokio::test]
async fn a_replaced_broker_that_forgot_an_action_does_not_make_it_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = dir.path().join("host-platform.key");
    let broker_a = start_broker(dir.path().join("broker-a"), &platform).await;
    let relay = Relay::start(broker_a.addr).await;
    let server = node_behind(format!("http://{}", relay.addr), &platform).await;
    let owner = server.owner().await;
    owner.deploy("vault", "echo").await;
    owner
        .invoke("vault", json!({"secret": 1}))
        .await
        .expect("the owner runs it");

    let broker_c = start_broker(dir.path().join("broker-c"), &platform).await;
    relay.switch_to(broker_c.addr).await;
    // The node, restarted, shows the new broker's identity.
    let relay_url = format!("http://{}", relay.addr);
    let server = server
        .restart_configured(
            |_| {},
            |config| {
                config.broker = BrokerLocation::Remote {
                    url: relay_url,
                    tls: Default::default(),
                };
                config.sim_platform_key = Some(platform.clone());
            },
        )
        .await
        .expect("the node restarts");
    // The user trusts the broker it is shown again.
    let repinned =
        crate::common::pin_and_connect(server.api_client(), owner.home.path(), "guest").await;
    // The new broker's state version passes the client's mark (the
    // provider registers names of its own there).
    let provider = clemmys_proto::identity::ClientIdentity::generate(&mut clemmys_tee::os_rng());
    for n in 0..20 {
        server
            .ask_broker(
                &provider,
                &repinned.pin().keys.kem,
                clemmys_proto::broker::BrokerOp::Register {
                    namespace: "guest".into(),
                    name: format!("filler{n}"),
                    version: 1,
                    code_digest: clemmys_proto::Digest::of(b"filler"),
                    policy: clemmys_proto::broker::Policy {
                        allowed_measurements: vec![
                            clemmys_client::confidential::expected_runtime_measurement(),
                        ],
                        require_hardware: false,
                        allowed_clients: vec![],
                        min_version: 1,
                        entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                        kind: clemmys_proto::broker::RegisteredKind::Action,
                        limits: None,
                    },
                },
            )
            .await;
    }
    let asked = repinned.is_confidential("vault").await;
    assert!(
        !matches!(asked, Ok(false)),
        "the client took the owner's action for a plain one"
    );
    assert!(
        matches!(
            asked,
            Err(clemmys_client::confidential::ConfidentialError::ActionForgotten { .. })
        ),
        "{asked:?}"
    );
    broker_c.shutdown().await;
    broker_a.shutdown().await;
}

/// The provider's network between the node and its broker, at the HTTP
/// level: forwards everything to the broker, keeping each admission
/// request's body with the broker's answer, and once told to, answers an
/// admission request it has seen before from what it kept, without asking
/// the broker.
struct AdmitRecorder {
    addr: SocketAddr,
    replaying: Arc<std::sync::atomic::AtomicBool>,
    /// Answers the next admission request `unknown grant` itself (what a
    /// broker that restarted says, in the clear).
    forget_next: Arc<std::sync::atomic::AtomicBool>,
    /// Holds the broker's answer to the next admission request back until
    /// `release` is notified; `holding` is notified once it has it.
    hold_next: Arc<std::sync::atomic::AtomicBool>,
    holding: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
    serving: JoinHandle<()>,
}

/// Admission request bodies and the broker's status and body for each.
type Recorded = Arc<Mutex<std::collections::HashMap<Vec<u8>, (u16, Vec<u8>)>>>;

impl AdmitRecorder {
    async fn start(broker: SocketAddr) -> Self {
        use http_body_util::{BodyExt as _, Full};
        let recorded = Recorded::default();
        let replaying = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forget_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hold_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (holding, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let handler = {
            let (recorded, replaying, forget_next) =
                (recorded.clone(), replaying.clone(), forget_next.clone());
            let (hold_next, holding, release) =
                (hold_next.clone(), holding.clone(), release.clone());
            move |request: axum::extract::Request| {
                let (recorded, replaying, forget_next, http) = (
                    recorded.clone(),
                    replaying.clone(),
                    forget_next.clone(),
                    http.clone(),
                );
                let (hold_next, holding, release) =
                    (hold_next.clone(), holding.clone(), release.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.expect("body").to_bytes().to_vec();
                    let path = parts.uri.path().to_owned();
                    let admission = path.ends_with("/admit");
                    if admission && forget_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
                        return axum::response::Response::builder()
                            .status(404)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(
                                "{\"error\":\"unknown grant\",\"kind\":\"unknown-grant\"}",
                            ))
                            .expect("response");
                    }
                    let kept = recorded
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&body)
                        .cloned();
                    if admission
                        && replaying.load(std::sync::atomic::Ordering::SeqCst)
                        && let Some((status, answer)) = kept
                    {
                        return axum::response::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(answer))
                            .expect("response");
                    }
                    let forwarded = hyper::Request::builder()
                        .method(parts.method)
                        .uri(format!("http://{broker}{}", parts.uri))
                        .header("content-type", "application/json")
                        .body(Full::new(bytes::Bytes::from(body.clone())))
                        .expect("request");
                    let Ok(response) = http.request(forwarded).await else {
                        return axum::response::Response::builder()
                            .status(502)
                            .body(axum::body::Body::from("{\"error\":\"unreachable\"}"))
                            .expect("response");
                    };
                    let status = response.status().as_u16();
                    let answer = response
                        .into_body()
                        .collect()
                        .await
                        .expect("answer")
                        .to_bytes()
                        .to_vec();
                    if admission {
                        recorded
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(body, (status, answer.clone()));
                        if hold_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            holding.notify_one();
                            release.notified().await;
                        }
                    }
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(answer))
                        .expect("response")
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            replaying,
            forget_next,
            hold_next,
            holding,
            release,
            serving,
        }
    }
}

impl Drop for AdmitRecorder {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// The provider records the broker's answer to an enclave's admission of
/// a client's request, then delivers the same request to the same warm
/// enclave again and answers its admission from the recording, with the
/// broker shut down: the enclave must not run the request twice. Before
/// the enclave drew a challenge for each admission, everything in the
/// request was what the provider sees, so the same input made the same
/// request and the recorded answer admitted it again, as often as asked.
#[tokio::test]
async fn a_recorded_admission_answer_admits_nothing_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = dir.path().join("host-platform.key");
    let broker = start_broker(dir.path().join("broker"), &platform).await;
    let recorder = AdmitRecorder::start(broker.addr).await;
    let server = node_behind(format!("http://{}", recorder.addr), &platform).await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let (sealed, _, _) = owner
        .client
        .seal("echo", &json!({"run": "once"}))
        .await
        .expect("sealed");
    let body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
    let path = "/api/v1/namespaces/_/actions/echo?blocking=true";
    let first = server
        .call(hyper::Method::POST, path, Some(body.clone()))
        .await;
    assert_eq!(
        first.json["response"]["status"], "success",
        "{}",
        first.json
    );

    recorder
        .replaying
        .store(true, std::sync::atomic::Ordering::SeqCst);
    broker.shutdown().await;
    for _ in 0..3 {
        let again = server
            .call(hyper::Method::POST, path, Some(body.clone()))
            .await;
        assert_ne!(
            again.json["response"]["status"], "success",
            "the enclave ran a request again on a recorded admission: {}",
            again.json
        );
    }
}

/// "Unknown grant" is the host's word, not the broker's: answered to a
/// warm enclave's admission, it must not make the enclave drop the module
/// it compiled (every client would wait for a recompile, as often as the
/// provider says it).
#[tokio::test]
async fn a_forged_unknown_grant_keeps_the_compiled_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = dir.path().join("host-platform.key");
    let broker = start_broker(dir.path().join("broker"), &platform).await;
    let recorder = AdmitRecorder::start(broker.addr).await;
    let server = node_behind(format!("http://{}", recorder.addr), &platform).await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    // Invocations without sessions, each admitted by the broker.
    let invoke_once = async || {
        let (sealed, _, _) = owner.client.seal("echo", &json!({})).await.expect("sealed");
        let body = clemmys_client::confidential::Confidential::invoke_body(&sealed);
        let answer = server
            .call(
                hyper::Method::POST,
                "/api/v1/namespaces/_/actions/echo?blocking=true",
                Some(body),
            )
            .await;
        assert_eq!(
            answer.json["response"]["status"], "success",
            "{}",
            answer.json
        );
    };
    invoke_once().await;
    assert!(server.enclaves().is_ready("guest", "echo"));
    for _ in 0..3 {
        recorder
            .forget_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        invoke_once().await;
        assert!(
            server.enclaves().is_ready("guest", "echo"),
            "a forged unknown-grant answer made the enclave drop its module"
        );
    }
    broker.shutdown().await;
}

/// The provider holds back the broker's answer admitting a gateway's
/// session request until after the owner revoked the gateway, then
/// delivers the gateway's next requests of the session: the late answer
/// must lease nothing to them. Before, a lease ran for a second from when
/// the answer came, so they ran for the revoked gateway (and, held answers
/// released one after another, a lease each, without bound).
#[tokio::test]
async fn a_held_admission_answer_leases_nothing_after_a_revocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = dir.path().join("host-platform.key");
    let broker = start_broker(dir.path().join("broker"), &platform).await;
    let recorder = AdmitRecorder::start(broker.addr).await;
    let server = node_behind(format!("http://{}", recorder.addr), &platform).await;
    let owner = server.owner().await;
    owner.deploy("echo", "echo").await;
    let (gateway, gateway_id) = server.delegated_gateway(&owner).await;
    gateway
        .invoke("echo", json!({"open": "session"}))
        .await
        .expect("the gateway's opening invoke");
    // The lease of the opening admission lapses.
    tokio::time::sleep(clemmys_enclave::SESSION_LEASE).await;
    let descriptor = gateway
        .client
        .describe("echo", false)
        .await
        .expect("describe");
    let requests: Vec<Value> = (0..3)
        .map(|n| {
            gateway
                .client
                .seal_in_session(&descriptor, &json!({ "request": n }))
                .expect("sealed in the gateway's session")
        })
        .collect();
    let post = |request: &Value| {
        server.call(
            hyper::Method::POST,
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            Some(request.clone()),
        )
    };

    recorder
        .hold_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = post(&requests[0]);
    let released = async {
        recorder.holding.notified().await;
        owner
            .client
            .revoke(gateway_id)
            .await
            .expect("revoked while the answer is held");
        tokio::time::sleep(2 * clemmys_enclave::SESSION_LEASE).await;
        recorder.release.notify_one();
    };
    let (first, ()) = tokio::join!(first, released);
    assert_eq!(
        first.json["response"]["status"], "success",
        "admitted before the revocation: {}",
        first.json
    );
    for request in &requests[1..] {
        let record = post(request).await.json;
        assert_eq!(
            record["response"]["result"]["refusal"], "client_not_allowed",
            "{record}"
        );
    }
    broker.shutdown().await;
}
