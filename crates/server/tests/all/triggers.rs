//! Triggers and rules: OpenWhisk's routes, shapes and status codes, fires
//! that start the rules' actions with the event over the trigger's
//! parameters, the trigger's activation record and its per-rule logs,
//! `firesPerMinute`, and a restart.

use clemmys_whisk::{EntityName, NamespaceLimits};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestServer, wasm_body};

const TRIGGERS: &str = "/api/v1/namespaces/_/triggers";
const RULES: &str = "/api/v1/namespaces/_/rules";

fn assert_error(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{:?}", answer.json);
    assert!(answer.json["error"].is_string(), "{:?}", answer.json);
    assert!(answer.json["code"].is_string(), "{:?}", answer.json);
}

async fn put_trigger(server: &TestServer, name: &str, body: Value) -> Answer {
    server
        .call(Method::PUT, &format!("{TRIGGERS}/{name}"), Some(body))
        .await
}

async fn put_rule(server: &TestServer, name: &str, trigger: &str, action: &str) -> Answer {
    server
        .call(
            Method::PUT,
            &format!("{RULES}/{name}"),
            Some(json!({"trigger": trigger, "action": action})),
        )
        .await
}

async fn fire(server: &TestServer, name: &str, event: Value) -> Answer {
    server
        .call(Method::POST, &format!("{TRIGGERS}/{name}"), Some(event))
        .await
}

async fn set_status(server: &TestServer, rule: &str, status: &str) -> Answer {
    server
        .call(
            Method::POST,
            &format!("{RULES}/{rule}"),
            Some(json!({ "status": status })),
        )
        .await
}

/// Fires `name`, expecting 202, and answers the stored trigger record.
async fn fire_and_record(server: &TestServer, name: &str, event: Value) -> Value {
    let fired = fire(server, name, event).await;
    assert_eq!(fired.status, StatusCode::ACCEPTED, "{:?}", fired.json);
    let id = fired.json["activationId"].as_str().expect("id").to_owned();
    assert_eq!(
        fired.headers["x-openwhisk-activation-id"]
            .to_str()
            .expect("header"),
        id
    );
    server.wait_for_activation(&id).await
}

