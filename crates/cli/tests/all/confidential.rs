//! Confidential actions through the CLI: created confidential by default,
//! invoked with sealed parameters, answers decrypted and receipts verified
//! by the client, and unreadable to anyone else.

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::{SIM_WARNING_POINT, SIM_WARNING_START, Server, User, annotation, example};

/// The SHA-256 of `path` in hex, computed here independently of the CLI.
fn sha256_hex(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The JSON document after the `ok: …` line of a human-mode answer.
#[track_caller]
fn json_after_ok_line(stdout: &str) -> (String, Value) {
    let (first, rest) = stdout
        .split_once('\n')
        .unwrap_or_else(|| panic!("one line only:\n{stdout}"));
    let json = serde_json::from_str(rest)
        .unwrap_or_else(|error| panic!("not JSON after the ok line ({error}):\n{stdout}"));
    (first.to_owned(), json)
}

/// The measurement in `… measurement HEX` on stderr's receipt line.
#[track_caller]
fn receipt_measurement(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("decrypted; receipt verified: "))
        .unwrap_or_else(|| panic!("no receipt line on stderr:\n{stderr}"));
    line.rsplit_once("enclave of measurement ")
        .map(|(_, hex)| hex.trim().to_owned())
        .unwrap_or_else(|| panic!("no measurement in {line:?}"))
}

#[test]
fn confidential_hello_is_created_invoked_decrypted_and_verified() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    create_invoke_and_verify_hello(&user);
}

/// `user`, who trusts the node's broker, creates the confidential action
/// `hello`, invokes it (`-r`, `-b`) and reads its activation back
/// (result, logs, record, receipt), every answer decrypted and verified.
/// Shared by every kind of node the CLI drives.
pub(crate) fn create_invoke_and_verify_hello(user: &User) {
    let hello = example("hello");
    let code_digest = sha256_hex(&hello);
    let runtime = clemmys_client::confidential::expected_runtime_measurement().to_string();

    let created = user
        .clemmys(&["action", "create", "hello", crate::common::arg(&hello)])
        .success();
    assert_eq!(
        created.stdout,
        "ok: created confidential action hello (its code is sealed: only attested enclaves can run it)\n",
        "{created}"
    );
    let action = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(annotation(&action, "confidential"), Some(&json!(true)));

    // -r: exactly the decrypted result on stdout; the receipt on stderr.
    let invoked = user
        .clemmys(&["action", "invoke", "hello", "-p", "name", "Ada", "-r"])
        .success();
    assert_eq!(
        invoked.json(),
        json!({"payload": "Hello, Ada!"}),
        "{invoked}"
    );
    invoked
        .stderr_has(&format!(
            "of /guest/hello v1: code {code_digest} ran in a sim enclave of measurement {runtime}"
        ))
        .stderr_has(SIM_WARNING_START)
        .stderr_has(SIM_WARNING_POINT);
    assert_eq!(receipt_measurement(&invoked.stderr), runtime);

    // -b: the whole activation, its response and logs decrypted.
    let blocking = user.clemmys(&["action", "invoke", "hello", "-b"]).success();
    let (ok_line, record) = json_after_ok_line(&blocking.stdout);
    let id = crate::common::activation_id(&record);
    assert_eq!(ok_line, format!("ok: invoked /guest/hello with id {id}"));
    assert_eq!(record["name"], "hello");
    assert_eq!(record["namespace"], "guest");
    assert_eq!(
        record["response"],
        json!({"status": "success", "success": true, "result": {"payload": "Hello, World!"}}),
        "{blocking}"
    );
    let logs = record["logs"].as_array().cloned().unwrap_or_default();
    assert_eq!(logs.len(), 1, "{blocking}");
    assert!(
        logs[0]
            .as_str()
            .is_some_and(|line| line.ends_with(" stderr: hello: greeting World")),
        "{blocking}"
    );
    blocking.stderr_has("decrypted; receipt verified: ");

    // Read back later with the keyring.
    let result = user.clemmys(&["activation", "result", &id]).success();
    assert_eq!(
        result.json(),
        json!({"payload": "Hello, World!"}),
        "{result}"
    );
    result.stderr_has("decrypted; receipt verified: ");

    let logs = user.clemmys(&["activation", "logs", &id]).success();
    let lines: Vec<&str> = logs.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(
        lines[0].ends_with(" stderr: hello: greeting World"),
        "{logs}"
    );
    let stripped = user
        .clemmys(&["activation", "logs", &id, "--strip"])
        .success();
    assert_eq!(stripped.stdout, "hello: greeting World\n", "{stripped}");

    let got = user
        .clemmys(&["activation", "get", &id, "--json"])
        .success()
        .json();
    assert_eq!(
        got["response"]["result"],
        json!({"payload": "Hello, World!"})
    );

    let verified = user.clemmys(&["activation", "verify", &id]).success();
    verified
        .stdout_has(&format!("ok: activation {id} verified"))
        .stdout_has("action:       /guest/hello version 1")
        .stdout_has(&format!("code sha256:  {code_digest}"))
        .stdout_has(&format!("enclave:      sim measurement {runtime}"))
        .stdout_has("status:       success")
        .stdout_has(SIM_WARNING_START)
        .stdout_has(SIM_WARNING_POINT);
    let verified = user
        .clemmys(&["activation", "verify", &id, "--json"])
        .success()
        .json();
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["tee"], "sim", "{verified}");
    assert_eq!(verified["hardware"], false, "{verified}");
    assert!(
        verified["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains(SIM_WARNING_POINT)),
        "{verified}"
    );
    assert_eq!(
        verified["receipt"]["activationId"],
        id.as_str(),
        "{verified}"
    );
}

#[test]
fn confidential_failure_exits_1_and_still_prints_the_decrypted_result() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "fail",
        crate::common::arg(&example("fail")),
    ])
    .success()
    .stdout_has("confidential action fail");

    let out = user.clemmys(&["action", "invoke", "fail", "-r"]).failure();
    assert_eq!(
        out.json(),
        json!({"error": "this action always fails"}),
        "{out}"
    );
    out.stderr_has("decrypted; receipt verified: ")
        .stderr_has("error: action /guest/fail failed");

    let out = user.clemmys(&["action", "invoke", "fail", "-b"]).failure();
    let (_, record) = json_after_ok_line(&out.stdout);
    assert_eq!(record["response"]["status"], "application error", "{out}");
    assert_eq!(
        record["response"]["result"],
        json!({"error": "this action always fails"})
    );
    out.stderr_has("error: action /guest/fail failed: application error (activation ");
}

#[test]
fn confidential_create_before_trusting_the_broker_is_refused() {
    let server = Server::start();
    let user = server.user();
    let out = user
        .clemmys(&[
            "action",
            "create",
            "hello",
            crate::common::arg(&example("hello")),
        ])
        .failure();
    out.stderr_has("clemmys broker trust");
    // Nothing was stored.
    let listed = user.clemmys(&["action", "list"]).success();
    assert_eq!(listed.stdout, "actions\n", "{listed}");
}

