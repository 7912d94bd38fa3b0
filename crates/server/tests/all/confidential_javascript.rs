//! Confidential JavaScript actions: the source is sealed with the digest of
//! the engine its owner allows, and an enclave runs it only under that
//! engine, whatever module the provider's node hands it.

use clemmys_client::InvokeOptions;
use clemmys_client::confidential::{
    Confidential, ConfidentialError, ConfidentialInvoked, JavaScriptSource, OpenedActivation,
};
use clemmys_proto::Digest;
use clemmys_proto::code::JavaScriptCode;
use clemmys_whisk::ActivationStatus;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Owner, TestServer, annotation, example, files_containing, js_engine};

/// A marker that is only in the source, and one only in the parameters.
const SOURCE_MARKER: &str = "source-marker-5f1d";
const PARAM_MARKER: &str = "param-marker-9c2e";

fn source() -> String {
    format!(
        r#"function main(params) {{
  const secret = "{SOURCE_MARKER}";
  console.log("logged", params.word);
  return {{ said: params.word + "/" + secret.length, engine: typeof JSON }};
}}"#
    )
}

fn engine_digest() -> Digest {
    Digest::of(&std::fs::read(js_engine()).expect("the engine"))
}

async fn deploy_js(owner: &Owner, name: &str, engine: Digest) {
    deploy_source(owner, name, &source(), engine).await;
}

/// Deploys (or updates) confidential JavaScript action `name` of `source`
/// for `engine`.
async fn deploy_source(owner: &Owner, name: &str, source: &str, engine: Digest) {
    owner
        .client
        .deploy_javascript(
            name,
            JavaScriptSource {
                source,
                engine,
                kind: "nodejs:20",
            },
            Default::default(),
            true,
            &Default::default(),
        )
        .await
        .expect("deploy");
}

#[tokio::test]
async fn a_confidential_javascript_action_runs_sealed_under_its_pinned_engine() {
    let server = TestServer::start_with(|config| config.js_engine = Some(js_engine())).await;
    let owner = server.owner().await;
    let engine = engine_digest();
    deploy_js(&owner, "secret", engine).await;

    // Twice: the first invoke, then one in a session.
    for _ in 0..2 {
        let opened = match owner
            .client
            .invoke(
                "secret",
                &json!({"word": PARAM_MARKER}),
                InvokeOptions::blocking(),
            )
            .await
            .expect("invoke")
        {
            ConfidentialInvoked::Completed(opened) => opened,
            other => panic!("expected a completed activation, got {other:?}"),
        };
        assert_eq!(
            opened.status,
            ActivationStatus::Success,
            "{:?}",
            opened.result
        );
        assert_eq!(
            opened.result,
            json!({"said": format!("{PARAM_MARKER}/{}", SOURCE_MARKER.len()), "engine": "object"})
        );
        let logs = opened.logs.clone().expect("logs");
        assert!(
            logs.iter()
                .any(|line| line.contains(&format!("logged {PARAM_MARKER}"))),
            "{logs:?}"
        );
        // The receipt's code digest commits to the engine and the source.
        let sealed_plaintext = JavaScriptCode {
            engine,
            source: &source(),
        }
        .to_bytes();
        assert_eq!(
            opened.receipt.receipt.code_digest,
            Digest::of(&sealed_plaintext)
        );
    }

    // The provider's view: the action, its records, its data directory.
    let action = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/secret", None)
        .await;
    assert_eq!(action.status, StatusCode::OK);
    assert_eq!(action.json["exec"]["kind"], "nodejs:20");
    assert_eq!(action.json["exec"]["binary"], true);
    assert_eq!(annotation(&action.json, "confidential"), Some(&json!(true)));
    let records = server.activation_records().await;
    for shown in [&action.json, &records] {
        let text = shown.to_string();
        assert!(!text.contains(SOURCE_MARKER), "source in {text}");
        assert!(!text.contains(PARAM_MARKER), "parameters in {text}");
    }
    for marker in [SOURCE_MARKER, PARAM_MARKER] {
        let leaked = files_containing(server.data_dir.path(), marker);
        assert!(leaked.is_empty(), "{marker} in {leaked:?}");
    }
}

