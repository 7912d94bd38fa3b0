//! Apache OpenWhisk's own npm client (`openwhisk` 3.21.9, from
//! `clients/npm`, installed by `scripts/test.sh` with `npm ci`) driving a
//! `clemmys serve --tls` node, trusting only the node's own authority
//! through `NODE_EXTRA_CA_CERTS`, as an OpenWhisk user moving over would:
//! actions and activations (`basics.js`), packages and bindings
//! (`packages.js`), triggers and rules (`rules.js`), web actions fetched
//! without credentials (`web.js`) and the alarms feed (`alarms.js`), all
//! against one node. `scale_out.rs` runs the same scenario, all but the
//! minute-long alarms, on a controller and an invoker over NATS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Server, arg, example, js_engine};

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
    node_command(server, ca, args)
        .output()
        .unwrap_or_else(|error| panic!("running node (scripts/setup.sh installs it): {error}"))
}

/// The command of [`node`].
fn node_command(server: &Server, ca: Option<&Path>, args: &[&str]) -> Command {
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
}

/// What a script saw (its one JSON line), once it succeeded.
fn seen_by(script: &str, out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the npm client's checks in {script} failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("{script}: not one JSON line ({error}):\n{stdout}"))
}

/// Whether [`drive_with_the_npm_client`] sets up the alarms feed too: its
/// rule fires a minute apart, so the scenario then takes over a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alarms {
    /// `alarms.js` runs beside the other scripts.
    Run,
    /// It does not.
    Skip,
}

/// Apache OpenWhisk's npm client against `server`, whose namespace holds
/// no action yet, trusting `ca` if given: actions and activations,
/// packages and bindings, triggers and rules, web actions and, if asked,
/// the alarms feed; the node's own view is checked against what the
/// client was told. Shared by every kind of node the client drives.
pub(crate) fn drive_with_the_npm_client(server: &Server, ca: Option<&Path>, alarms: Alarms) {
    let hello = example("hello");
    let out = node(server, ca, &["basics.js", arg(&hello)]);
    let seen = seen_by("basics.js", &out);
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

    // The alarm fires a minute apart: it runs while the others do (after
    // basics.js, which counts the namespace's actions).
    let alarms = (alarms == Alarms::Run).then(|| {
        node_command(server, ca, &["alarms.js"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("running node: {error}"))
    });

    let seen = seen_by(
        "packages.js",
        &node(server, ca, &["packages.js", arg(&hello)]),
    );
    assert_eq!(seen["viaBinding"], json!({"payload": "Hello, binding!"}));
    assert_eq!(seen["invokeWins"], json!({"payload": "Hello, invoke!"}));

    let seen = seen_by("rules.js", &node(server, ca, &["rules.js"]));
    assert_eq!(
        seen["ruleResult"],
        json!({"colour": "blue", "source": "trigger"})
    );
    // The rule's activation is the node's record too.
    let rule_activation = seen["ruleActivation"].as_str().expect("rule activation");
    user.clemmys(&["activation", "result", rule_activation])
        .success()
        .stdout_has("blue");

    let seen = seen_by("web.js", &node(server, ca, &["web.js"]));
    assert_eq!(
        seen["json"],
        json!({"greeting": "hello web", "method": "get"})
    );
    assert_eq!(seen["http"]["status"], 201);

    if let Some(alarms) = alarms {
        let alarms = alarms
            .wait_with_output()
            .unwrap_or_else(|error| panic!("waiting for alarms.js: {error}"));
        let seen = seen_by("alarms.js", &alarms);
        assert!(seen["fires"].as_u64() >= Some(2), "{seen}");
    }
}

#[test]
fn the_npm_openwhisk_client_drives_a_tls_node() {
    let engine = js_engine();
    let server = Server::start_with(&["--tls", "--js-engine", arg(&engine)]);
    assert!(
        server.api_host.starts_with("https://"),
        "{}",
        server.api_host
    );
    let ca = server.data_dir.join("tls/ca.pem");
    drive_with_the_npm_client(&server, Some(&ca), Alarms::Run);

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