#[test]
fn another_client_cannot_read_or_invoke_a_confidential_action() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    owner
        .clemmys(&[
            "action",
            "create",
            "hello",
            crate::common::arg(&example("hello")),
        ])
        .success();
    let id = owner.invoke_for_id("hello", &[("name", "Owner")]);

    // Same namespace key, another client identity (no keyring).
    let other = server.user();
    other.trust_broker();
    let out = other.clemmys(&["activation", "result", &id]).failure();
    assert!(!out.stdout.contains("Owner"), "{out}");
    out.stderr_has(&format!(
        "activation {id} was not invoked by this client (no key in its keyring)"
    ));
    let out = other.clemmys(&["activation", "logs", &id]).failure();
    assert!(!out.stdout.contains("Owner"), "{out}");

    // Only the deployer's identity may invoke by default.
    let out = other
        .clemmys(&["action", "invoke", "hello", "-p", "name", "Eve", "-r"])
        .failure();
    assert!(!out.stdout.contains("Hello"), "{out}");
    out.stderr_has("error: invoking confidential action hello");
}

#[test]
fn updating_a_confidential_action_with_new_code_keeps_it_confidential() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "act",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let echo = example("echo");
    let updated = user
        .clemmys(&["action", "update", "act", crate::common::arg(&echo)])
        .success();
    assert_eq!(
        updated.stdout,
        "ok: updated confidential action act (its code is sealed: only attested enclaves can run it)\n",
        "{updated}"
    );
    let invoked = user
        .clemmys(&["action", "invoke", "act", "-p", "k", "[1,2]", "-r"])
        .success();
    assert_eq!(invoked.json(), json!({"k": [1, 2]}), "{invoked}");
    invoked.stderr_has(&format!(
        "of /guest/act v2: code {} ran in a sim enclave",
        sha256_hex(&echo)
    ));
    let id = user.invoke_for_id("act", &[("v", "2")]);
    user.clemmys(&["activation", "verify", &id])
        .success()
        .stdout_has("action:       /guest/act version 2")
        .stdout_has(&format!("code sha256:  {}", sha256_hex(&echo)));
}

