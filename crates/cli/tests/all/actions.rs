//! `clemmys action create|update|invoke|get|list|delete` with plain
//! (`--plain`) and confidential actions side by side.

use serde_json::json;

use crate::common::{Server, annotation, arg, example, http_get, js_engine};

#[test]
fn plain_and_confidential_actions_are_listed_got_updated_and_deleted() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&["action", "create", "hello", arg(&hello)])
        .success();

    let created = user
        .clemmys(&["action", "create", "plainhello", arg(&hello), "--plain"])
        .success();
    assert_eq!(
        created.stdout, "ok: created action plainhello\n",
        "{created}"
    );

    let invoked = user
        .clemmys(&["action", "invoke", "plainhello", "-p", "name", "Bob", "-r"])
        .success();
    assert_eq!(
        invoked.json(),
        json!({"payload": "Hello, Bob!"}),
        "{invoked}"
    );
    assert!(
        !invoked.stderr.contains("decrypted"),
        "a plain answer is not decrypted: {invoked}"
    );

    let listed = user.clemmys(&["action", "list"]).success();
    assert_eq!(
        listed.stdout,
        "actions\n/guest/hello       private  wasm\n/guest/plainhello  private  wasm\n",
        "{listed}"
    );
    let listed = user.clemmys(&["action", "list", "--json"]).success().json();
    let names: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["hello", "plainhello"], "{listed}");
    let count = user.clemmys(&["action", "list", "--count"]).success();
    assert_eq!(count.stdout, "2\n", "{count}");

    let got = user.clemmys(&["action", "get", "plainhello"]).success();
    assert!(
        got.stdout.starts_with("ok: got action plainhello\n{"),
        "{got}"
    );
    let doc = user
        .clemmys(&["action", "get", "plainhello", "--json"])
        .success()
        .json();
    assert_eq!(doc["name"], "plainhello");
    assert_eq!(doc["namespace"], "guest");
    assert_eq!(doc["version"], "0.0.1");
    assert_eq!(doc["exec"]["kind"], "wasm");
    assert_eq!(annotation(&doc, "confidential"), None, "{doc}");
    let doc = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(
        annotation(&doc, "confidential"),
        Some(&json!(true)),
        "{doc}"
    );

    // The plain code comes back byte for byte.
    let saved = user.home().join("saved.wasm");
    user.clemmys(&["action", "get", "plainhello", "--save-as", arg(&saved)])
        .success()
        .stdout_has("ok: saved action code to ");
    assert_eq!(
        std::fs::read(&saved).ok(),
        std::fs::read(&hello).ok(),
        "the saved code differs from the module"
    );

    // update: only the timeout changes.
    let updated = user
        .clemmys(&["action", "update", "plainhello", "-t", "1000"])
        .success();
    assert_eq!(
        updated.stdout, "ok: updated action plainhello\n",
        "{updated}"
    );
    let limits = user
        .clemmys(&["action", "get", "plainhello", "limits", "--json"])
        .success()
        .json();
    assert_eq!(limits["timeout"], 1000, "{limits}");
    let doc = user
        .clemmys(&["action", "get", "plainhello", "--json"])
        .success()
        .json();
    assert_eq!(doc["version"], "0.0.2", "{doc}");
    let invoked = user
        .clemmys(&[
            "action",
            "invoke",
            "plainhello",
            "-p",
            "name",
            "again",
            "-r",
        ])
        .success();
    assert_eq!(invoked.json(), json!({"payload": "Hello, again!"}));

    // A confidential action's limits change with its code (they are bound
    // into its policy), and it stays confidential.
    user.clemmys(&["action", "update", "hello", "-t", "1000"])
        .failure()
        .stderr_has("give the code again");
    user.clemmys(&["action", "update", "hello", arg(&hello), "-t", "1000"])
        .success();
    let doc = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(doc["limits"]["timeout"], 1000, "{doc}");
    assert_eq!(
        annotation(&doc, "confidential"),
        Some(&json!(true)),
        "{doc}"
    );
    let invoked = user
        .clemmys(&["action", "invoke", "hello", "-p", "name", "Ada", "-r"])
        .success();
    assert_eq!(invoked.json(), json!({"payload": "Hello, Ada!"}));

    let deleted = user.clemmys(&["action", "delete", "plainhello"]).success();
    assert_eq!(
        deleted.stdout, "ok: deleted action plainhello\n",
        "{deleted}"
    );
    let listed = user.clemmys(&["action", "list"]).success();
    assert_eq!(
        listed.stdout, "actions\n/guest/hello  private  wasm\n",
        "{listed}"
    );
    user.clemmys(&["action", "get", "plainhello"])
        .failure()
        .stderr_has(
            "error: getting action plainhello: The requested resource does not exist. (HTTP 404",
        );
    user.clemmys(&["action", "delete", "plainhello"])
        .failure()
        .stderr_has("(HTTP 404");
}

#[test]
fn plain_failure_exits_1_and_still_prints_the_result() {
    let server = Server::start();
    let user = server.user();
    user.clemmys(&["action", "create", "fail", arg(&example("fail")), "--plain"])
        .success();

    let out = user.clemmys(&["action", "invoke", "fail", "-r"]).failure();
    assert_eq!(
        out.json(),
        json!({"error": "this action always fails"}),
        "{out}"
    );
    out.stderr_has("error: action /guest/fail failed");

    let out = user.clemmys(&["action", "invoke", "fail", "-b"]).failure();
    let rest = out
        .stdout
        .split_once('\n')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let record: serde_json::Value =
        serde_json::from_str(rest).unwrap_or_else(|error| panic!("{error} in {out}"));
    assert_eq!(record["response"]["status"], "application error", "{out}");
    assert_eq!(record["response"]["success"], false, "{out}");
    assert_eq!(
        record["response"]["result"],
        json!({"error": "this action always fails"})
    );
    out.stderr_has("error: action /guest/fail failed: application error (activation ");
}