#[tokio::test]
async fn a_node_running_another_engine_cannot_run_a_confidential_javascript_action() {
    // The provider starts its node with an engine of its own: here a
    // module that echoes its stdin, which would print the source and the
    // parameters the enclave hands the engine.
    let dir = tempfile::tempdir().expect("tempdir");
    let rogue = dir.path().join("rogue-engine.wasm");
    std::fs::write(&rogue, example("echo")).expect("write the rogue engine");
    let server = TestServer::start_with(|config| config.js_engine = Some(rogue)).await;
    let owner = server.owner().await;
    // The owner pins the genuine engine.
    deploy_js(&owner, "secret", engine_digest()).await;

    let outcome = owner
        .client
        .invoke(
            "secret",
            &json!({"word": PARAM_MARKER}),
            InvokeOptions::blocking(),
        )
        .await;
    // The owner is told which engine it pinned and which the node runs, and
    // gets no result.
    let told = match &outcome {
        Ok(ConfidentialInvoked::Completed(opened)) => {
            assert_ne!(
                opened.status,
                ActivationStatus::Success,
                "{:?}",
                opened.result
            );
            opened.result.to_string()
        }
        Err(ConfidentialError::Execution(message)) => message.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(told.contains("pinned JavaScript engine"), "{told}");
    assert!(!told.contains(SOURCE_MARKER), "{told}");

    // The provider learns nothing of the source or the parameters.
    let records = server.activation_records().await;
    let text = records.to_string();
    assert!(
        !text.contains(SOURCE_MARKER) && !text.contains(PARAM_MARKER),
        "{text}"
    );
    assert!(!text.contains("pinned JavaScript engine"), "{text}");
}

/// A source whose function shows its own text and says which version it is.
fn shown_source(version: u32) -> String {
    format!(
        "function main(params) {{\n  const secret = \"{SOURCE_MARKER}\";\n  \
         return {{ shown: main.toString(), version: {version}, n: (params.n || 0) + 1 }};\n}}"
    )
}

/// Checks one answer of `shown_source(version)` to `{"n": n}`; whether it
/// ran from bytecode (a function compiled without its source text shows
/// `[native code]`).
fn ran_from_bytecode(opened: &OpenedActivation, version: u32, n: u64) -> bool {
    assert_eq!(
        opened.status,
        ActivationStatus::Success,
        "{:?}",
        opened.result
    );
    assert_eq!(opened.result["version"], version, "{:?}", opened.result);
    assert_eq!(opened.result["n"], n + 1, "{:?}", opened.result);
    let shown = opened.result["shown"].as_str().unwrap_or_default();
    assert!(
        shown.contains("[native code]") || shown.contains(SOURCE_MARKER),
        "{shown}"
    );
    shown.contains("[native code]")
}

/// The enclave compiles a confidential action's opened source once per
/// version and runs the bytecode it keeps: invocations (each sealed with
/// HPKE), session requests and chain steps after the first run of a
/// version run from bytecode, and an update runs its new code.
#[tokio::test]
async fn a_confidential_javascript_action_runs_from_bytecode_its_enclave_keeps() {
    let server = TestServer::start_with(|config| config.js_engine = Some(js_engine())).await;
    let owner = server.owner().await;
    let one_shot = owner.second_client(&server).await.client.without_sessions();
    deploy_source(&owner, "shown", &shown_source(1), engine_digest()).await;

    runs_from_bytecode_after_the_first(&owner, &one_shot, 1).await;
    // A new version: new code, compiled anew, not the old bytecode.
    deploy_source(&owner, "shown", &shown_source(2), engine_digest()).await;
    runs_from_bytecode_after_the_first(&owner, &one_shot, 2).await;

    // Chain steps: the second step gets the first one's result.
    owner
        .create_sequence("shown-twice", &["shown", "shown"])
        .await;
    for round in 0..2 {
        let opened = owner
            .invoke("shown-twice", json!({"n": 30}))
            .await
            .expect("invoke the chain");
        assert!(ran_from_bytecode(&opened, 2, 31), "chain round {round}");
    }
}

/// Three invocations of `shown` at `version` through `one_shot`, then
/// three requests through `owner`, the first of which opens a session:
/// all but the first invocation must run from bytecode.
async fn runs_from_bytecode_after_the_first(owner: &Owner, one_shot: &Confidential, version: u32) {
    for n in 0..3 {
        let opened = invoked(one_shot, "shown", json!({"n": n})).await;
        assert!(opened.session.is_none());
        let bytecode = ran_from_bytecode(&opened, version, n);
        assert!(bytecode || n == 0, "invocation {n} ran the source");
    }
    for n in 0..3 {
        let opened = owner
            .invoke("shown", json!({"n": n}))
            .await
            .expect("invoke");
        assert!(
            ran_from_bytecode(&opened, version, n),
            "session request {n}"
        );
        assert_eq!(opened.session.is_some(), n > 0, "session request {n}");
    }
}

/// A confidential source that does not compile keeps failing as it did
/// before the enclave kept bytecode: the error is sealed to the client,
/// run after run, and the provider's record does not say why.
#[tokio::test]
async fn a_confidential_javascript_syntax_error_stays_sealed_run_after_run() {
    let server = TestServer::start_with(|config| config.js_engine = Some(js_engine())).await;
    let owner = server.owner().await;
    let broken = format!("function main( {{ \"{SOURCE_MARKER}\"");
    deploy_source(&owner, "broken", &broken, engine_digest()).await;
    for _ in 0..3 {
        let opened = owner.invoke("broken", json!({})).await.expect("invoke");
        assert_eq!(
            opened.status,
            ActivationStatus::DeveloperError,
            "{:?}",
            opened.result
        );
        let told = opened.result.to_string();
        assert!(told.contains("SyntaxError"), "{told}");
        let record = server
            .record(&opened.activation_id.to_string())
            .await
            .to_string();
        assert!(
            !record.contains("SyntaxError") && !record.contains(SOURCE_MARKER),
            "{record}"
        );
    }
}

/// A blocking invoke through `client`; the opened, verified answer.
async fn invoked(client: &Confidential, name: &str, params: Value) -> OpenedActivation {
    match client
        .invoke(name, &params, InvokeOptions::blocking())
        .await
        .expect("invoke")
    {
        ConfidentialInvoked::Completed(opened) => *opened,
        other => panic!("expected a completed activation, got {other:?}"),
    }
}