/// The provider, holding the namespace key, replaces `name` on the node by
/// a plain action of its own that answers its parameters (the `echo`
/// example, unsealed): the node now shows `name` as plain.
fn provider_replaces_with_plain_echo(server: &Server, name: &str) {
    use base64::Engine as _;
    let echo = std::fs::read(example("echo")).unwrap_or_else(|error| panic!("echo: {error}"));
    let code = base64::engine::general_purpose::STANDARD.encode(echo);
    let (status, body) = server.put(
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        &json!({"exec": {"kind": "wasm", "code": code}, "annotations": []}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// Whether `needle` occurs anywhere the provider can read through the API:
/// the action's record with its code, and every activation record.
fn provider_sees(server: &Server, action: &str, needle: &str) -> bool {
    [
        format!("/api/v1/namespaces/_/actions/{action}?code=true"),
        "/api/v1/namespaces/_/activations?docs=true&limit=200".to_owned(),
    ]
    .iter()
    .any(|path| {
        let (status, body) = server.get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        String::from_utf8_lossy(&body).contains(needle)
    })
}

/// The provider offers the owner's deployment at a second address (another
/// controller of its cluster: a relay here), where the owner pinned
/// nothing, and shows the confidential action there as plain: nothing of
/// it is sent in the clear, and pinning that address asks what broker it
/// has (the same one carries over what was seen; another is refused
/// unless the user says it is another deployment).
#[test]
fn a_confidential_action_reached_at_another_address_gets_nothing_in_the_clear() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let hello = example("hello");
    owner
        .clemmys(&["action", "create", "vault", crate::common::arg(&hello)])
        .success();
    owner
        .clemmys(&["action", "invoke", "vault", "-p", "name", "A", "-r"])
        .success()
        .stdout_has("Hello, A!");
    let other = rewriting_proxy(&server.api_host, RewriteRule::default());
    provider_replaces_with_plain_echo(&server, "vault");
    let secret = crate::common::unique("param-");
    // The secret invoked at the second address.
    let invoke_at_other = || {
        owner.clemmys(&[
            "--apihost",
            &other,
            "action",
            "invoke",
            "vault",
            "-p",
            "secret",
            &secret,
            "-r",
        ])
    };
    invoke_at_other()
        .failure()
        .stderr_has("no key broker is pinned for")
        .stderr_has("nothing was sent");
    assert!(
        !provider_sees(&server, "vault", &secret),
        "the parameters reached the node in the clear at the second address"
    );
    // New code for it at that address is not sent in the clear either.
    owner
        .clemmys(&[
            "--apihost",
            &other,
            "action",
            "update",
            "vault",
            crate::common::arg(&hello),
        ])
        .failure()
        .stderr_has("no key broker is pinned for");

    // Another broker behind a new address is another deployment only by
    // the user's word.
    let elsewhere = Server::start();
    let at_elsewhere = [
        "--apihost",
        &elsewhere.api_host,
        "--auth",
        &elsewhere.guest_auth,
    ];
    owner
        .clemmys(
            &[
                &at_elsewhere[..],
                &["broker", "trust", "--yes", "--namespace", "guest"],
            ]
            .concat(),
        )
        .failure()
        .stderr_has("to another key broker");
    owner
        .clemmys(
            &[
                &at_elsewhere[..],
                &[
                    "broker",
                    "trust",
                    "--yes",
                    "--namespace",
                    "guest",
                    "--another-deployment",
                ],
            ]
            .concat(),
        )
        .success();
    // The same broker is pinned as such, and the action is sealed there.
    owner
        .clemmys(&["--apihost", &other, "broker", "trust", "--yes"])
        .success()
        .stdout_has(&format!("same broker as:        {}", server.api_host));
    invoke_at_other().failure();
    assert!(!provider_sees(&server, "vault", &secret));

    // A confidential package's parameters at an address pinned to nothing.
    owner
        .clemmys(&[
            "package",
            "create",
            "team",
            "--confidential",
            "-p",
            "k",
            "v",
        ])
        .success();
    // The provider strips its mark (an honest node refuses clear
    // parameters for a confidential package).
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/team?overwrite=true",
        &json!({"annotations": []}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let unpinned = rewriting_proxy(&server.api_host, RewriteRule::default());
    owner
        .clemmys(&[
            "--apihost",
            &unpinned,
            "package",
            "update",
            "team",
            "-p",
            "token",
            &secret,
        ])
        .failure()
        .stderr_has("no key broker is pinned for");
    let (status, body) = server.get("/api/v1/namespaces/_/packages/team");
    assert_eq!(status, 200);
    assert!(!String::from_utf8_lossy(&body).contains(&secret));

    // A fresh broker behind the address pinned as the same deployment's is
    // not pinned over it unasked.
    let (switch, switchable) = switchable_relay(&server.api_host);
    owner
        .clemmys(&["--apihost", &switchable, "broker", "trust", "--yes"])
        .success()
        .stdout_has("same broker as:");
    *switch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = elsewhere.api_host.clone();
    owner
        .clemmys(&[
            "--apihost",
            &switchable,
            "--auth",
            &elsewhere.guest_auth,
            "broker",
            "trust",
            "--yes",
            "--namespace",
            "guest",
        ])
        .failure()
        .stderr_has("to another key broker");
}

/// A relay to the address the returned cell names when a connection
/// opens: the provider moving what answers behind one address.
fn switchable_relay(upstream: &str) -> (std::sync::Arc<std::sync::Mutex<String>>, String) {
    let cell = std::sync::Arc::new(std::sync::Mutex::new(upstream.to_owned()));
    let target = cell.clone();
    let (_, listener, addr) = crate::common::proxy_listener(upstream);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let upstream = upstream_of(&target);
            let Ok(mut server) =
                std::net::TcpStream::connect(upstream.trim_start_matches("http://"))
            else {
                continue;
            };
            let (Ok(mut to_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone())
            else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client, &mut to_server);
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (cell, format!("http://{addr}"))
}

fn upstream_of(cell: &std::sync::Mutex<String>) -> String {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

#[test]
fn a_confidential_action_the_provider_shows_as_plain_gets_nothing_in_the_clear() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let hello = example("hello");
    owner
        .clemmys(&["action", "create", "act", crate::common::arg(&hello)])
        .success();
    owner
        .clemmys(&["action", "create", "c1", crate::common::arg(&hello)])
        .success();
    owner
        .clemmys(&["action", "create", "pipe", "--sequence", "c1"])
        .success();
    provider_replaces_with_plain_echo(&server, "act");
    // An invoke of `name` is refused, and its parameters reach neither the
    // answer nor the node.
    let invoke_stays_sealed = |name: &str| {
        let secret = crate::common::unique("param-");
        let out = owner
            .clemmys(&["action", "invoke", name, "-p", "secret", &secret, "-r"])
            .failure();
        assert!(!out.stdout.contains(&secret), "{out}");
        assert!(
            !provider_sees(&server, name, &secret),
            "the parameters of an invoke of {name} reached the node in the clear"
        );
    };
    // The invoke's parameters stay sealed: the client asks the key broker,
    // not the node, whether the action is confidential.
    invoke_stays_sealed("act");
    // An update with new code seals it, as the first version was.
    use base64::Engine as _;
    let code = std::fs::read(&hello).unwrap_or_else(|error| panic!("hello: {error}"));
    let code = base64::engine::general_purpose::STANDARD.encode(code);
    owner
        .clemmys(&["action", "update", "act", crate::common::arg(&hello)])
        .success()
        .stdout_has("updated confidential action act");
    assert!(
        !provider_sees(&server, "act", &code),
        "the update's code reached the node in the clear"
    );
    // A confidential chain the provider replaced by a plain sequence: the
    // client remembers the plan it signed.
    provider_replaces_with_plain_echo(&server, "echo-of-provider");
    let (status, body) = server.put(
        "/api/v1/namespaces/_/actions/pipe?overwrite=true",
        &json!({"exec": {"kind": "sequence", "components": ["/guest/echo-of-provider"]}}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    invoke_stays_sealed("pipe");
}

#[test]
fn action_get_shows_no_parameters_the_node_wrote_for_a_confidential_action() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let friend = server.user();
    friend.trust_broker();
    let (owner_id, friend_id) = (owner.identity(), friend.identity());
    owner
        .clemmys(&[
            "action",
            "create",
            "echo",
            crate::common::arg(&example("echo")),
            "-p",
            "token",
            "t-1",
            "--allow-client",
            &friend_id,
        ])
        .success();
    friend
        .clemmys(&["broker", "trust", "--yes", "--trust-owner", &owner_id])
        .success();
    // The provider strips the annotation (an honest node refuses
    // parameters on a confidential action) and writes parameters of its
    // own, for the owner's other clients to read as the action's.
    let (status, body) = server.put(
        "/api/v1/namespaces/_/actions/echo?overwrite=true",
        &json!({"annotations": [], "parameters": [{"key": "token", "value": "PROVIDER-MADE"}]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let shown = friend.clemmys(&["action", "get", "echo"]).success();
    assert!(!shown.stdout.contains("PROVIDER-MADE"), "shown: {shown}");
    shown.stderr_has("the parameters the node shows are not the action's");
    let shown = friend
        .clemmys(&["action", "get", "echo", "--json"])
        .success();
    shown.stderr_has("the parameters the node shows are not the action's");
    let shown = shown.json();
    assert_eq!(shown["parameters"], json!([]), "{shown}");
    // The owner's client shows the copy it sealed.
    let shown = owner
        .clemmys(&["action", "get", "echo", "--json"])
        .success()
        .json();
    assert_eq!(
        shown["parameters"],
        json!([{"key": "token", "value": "t-1"}]),
        "{shown}"
    );
}

#[test]
fn action_get_shows_the_limits_a_confidential_action_runs_under() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    owner
        .clemmys(&[
            "action",
            "create",
            "act",
            crate::common::arg(&example("hello")),
            "--memory",
            "200",
            "--timeout",
            "30000",
        ])
        .success();
    // The provider rewrites the limits in the node's record of the action.
    let (status, body) = server.get("/api/v1/namespaces/_/actions/act?code=true");
    assert_eq!(status, 200);
    let mut record: Value = serde_json::from_slice(&body).unwrap_or_else(|error| panic!("{error}"));
    record["limits"] = json!({"timeout": 100, "memory": 128, "logs": 10, "concurrency": 1});
    let (status, body) = server.put("/api/v1/namespaces/_/actions/act?overwrite=true", &record);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let shown = owner
        .clemmys(&["action", "get", "act", "--json"])
        .success()
        .json();
    assert_eq!(shown["limits"]["memory"], 200, "{shown}");
    assert_eq!(shown["limits"]["timeout"], 30000, "{shown}");
}

#[test]
fn no_rule_fires_a_confidential_action_the_provider_shows_as_plain() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    owner
        .clemmys(&[
            "action",
            "create",
            "act",
            crate::common::arg(&example("hello")),
        ])
        .success();
    owner.clemmys(&["trigger", "create", "event"]).success();
    // The node would refuse a rule for a confidential action; shown as
    // plain, it takes one, and the owner would believe `act` handles the
    // trigger's events (whose parameters travel in the clear).
    provider_replaces_with_plain_echo(&server, "act");
    for command in ["create", "update"] {
        owner
            .clemmys(&["rule", command, "handler", "event", "act"])
            .failure()
            .stderr_has("a rule cannot fire it");
    }
    let (status, _) = server.get("/api/v1/namespaces/_/rules/handler");
    assert_eq!(
        status, 404,
        "a rule for the confidential action reached the node"
    );
    // The provider makes the rule itself, inactive, for the owner to
    // enable.
    let (status, body) = server.put(
        "/api/v1/namespaces/_/rules/handler",
        &json!({"trigger": "/_/event", "action": "/_/act", "status": "inactive"}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = server.post(
        "/api/v1/namespaces/_/rules/handler",
        &json!({"status": "inactive"}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    owner
        .clemmys(&["rule", "enable", "handler"])
        .failure()
        .stderr_has("a rule cannot fire it");
    let (_, body) = server.get("/api/v1/namespaces/_/rules/handler");
    let rule: Value = serde_json::from_slice(&body).expect("a rule");
    assert_eq!(rule["status"], "inactive", "{rule}");
}

/// A confidential action deleted and a plain one created under its name:
/// the key broker still holds the confidential registration, so the CLI
/// seals for it. It now says so before sending anything; it used to send
/// the sealed parameters to the plain action and report the unopenable
/// answer as tampering.
#[test]
fn a_plain_action_under_a_confidential_name_is_refused_with_the_reason() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let echo = example("echo");
    owner
        .clemmys(&["action", "create", "reused", crate::common::arg(&echo)])
        .success();
    owner.clemmys(&["action", "delete", "reused"]).success();
    owner
        .clemmys(&[
            "action",
            "create",
            "reused",
            crate::common::arg(&echo),
            "--plain",
        ])
        .success();
    let secret = crate::common::unique("param-");
    let out = owner
        .clemmys(&["action", "invoke", "reused", "-p", "secret", &secret, "-r"])
        .failure();
    assert!(
        out.stderr
            .contains("the node shows reused as a plain action, but it is registered"),
        "{out}"
    );
    assert!(!out.stderr.contains("tamper"), "{out}");
    // Nothing was sent: the plain action never ran.
    let (status, body) = server.get("/api/v1/namespaces/_/activations?name=reused");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listed: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    assert!(!provider_sees(&server, "reused", &secret));
    // Updated with code, it is confidential again.
    owner
        .clemmys(&["action", "update", "reused", crate::common::arg(&echo)])
        .success()
        .stdout_has("updated confidential action reused");
    owner
        .clemmys(&["action", "invoke", "reused", "-p", "secret", &secret, "-r"])
        .success()
        .stdout_has(&secret);
}

#[test]
fn an_answer_printed_into_a_closed_pipe_keeps_its_keys() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    // `clemmys action invoke hello -b | true`: the reader is gone before
    // the answer comes back.
    let (mut command, shown) =
        user.command(&["action", "invoke", "hello", "-b", "-p", "name", "pipe"]);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{shown}: {error}"));
    drop(child.stdout.take());
    let finished = child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("{shown}: {error}"));
    assert_eq!(
        finished.status.code(),
        Some(141),
        "{shown}: {}",
        String::from_utf8_lossy(&finished.stderr)
    );
    // The answer's keys were kept: it opens later.
    let result = user.clemmys(&["activation", "result", "--last"]).success();
    assert_eq!(
        result.json(),
        json!({"payload": "Hello, pipe!"}),
        "{result}"
    );
    result.stderr_has("decrypted; receipt verified: ");
}

#[test]
fn a_non_blocking_confidential_invoke_is_opened_later_with_the_keyring() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    open_a_non_blocking_hello_later(&user);
}

/// `user` invokes their confidential action `hello` without waiting, then
/// polls for the result, decrypted with the keyring and its receipt
/// verified.
pub(crate) fn open_a_non_blocking_hello_later(user: &User) {
    let out = user
        .clemmys(&["action", "invoke", "hello", "-p", "name", "Zoë ☃"])
        .success();
    let id = out
        .stdout
        .trim()
        .strip_prefix("ok: invoked /guest/hello with id ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    // Poll until the activation is stored; nothing is timed.
    let deadline = std::time::Instant::now() + crate::common::COMMAND_TIMEOUT;
    let result = loop {
        let result = user.clemmys(&["activation", "result", &id]);
        if result.status.success() {
            break result;
        }
        assert!(std::time::Instant::now() < deadline, "{result}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        result.json(),
        json!({"payload": "Hello, Zoë ☃!"}),
        "{result}"
    );
    result.stderr_has("decrypted; receipt verified: ");
}

#[test]
fn a_sequence_of_confidential_actions_is_confidential_and_mixed_ones_are_refused() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let echo = example("echo");
    user.clemmys(&["action", "create", "c1", crate::common::arg(&echo)])
        .success();
    user.clemmys(&[
        "action",
        "create",
        "c2",
        crate::common::arg(&example("hello")),
    ])
    .success();
    user.clemmys(&[
        "action",
        "create",
        "p1",
        crate::common::arg(&echo),
        "--plain",
    ])
    .success();

    user.clemmys(&["action", "create", "chain", "--sequence", "c1,c2"])
        .success();
    let doc = user
        .clemmys(&["action", "get", "chain", "--json"])
        .success()
        .json();
    assert_eq!(doc["exec"]["components"], json!(["/guest/c1", "/guest/c2"]));
    assert_eq!(
        annotation(&doc, "confidential"),
        Some(&json!(true)),
        "{doc}"
    );
    let out = user
        .clemmys(&["action", "invoke", "chain", "-p", "name", "Ada", "-r"])
        .success();
    assert_eq!(out.json(), json!({"payload": "Hello, Ada!"}), "{out}");
    out.stderr_has("decrypted; receipt verified: ");

    for components in ["p1,c1", "c1,p1"] {
        user.clemmys(&["action", "create", "mixed", "--sequence", components])
            .failure()
            .stderr_has("A sequence cannot mix confidential and plain actions");
    }
}

#[test]
fn a_confidential_sequence_rewritten_by_the_provider_is_refused() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    for (name, example_name) in [("c1", "echo"), ("c2", "hello")] {
        owner
            .clemmys(&[
                "action",
                "create",
                name,
                crate::common::arg(&example(example_name)),
            ])
            .success();
    }
    owner
        .clemmys(&["action", "create", "pipe", "--sequence", "c1,c2"])
        .success();
    // The provider, holding the namespace key, shortens the owner's
    // sequence to c2 through the API, keeping its annotations (the signed
    // plan among them).
    let (status, body) = server.get("/api/v1/namespaces/_/actions/pipe");
    assert_eq!(status, 200);
    let stored: Value = serde_json::from_slice(&body).expect("an action");
    let (status, body) = server.put(
        "/api/v1/namespaces/_/actions/pipe?overwrite=true",
        &json!({
            "exec": {"kind": "sequence", "components": ["/guest/c2"]},
            "annotations": stored["annotations"],
        }),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let out = owner
        .clemmys(&["action", "invoke", "pipe", "-p", "name", "Ada", "-r"])
        .failure();
    out.stderr_has("components differ from its signed plan");
    assert!(out.stdout.trim().is_empty(), "no result printed: {out}");
    // Nor does the owner's CLI show the shortened sequence as the owner's.
    for format in [&["--json"][..], &[]] {
        let shown = owner
            .clemmys(&[&["action", "get", "pipe"][..], format].concat())
            .failure();
        shown.stderr_has("components differ from its signed plan");
        assert!(!shown.stdout.contains("components"), "shown: {shown}");
    }
    // The owner's own update is signed and runs again.
    owner
        .clemmys(&["action", "update", "pipe", "--sequence", "c1,c2"])
        .success();
    let out = owner
        .clemmys(&["action", "invoke", "pipe", "-p", "name", "Ada", "-r"])
        .success();
    assert_eq!(out.json(), json!({"payload": "Hello, Ada!"}), "{out}");
}

#[test]
fn a_confidential_only_namespace_refuses_plain_actions() {
    let server = Server::start();
    let key = server
        .admin(&["create", "vault", "--confidential-only", "true"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&[
        "action",
        "create",
        "p",
        crate::common::arg(&hello),
        "--plain",
        "-u",
        &key,
    ])
    .failure()
    .stderr_has("Namespace 'vault' accepts only confidential actions. (HTTP 403");
    user.clemmys(&[
        "action",
        "create",
        "/vault/c",
        crate::common::arg(&hello),
        "-u",
        &key,
    ])
    .success()
    .stdout_has("created confidential action /vault/c");
    let out = user
        .clemmys(&[
            "action", "invoke", "/vault/c", "-p", "name", "V", "-r", "-u", &key,
        ])
        .success();
    assert_eq!(out.json(), json!({"payload": "Hello, V!"}), "{out}");
    let listed = user.clemmys(&["action", "list", "-u", &key]).success();
    assert_eq!(
        listed.stdout, "actions\n/vault/c  private  wasm\n",
        "{listed}"
    );
}

#[test]
fn activation_get_shows_the_sealed_record_to_a_client_without_its_key() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    owner
        .clemmys(&[
            "action",
            "create",
            "hello",
            crate::common::arg(&example("hello")),
        ])
        .success();
    let id = owner.invoke_for_id("hello", &[("name", "Owner")]);

    for trusted in [false, true] {
        let other = server.user();
        if trusted {
            other.trust_broker();
        }
        let out = other
            .clemmys(&["activation", "get", &id, "--json"])
            .success();
        let record = out.json();
        assert_eq!(record["activationId"], id.as_str(), "{out}");
        assert!(
            record["response"]["result"]["sealed"].is_string(),
            "the record is shown sealed: {out}"
        );
        assert!(!out.stdout.contains("Owner"), "{out}");
        // The result itself still cannot be had.
        other.clemmys(&["activation", "result", &id]).failure();
    }
}

#[test]
fn activation_poll_decrypts_the_logs_of_this_clients_activations() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let id = user.invoke_for_id("hello", &[("name", "Polly")]);
    let out = user
        .clemmys(&["activation", "poll", "--exit", "1", "--since-minutes", "10"])
        .success();
    out.stdout_has(&format!("Activation: 'hello' ({id})"))
        .stdout_has("hello: greeting Polly");
    assert!(!out.stdout.contains("sealed:"), "{out}");
}

#[test]
fn confidential_default_parameters_are_sealed_and_merged_inside() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let echo = example("echo");
    let created = user
        .clemmys(&[
            "action",
            "create",
            "echo",
            crate::common::arg(&echo),
            "-p",
            "greeting",
            "hi",
            "-p",
            "token",
            "t-1",
        ])
        .success();
    assert_eq!(
        created.stdout,
        "ok: created confidential action echo (its code is sealed: only attested enclaves can run it)\n",
        "{created}"
    );
    // The invoke's parameters win over the defaults, merged in the enclave.
    let invoked = user
        .clemmys(&["action", "invoke", "echo", "-p", "greeting", "hey", "-r"])
        .success();
    assert_eq!(
        invoked.json(),
        json!({"greeting": "hey", "token": "t-1"}),
        "{invoked}"
    );
    invoked.stderr_has("decrypted; receipt verified: ");
    // The node shows none; the owner's CLI shows the copy it sealed.
    let node_shows = || {
        let (status, body) = server.get("/api/v1/namespaces/_/actions/echo");
        assert_eq!(status, 200);
        serde_json::from_slice::<Value>(&body).expect("an action")["parameters"].clone()
    };
    assert_eq!(node_shows(), json!([]));
    let action = user
        .clemmys(&["action", "get", "echo", "--json"])
        .success()
        .json();
    assert_eq!(
        action["parameters"],
        json!([{"key": "greeting", "value": "hi"}, {"key": "token", "value": "t-1"}]),
        "{action}"
    );

    // Without the code, an update's parameters are not sent at all.
    let refused = user
        .clemmys(&["action", "update", "echo", "-p", "token", "t-2"])
        .failure();
    refused.stderr_has("sealed with its code");
    let unchanged = user.clemmys(&["action", "invoke", "echo", "-r"]).success();
    assert_eq!(unchanged.json(), json!({"greeting": "hi", "token": "t-1"}));

    // With the code, the update's parameters are the new whole set.
    user.clemmys(&[
        "action",
        "update",
        "echo",
        crate::common::arg(&echo),
        "-p",
        "token",
        "t-2",
    ])
    .success();
    let updated = user.clemmys(&["action", "invoke", "echo", "-r"]).success();
    assert_eq!(updated.json(), json!({"token": "t-2"}), "{updated}");

    // An update with code and no parameters keeps them, as OpenWhisk does:
    // the owner's client seals its own copy again.
    user.clemmys(&["action", "update", "echo", crate::common::arg(&echo)])
        .success();
    let kept = user.clemmys(&["action", "invoke", "echo", "-r"]).success();
    assert_eq!(kept.json(), json!({"token": "t-2"}), "{kept}");
    assert_eq!(node_shows(), json!([]));
    let action = user
        .clemmys(&["action", "get", "echo", "--json"])
        .success()
        .json();
    assert_eq!(
        action["parameters"],
        json!([{"key": "token", "value": "t-2"}]),
        "{action}"
    );
}

/// Plays the provider: names `record` as one of action `name` in `guest`
/// (its name and its `path`).
pub(crate) fn relabel(record: &mut clemmys_whisk::Activation, name: &str) {
    record.name = name.into();
    record
        .annotations
        .set("path", Value::String(format!("guest/{name}")));
}

/// Plays the provider: rewrites activation `id`'s record in the node's
/// store (while the node is stopped) with `edit`.
pub(crate) fn forge_record(
    data_dir: &std::path::Path,
    id: &str,
    edit: impl FnOnce(&mut clemmys_whisk::Activation),
) {
    use clemmys_store::{EntityStore as _, RecordDurability, RedbStore, StoreConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    runtime.block_on(async {
        let store = RedbStore::open_with(
            &data_dir.join("store.redb"),
            StoreConfig {
                record_durability: RecordDurability::Sync,
                ..StoreConfig::default()
            },
        )
        .unwrap_or_else(|error| panic!("store: {error}"));
        let id: clemmys_whisk::ActivationId =
            id.parse().unwrap_or_else(|error| panic!("{id}: {error:?}"));
        let mut record = store
            .get_activation("guest", &id)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .unwrap_or_else(|| panic!("no record {id}"));
        edit(&mut record);
        store
            .put_activation(record)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
    });
}

/// Plays the provider: rewrites activation `id`'s log lines.
fn forge_logs(data_dir: &std::path::Path, id: &str, line: &str) {
    forge_record(data_dir, id, |record| record.logs = vec![line.to_owned()]);
}

#[test]
fn log_lines_the_provider_writes_are_not_shown_with_a_verified_answer() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let id = user.invoke_for_id("hello", &[("name", "logs")]);
    server.stop();
    forge_logs(&server.data_dir, &id, "PROVIDER-FORGED: payment approved");
    server.spawn_again_on_the_same_port();
    for command in [["activation", "logs"], ["activation", "get"]] {
        let out = user.clemmys(&[command[0], command[1], &id]).success();
        out.stderr_has("decrypted; receipt verified");
        assert!(
            !out.stdout.contains("PROVIDER-FORGED"),
            "a line the provider wrote is shown as the activation's: {out}"
        );
    }
}

#[test]
fn verifying_a_plain_activation_says_it_is_plain() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "open",
        crate::common::arg(&example("echo")),
        "--plain",
    ])
    .success();
    let id = user.invoke_for_id("open", &[("a", "1")]);
    user.clemmys(&["activation", "verify", &id])
        .failure()
        .stderr_has("is a plain one: nothing of it is sealed or attested");
}

#[test]
fn a_confidential_sequence_stays_sealed_for_a_client_that_never_ran_it() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let friend = server.user();
    friend.trust_broker();
    let (owner_id, friend_id) = (owner.identity(), friend.identity());
    let hello = example("hello");
    owner
        .clemmys(&[
            "action",
            "create",
            "c1",
            crate::common::arg(&hello),
            "--allow-client",
            &friend_id,
        ])
        .success();
    // A sequence's own defaults would reach the node in the clear.
    let default = crate::common::unique("default-");
    owner
        .clemmys(&[
            "action",
            "create",
            "pipe",
            "--sequence",
            "c1",
            "-p",
            "k",
            &default,
        ])
        .failure()
        .stderr_has("keeps no default parameters of its own");
    assert_eq!(server.get("/api/v1/namespaces/_/actions/pipe").0, 404);
    owner
        .clemmys(&["action", "create", "pipe", "--sequence", "c1"])
        .success();
    // The plan the owner signed first, as the node stores it.
    let (status, first) = server.get("/api/v1/namespaces/_/actions/pipe");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let first: Value = serde_json::from_slice(&first).expect("an action record");
    friend
        .clemmys(&["broker", "trust", "--yes", "--trust-owner", &owner_id])
        .success();

    // The provider shows the sequence as a plain action of its own. The
    // friend never ran it (no plan in its home), so only the broker can
    // tell it the name is a confidential sequence.
    provider_replaces_with_plain_echo(&server, "pipe");
    // Its owner's CLI does not show it as an action either.
    owner
        .clemmys(&["action", "get", "pipe"])
        .failure()
        .stderr_has("registers pipe as a confidential sequence");
    let secret = crate::common::unique("param-");
    let out = friend
        .clemmys(&["action", "invoke", "pipe", "-p", "secret", &secret, "-r"])
        .failure();
    out.stderr_has("registers pipe as a confidential sequence");
    assert!(!out.stdout.contains(&secret), "{out}");
    assert!(
        !provider_sees(&server, "pipe", &secret),
        "the parameters of an invoke of pipe reached the node in the clear"
    );

    // The owner puts the sequence back with a newer plan; the provider
    // restores the first plan over it. The friend, who saw neither, runs
    // no older plan than the one the owner registered.
    owner
        .clemmys(&["action", "update", "pipe", "--sequence", "c1"])
        .success();
    let (status, body) = server.put(
        "/api/v1/namespaces/_/actions/pipe?overwrite=true",
        &json!({"exec": first["exec"], "annotations": first["annotations"]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    friend
        .clemmys(&["action", "invoke", "pipe", "-p", "name", "F", "-r"])
        .failure()
        .stderr_has("older than version");

    // The owner's current plan runs for the friend.
    owner
        .clemmys(&["action", "update", "pipe", "--sequence", "c1"])
        .success();
    friend
        .clemmys(&["action", "invoke", "pipe", "-p", "name", "F", "-r"])
        .success()
        .stdout_has("Hello, F!");
}

#[test]
fn a_record_stripped_of_its_sealed_answer_is_not_shown_as_the_result() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let id = user.invoke_for_id("hello", &[("name", "stripped")]);
    // The provider replaces the sealed answer with a plain one of its own
    // (and its own logs and name): a record of a plain action.
    server.stop();
    forge_record(&server.data_dir, &id, |record| {
        record.response = clemmys_whisk::ActivationResponse::success(
            json!({"payload": "PROVIDER-FORGED: approved"}),
        );
        record.logs = vec!["PROVIDER-FORGED: log".into()];
    });
    server.spawn_again_on_the_same_port();
    for command in [
        vec!["activation", "result", &id],
        vec!["activation", "logs", &id],
        vec!["activation", "get", &id],
        vec!["activation", "result", &id, "--json"],
        vec!["activation", "get", &id, "--json"],
    ] {
        let out = user.clemmys(&command).failure();
        assert!(
            !out.stdout.contains("PROVIDER-FORGED"),
            "{command:?} showed the provider's answer: {out}"
        );
        out.stderr_has("no sealed answer");
    }

    // Nor as a failure: an answer of any shape under a failure status,
    // or log lines, are the provider's words too (an honest node's
    // report of a failed confidential run is an error text alone).
    let id = user.invoke_for_id("hello", &[("name", "failed")]);
    let logged = user.invoke_for_id("hello", &[("name", "logged")]);
    server.stop();
    forge_record(&server.data_dir, &id, |record| {
        record.response = clemmys_whisk::ActivationResponse::new(
            clemmys_whisk::ActivationStatus::ApplicationError,
            json!({"payload": "PROVIDER-FORGED: approved"}),
        );
    });
    forge_record(&server.data_dir, &logged, |record| {
        record.response = clemmys_whisk::ActivationResponse::error(
            clemmys_whisk::ActivationStatus::DeveloperError,
            "the run failed",
        );
        record.logs = vec!["PROVIDER-FORGED: log".into()];
    });
    server.spawn_again_on_the_same_port();
    for id in [&id, &logged] {
        for command in [
            vec!["activation", "result", id],
            vec!["activation", "logs", id],
            vec!["activation", "get", id],
            vec!["activation", "result", id, "--json"],
        ] {
            let out = user.clemmys(&command).failure();
            assert!(
                !out.stdout.contains("PROVIDER-FORGED"),
                "{command:?} showed the provider's words: {out}"
            );
            out.stderr_has("no sealed answer");
        }
    }
}

#[test]
fn a_record_relabelled_by_the_provider_shows_the_invoked_name() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    for name in ["hello", "other"] {
        user.clemmys(&[
            "action",
            "create",
            name,
            crate::common::arg(&example("hello")),
        ])
        .success();
    }
    let id = user.invoke_for_id("hello", &[("name", "label")]);
    server.stop();
    forge_record(&server.data_dir, &id, |record| {
        relabel(record, "other");
    });
    server.spawn_again_on_the_same_port();
    let shown = user
        .clemmys(&["activation", "get", &id, "--json"])
        .success()
        .json();
    assert_eq!(shown["name"], "hello", "{shown}");
    assert_eq!(
        annotation(&shown, "path"),
        Some(&json!("guest/hello")),
        "{shown}"
    );
    let summary = user
        .clemmys(&["activation", "get", &id, "--summary"])
        .success();
    assert!(!summary.stdout.contains("/other"), "{summary}");
}

/// What a [`rewriting_proxy`] replaces in requests, once set: `(from, to)`.
type RewriteRule = std::sync::Arc<std::sync::Mutex<Option<(Vec<u8>, Vec<u8>)>>>;

/// A proxy to `upstream` that, once `rule` holds `(from, to)`, replaces
/// `from` with `to` (of the same length) in every request it forwards: the
/// provider's network answering one URL with another's answer.
fn rewriting_proxy(upstream: &str, rule: RewriteRule) -> String {
    use std::io::{Read as _, Write as _};
    let (upstream, listener, addr) = crate::common::proxy_listener(upstream);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(mut from_client), Ok(mut to_client)) = (client.try_clone(), client.try_clone())
            else {
                continue;
            };
            let (Ok(mut to_server), Ok(mut from_server)) = (server.try_clone(), server.try_clone())
            else {
                continue;
            };
            let rule = rule.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 64 * 1024];
                while let Ok(read) = from_client.read(&mut chunk) {
                    if read == 0 {
                        break;
                    }
                    let mut bytes = chunk[..read].to_vec();
                    if let Some((from, to)) = rule.lock().ok().and_then(|rule| rule.clone()) {
                        let mut at = 0;
                        while let Some(found) = bytes[at..]
                            .windows(from.len())
                            .position(|window| window == from.as_slice())
                        {
                            let start = at + found;
                            bytes[start..start + to.len()].copy_from_slice(&to);
                            at = start + to.len();
                        }
                    }
                    if to_server.write_all(&bytes).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn the_record_of_another_activation_given_for_an_id_is_refused() {
    let server = Server::start();
    let rule = std::sync::Arc::new(std::sync::Mutex::new(None));
    let proxy = rewriting_proxy(&server.api_host, rule.clone());
    let user = server.user_via(&proxy);
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let bob = user.invoke_for_id("hello", &[("name", "Bob")]);
    let alice = user.invoke_for_id("hello", &[("name", "Alice")]);
    assert_eq!(bob.len(), alice.len());
    // The provider answers every request for Alice's activation with Bob's.
    *rule
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some((alice.as_bytes().to_vec(), bob.as_bytes().to_vec()));
    for command in [
        vec!["activation", "result", &alice],
        vec!["activation", "get", &alice],
        vec!["activation", "result", &alice, "--json"],
    ] {
        let out = user.clemmys(&command).failure();
        assert!(
            !out.stdout.contains("Bob"),
            "{command:?} showed another activation's verified answer: {out}"
        );
        out.stderr_has("with the record of activation");
    }
}

#[test]
fn a_confidential_actions_limits_are_bound_with_its_code() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let sleep = example("sleep");
    let sleep = crate::common::arg(&sleep);
    user.clemmys(&["action", "create", "slow", sleep, "--timeout", "300"])
        .success();
    let invoke = |ms: &str| user.clemmys(&["action", "invoke", "slow", "-p", "ms", ms, "-r"]);
    let cut = invoke("600").failure();
    cut.stdout_has("exceeded its time limits of 300 milliseconds");
    assert_eq!(
        invoke("100").success().json(),
        json!({"slept": 100}),
        "within the owner's timeout"
    );

    // Without the code, the limits are not changed at the node alone,
    // where the enclave would not take them.
    let refused = user
        .clemmys(&["action", "update", "slow", "--timeout", "1000"])
        .failure();
    refused.stderr_has("bound into its policy with its code");
    // Concurrency is the host's to schedule: it changes alone.
    user.clemmys(&["action", "update", "slow", "-c", "2"])
        .success();
    // An update with the code keeps them, as OpenWhisk keeps limits an
    // update leaves out...
    user.clemmys(&["action", "update", "slow", sleep]).success();
    invoke("600")
        .failure()
        .stdout_has("exceeded its time limits of 300 milliseconds");
    // ...and binds the ones it names.
    user.clemmys(&["action", "update", "slow", sleep, "--timeout", "1000"])
        .success();
    assert_eq!(invoke("600").success().json(), json!({"slept": 600}));
    let shown = user
        .clemmys(&["action", "get", "slow", "--json"])
        .success()
        .json();
    assert_eq!(shown["limits"]["timeout"], 1000, "{shown}");

    // Created again after a delete, it starts from OpenWhisk's defaults,
    // whatever the broker kept of the deleted one.
    user.clemmys(&["action", "delete", "slow"]).success();
    user.clemmys(&["action", "create", "slow", sleep, "--timeout", "300"])
        .success();
    user.clemmys(&["action", "delete", "slow"]).success();
    user.clemmys(&["action", "create", "slow", sleep]).success();
    assert_eq!(invoke("600").success().json(), json!({"slept": 600}));
}

