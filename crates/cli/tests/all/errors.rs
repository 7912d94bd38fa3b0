//! How the CLI fails: exit code 1, the API's message on stderr (or a JSON
//! error with `--json`), nothing half-printed on stdout.

use crate::common::{Server, arg, example};

#[test]
fn invoking_a_missing_action_exits_1_with_the_api_message() {
    let server = Server::start();
    let user = server.user();
    let out = user.clemmys(&["action", "invoke", "nope", "-r"]).failure();
    out.stderr_has(
        "error: invoking action nope: The requested resource does not exist. (HTTP 404, code ",
    );
    assert!(out.stdout.is_empty(), "{out}");

    let out = user
        .clemmys(&["action", "invoke", "nope", "--json"])
        .failure();
    assert!(out.stdout.is_empty(), "{out}");
    let error: serde_json::Value = serde_json::from_str(out.stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not one JSON error ({e}): {out}"));
    assert_eq!(error["status"], 404, "{out}");
    assert!(error["code"].is_string(), "{out}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("The requested resource does not exist.")),
        "{out}"
    );
}

#[test]
fn an_unreachable_server_is_reported_with_a_hint() {
    let server = Server::start();
    let user = server.user();
    // Port 1 on loopback: nothing listens there.
    let out = user
        .clemmys(&["action", "list", "--apihost", "http://127.0.0.1:1"])
        .failure();
    out.stderr_has("error: listing actions")
        .stderr_has("hint: is the server running? `clemmys serve` starts one on this machine");
}

#[test]
fn a_wrong_key_is_refused_with_401() {
    let server = Server::start();
    let user = server.user();
    let wrong = "00000000-0000-4000-8000-000000000000:not-the-key";
    user.clemmys(&["action", "list", "-u", wrong])
        .failure()
        .stderr_has("error: listing actions: The supplied authentication is invalid. (HTTP 401");
    user.clemmys(&["action", "list", "-u", "no-colon"])
        .failure()
        .stderr_has("is not of the form UUID:KEY");
}

#[test]
fn creating_an_action_from_a_file_that_is_not_wasm_fails_before_any_request() {
    let server = Server::start_with(&["--no-js-engine"]);
    let user = server.user();
    let fake = user.home().join("fake.wasm");
    std::fs::write(&fake, "(module)").unwrap_or_else(|e| panic!("{e}"));
    user.clemmys(&["action", "create", "fake", arg(&fake), "--plain"])
        .failure()
        .stderr_has("is not a binary WebAssembly module");
    let js = user.home().join("hello.js");
    std::fs::write(&js, "function main() {}").unwrap_or_else(|e| panic!("{e}"));
    // A node started without the JavaScript engine says so.
    user.clemmys(&["action", "create", "js", arg(&js), "--plain"])
        .failure()
        .stderr_has("is not available on this node");
    let text = user.home().join("hello.txt");
    std::fs::write(&text, "hello").unwrap_or_else(|e| panic!("{e}"));
    user.clemmys(&["action", "create", "txt", arg(&text), "--plain"])
        .failure()
        .stderr_has("name the file *.wasm or *.js, or pass --kind");
    user.clemmys(&["action", "create", "nothing", "--plain"])
        .failure()
        .stderr_has("an action needs code");
    let listed = user.clemmys(&["action", "list"]).success();
    assert_eq!(listed.stdout, "actions\n", "{listed}");
    // And creating the same name twice is a conflict.
    let hello = example("hello");
    user.clemmys(&["action", "create", "twice", arg(&hello), "--plain"])
        .success();
    user.clemmys(&["action", "create", "twice", arg(&hello), "--plain"])
        .failure()
        .stderr_has("(HTTP 409");
}
