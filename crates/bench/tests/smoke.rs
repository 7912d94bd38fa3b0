//! A smoke run of the `clemmys-bench` binary: the growth comparison with a
//! small preload and tiny windows, as JSON. It checks that the suite starts
//! nodes, preloads a store through the store's API, measures both nodes and
//! reports the figures and the goals, not how fast anything is (the
//! figures of a debug build on a busy CI machine mean nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `scripts/build-examples.sh` puts the example actions, unless
/// `CLEMMYS_EXAMPLES_DIR` says otherwise.
fn examples_dir() -> PathBuf {
    std::env::var_os("CLEMMYS_EXAMPLES_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/examples/wasm32-wasip1/release")
            },
            PathBuf::from,
        )
}

#[test]
fn a_small_growth_run_reports_both_stores_and_no_peer() {
    let examples = examples_dir();
    assert!(
        examples.join("noop.wasm").is_file(),
        "the example actions are missing in {}: run `bash scripts/build-examples.sh` first",
        examples.display()
    );
    // An empty working directory: no peer installed where the suite looks.
    let cwd = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_clemmys-bench"))
        .current_dir(cwd.path())
        .args([
            "--json",
            "--only",
            "growth",
            "--growth-records",
            "600",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--concurrency",
            "2",
            "--actions-dir",
        ])
        .arg(&examples)
        .output()
        .expect("running clemmys-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clemmys-bench failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON report on stdout");
    let growth = &report["growth"];
    assert_eq!(growth["records"], 600);
    assert!(
        growth["dataDirBytes"]
            .as_u64()
            .is_some_and(|bytes| bytes > 600 * 100)
    );
    let rows = growth["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "1 and 2 clients");
    for row in rows {
        for store in ["empty", "preloaded"] {
            assert!(
                row[store]["requests"].as_u64().is_some_and(|n| n > 0),
                "{store}: {row}"
            );
        }
        assert!(
            row["throughputRatio"].as_f64().is_some_and(|r| r > 0.0),
            "{row}"
        );
    }
    assert_eq!(report["peer"]["measured"], false);
    let goal = report["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .find(|goal| goal["goal"] == "warm plain throughput, preloaded/empty store, 2 clients")
        .expect("the growth goal");
    assert_eq!(
        goal["verdict"], "n/a",
        "600 records are not a million: {goal}"
    );
    assert!(stderr.contains("preloaded 600 records"), "{stderr}");
}

/// The gateway scenario sets up an owner's gateway (authorized, a
/// credential issued, the action deployed through it) and gets answers
/// on both paths; its figures are not checked.
#[test]
fn a_small_gateway_run_measures_both_paths_and_the_handshakes() {
    let examples = examples_dir();
    let cwd = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_clemmys-bench"))
        .current_dir(cwd.path())
        .args([
            "--json",
            "--quick",
            "--only",
            "gateway",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--concurrency",
            "2",
            "--actions-dir",
        ])
        .arg(&examples)
        .output()
        .expect("running clemmys-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clemmys-bench failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON report on stdout");
    let gateway = &report["gateway"];
    let rows = gateway["rows"].as_array().expect("rows");
    // 1 and 2 clients, each through the gateway beside the node and the
    // one over HTTPS.
    assert_eq!(rows.len(), 4, "{gateway}");
    let links: Vec<&str> = rows.iter().filter_map(|row| row["link"].as_str()).collect();
    assert_eq!(links, ["inProcess", "https", "inProcess", "https"]);
    for row in rows {
        for side in ["plain", "gateway"] {
            assert!(
                row[side]["requests"].as_u64().is_some_and(|n| n > 0),
                "{side}: {row}"
            );
            assert_eq!(row[side]["errors"], 0, "{side}: {row}");
        }
    }
    let handshakes = gateway["handshakes"].as_array().expect("handshakes");
    let listeners: Vec<&str> = handshakes
        .iter()
        .filter_map(|row| row["listener"].as_str())
        .collect();
    assert_eq!(listeners, ["node", "gateway"]);
    for row in handshakes {
        assert!(
            row["resumed"].as_u64().is_some_and(|n| n > 0),
            "tickets are used: {row}"
        );
    }
    let goal = report["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .find(|goal| {
            goal["goal"]
                == "gateway/plain throughput, noop over keep-alive TLS, gateway beside the node, 2 clients"
        })
        .expect("the gateway goal");
    assert!(goal["measured"].as_f64().is_some_and(|r| r > 0.0), "{goal}");
}