/// An action deleted (by its owner, or by the provider on the node) and
/// then updated with new code and no parameters is made anew: the deleted
/// one's sealed parameters must not be sealed into code that was not
/// written for them. Before, the client sealed its kept copy into it
/// whenever the broker's version matched, and the broker never forgets.
#[test]
fn a_deleted_actions_parameters_are_not_sealed_into_the_action_made_anew() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let echo = example("echo");
    let echo = crate::common::arg(&echo);
    for name in ["mine", "theirs"] {
        user.clemmys(&["action", "create", name, echo, "-p", "token", "SECRET"])
            .success();
    }
    // The owner deletes one; the provider puts a record back under its
    // name (so the node says it exists).
    user.clemmys(&["action", "delete", "mine"]).success();
    use base64::Engine as _;
    let code = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(example("echo")).expect("the echo example"));
    let (status, body) = server.put(
        "/api/v1/namespaces/_/actions/mine",
        &json!({"exec": {"kind": "wasm", "code": code}}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The provider deletes the other on the node.
    let (status, body) = server.delete("/api/v1/namespaces/_/actions/theirs");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    for name in ["mine", "theirs"] {
        user.clemmys(&["action", "update", name, echo]).success();
        let invoked = user
            .clemmys(&["action", "invoke", name, "-p", "new", "code", "-r"])
            .success();
        assert_eq!(invoked.json(), json!({"new": "code"}), "{name}: {invoked}");
    }
}

#[test]
fn a_verified_answer_is_not_shown_with_the_providers_claims_about_its_run() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&example("hello")),
    ])
    .success();
    let id = user.invoke_for_id("hello", &[("name", "claims")]);
    let cause = user.invoke_for_id("hello", &[("name", "cause")]);
    server.stop();
    // The provider says the run was a sequence's step that timed out under
    // limits of its choosing.
    forge_record(&server.data_dir, &id, |record| {
        record.cause = Some(cause.parse().unwrap_or_else(|error| panic!("{error:?}")));
        record.annotations.set("causedBy", json!("sequence"));
        record.annotations.set("timeout", json!(true));
        record
            .annotations
            .set("limits", json!({"timeout": 1, "memory": 1, "logs": 0}));
        // And a claim of its own making: that it ran on hardware.
        record
            .annotations
            .set("tee", json!("sgx: hardware-protected"));
        // Or in the value of one shown.
        record
            .annotations
            .set("kind", json!("wasm (sgx: hardware-protected)"));
    });
    server.spawn_again_on_the_same_port();
    let shown = user
        .clemmys(&["activation", "get", &id, "--json"])
        .success()
        .json();
    assert_eq!(
        shown["response"]["result"],
        json!({"payload": "Hello, claims!"}),
        "{shown}"
    );
    assert!(shown.get("cause").is_none_or(Value::is_null), "{shown}");
    let annotations = shown["annotations"].to_string();
    for claim in ["causedBy", "timeout", "limits", "hardware-protected"] {
        assert!(!annotations.contains(claim), "{claim} shown: {shown}");
    }
}

