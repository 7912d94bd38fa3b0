//! Confidential chains (sequences of confidential actions). The functional
//! tests run them through the real API; the attack tests play the
//! orchestrator: they deliver sealed hops to the wrong steps, twice, out of
//! order, splice values between chains and rewrite records, and show every
//! attack is detected and that no step runs on forged input.

use base64::Engine;
use clemmys_client::confidential::KeyringEntry;
use clemmys_proto::wire::{Reader, Writer};
use clemmys_whisk::{ActivationId, ActivationStatus};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Owner, TestServer, annotation, expect_tampered};

/// A node with confidential actions `greet` (hello), `echo`, `fail`, `shout`
/// (secret) and a pinned owner.
pub(crate) async fn setup() -> (TestServer, Owner) {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    for (name, example) in [
        ("greet", "hello"),
        ("echo", "echo"),
        ("fail", "fail"),
        ("shout", "secret"),
    ] {
        owner.deploy(name, example).await;
    }
    (server, owner)
}

/// Creates confidential sequence `name`, its plan signed by `owner`.
pub(crate) async fn create(owner: &Owner, name: &str, components: &[&str]) {
    owner.create_sequence(name, components).await;
}

/// Posts a sealed body to `action` (a step or a sequence) as the
/// orchestrator would; answers the record.
pub(crate) async fn deliver(server: &TestServer, action: &str, body: &Value) -> Value {
    server
        .call(
            Method::POST,
            &format!("/api/v1/namespaces/_/actions/{action}?blocking=true"),
            Some(body.clone()),
        )
        .await
        .json
}

