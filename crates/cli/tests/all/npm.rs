//! Apache OpenWhisk's own npm client (`openwhisk` 3.21.9, from
//! `clients/npm`, installed by `scripts/test.sh` with `npm ci`) driving a
//! `clemmys serve --tls` node, trusting only the node's own authority
//! through `NODE_EXTRA_CA_CERTS`, as an OpenWhisk user moving over would.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Server, arg, example};

/// `clients/npm` of this repository, with its packages installed.
pub(crate) fn npm_client_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/npm");
    assert!(
        dir.join("node_modules/openwhisk/package.json").is_file(),
        "the npm openwhisk client is not installed: run `npm ci --prefix clients/npm` \
         (scripts/test.sh does)"
    );
    dir
}

/// `node ARGS` in `clients/npm` with the OpenWhisk client's variables.
fn node(server: &Server, ca: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("node");
    command
        .current_dir(npm_client_dir())
        .args(args)
        .env("__OW_API_HOST", &server.api_host)
        .env("__OW_API_KEY", &server.guest_auth)
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED");
    if let Some(ca) = ca {
        command.env("NODE_EXTRA_CA_CERTS", ca);
    }
    command
        .output()
        .unwrap_or_else(|error| panic!("running node (scripts/setup.sh installs it): {error}"))
}

#[test]
fn the_npm_openwhisk_client_drives_a_tls_node() {
    let server = Server::start_with(&["--tls"]);
    assert!(
        server.api_host.starts_with("https://"),
        "{}",
        server.api_host
    );
    let ca = server.data_dir.join("tls/ca.pem");

    let hello = example("hello");
    let out = node(&server, Some(&ca), &["basics.js", arg(&hello)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the npm client's checks failed:\n{stderr}\n{stdout}"
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON line ({error}):\n{stdout}"));
    assert_eq!(seen["wasmResult"], json!({"payload": "Hello, npm!"}));
    assert_eq!(seen["jsResult"], json!({"greeting": "hi js"}));
    assert_eq!(
        seen["packageResult"],
        json!({"payload": "Hello, package default!"})
    );
    assert_eq!(
        seen["activation"]["result"],
        json!({"payload": "Hello, later!"})
    );
    // The node's own view agrees with what the client was told.
    let id = seen["activation"]["id"].as_str().expect("activation id");
    let user = server.user();
    user.clemmys(&["activation", "result", id])
        .success()
        .stdout_has("Hello, later!");

    // Without the node's authority, the client refuses the node.
    let untrusted = node(
        &server,
        None,
        &[
            "-e",
            "require('openwhisk')().namespaces.list().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); })",
        ],
    );
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
}