/// The node records every confidential run as a success, under whatever
/// name it writes: the owner's `activation list` names its own runs as it
/// invoked them and shows their status as sealed.
#[test]
fn activation_list_shows_own_confidential_runs_as_invoked_and_sealed() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&["action", "create", "hello", crate::common::arg(&hello)])
        .success();
    user.clemmys(&[
        "action",
        "create",
        "pub",
        crate::common::arg(&hello),
        "--plain",
    ])
    .success();
    let sealed = user.invoke_for_id("hello", &[("name", "listed")]);
    let plain = user.invoke_for_id("pub", &[("name", "listed")]);
    server.stop();
    forge_record(&server.data_dir, &sealed, |record| relabel(record, "other"));
    server.spawn_again_on_the_same_port();
    let listed = user.clemmys(&["activation", "list"]).success();
    let row = |id: &str| {
        listed
            .stdout
            .lines()
            .find(|line| line.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
            .to_owned()
    };
    let sealed_row = row(&sealed);
    assert!(sealed_row.contains("guest/hello:"), "{sealed_row}");
    assert!(sealed_row.contains(" sealed "), "{sealed_row}");
    assert!(!sealed_row.contains("success"), "{sealed_row}");
    let plain_row = row(&plain);
    assert!(plain_row.contains("success"), "{plain_row}");
    assert!(plain_row.contains("guest/pub:"), "{plain_row}");
}

