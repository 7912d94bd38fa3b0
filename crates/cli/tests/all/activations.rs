//! `clemmys activation list|get|result|logs`, in human and `--json` form.

use serde_json::{Value, json};

use crate::common::{Server, activation_id, arg, example};

/// The activations in a `--json` list, by id.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|all| {
            all.iter()
                .filter_map(|a| a["activationId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn activations_are_listed_as_a_table_and_as_json() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&["action", "create", "plainhello", arg(&hello), "--plain"])
        .success();
    user.clemmys(&["action", "create", "hello", arg(&hello)])
        .success();
    let plain = user.invoke_for_id("plainhello", &[("name", "Ada")]);
    let sealed = user.invoke_for_id("hello", &[("name", "Bob")]);

    let table = user.clemmys(&["activation", "list"]).success();
    let mut lines = table.stdout.lines();
    let header = lines.next().unwrap_or_default();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "Datetime",
            "Activation",
            "ID",
            "Kind",
            "Start",
            "Duration",
            "Status",
            "Entity"
        ],
        "{table}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{table}");
    // Newest first; this client's confidential run is sealed (the node
    // records it as a success whatever its status was).
    assert!(rows[0].contains(&sealed), "{table}");
    assert!(rows[0].ends_with(" sealed  guest/hello:0.0.1"), "{table}");
    assert!(rows[1].contains(&plain), "{table}");
    assert!(
        rows[1].ends_with(" success guest/plainhello:0.0.1"),
        "{table}"
    );
    for row in &rows {
        assert!(row.contains(" wasm "), "{table}");
    }

    let list = user
        .clemmys(&["activation", "list", "--json"])
        .success()
        .json();
    assert_eq!(ids(&list), [sealed.clone(), plain.clone()], "{list}");
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(list[1]["name"], "plainhello");

    let only = user
        .clemmys(&["activation", "list", "plainhello", "--json"])
        .success()
        .json();
    assert_eq!(ids(&only), std::slice::from_ref(&plain), "{only}");

    let limited = user
        .clemmys(&["activation", "list", "--limit", "1", "--json"])
        .success()
        .json();
    assert_eq!(ids(&limited), std::slice::from_ref(&sealed), "{limited}");

    // --full: whole records (the provider's, so the confidential one is sealed).
    let full = user
        .clemmys(&["activation", "list", "--full", "--json"])
        .success()
        .json();
    assert_eq!(ids(&full), [sealed.clone(), plain.clone()], "{full}");
    assert_eq!(
        full[1]["response"]["result"],
        json!({"payload": "Hello, Ada!"}),
        "{full}"
    );
    assert!(
        full[0]["response"]["result"]["sealed"].is_string(),
        "the confidential record is sealed: {full}"
    );
    assert!(!full.to_string().contains("Bob"), "{full}");

    // get/result/logs of the plain one.
    let record = user
        .clemmys(&["activation", "get", &plain, "--json"])
        .success()
        .json();
    assert_eq!(record["activationId"], plain.as_str());
    assert_eq!(
        record["response"]["result"],
        json!({"payload": "Hello, Ada!"})
    );
    let summary = user
        .clemmys(&["activation", "get", &plain, "--summary"])
        .success();
    summary.stdout_has("activation result for '/guest/plainhello' (success at ");
    let result = user.clemmys(&["activation", "result", &plain]).success();
    assert_eq!(result.json(), json!({"payload": "Hello, Ada!"}), "{result}");
    let logs = user
        .clemmys(&["activation", "logs", &plain, "--strip"])
        .success();
    assert_eq!(logs.stdout, "hello: greeting Ada\n", "{logs}");
    let last = user.clemmys(&["activation", "result", "--last"]).success();
    assert_eq!(last.json(), json!({"payload": "Hello, Bob!"}), "{last}");
}

#[test]
fn a_malformed_or_unknown_activation_id_exits_1() {
    let server = Server::start();
    let user = server.user();
    user.clemmys(&["activation", "get", "nope"])
        .failure()
        .stderr_has("'nope' is not an activation id (32 hexadecimal characters)");
    let unknown = "ab".repeat(16);
    user.clemmys(&["activation", "result", &unknown])
        .failure()
        .stderr_has("(HTTP 404");
    user.clemmys(&["activation", "get", "--last"])
        .failure()
        .stderr_has("there are no activations yet");
}

#[test]
fn an_accepted_activation_cut_off_by_a_crash_keeps_a_record_saying_so() {
    let mut server = Server::start();
    let user = server.user();
    user.trust_broker();
    let sleep = example("sleep");
    for (name, plain) in [("plainsleep", true), ("sealedsleep", false)] {
        let mut args = vec!["action", "create", name, arg(&sleep), "--timeout", "60000"];
        if plain {
            args.push("--plain");
        }
        user.clemmys(&args).success();
    }
    let accepted: Vec<(&str, String)> = ["plainsleep", "sealedsleep"]
        .into_iter()
        .map(|name| {
            let out = user
                .clemmys(&["action", "invoke", name, "-p", "ms", "30000", "--json"])
                .success();
            (name, activation_id(&out.json()))
        })
        .collect();

    server.crash_and_restart();
    assert!(
        server.log().contains("the last stop interrupted"),
        "{}",
        server.log()
    );
    for (name, id) in &accepted {
        let record = user
            .clemmys(&["activation", "get", id, "--json"])
            .success()
            .json();
        assert_eq!(record["name"], json!(name), "{record}");
        assert_eq!(
            record["response"]["status"],
            json!("whisk internal error"),
            "{record}"
        );
        let error = record["response"]["result"]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("stopped before"), "{record}");
        // The confidential client shows the platform's error, unsealed and
        // not secret, as it does for any record without a sealed answer.
        user.clemmys(&["activation", "result", id])
            .success()
            .stdout_has("stopped before");
    }
    // The restarted node still runs the action.
    let out = user
        .clemmys(&["action", "invoke", "plainsleep", "-p", "ms", "1", "-r"])
        .success();
    assert_eq!(out.json(), json!({"slept": 1}));
}
