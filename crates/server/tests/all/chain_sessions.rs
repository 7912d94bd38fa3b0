//! Chain sessions: a client that ran a confidential sequence once runs it
//! again with the keys that first run established (no public-key operation
//! per hop, MAC receipts). The functional tests show later runs really take
//! that path and verify; the attack tests play the orchestrator against
//! session runs as `chains` does against first runs, and show each attack
//! is detected and that no step runs on forged input.

use base64::Engine;
use clemmys_client::confidential::KeyringEntry;
use clemmys_proto::chain_session::SessionHop;
use clemmys_proto::inbound::SealedInput;
use clemmys_whisk::ActivationStatus;
use serde_json::{Value, json};

use crate::chains::{
    activation_id, component_records, create, deliver, expect_replay_refused,
    expect_truncation_detected, passed_on, refusal, run_through, setup,
};
use crate::common::{Owner, TestServer, expect_tampered};

fn hop_bytes(body: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(body["sealed"].as_str().expect("sealed"))
        .expect("base64")
}

/// `body`'s session hop with its clear header rewritten by `forge`.
fn rewritten(body: &Value, forge: impl FnOnce(&mut SessionHop)) -> Value {
    let mut hop = SessionHop::from_bytes(&hop_bytes(body)).expect("a session hop");
    forge(&mut hop);
    json!({ "sealed": base64::engine::general_purpose::STANDARD.encode(hop.to_bytes()) })
}

/// Creates sequence `name` of `components` and runs it once, which opens
/// the owner's chain session with it.
async fn open_session(owner: &Owner, name: &str, components: &[&str]) {
    create(owner, name, components).await;
    let first = owner
        .invoke(name, json!({"name": "first", "secret": "first"}))
        .await
        .expect("first run");
    assert_eq!(
        first.status,
        ActivationStatus::Success,
        "{:?}",
        first.result
    );
}

/// The next session run of `name`, sealed but not sent.
fn session_run(owner: &Owner, name: &str, params: Value) -> (Value, KeyringEntry) {
    owner
        .client
        .seal_in_chain_session(name, &params)
        .expect("the first run opened a session")
        .expect("sealed")
}

/// Seals the next session run of `name` and runs it through the sequence.
async fn next_run(server: &TestServer, owner: &Owner, name: &str, params: Value) -> Value {
    run_through(server, owner, name, session_run(owner, name, params)).await
}

#[tokio::test]
async fn a_chain_run_again_runs_in_its_session_and_verifies() {
    let (server, owner) = setup().await;
    open_session(&owner, "pipeline", &["echo", "shout", "echo"]).await;

    let again = owner
        .invoke("pipeline", json!({"secret": "turtle"}))
        .await
        .expect("second run");
    assert_eq!(again.status, ActivationStatus::Success);
    assert_eq!(again.result, json!({"shout": "TURTLE"}));
    let receipts = again.chain.clone().expect("chain receipts");
    let names: Vec<&str> = receipts.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(names, ["echo", "shout", "echo"]);

    // It really ran in the session: the values between steps are session
    // hops, not HPKE hops, and the component records name the receipts.
    let record = server.record(&again.activation_id.to_string()).await;
    let steps = component_records(&server, &record).await;
    for step in &steps[..2] {
        assert!(is_session_hop(&hop_bytes(&passed_on(step))), "{step}");
    }
    for (receipt, step) in receipts.iter().zip(&steps) {
        assert_eq!(
            receipt.activation_id,
            step["activationId"].as_str().expect("id")
        );
    }
    assert!(!record.to_string().contains("TURTLE"));

    // Read back later from the keyring, it opens and verifies the same.
    let reopened = owner
        .client
        .open_activation(again.activation_id)
        .await
        .expect("reopened");
    assert_eq!(reopened.result, again.result);
    assert_eq!(reopened.chain, again.chain);
}

