//! `clemmys trigger …` and `clemmys rule …` against a node: create, fire
//! through a rule, enable/disable, list and delete, as `wsk` prints them.

use std::time::Duration;

use serde_json::json;

use crate::common::Server;

#[test]
fn a_trigger_fires_its_rules_action() {
    let server = Server::start();
    let user = server.user();
    let echo = crate::common::example("echo");
    user.clemmys(&[
        "action",
        "create",
        "echo",
        crate::common::arg(&echo),
        "--plain",
    ])
    .success();
    let created = user
        .clemmys(&["trigger", "create", "t", "-p", "a", "1", "-p", "b", "2"])
        .success();
    assert_eq!(created.stdout, "ok: created trigger t\n", "{created}");
    user.clemmys(&["trigger", "create", "t"]).failure();

    let unruled = user.clemmys(&["trigger", "fire", "t"]).success();
    assert!(unruled.stdout.contains("no rule is active"), "{unruled}");

    let rule = user
        .clemmys(&["rule", "create", "r", "t", "echo"])
        .success();
    assert_eq!(rule.stdout, "ok: created rule r\n", "{rule}");
    user.clemmys(&["rule", "create", "bad", "t", "missing"])
        .failure()
        .stderr_has("does not exist");
    let status = user.clemmys(&["rule", "status", "r"]).success();
    assert_eq!(status.stdout, "ok: rule r is active\n", "{status}");

    let fired = user
        .clemmys(&["trigger", "fire", "t", "-p", "b", "3", "--json"])
        .success()
        .json();
    let id = fired["activationId"].as_str().expect("an id").to_owned();
    let record = wait_for(&user, &id);
    let line: serde_json::Value =
        serde_json::from_str(record["logs"][0].as_str().expect("a log line")).expect("JSON");
    assert_eq!(line["rule"], "guest/r");
    let started = line["activationId"].as_str().expect("started").to_owned();
    let run = wait_for(&user, &started);
    assert_eq!(run["response"]["result"], json!({"a": 1, "b": 3}));

    let disabled = user.clemmys(&["rule", "disable", "r"]).success();
    assert_eq!(disabled.stdout, "ok: disabled rule r\n", "{disabled}");
    let listed = user.clemmys(&["rule", "list"]).success();
    assert_eq!(
        listed.stdout, "rules\n/guest/r  private  inactive\n",
        "{listed}"
    );
    user.clemmys(&["rule", "enable", "r"]).success();
    let triggers = user.clemmys(&["trigger", "list"]).success();
    assert_eq!(
        triggers.stdout, "triggers\n/guest/t  private\n",
        "{triggers}"
    );
    let got = user
        .clemmys(&["trigger", "get", "t", "--json"])
        .success()
        .json();
    assert_eq!(got["rules"]["guest/r"]["status"], "active");

    let everything = user.clemmys(&["list"]).success();
    assert!(
        everything
            .stdout
            .ends_with("triggers\n/guest/t  private\nrules\n/guest/r  private  active\n"),
        "{everything}"
    );

    let deleted = user
        .clemmys(&["rule", "delete", "r", "--disable"])
        .success();
    assert_eq!(deleted.stdout, "ok: deleted rule r\n", "{deleted}");
    let deleted = user.clemmys(&["trigger", "delete", "t"]).success();
    assert_eq!(deleted.stdout, "ok: deleted trigger t\n", "{deleted}");
    user.clemmys(&["trigger", "get", "t"]).failure();
}

#[test]
fn a_trigger_can_be_fed_by_the_nodes_alarms() {
    let server = Server::start();
    let user = server.user();
    let feed = "/whisk.system/alarms/alarm";
    user.clemmys(&[
        "trigger", "create", "bad", "--feed", feed, "-p", "cron", "nope",
    ])
    .failure()
    .stderr_has("is not valid");
    user.clemmys(&[
        "trigger",
        "create",
        "tick",
        "--feed",
        feed,
        "-p",
        "cron",
        "0 0 * * *",
    ])
    .success();
    let got = user
        .clemmys(&["trigger", "get", "tick", "--json"])
        .success()
        .json();
    assert_eq!(got["annotations"], json!([{"key": "feed", "value": feed}]));
    assert_eq!(
        got["parameters"],
        json!([{"key": "cron", "value": "0 0 * * *"}])
    );
}

/// Polls `activation get ID` until it is stored, at most 10 s.
fn wait_for(user: &crate::common::User, id: &str) -> serde_json::Value {
    for _ in 0..100 {
        let got = user.clemmys(&["activation", "get", id, "--json"]);
        if got.code() == Some(0) {
            return got.json();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("activation {id} was not stored within 10 s");
}