pub(crate) fn refusal(record: &Value) -> String {
    assert_eq!(
        record["response"]["status"], "action developer error",
        "{record}"
    );
    assert!(
        record["response"]["result"].get("sealed").is_none(),
        "nothing ran: {record}"
    );
    record["response"]["result"]["error"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// The sealed value a component record passes on (the next step's input).
pub(crate) fn passed_on(record: &Value) -> Value {
    json!({ "sealed": record["response"]["result"]["sealed"].clone() })
}

#[tokio::test]
async fn a_confidential_chain_returns_the_last_result_with_every_receipt() {
    let (server, owner) = setup().await;
    create(&owner, "pipeline", &["echo", "shout", "echo"]).await;
    let action = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/pipeline", None)
        .await;
    assert_eq!(
        annotation(&action.json, "confidential"),
        Some(&json!(true)),
        "confidential because its steps are"
    );

    let opened = owner
        .invoke("pipeline", json!({"secret": "turtle"}))
        .await
        .expect("chain");
    assert_eq!(opened.status, ActivationStatus::Success);
    assert_eq!(opened.result, json!({"shout": "TURTLE"}));
    let receipts = opened.chain.expect("chain receipts");
    let names: Vec<&str> = receipts.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(names, ["echo", "shout", "echo"]);

    // The orchestrator only ever held ciphertext.
    let record = server.record(&opened.activation_id.to_string()).await;
    for step in component_records(&server, &record).await {
        assert!(
            !step.to_string().contains("turtle") && !step.to_string().contains("TURTLE"),
            "{step}"
        );
    }
    assert!(!record.to_string().contains("TURTLE"));
}

#[tokio::test]
async fn a_failing_step_stops_the_chain_and_the_client_learns_why() {
    let (_server, owner) = setup().await;
    create(&owner, "broken", &["echo", "fail", "greet"]).await;
    let opened = owner
        .invoke("broken", json!({}))
        .await
        .expect("chain answer");
    assert_eq!(opened.status, ActivationStatus::ApplicationError);
    assert_eq!(opened.result, json!({"error": "this action always fails"}));
    assert_eq!(opened.chain.map(|r| r.len()), Some(2), "greet never ran");
}

#[tokio::test]
async fn mixing_plain_and_confidential_steps_is_refused() {
    let (server, _owner) = setup().await;
    server.create("plain", "echo").await;
    let mixed = server.create_sequence("mixed", &["echo", "plain"]).await;
    assert_eq!(mixed.status, StatusCode::BAD_REQUEST);
    assert!(
        mixed.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot mix")
    );
}

/// Delivers a sealed run (`body`, and the keyring `entry` to read its
/// answer) to sequence `name` as the client would, remembering its key;
/// answers the sequence record.
pub(crate) async fn run_through(
    server: &TestServer,
    owner: &Owner,
    name: &str,
    (body, mut entry): (Value, KeyringEntry),
) -> Value {
    let record = deliver(server, name, &body).await;
    entry.activation_id = record["activationId"].as_str().expect("id").to_owned();
    entry.action = name.into();
    owner.client.home().remember(&entry).expect("remember");
    record
}

/// The records of a sequence record's components, in order.
pub(crate) async fn component_records(server: &TestServer, record: &Value) -> Vec<Value> {
    let mut steps = Vec::new();
    for id in record["logs"].as_array().expect("component ids") {
        steps.push(server.record(id.as_str().expect("id")).await);
    }
    steps
}

/// The activation id of a record.
pub(crate) fn activation_id(record: &Value) -> ActivationId {
    record["activationId"]
        .as_str()
        .expect("id")
        .parse()
        .expect("an activation id")
}

/// The orchestrator reports the first step's (middle) output as the
/// chain's result in its sequence record; the client must detect it.
pub(crate) async fn expect_truncation_detected(
    server: &TestServer,
    owner: &Owner,
    record: &Value,
    steps: &[Value],
) {
    let id = activation_id(record);
    let middle = passed_on(&steps[0]);
    server
        .tamper_record(id, |record| {
            record.response.result = Some(middle);
            record.logs.truncate(1);
        })
        .await;
    expect_tampered(&owner.client.open_activation(id).await);
}

/// Runs a two-step chain echo → greet and returns the client's first hop
/// body, the sequence record and the records of its two components.
async fn run_pair(server: &TestServer, owner: &Owner) -> (Value, Value, Vec<Value>) {
    create(owner, "pair", &["echo", "greet"]).await;
    let components = vec!["/guest/echo".to_owned(), "/guest/greet".to_owned()];
    let (body, entry) = owner
        .client
        .seal_chain(&components, &json!({"name": "Ada"}))
        .await
        .expect("seal");
    let record = run_through(server, owner, "pair", (body.clone(), entry)).await;
    assert_eq!(record["response"]["status"], "success", "{record}");
    let steps = component_records(server, &record).await;
    (body, record, steps)
}

#[tokio::test]
async fn chain_step_reordered_is_rejected() {
    let (server, owner) = setup().await;
    let (first_hop, _, _) = run_pair(&server, &owner).await;
    create(&owner, "shuffled", &["greet", "echo"]).await;
    // The orchestrator runs greet first on the input sealed for echo.
    let message = refusal(&deliver(&server, "greet", &first_hop).await);
    assert!(message.contains("failed authentication"), "{message}");
}

#[tokio::test]
async fn chain_step_skipped_is_rejected() {
    let (server, owner) = setup().await;
    create(&owner, "three", &["echo", "echo", "greet"]).await;
    let components: Vec<String> = ["echo", "echo", "greet"]
        .iter()
        .map(|c| format!("/guest/{c}"))
        .collect();
    let (body, _) = owner
        .client
        .seal_chain(&components, &json!({"name": "Ada"}))
        .await
        .expect("seal");
    // Step 0 runs; its output (for step 1, echo) is given to step 2 (greet).
    let step0 = deliver(&server, "echo", &body).await;
    assert_eq!(step0["response"]["status"], "success", "{step0}");
    let message = refusal(&deliver(&server, "greet", &passed_on(&step0)).await);
    assert!(message.contains("failed authentication"), "{message}");
}

#[tokio::test]
async fn chain_step_injected_is_rejected() {
    let (server, owner) = setup().await;
    let (_, _, steps) = run_pair(&server, &owner).await;
    // The output of echo (for greet) is fed to an action the ticket never named.
    let message = refusal(&deliver(&server, "shout", &passed_on(&steps[0])).await);
    assert!(message.contains("failed authentication"), "{message}");
    // Even with the same code as the named step, another action is refused:
    // it has its own key, and the ticket names greet at index 1.
    owner.deploy("greet2", "hello").await;
    let message = refusal(&deliver(&server, "greet2", &passed_on(&steps[0])).await);
    assert!(message.contains("failed authentication"), "{message}");
}

#[tokio::test]
async fn chain_step_input_delivered_twice_is_rejected() {
    let (server, owner) = setup().await;
    let (_, _, steps) = run_pair(&server, &owner).await;
    // greet already ran on this input within the chain: a second delivery is refused.
    let message = refusal(&deliver(&server, "greet", &passed_on(&steps[0])).await);
    assert!(message.contains("replayed"), "{message}");
}

#[tokio::test]
async fn replayed_whole_chain_is_rejected() {
    let (server, owner) = setup().await;
    let (first_hop, _, _) = run_pair(&server, &owner).await;
    expect_replay_refused(&server, "pair", &first_hop).await;
}

/// Delivers a run's first hop to `sequence` again, as a provider replaying
/// the whole run, and checks its first step refused it, so nothing ran.
pub(crate) async fn expect_replay_refused(server: &TestServer, sequence: &str, first_hop: &Value) {
    let replay = deliver(server, sequence, first_hop).await;
    let message = refusal(&replay);
    assert!(message.contains("replayed"), "{message}");
    assert_eq!(
        replay["logs"].as_array().map(Vec::len),
        Some(1),
        "the first step refused; nothing else ran"
    );
}

#[tokio::test]
async fn truncated_chain_reported_as_final_is_detected() {
    let (server, owner) = setup().await;
    let (_, record, steps) = run_pair(&server, &owner).await;
    expect_truncation_detected(&server, &owner, &record, &steps).await;
}

#[tokio::test]
async fn chain_values_spliced_between_concurrent_chains_are_detected() {
    let (server, owner) = setup().await;
    create(&owner, "pair", &["echo", "greet"]).await;
    let (first, second) = tokio::join!(
        owner.invoke("pair", json!({"name": "first"})),
        owner.invoke("pair", json!({"name": "second"}))
    );
    let (first, second) = (first.expect("first"), second.expect("second"));
    assert_eq!(first.result, json!({"payload": "Hello, first!"}));
    assert_eq!(second.result, json!({"payload": "Hello, second!"}));
    // The orchestrator splices: each chain's record gets the other's value.
    server
        .swap_responses(first.activation_id, second.activation_id)
        .await;
    for id in [first.activation_id, second.activation_id] {
        expect_tampered(&owner.client.open_activation(id).await);
    }
}

/// A first-run hop as the orchestrator sees it: the public frame
/// `clemmys/chain-hop/v2` (chain id, index, the link's encapsulated key,
/// ciphertext, MAC), parsed from and rebuilt into a step's input.
#[derive(Clone)]
pub(crate) struct HopFrame {
    pub(crate) chain_id: [u8; 16],
    pub(crate) index: u64,
    pub(crate) link: [u8; 32],
    pub(crate) ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

const HOP_FRAME: &str = "clemmys/chain-hop/v2";

impl HopFrame {
    pub(crate) fn of(input: &Value) -> Self {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(input["sealed"].as_str().expect("a sealed hop"))
            .expect("base64");
        let mut reader = Reader::new(&bytes, HOP_FRAME).expect("a first-run hop");
        Self {
            chain_id: reader.array().expect("chain id"),
            index: reader.u64().expect("index"),
            link: reader.array().expect("link"),
            ciphertext: reader.bytes().expect("ciphertext").to_vec(),
            tag: reader.bytes().expect("mac").to_vec(),
        }
    }

    pub(crate) fn input(&self) -> Value {
        let bytes = Writer::new(HOP_FRAME)
            .bytes(&self.chain_id)
            .u64(self.index)
            .bytes(&self.link)
            .bytes(&self.ciphertext)
            .bytes(&self.tag)
            .finish();
        json!({ "sealed": base64::engine::general_purpose::STANDARD.encode(bytes) })
    }
}

/// An enclave seals the hops of every chain it forwards to the same next
/// step over one link for a while. The orchestrator holds two chains' hops
/// into greet over that link and moves one's ciphertext into the other's
/// frame (and the other way round): no hop key of the link opens it, and
/// the genuine hops still run once each.
#[tokio::test]
async fn a_hop_moved_to_another_chain_over_the_same_link_is_refused() {
    let (server, owner) = setup().await;
    create(&owner, "pair", &["echo", "greet"]).await;
    let components = vec!["/guest/echo".to_owned(), "/guest/greet".to_owned()];
    let mut hops = Vec::new();
    for name in ["first", "second"] {
        let (body, _) = owner
            .client
            .seal_chain(&components, &json!({ "name": name }))
            .await
            .expect("seal");
        let step0 = deliver(&server, "echo", &body).await;
        assert_eq!(step0["response"]["status"], "success", "{step0}");
        hops.push(HopFrame::of(&passed_on(&step0)));
    }
    let (first, second) = (&hops[0], &hops[1]);
    assert_ne!(first.chain_id, second.chain_id);
    assert_eq!(
        first.link, second.link,
        "echo's enclave sealed both hops over one link to greet"
    );
    for (frame, ciphertext) in [(first, &second.ciphertext), (second, &first.ciphertext)] {
        let spliced = HopFrame {
            ciphertext: ciphertext.clone(),
            ..frame.clone()
        };
        let message = refusal(&deliver(&server, "greet", &spliced.input()).await);
        assert!(message.contains("failed authentication"), "{message}");
    }
    for hop in [first, second] {
        let record = deliver(&server, "greet", &hop.input()).await;
        assert_eq!(record["response"]["status"], "success", "{record}");
        let message = refusal(&deliver(&server, "greet", &hop.input()).await);
        assert!(message.contains("replayed"), "{message}");
    }
}

#[tokio::test]
async fn component_code_substituted_between_ticket_and_execution_is_rejected() {
    let (server, owner) = setup().await;
    create(&owner, "pair", &["echo", "greet"]).await;
    let components = vec!["/guest/echo".to_owned(), "/guest/greet".to_owned()];
    let (body, _) = owner
        .client
        .seal_chain(&components, &json!({"name": "Ada"}))
        .await
        .expect("seal");
    // After the ticket was signed, greet's code changes (here: a new version).
    owner.deploy("greet", "echo").await;
    let record = deliver(&server, "pair", &body).await;
    let message = refusal(&record);
    assert!(message.contains("version"), "{message}");
    assert_eq!(
        record["logs"].as_array().map(Vec::len),
        Some(2),
        "echo ran, greet refused"
    );
}