#[tokio::test]
async fn a_step_updated_after_the_session_opened_is_refused_and_the_client_starts_over() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let stale = session_run(&owner, "pair", json!({"name": "Ada"}));
    // The provider serves greet's new version to a run sealed for the old one.
    owner.deploy("greet", "echo").await;
    let record = run_through(&server, &owner, "pair", stale).await;
    let message = refusal(&record);
    assert!(message.contains("version"), "{message}");
    assert_eq!(
        record["logs"].as_array().map(Vec::len),
        Some(2),
        "echo ran, greet refused"
    );
    // The owner's next invoke is refused the same way, ends the session and
    // runs the chain afresh on the current code.
    let fresh = owner
        .invoke("pair", json!({"name": "Ada"}))
        .await
        .expect("a fresh first run");
    assert_eq!(fresh.result, json!({"name": "Ada"}), "greet now echoes");
}

#[tokio::test]
async fn chain_session_step_reordered_or_skipped_is_rejected() {
    let (server, owner) = setup().await;
    open_session(&owner, "three", &["echo", "echo", "greet"]).await;
    let (body, _) = session_run(&owner, "three", json!({"name": "Ada"}));
    let step0 = deliver(&server, "echo", &body).await;
    assert_eq!(step0["response"]["status"], "success", "{step0}");
    let for_step1 = passed_on(&step0);
    // Step 1's input given to greet (step 2): greet holds no key for index 1.
    let message = refusal(&deliver(&server, "greet", &for_step1).await);
    assert!(message.contains("unknown session"), "{message}");
    // Relabelled as index 2 it finds greet's key, which it was not sealed under.
    let skipped = rewritten(&for_step1, |hop| hop.header.index = 2);
    let message = refusal(&deliver(&server, "greet", &skipped).await);
    assert!(message.contains("failed authentication"), "{message}");
    // Step 0's input relabelled for step 1 (the same action): another key.
    let reordered = rewritten(&body, |hop| hop.header.index = 1);
    let message = refusal(&deliver(&server, "echo", &reordered).await);
    assert!(message.contains("failed authentication"), "{message}");
}

#[tokio::test]
async fn chain_session_step_injected_is_rejected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let (body, _) = session_run(&owner, "pair", json!({"name": "Ada"}));
    let step0 = deliver(&server, "echo", &body).await;
    // echo's output fed to an action that is no step of this chain.
    let message = refusal(&deliver(&server, "shout", &passed_on(&step0)).await);
    assert!(message.contains("unknown session"), "{message}");
}

#[tokio::test]
async fn chain_session_input_delivered_twice_is_rejected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let record = next_run(&server, &owner, "pair", json!({"name": "Ada"})).await;
    assert_eq!(record["response"]["status"], "success", "{record}");
    let steps = component_records(&server, &record).await;
    let message = refusal(&deliver(&server, "greet", &passed_on(&steps[0])).await);
    assert!(message.contains("replayed"), "{message}");
}

#[tokio::test]
async fn replayed_chain_session_run_is_rejected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let (body, entry) = session_run(&owner, "pair", json!({"name": "Ada"}));
    let first = run_through(&server, &owner, "pair", (body.clone(), entry)).await;
    assert_eq!(first["response"]["status"], "success", "{first}");
    expect_replay_refused(&server, "pair", &body).await;
}

#[tokio::test]
async fn chain_session_values_spliced_between_runs_are_detected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let (a, _) = session_run(&owner, "pair", json!({"name": "a"}));
    let (b, _) = session_run(&owner, "pair", json!({"name": "b"}));
    let b_counter = SessionHop::from_bytes(&hop_bytes(&b))
        .expect("hop")
        .header
        .counter;
    let a0 = deliver(&server, "echo", &a).await;
    assert_eq!(a0["response"]["status"], "success", "{a0}");
    // Run a's value handed to greet as run b's.
    let spliced = rewritten(&passed_on(&a0), |hop| hop.header.counter = b_counter);
    let message = refusal(&deliver(&server, "greet", &spliced).await);
    assert!(message.contains("failed authentication"), "{message}");

    // Two whole runs, then each record made to carry the other's answer.
    let first = next_run(&server, &owner, "pair", json!({"name": "first"})).await;
    let second = next_run(&server, &owner, "pair", json!({"name": "second"})).await;
    let (first, second) = (activation_id(&first), activation_id(&second));
    server.swap_responses(first, second).await;
    for id in [first, second] {
        expect_tampered(&owner.client.open_activation(id).await);
    }
}