/// The trigger record's log lines, parsed, by rule.
fn rule_logs(record: &Value) -> Vec<Value> {
    let mut logs: Vec<Value> = record["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|line| serde_json::from_str(line.as_str().expect("a line")).expect("JSON"))
        .collect();
    logs.sort_by_key(|line| line["rule"].as_str().unwrap_or_default().to_owned());
    logs
}

async fn limit_guest(server: &TestServer, limits: NamespaceLimits) {
    // Before the first request, so the controller has not cached the record.
    let store = &server.node().store;
    let name = EntityName::new("guest").expect("name");
    let mut record = store
        .get_namespace(&name)
        .await
        .expect("read")
        .expect("guest");
    record.limits = limits;
    store.put_namespace(record).await.expect("write");
}

#[tokio::test]
async fn a_trigger_is_created_read_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let created = put_trigger(
        &server,
        "t",
        json!({"parameters": [{"key": "a", "value": 1}]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(created.json["name"], "t");
    assert_eq!(created.json["namespace"], "guest");
    assert_eq!(created.json["version"], "0.0.1");
    assert_eq!(created.json["publish"], false);
    assert_eq!(created.json["limits"], json!({}));
    assert_eq!(
        created.json["parameters"],
        json!([{"key": "a", "value": 1}])
    );
    assert!(created.json.get("rules").is_none(), "{:?}", created.json);

    assert_error(
        &put_trigger(&server, "t", json!({})).await,
        StatusCode::CONFLICT,
    );
    let updated = server
        .call(
            Method::PUT,
            &format!("{TRIGGERS}/t?overwrite=true"),
            Some(json!({"annotations": [{"key": "description", "value": "d"}]})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    assert_eq!(updated.json["version"], "0.0.2");
    assert_eq!(
        updated.json["parameters"], created.json["parameters"],
        "an update keeps what it does not give"
    );
    put_trigger(&server, "s", json!({})).await;

    let listed = server.call(Method::GET, TRIGGERS, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let names: Vec<&str> = listed
        .json
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["s", "t"]);
    let page = server
        .call(Method::GET, &format!("{TRIGGERS}?skip=1&limit=1"), None)
        .await;
    assert_eq!(page.json.as_array().expect("page").len(), 1);
    let counted = server
        .call(Method::GET, &format!("{TRIGGERS}?count=true"), None)
        .await;
    assert_eq!(counted.json, json!({"triggers": 2}));

    let got = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["version"], "0.0.2");
    let deleted = server
        .call(Method::DELETE, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json["name"], "t");
    assert_error(
        &server
            .call(Method::GET, &format!("{TRIGGERS}/t"), None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &server
            .call(Method::DELETE, &format!("{TRIGGERS}/t"), None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_error(&fire(&server, "t", json!({})).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_fire_starts_the_rules_action_with_the_event_over_the_trigger_parameters() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(
        &server,
        "t",
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}]}),
    )
    .await;
    let rule = put_rule(&server, "r", "/_/t", "echo").await;
    assert_eq!(rule.status, StatusCode::OK, "{:?}", rule.json);
    assert_eq!(rule.json["status"], "active");
    assert_eq!(rule.json["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(
        rule.json["action"],
        json!({"path": "guest", "name": "echo"})
    );
    assert_eq!(rule.json["version"], "0.0.1");

    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(
        trigger.json["rules"],
        json!({"guest/r": {"action": {"path": "guest", "name": "echo"}, "status": "active"}})
    );

    let record = fire_and_record(&server, "t", json!({"b": 3, "c": 4})).await;
    assert_eq!(record["name"], "t");
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["response"]["success"], true);
    assert_eq!(
        record["response"]["result"],
        json!({"b": 3, "c": 4}),
        "the trigger's record keeps the event, as OpenWhisk's"
    );
    let logs = rule_logs(&record);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["statusCode"], 0);
    assert_eq!(logs[0]["success"], true);
    assert_eq!(logs[0]["rule"], "guest/r");
    assert_eq!(logs[0]["action"], "guest/echo");
    let started = logs[0]["activationId"].as_str().expect("id");
    let action = server.wait_for_activation(started).await;
    assert_eq!(action["name"], "echo");
    assert_eq!(
        action["response"]["result"],
        json!({"a": 1, "b": 3, "c": 4}),
        "the event wins over the trigger's parameters"
    );

    // The action's activation is listed like any other.
    let listed = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=echo",
            None,
        )
        .await;
    assert!(
        listed
            .json
            .as_array()
            .expect("list")
            .iter()
            .any(|a| a["activationId"] == started),
        "{:?}",
        listed.json
    );
}

#[tokio::test]
async fn a_fire_without_an_active_rule_answers_204() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(&server, "t", json!({})).await;
    let none = fire(&server, "t", json!({"x": 1})).await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
    assert_eq!(none.json, Value::Null, "no body");

    put_rule(&server, "r", "t", "echo").await;
    let disabled = set_status(&server, "r", "inactive").await;
    assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.json);
    let rule = server.call(Method::GET, &format!("{RULES}/r"), None).await;
    assert_eq!(rule.json["status"], "inactive");
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(trigger.json["rules"]["guest/r"]["status"], "inactive");
    assert_eq!(
        fire(&server, "t", json!({})).await.status,
        StatusCode::NO_CONTENT,
        "a disabled rule does not fire"
    );
    assert_eq!(
        set_status(&server, "r", "inactive").await.status,
        StatusCode::OK,
        "setting the status it has is fine"
    );
    assert_error(
        &set_status(&server, "r", "sleepy").await,
        StatusCode::BAD_REQUEST,
    );

    // An active and an inactive rule: the inactive one is logged as such.
    put_rule(&server, "r2", "t", "echo").await;
    let record = fire_and_record(&server, "t", json!({})).await;
    let logs = rule_logs(&record);
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[0]["rule"], "guest/r");
    assert_eq!(logs[0]["success"], false);
    assert_eq!(logs[0]["statusCode"], 1);
    assert_eq!(
        logs[0]["error"],
        "Rule 'guest/r' is inactive, action 'guest/echo' was not activated."
    );
    assert_eq!(logs[1]["success"], true);

    let enabled = set_status(&server, "r", "active").await;
    assert_eq!(enabled.status, StatusCode::OK);
    assert_eq!(enabled.json["status"], "active");
    let record = fire_and_record(&server, "t", json!({})).await;
    assert!(
        rule_logs(&record)
            .iter()
            .all(|line| line["success"] == true)
    );
}

