//! Confidential JavaScript actions: the source is sealed with the digest of
//! the engine its owner allows, and an enclave runs it only under that
//! engine, whatever module the provider's node hands it.

use std::path::Path;

use clemmys_client::InvokeOptions;
use clemmys_client::confidential::{ConfidentialError, ConfidentialInvoked, JavaScriptSource};
use clemmys_proto::Digest;
use clemmys_proto::code::JavaScriptCode;
use clemmys_whisk::ActivationStatus;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::{Owner, TestServer, annotation, example, js_engine};

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
    owner
        .client
        .deploy_javascript(
            name,
            JavaScriptSource {
                source: &source(),
                engine,
                kind: "nodejs:20",
            },
            Default::default(),
            false,
            &Default::default(),
        )
        .await
        .expect("deploy");
}

/// Every file under `dir` whose bytes contain `marker`.
fn files_containing(dir: &Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(marker.len())
                .any(|window| window == marker.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
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
    let records = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?docs=true",
            None,
        )
        .await;
    for shown in [&action.json, &records.json] {
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
    let records = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?docs=true",
            None,
        )
        .await;
    let text = records.json.to_string();
    assert!(
        !text.contains(SOURCE_MARKER) && !text.contains(PARAM_MARKER),
        "{text}"
    );
    assert!(!text.contains("pinned JavaScript engine"), "{text}");
}