#[tokio::test]
async fn truncated_chain_session_run_reported_as_final_is_detected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let record = next_run(&server, &owner, "pair", json!({"name": "Ada"})).await;
    let steps = component_records(&server, &record).await;
    expect_truncation_detected(&server, &owner, &record, &steps).await;
}

#[tokio::test]
async fn component_ids_rewritten_in_a_session_run_record_are_detected() {
    let (server, owner) = setup().await;
    open_session(&owner, "pipeline", &["echo", "echo", "greet"]).await;
    let record = next_run(&server, &owner, "pipeline", json!({"name": "Ada"})).await;
    assert_eq!(record["response"]["status"], "success", "{record}");
    let id = activation_id(&record);
    // The receipts name the activations the steps ran as; the orchestrator
    // lists them in another order (blaming one step's run on another).
    server
        .tamper_record(id, |record| record.logs.swap(0, 1))
        .await;
    expect_tampered(&owner.client.open_activation(id).await);
}

#[tokio::test]
async fn a_failing_step_stops_a_session_run_and_the_session_goes_on() {
    let (server, owner) = setup().await;
    // shout needs a `secret`; the first run has one and opens the session.
    open_session(&owner, "loud", &["shout", "echo"]).await;
    let failed = owner
        .invoke("loud", json!({"name": "no secret"}))
        .await
        .expect("an answer");
    assert_eq!(failed.status, ActivationStatus::ApplicationError);
    assert_eq!(
        failed.result,
        json!({"error": "parameter 'secret' (a string) is required"})
    );
    assert_eq!(failed.chain.map(|r| r.len()), Some(1), "echo never ran");
    let record = server.record(&failed.activation_id.to_string()).await;
    let steps = component_records(&server, &record).await;
    assert_eq!(steps.len(), 1);

    // The next run is still a session run, and succeeds.
    let next = owner
        .invoke("loud", json!({"secret": "again"}))
        .await
        .expect("next run");
    assert_eq!(next.result, json!({"shout": "AGAIN"}));
    let record = server.record(&next.activation_id.to_string()).await;
    let steps = component_records(&server, &record).await;
    assert!(is_session_hop(&hop_bytes(&passed_on(&steps[0]))));
}

#[tokio::test]
async fn forged_chain_session_hop_does_not_use_up_the_genuine_admission() {
    let (server, owner) = setup().await;
    open_session(&owner, "pair", &["echo", "greet"]).await;
    let (body, entry) = session_run(&owner, "pair", json!({"name": "Ada"}));
    // The provider sends hops with the genuine run's headers, (run, 0) and
    // (run, 1), but forged contents, before the genuine run.
    for (step, index) in [("echo", 0), ("greet", 1)] {
        let forged = rewritten(&body, |hop| hop.header.index = index);
        let mut bytes = hop_bytes(&forged);
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        let forged = json!({ "sealed": base64::engine::general_purpose::STANDARD.encode(bytes) });
        let message = refusal(&deliver(&server, step, &forged).await);
        assert!(message.contains("failed authentication"), "{message}");
    }
    // The genuine run still runs: the forgeries used up no admission.
    let record = run_through(&server, &owner, "pair", (body, entry)).await;
    assert_eq!(record["response"]["status"], "success", "{record}");
    let opened = owner
        .client
        .open_activation(activation_id(&record))
        .await
        .expect("verifies");
    assert_eq!(opened.result, json!({"payload": "Hello, Ada!"}));
}

/// Whether `bytes` parse as a hop of a chain session's later run.
fn is_session_hop(bytes: &[u8]) -> bool {
    matches!(
        SealedInput::from_bytes(bytes),
        Ok(SealedInput::ChainSessionHop(_))
    )
}