#[test]
fn a_made_up_failure_or_path_of_a_confidential_action_shows_nothing_forged() {
    use clemmys_whisk::{ActivationResponse, ActivationStatus};
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&["action", "create", "hello", crate::common::arg(&hello)])
        .success();
    user.clemmys(&[
        "action",
        "create",
        "pub",
        crate::common::arg(&hello),
        "--plain",
    ])
    .success();
    let ids: Vec<String> = (0..8)
        .map(|n| user.invoke_for_id("pub", &[("name", &format!("plain{n}"))]))
        .collect();
    // A plain action of the same name in a package: its records are shown.
    user.clemmys(&["package", "create", "pkg"]).success();
    user.clemmys(&[
        "action",
        "create",
        "pkg/hello",
        crate::common::arg(&hello),
        "--plain",
    ])
    .success();
    let packaged = user.invoke_for_id("pkg/hello", &[("name", "packaged")]);
    server.stop();
    // Records of the plain action rewritten as runs of confidential
    // `hello` that this client did not invoke: a failure carrying a result
    // and log lines...
    forge_record(&server.data_dir, &ids[0], |record| {
        relabel(record, "hello");
        record.response = ActivationResponse::new(
            ActivationStatus::ApplicationError,
            json!({"payload": "PROVIDER-FORGED-A"}),
        );
        record.logs = vec!["2026-12-07T00:00:00Z stdout: PROVIDER-FORGED-A".into()];
    });
    // ...a success whose path reads as package `guest`'s action...
    forge_record(&server.data_dir, &ids[1], |record| {
        record.name = "hello".into();
        record
            .annotations
            .set("path", Value::String("/guest/hello".into()));
        record.response = ActivationResponse::success(json!({"payload": "PROVIDER-FORGED-B"}));
    });
    // ...a success named `hello` whose path names the plain action...
    forge_record(&server.data_dir, &ids[2], |record| {
        record.name = "hello".into();
        record.response = ActivationResponse::success(json!({"payload": "PROVIDER-FORGED-C"}));
        record.logs = vec!["2026-12-07T00:00:00Z stdout: PROVIDER-FORGED-C".into()];
    });
    // ...and what the node writes when it refuses a run: shown, as its
    // report.
    forge_record(&server.data_dir, &ids[3], |record| {
        relabel(record, "hello");
        record.response = ActivationResponse::new(
            ActivationStatus::ApplicationError,
            json!({"error": "the enclave refused the request"}),
        );
        record.logs = Vec::new();
    });
    // ...a result beside a sealed one...
    forge_record(&server.data_dir, &ids[4], |record| {
        relabel(record, "hello");
        record.response = ActivationResponse::success(
            json!({"sealed": "c2VhbGVk", "payload": "PROVIDER-FORGED-E"}),
        );
    });
    // ...a record named `hello` whose path names a package of the
    // provider's making...
    forge_record(&server.data_dir, &ids[6], |record| {
        record.name = "hello".into();
        record
            .annotations
            .set("path", Value::String("guest/zz/hello".into()));
        record.response = ActivationResponse::success(json!({"payload": "PROVIDER-FORGED-G"}));
    });
    // ...a record named `hello` of another namespace, whose lines `poll`
    // shows under that namespace's name...
    forge_record(&server.data_dir, &ids[7], |record| {
        record.name = "hello".into();
        record
            .annotations
            .set("path", Value::String("other/hello".into()));
        record.logs = vec!["2026-12-07T00:00:00Z stdout: OTHER-NAMESPACE-LINE".into()];
    });
    // ...and a record named as the plain action whose path is `hello`'s.
    forge_record(&server.data_dir, &ids[5], |record| {
        record
            .annotations
            .set("path", Value::String("guest/hello".into()));
        record.response = ActivationResponse::success(json!({"payload": "PROVIDER-FORGED-F"}));
    });
    server.spawn_again_on_the_same_port();

    user.clemmys(&["activation", "result", &packaged])
        .success()
        .stdout_has("Hello, packaged!");
    // Shown as what its path says it is, never as a run of `hello`.
    user.clemmys(&["activation", "result", &ids[6]])
        .success()
        .stderr_has(
            "is the node's record of /guest/zz/hello, not of your confidential action hello",
        );
    for (id, command) in [
        (&ids[4], "get"),
        (&ids[5], "result"),
        (&ids[0], "result"),
        (&ids[0], "logs"),
        (&ids[0], "get"),
        (&ids[1], "get"),
        (&ids[1], "result"),
        (&ids[2], "result"),
        (&ids[2], "logs"),
    ] {
        let out = user.clemmys(&["activation", command, id]).failure();
        assert!(
            !out.stdout.contains("PROVIDER-FORGED"),
            "{command} {id}: {out}"
        );
        out.stderr_has("holds as confidential and this client did not invoke");
    }
    user.clemmys(&["activation", "get", &ids[3]])
        .success()
        .stdout_has("the enclave refused the request")
        .stderr_has("the node's own report");
    let polled = user
        .clemmys(&["activation", "poll", "--exit", "1", "--since-minutes", "10"])
        .success();
    assert!(!polled.stdout.contains("PROVIDER-FORGED"), "{polled}");
    polled
        .stdout_has(&format!("Activation: 'zz/hello' ({})", ids[6]))
        .stdout_has(&format!("Activation: 'pkg/hello' ({packaged})"))
        .stdout_has(&format!("Activation: '/other/hello' ({})", ids[7]));
    polled.stdout_has("the provider wrote them");
}

