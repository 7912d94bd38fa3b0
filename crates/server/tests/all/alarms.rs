//! The alarms feed: triggers annotated `feed: /whisk.system/alarms/…`
//! fire on their schedule with their `trigger_payload`, stop when deleted,
//! and are scheduled again after a restart.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestServer};

const TRIGGERS: &str = "/api/v1/namespaces/_/triggers";

async fn put_alarm(server: &TestServer, name: &str, feed: &str, parameters: Value) -> Answer {
    let parameters: Vec<Value> = parameters
        .as_object()
        .expect("object")
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    server
        .call(
            Method::PUT,
            &format!("{TRIGGERS}/{name}"),
            Some(json!({
                "annotations": [{"key": "feed", "value": feed}],
                "parameters": parameters,
            })),
        )
        .await
}

/// The activations of `echo`, newest first.
async fn echoes(server: &TestServer) -> Vec<Value> {
    let listed = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=echo&docs=true&limit=200",
            None,
        )
        .await;
    listed.json.as_array().cloned().unwrap_or_default()
}

/// Waits (at most 10 s) until `echo` has run at least `count` times.
async fn wait_for_echoes(server: &TestServer, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let found = echoes(server).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("echo did not run {count} times within 10 s");
}

async fn rule_to_echo(server: &TestServer, trigger: &str) {
    server.create("echo", "echo").await;
    let rule = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/rules/r",
            Some(json!({"trigger": trigger, "action": "echo"})),
        )
        .await;
    assert_eq!(rule.status, StatusCode::OK, "{:?}", rule.json);
}