#[tokio::test]
async fn rules_to_missing_triggers_or_actions_are_refused() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(&server, "t", json!({})).await;

    let no_trigger = put_rule(&server, "r", "nope", "echo").await;
    assert_error(&no_trigger, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_trigger.json["error"],
        "trigger /guest/nope does not exist"
    );
    let no_action = put_rule(&server, "r", "t", "/guest/nope").await;
    assert_error(&no_action, StatusCode::BAD_REQUEST);
    assert_eq!(no_action.json["error"], "action /guest/nope does not exist");
    let no_package = put_rule(&server, "r", "t", "tools/echo").await;
    assert_error(&no_package, StatusCode::BAD_REQUEST);
    let incomplete = server
        .call(
            Method::PUT,
            &format!("{RULES}/r"),
            Some(json!({"trigger": "t"})),
        )
        .await;
    assert_error(&incomplete, StatusCode::BAD_REQUEST);
    assert_error(
        &put_rule(&server, "r", "/other/t", "echo").await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &server.call(Method::GET, &format!("{RULES}/r"), None).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &set_status(&server, "r", "active").await,
        StatusCode::NOT_FOUND,
    );

    assert_eq!(
        put_rule(&server, "r", "t", "echo").await.status,
        StatusCode::OK
    );
    assert_error(
        &put_rule(&server, "r", "t", "echo").await,
        StatusCode::CONFLICT,
    );
    let listed = server.call(Method::GET, RULES, None).await;
    assert_eq!(listed.json.as_array().expect("list").len(), 1);
    assert_eq!(listed.json[0]["status"], "active");
    let counted = server
        .call(Method::GET, &format!("{RULES}?count=true"), None)
        .await;
    assert_eq!(counted.json, json!({"rules": 1}));
}

#[tokio::test]
async fn a_rule_may_fire_an_action_of_a_package() {
    let server = TestServer::start().await;
    let package = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/tools",
            Some(json!({"parameters": [{"key": "from", "value": "package"}]})),
        )
        .await;
    assert_eq!(package.status, StatusCode::OK, "{:?}", package.json);
    let action = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/tools/echo",
            Some(wasm_body(&crate::common::example("echo"))),
        )
        .await;
    assert_eq!(action.status, StatusCode::OK, "{:?}", action.json);
    put_trigger(&server, "t", json!({})).await;
    let rule = put_rule(&server, "r", "t", "tools/echo").await;
    assert_eq!(rule.status, StatusCode::OK, "{:?}", rule.json);
    assert_eq!(
        rule.json["action"],
        json!({"path": "guest/tools", "name": "echo"})
    );
    let record = fire_and_record(&server, "t", json!({"n": 1})).await;
    let logs = rule_logs(&record);
    assert_eq!(logs[0]["action"], "guest/tools/echo");
    let started = logs[0]["activationId"].as_str().expect("started");
    let run = server.wait_for_activation(started).await;
    assert_eq!(
        run["response"]["result"],
        json!({"from": "package", "n": 1})
    );
}

#[tokio::test]
async fn a_rule_whose_action_is_deleted_logs_an_error_when_fired() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    server.create("doomed", "echo").await;
    put_trigger(&server, "t", json!({})).await;
    put_rule(&server, "a", "t", "echo").await;
    put_rule(&server, "b", "t", "doomed").await;
    let deleted = server
        .call(Method::DELETE, "/api/v1/namespaces/_/actions/doomed", None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);

    let record = fire_and_record(&server, "t", json!({})).await;
    let logs = rule_logs(&record);
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[0]["success"], true);
    assert_eq!(logs[1]["rule"], "guest/b");
    assert_eq!(logs[1]["action"], "guest/doomed");
    assert_eq!(logs[1]["success"], false);
    assert_eq!(logs[1]["statusCode"], 1);
    assert_eq!(logs[1]["error"], "The requested resource does not exist.");
    assert!(logs[1].get("activationId").is_none());
}