/// The provider relabels this client's activation as another action's,
/// and makes up a newer, plain record of its confidential action: `poll`
/// must show the opened logs under the name invoked, and `--last` must
/// not show the made-up record as the action's result.
#[test]
fn poll_and_last_show_no_record_the_provider_relabelled_or_made_up() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    for name in ["hello", "other"] {
        user.clemmys(&["action", "create", name, crate::common::arg(&hello)])
            .success();
    }
    user.clemmys(&[
        "action",
        "create",
        "pub",
        crate::common::arg(&hello),
        "--plain",
    ])
    .success();
    let id = user.invoke_for_id("hello", &[("name", "label")]);
    let plain = user.invoke_for_id("pub", &[("name", "plain")]);
    server.stop();
    forge_record(&server.data_dir, &id, |record| {
        relabel(record, "other");
    });
    forge_record(&server.data_dir, &plain, |record| {
        relabel(record, "hello");
        record.response = clemmys_whisk::ActivationResponse::success(
            json!({"payload": "PROVIDER-FORGED: approved"}),
        );
    });
    server.spawn_again_on_the_same_port();

    let polled = user
        .clemmys(&["activation", "poll", "--exit", "1", "--since-minutes", "10"])
        .success();
    polled
        .stdout_has(&format!("Activation: 'hello' ({id})"))
        .stdout_has("hello: greeting label");
    assert!(
        !polled.stdout.contains(&format!("'other' ({id})")),
        "{polled}"
    );
    for command in [
        vec!["activation", "result", "--last"],
        vec!["activation", "get", "--last"],
    ] {
        let out = user.clemmys(&command).failure();
        assert!(
            !out.stdout.contains("PROVIDER-FORGED"),
            "{command:?}: {out}"
        );
        out.stderr_has("holds as confidential and this client did not invoke");
    }
}