#[tokio::test]
async fn a_cron_alarm_fires_with_its_payload_until_its_trigger_is_deleted() {
    let server = TestServer::start().await;
    let created = put_alarm(
        &server,
        "tick",
        "/whisk.system/alarms/alarm",
        json!({"cron": "* * * * * *", "trigger_payload": {"tick": true}, "kept": 1}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    rule_to_echo(&server, "tick").await;

    let ran = wait_for_echoes(&server, 2).await;
    assert_eq!(
        ran[0]["response"]["result"],
        json!({"tick": true, "kept": 1}),
        "the payload over the trigger's own parameters, not the alarm's settings"
    );
    let fires = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/activations?name=tick",
            None,
        )
        .await;
    assert!(!fires.json.as_array().expect("list").is_empty());

    let deleted = server
        .call(Method::DELETE, &format!("{TRIGGERS}/tick"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    // A fire started just before the delete may still land.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = echoes(&server).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(echoes(&server).await.len(), settled, "the alarm stopped");
}

#[tokio::test]
async fn a_once_alarm_fires_once() {
    let server = TestServer::start().await;
    let date = clemmys_whisk::now_ms() + 1500;
    let created = put_alarm(
        &server,
        "once",
        "/whisk.system/alarms/once",
        json!({"date": date, "trigger_payload": {"n": 1}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    rule_to_echo(&server, "once").await;
    let ran = wait_for_echoes(&server, 1).await;
    assert_eq!(ran[0]["response"]["result"], json!({"n": 1}));
    assert!(ran[0]["start"].as_u64().expect("start") >= date);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(echoes(&server).await.len(), 1);
}

#[tokio::test]
async fn bad_alarm_settings_are_refused() {
    let server = TestServer::start().await;
    for (feed, parameters) in [
        ("/whisk.system/alarms/alarm", json!({})),
        (
            "/whisk.system/alarms/alarm",
            json!({"cron": "now and then"}),
        ),
        ("/whisk.system/alarms/once", json!({"date": 1000})),
        ("/whisk.system/alarms/interval", json!({"minutes": "soon"})),
    ] {
        let refused = put_alarm(&server, "t", feed, parameters.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{feed} {parameters}: {:?}",
            refused.json
        );
    }
    assert_eq!(
        server
            .call(Method::GET, &format!("{TRIGGERS}/t"), None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );
    let interval = put_alarm(
        &server,
        "t",
        "/whisk.system/alarms/interval",
        json!({"minutes": 5}),
    )
    .await;
    assert_eq!(interval.status, StatusCode::OK, "{:?}", interval.json);
}

#[tokio::test]
async fn an_alarm_is_scheduled_again_after_a_restart() {
    let server = TestServer::start().await;
    put_alarm(
        &server,
        "tick",
        "/whisk.system/alarms/alarm",
        json!({"cron": "* * * * * *"}),
    )
    .await;
    rule_to_echo(&server, "tick").await;
    wait_for_echoes(&server, 1).await;

    let server = server.restart().await;
    let restarted = clemmys_whisk::now_ms();
    for _ in 0..200 {
        if echoes(&server)
            .await
            .iter()
            .any(|run| run["start"].as_u64().is_some_and(|start| start > restarted))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the alarm did not fire after the restart");
}

/// The alarm feed action, invoked blocking as OpenWhisk's clients invoke a
/// feed (`wsk trigger create --feed`, the npm client's `feeds.create`).
const ALARM_FEED_ACTION: &str =
    "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true";

/// Invokes the alarm feed action with `lifecycleEvent` `event` for
/// trigger `trigger`, the guest's own key, and `settings`.
async fn feed(server: &TestServer, event: &str, trigger: &str, settings: Value) -> Answer {
    let mut params = json!({
        "lifecycleEvent": event,
        "triggerName": trigger,
        "authKey": server.node().guest_auth.to_string(),
    });
    if let (Some(params), Some(settings)) = (params.as_object_mut(), settings.as_object()) {
        params.extend(settings.clone());
    }
    server
        .call(Method::POST, ALARM_FEED_ACTION, Some(params))
        .await
}

#[tokio::test]
async fn the_feed_action_creates_reads_and_deletes_a_triggers_alarm() {
    let server = TestServer::start().await;
    let plain = server
        .call(Method::PUT, &format!("{TRIGGERS}/tick"), Some(json!({})))
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{:?}", plain.json);
    rule_to_echo(&server, "tick").await;

    let created = feed(
        &server,
        "CREATE",
        "/_/tick",
        json!({"cron": "* * * * * *", "trigger_payload": {"tick": true}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(
        created.json["response"]["success"], true,
        "{:?}",
        created.json
    );
    assert_eq!(created.json["name"], "alarm");
    // The feed's invoke is recorded as any invoke is.
    let id = created.json["activationId"]
        .as_str()
        .expect("activation id");
    assert_eq!(server.activation(id).await.status, StatusCode::OK);

    let ran = wait_for_echoes(&server, 2).await;
    assert_eq!(ran[0]["response"]["result"], json!({"tick": true}));
    let read = feed(&server, "READ", "/_/tick", json!({})).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.json);
    let result = &read.json["response"]["result"];
    assert_eq!(result["config"]["cron"], "* * * * * *", "{result}");
    assert_eq!(result["status"]["active"], true, "{result}");
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/tick"), None)
        .await;
    assert_eq!(
        crate::common::annotation(&trigger.json, "feed"),
        Some(&json!("/whisk.system/alarms/alarm"))
    );

    let deleted = feed(&server, "DELETE", "/_/tick", json!({})).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.json);
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/tick"), None)
        .await;
    assert_eq!(crate::common::annotation(&trigger.json, "feed"), None);
    assert_eq!(trigger.json["parameters"], json!([]), "{:?}", trigger.json);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = echoes(&server).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(echoes(&server).await.len(), settled, "the alarm stopped");
    let gone = feed(&server, "READ", "/_/tick", json!({})).await;
    feed_refused(&gone, "");
}

#[tokio::test]
async fn the_feed_action_acts_only_on_the_callers_triggers_with_its_key() {
    let server = TestServer::start().await;
    let other_key = server.add_namespace("other").await;
    let plain = server
        .call(Method::PUT, &format!("{TRIGGERS}/tick"), Some(json!({})))
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{:?}", plain.json);
    let cron = json!({"cron": "* * * * * *"});

    // Another namespace's key is never used, nor another's trigger reached.
    let mut with_other_key = json!({
        "lifecycleEvent": "CREATE",
        "triggerName": "/_/tick",
        "authKey": other_key.to_string(),
        "cron": "* * * * * *",
    });
    let refused = server
        .call(Method::POST, ALARM_FEED_ACTION, Some(with_other_key.take()))
        .await;
    feed_refused(&refused, "not authorized");
    let refused = feed(&server, "CREATE", "/other/tick", cron.clone()).await;
    feed_refused(&refused, "not authorized");
    // Bad requests are the feed's errors (502, as OpenWhisk answers a feed
    // action's error) that change nothing.
    let refused = feed(&server, "SUBSCRIBE", "/_/tick", cron.clone()).await;
    feed_refused(&refused, "lifecycleEvent");
    let refused = feed(&server, "CREATE", "/_/tick", json!({"cron": "not cron"})).await;
    feed_refused(&refused, "cron");
    let missing = feed(&server, "CREATE", "/_/nothing", cron).await;
    feed_refused(&missing, "");
    let trigger = server
        .call(Method::GET, &format!("{TRIGGERS}/tick"), None)
        .await;
    assert_eq!(crate::common::annotation(&trigger.json, "feed"), None);
    assert_eq!(trigger.json["version"], "0.0.1", "{:?}", trigger.json);
}

#[tokio::test]
async fn the_alarms_package_lists_its_feeds_as_openwhisk_does() {
    let server = TestServer::start().await;
    let package = server
        .call(
            Method::GET,
            "/api/v1/namespaces/whisk.system/packages/alarms",
            None,
        )
        .await;
    assert_eq!(package.status, StatusCode::OK, "{:?}", package.json);
    assert_eq!(package.json["namespace"], "whisk.system");
    assert_eq!(package.json["name"], "alarms");
    assert_eq!(package.json["publish"], true);
    let feeds: Vec<&str> = package.json["feeds"]
        .as_array()
        .expect("feeds")
        .iter()
        .filter_map(|feed| feed["name"].as_str())
        .collect();
    assert_eq!(feeds, ["alarm", "once", "interval"]);
    for feed in package.json["feeds"].as_array().expect("feeds") {
        let annotations = feed["annotations"].as_array().expect("annotations");
        assert!(
            annotations
                .iter()
                .any(|kv| kv["key"] == "feed" && kv["value"] == true),
            "{feed}"
        );
    }
    // Any other whisk.system package is still looked up as before.
    let missing = server
        .call(
            Method::GET,
            "/api/v1/namespaces/whisk.system/packages/no-such",
            None,
        )
        .await;
    assert_ne!(missing.status, StatusCode::OK);
}

/// A feed invoke the feed refused: a blocking invoke's 502 whose recorded
/// result has an error mentioning `about`.
fn feed_refused(answer: &Answer, about: &str) {
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["status"], "application error",
        "{:?}",
        answer.json
    );
    let error = answer.json["response"]["result"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(!error.is_empty() && error.contains(about), "{error}");
}
