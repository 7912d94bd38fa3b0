//! Attacks on what the provider can steer around the sealed code itself
//! (the export it names as the entry point) or learn from it (its compile
//! errors).

use std::sync::{Arc, Mutex};

use clemmys_client::confidential::ConfidentialError;
use clemmys_proto::refusal::Refusal;
use hyper::Method;
use serde_json::json;

use crate::common::TestServer;

/// A WASI command with two entry points, each printing which one ran.
fn two_entries() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write"
            (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{\"ran\":\"start\"}")
          (data (i32.const 64) "{\"ran\":\"other\"}")
          (func $print (param $at i32)
            (i32.store (i32.const 0) (local.get $at))
            (i32.store (i32.const 4) (i32.const 15))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
          (func (export "_start") (call $print (i32.const 16)))
          (func (export "other") (call $print (i32.const 64))))"#,
    )
    .expect("wat")
}

#[tokio::test]
async fn entry_point_switched_by_the_provider_is_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner
        .client
        .deploy(
            "two",
            &two_entries(),
            Default::default(),
            true,
            &Default::default(),
        )
        .await
        .expect("deploy");
    let opened = owner.invoke("two", json!({})).await.expect("invoke");
    assert_eq!(opened.result, json!({"ran": "start"}));

    // The provider holds the namespace key: it rewrites `exec.main` of the
    // stored action through the API, keeping the sealed code as it is.
    let path = "/api/v1/namespaces/_/actions/two";
    let action = server
        .call(Method::GET, &format!("{path}?code=true"), None)
        .await
        .json;
    let mut exec = action["exec"].clone();
    exec["main"] = json!("other");
    let put = json!({"exec": exec, "annotations": action["annotations"].clone()});
    let answer = server
        .call(Method::PUT, &format!("{path}?overwrite=true"), Some(put))
        .await;
    assert_eq!(answer.status, hyper::StatusCode::OK, "{:?}", answer.json);
    assert_eq!(answer.json["exec"]["main"], "other", "{:?}", answer.json);

    // Within the session the first invoke opened, and with a fresh signed
    // invocation: the enclave runs nothing, the client prints nothing.
    let in_session = owner.invoke("two", json!({})).await;
    assert!(
        matches!(
            in_session,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::CodeRejected,
                ..
            })
        ),
        "the client took an answer of another entry point: {in_session:?}"
    );
    let fresh = owner.second_client(&server).await.client.without_sessions();
    let signed = fresh
        .invoke("two", &json!({}), clemmys_client::InvokeOptions::blocking())
        .await;
    assert!(
        matches!(
            signed,
            Err(ConfidentialError::EnclaveRefused {
                refusal: Refusal::CodeRejected,
                ..
            })
        ),
        "the client took an answer of another entry point: {signed:?}"
    );
}

/// The import [`missing_import`] names: text derived from the sealed code.
const IMPORT_MARKER: &str = "secret_import_name_xyz";

/// A WASI command importing a function the sandbox does not provide.
fn missing_import() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (import "env" "{IMPORT_MARKER}" (func)) (func (export "_start")))"#
    ))
    .expect("wat")
}

/// Every log line of this process, at every level (nextest runs each test
/// in a process of its own).
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn start() -> Self {
        let log = Self::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        log
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|log| log.clone()).unwrap_or_default())
            .into_owned()
    }
}

#[tokio::test]
async fn compile_error_of_sealed_code_reaches_only_its_owner() {
    let log = CapturedLog::start();
    let server = TestServer::start().await;
    let owner = server.owner().await;
    // Deploying provisions an enclave, which compiles the code.
    owner
        .client
        .deploy(
            "missing",
            &missing_import(),
            Default::default(),
            true,
            &Default::default(),
        )
        .await
        .expect("deploy");
    let fresh = owner.second_client(&server).await.client.without_sessions();
    let outcome = fresh
        .invoke(
            "missing",
            &json!({}),
            clemmys_client::InvokeOptions::blocking(),
        )
        .await;
    // The owner is told why.
    let shown = match &outcome {
        Ok(clemmys_client::confidential::ConfidentialInvoked::Completed(opened)) => {
            opened.result.to_string()
        }
        Err(ConfidentialError::Execution(message)) => message.clone(),
        other => panic!("expected the compile error, got {other:?}"),
    };
    assert!(shown.contains(IMPORT_MARKER), "the owner sees {shown:?}");

    // The provider's view: its API (with the namespace key) and its log.
    let records = server.activation_records().await;
    assert!(
        records.as_array().is_some_and(|all| !all.is_empty()),
        "{records}"
    );
    assert!(
        !records.to_string().contains(IMPORT_MARKER),
        "the record shows text of the sealed code: {records}"
    );
    let log = log.text();
    assert!(log.contains("DEBUG"), "the log was not captured: {log}");
    assert!(
        !log.contains(IMPORT_MARKER),
        "the log shows text of the sealed code:\n{log}"
    );
}