#[tokio::test]
async fn deleting_a_trigger_leaves_its_rules_inactive() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(&server, "t", json!({})).await;
    put_rule(&server, "r", "t", "echo").await;
    let deleted = server
        .call(Method::DELETE, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(deleted.json["rules"]["guest/r"].is_object());

    let rule = server.call(Method::GET, &format!("{RULES}/r"), None).await;
    assert_eq!(rule.status, StatusCode::OK);
    assert_eq!(rule.json["status"], "inactive");
    let refused = set_status(&server, "r", "active").await;
    assert_error(&refused, StatusCode::NOT_FOUND);
    assert_eq!(
        refused.json["error"],
        "Only rules with existing triggers can be activated"
    );

    // A new trigger of that name has no rules until one is enabled again.
    put_trigger(&server, "t", json!({})).await;
    assert_eq!(
        fire(&server, "t", json!({})).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        set_status(&server, "r", "active").await.status,
        StatusCode::OK
    );
    assert_eq!(
        fire(&server, "t", json!({})).await.status,
        StatusCode::ACCEPTED
    );

    // Deleting an active rule unlinks it.
    let removed = server
        .call(Method::DELETE, &format!("{RULES}/r"), None)
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.json);
    assert_eq!(removed.json["status"], "inactive");
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert!(trigger.json.get("rules").is_none(), "{:?}", trigger.json);
    assert_eq!(
        fire(&server, "t", json!({})).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_rule_update_moves_its_link_and_keeps_its_status() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(&server, "t", json!({})).await;
    put_trigger(&server, "u", json!({})).await;
    put_rule(&server, "r", "t", "echo").await;
    set_status(&server, "r", "inactive").await;
    let moved = server
        .call(
            Method::PUT,
            &format!("{RULES}/r?overwrite=true"),
            Some(json!({"trigger": "u"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.json);
    assert_eq!(moved.json["status"], "inactive");
    assert_eq!(moved.json["version"], "0.0.2");
    assert_eq!(moved.json["action"]["name"], "echo");
    let t = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert!(t.json.get("rules").is_none(), "{:?}", t.json);
    let u = server
        .call(Method::GET, &format!("{TRIGGERS}/u"), None)
        .await;
    assert_eq!(u.json["rules"]["guest/r"]["status"], "inactive");
}

#[tokio::test]
async fn a_rule_to_a_confidential_action_is_refused() {
    let server = TestServer::start().await;
    let owner = server.owner().await;
    owner.deploy("secret", "echo").await;
    put_trigger(&server, "t", json!({})).await;
    let refused = put_rule(&server, "r", "t", "secret").await;
    assert_error(&refused, StatusCode::BAD_REQUEST);
    let message = refused.json["error"].as_str().expect("message");
    assert!(message.contains("plain actions only"), "{message}");
    assert!(message.contains("no key"), "{message}");
}

#[tokio::test]
async fn fires_past_fires_per_minute_are_refused_with_429() {
    let server = TestServer::start().await;
    limit_guest(
        &server,
        NamespaceLimits {
            fires_per_minute: 2,
            ..Default::default()
        },
    )
    .await;
    let limits = server
        .call(Method::GET, "/api/v1/namespaces/_/limits", None)
        .await;
    assert_eq!(limits.json["firesPerMinute"], 2);
    put_trigger(&server, "t", json!({})).await;
    for _ in 0..2 {
        assert_eq!(
            fire(&server, "t", json!({})).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let refused = fire(&server, "t", json!({})).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json["error"],
        "Too many requests in the last minute (count: 2, allowed: 2)."
    );
    // Other requests are not fires.
    assert_eq!(
        server
            .call(Method::GET, &format!("{TRIGGERS}/t"), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn triggers_and_rules_survive_a_restart() {
    let server = TestServer::start().await;
    server.create("echo", "echo").await;
    put_trigger(
        &server,
        "t",
        json!({"parameters": [{"key": "kept", "value": true}]}),
    )
    .await;
    put_rule(&server, "r", "t", "echo").await;
    put_rule(&server, "off", "t", "echo").await;
    set_status(&server, "off", "inactive").await;

    let server = server.restart().await;
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/t"), None)
        .await;
    assert_eq!(trigger.status, StatusCode::OK);
    assert_eq!(trigger.json["rules"]["guest/r"]["status"], "active");
    assert_eq!(trigger.json["rules"]["guest/off"]["status"], "inactive");
    let rule = server
        .call(Method::GET, &format!("{RULES}/off"), None)
        .await;
    assert_eq!(rule.json["status"], "inactive");

    let record = fire_and_record(&server, "t", json!({"n": 1})).await;
    let started = rule_logs(&record)
        .into_iter()
        .find(|line| line["rule"] == "guest/r")
        .expect("r fired");
    let run = server
        .wait_for_activation(started["activationId"].as_str().expect("id"))
        .await;
    assert_eq!(run["response"]["result"], json!({"kept": true, "n": 1}));
}