#[test]
fn a_non_blocking_invoke_prints_the_id_to_fetch_later() {
    let server = Server::start();
    let user = server.user();
    user.clemmys(&["action", "create", "echo", arg(&example("echo")), "--plain"])
        .success();
    let out = user
        .clemmys(&["action", "invoke", "echo", "-p", "k", "[1,2]"])
        .success();
    let id = out
        .stdout
        .trim()
        .strip_prefix("ok: invoked /guest/echo with id ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    // The activation is stored once it finishes: poll without timing anything.
    let deadline = std::time::Instant::now() + crate::common::COMMAND_TIMEOUT;
    loop {
        let result = user.clemmys(&["activation", "result", &id]);
        if result.status.success() {
            assert_eq!(result.json(), json!({"k": [1, 2]}), "{result}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "activation {id} never appeared: {result}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_js_file_becomes_a_confidential_javascript_action_or_a_plain_one() {
    let engine = js_engine();
    let server = Server::start_with(&["--js-engine", arg(&engine)]);
    let user = server.user();
    let source = user.home().join("hello.js");
    std::fs::write(
        &source,
        "function main(p) { return { payload: `Hello, ${p.name}!` }; }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Confidential by default, like a .wasm file: sealed for the engine
    // named by --js-engine.
    user.trust_broker();
    let created = user
        .clemmys(&[
            "action",
            "create",
            "hello",
            arg(&source),
            "--js-engine",
            arg(&engine),
        ])
        .success();
    assert!(
        created
            .stdout
            .starts_with("ok: created confidential action hello"),
        "{created}"
    );
    let got = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(got["exec"]["kind"], "nodejs:default", "{got}");
    assert_eq!(got["exec"]["binary"], true, "{got}");
    assert_eq!(annotation(&got, "confidential"), Some(&json!(true)));
    assert!(!got.to_string().contains("Hello, "), "source shown: {got}");
    let invoked = user
        .clemmys(&["action", "invoke", "hello", "-p", "name", "Ada", "-r"])
        .success();
    assert_eq!(
        invoked.json(),
        json!({"payload": "Hello, Ada!"}),
        "{invoked}"
    );

    // --plain: the source goes to the provider as text.
    let created = user
        .clemmys(&["action", "create", "open", arg(&source), "--plain"])
        .success();
    assert_eq!(created.stdout, "ok: created action open\n", "{created}");
    let got = user
        .clemmys(&["action", "get", "open", "--json"])
        .success()
        .json();
    assert_eq!(got["exec"]["binary"], false, "{got}");
    assert_ne!(annotation(&got, "confidential"), Some(&json!(true)));
    user.clemmys(&[
        "action",
        "create",
        "v20",
        arg(&source),
        "--kind",
        "nodejs:20",
        "--plain",
    ])
    .success();
}

#[test]
fn web_flags_export_an_action_and_get_url_prints_where() {
    let engine = js_engine();
    let server = Server::start_with(&["--js-engine", arg(&engine)]);
    let user = server.user();
    let source = user.home().join("hello.js");
    std::fs::write(
        &source,
        "function main(p) { return { body: `hi ${p.name}` }; }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    user.clemmys(&[
        "action",
        "create",
        "hello",
        arg(&source),
        "--plain",
        "--web",
        "true",
        "-p",
        "name",
        "Ada",
    ])
    .success();
    let got = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(annotation(&got, "web-export"), Some(&json!(true)), "{got}");
    assert_eq!(annotation(&got, "final"), Some(&json!(true)), "{got}");
    assert_eq!(annotation(&got, "raw-http"), Some(&json!(false)), "{got}");

    let shown = user.clemmys(&["action", "get", "hello", "--url"]).success();
    let url = format!("{}/api/v1/web/guest/default/hello", server.api_host);
    assert_eq!(
        shown.stdout,
        format!("ok: got action hello\n{url}\n"),
        "{shown}"
    );
    let path = "/api/v1/web/guest/default/hello.http";
    // Any credentials, or none, will do: the key here is not checked.
    let (status, body) = http_get(&server.api_host, path, "not:checked");
    assert_eq!((status, body.as_slice()), (200, &b"hi Ada"[..]));

    // An update keeps the stored annotations and adds the secret.
    user.clemmys(&["action", "update", "hello", "--web-secure", "s3cret"])
        .success();
    let got = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert_eq!(annotation(&got, "web-export"), Some(&json!(true)), "{got}");
    assert_eq!(
        annotation(&got, "require-whisk-auth"),
        Some(&json!("s3cret"))
    );
    assert_eq!(http_get(&server.api_host, path, "not:checked").0, 401);

    user.clemmys(&["action", "update", "hello", "--web", "false"])
        .success();
    assert_eq!(http_get(&server.api_host, path, "not:checked").0, 404);
    let shown = user.clemmys(&["action", "get", "hello", "--url"]).success();
    assert!(
        shown
            .stdout
            .ends_with("/api/v1/namespaces/guest/actions/hello\n"),
        "{shown}"
    );

    // Confidential actions are not offered as web actions.
    user.clemmys(&[
        "action",
        "create",
        "sealed",
        arg(&example("echo")),
        "--web",
        "true",
    ])
    .failure()
    .stderr_has("is not exported through the node");
    user.clemmys(&[
        "action",
        "create",
        "open",
        arg(&source),
        "--web-secure",
        "x",
    ])
    .failure()
    .stderr_has("only valid when the --web option is enabled");
}
