//! JavaScript actions (`nodejs:*` kinds): real source run by the node's
//! QuickJS engine in the wasm sandbox, over real HTTP.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Answer, TestServer, annotation, js_engine};

/// A node with the JavaScript engine.
async fn js_server() -> TestServer {
    TestServer::start_with(|config| config.js_engine = Some(js_engine())).await
}

impl TestServer {
    /// `PUT`s JavaScript action `name` of `kind` from `source`, with `extra`
    /// merged into the body (limits, annotations, `exec.main`).
    async fn put_js(&self, name: &str, kind: &str, source: &str, extra: Value) -> Answer {
        let mut body = json!({ "exec": { "kind": kind, "code": source } });
        if let Some(main) = extra.get("main") {
            body["exec"]["main"] = main.clone();
        }
        for key in ["limits", "annotations"] {
            if let Some(value) = extra.get(key) {
                body[key] = value.clone();
            }
        }
        self.call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}"),
            Some(body),
        )
        .await
    }

    /// Creates JavaScript action `name` (`nodejs:20`), asserting success.
    async fn create_js(&self, name: &str, source: &str) {
        let answer = self.put_js(name, "nodejs:20", source, json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    }
}

fn error_text(answer: &Answer) -> &str {
    answer.json["response"]["result"]["error"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_javascript_action_answers_logs_and_sees_its_environment() {
    let server = js_server().await;
    let source = r#"function main(params) {
  console.log("greeting", params.name);
  console.error("to stderr", {n: 1});
  return {
    payload: `Hello, ${params.name || "World"}!`,
    activation: process.env.__OW_ACTIVATION_ID,
    action: process.env.__OW_ACTION_NAME,
    namespace: process.env.__OW_NAMESPACE,
    deadline: Number(process.env.__OW_DEADLINE),
    now: Date.now(),
  };
}"#;
    let created = server.put_js("hello", "nodejs:20", source, json!({})).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    assert_eq!(
        created.json["exec"],
        json!({"kind": "nodejs:20", "binary": false, "code": source})
    );
    let shown = server
        .call(Method::GET, "/api/v1/namespaces/_/actions/hello", None)
        .await;
    assert_eq!(shown.json["exec"]["code"], source);
    assert_eq!(annotation(&shown.json, "exec"), Some(&json!("nodejs:20")));

    let answer = server.invoke("hello", json!({"name": "Ada"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let record = &answer.json;
    let result = &record["response"]["result"];
    assert_eq!(result["payload"], "Hello, Ada!");
    assert_eq!(result["activation"], record["activationId"]);
    assert_eq!(result["action"], "/guest/hello");
    assert_eq!(result["namespace"], "guest");
    let deadline = result["deadline"].as_f64().expect("deadline");
    let now = result["now"].as_f64().expect("now");
    assert!(
        deadline > now && deadline <= now + 60_000.0,
        "deadline {deadline} is within the 60 s limit from {now}"
    );
    assert_eq!(annotation(record, "kind"), Some(&json!("nodejs:20")));
    let logs: Vec<&str> = record["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].ends_with("stderr: greeting Ada"), "{logs:?}");
    assert!(
        logs[1].ends_with(r#"stderr: to stderr {"n":1}"#),
        "{logs:?}"
    );
}

#[tokio::test]
async fn async_mains_timers_and_commonjs_exports_work() {
    let server = js_server().await;
    server
        .create_js(
            "later",
            "async function main(p) {\n\
             await new Promise((resolve) => setTimeout(resolve, 30));\n\
             const bytes = new TextEncoder().encode('héllo');\n\
             return { doubled: p.n * 2, bytes: bytes.length, b64: btoa('hi'), text: atob('aGk=') };\n}",
        )
        .await;
    let answer = server.invoke("later", json!({"n": 21})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["result"],
        json!({"doubled": 42, "bytes": 6, "b64": "aGk=", "text": "hi"})
    );

    server
        .create_js(
            "exported",
            "exports.main = (p) => ({ style: 'exports', n: p.n });",
        )
        .await;
    let answer = server.invoke("exported", json!({"n": 1})).await;
    assert_eq!(
        answer.json["response"]["result"],
        json!({"style": "exports", "n": 1})
    );
    server
        .create_js(
            "module",
            "module.exports = function () { return Promise.resolve({ style: 'module' }); };",
        )
        .await;
    let answer = server.invoke("module", json!({})).await;
    assert_eq!(
        answer.json["response"]["result"],
        json!({"style": "module"})
    );

    // exec.main names another function.
    let created = server
        .put_js(
            "named",
            "nodejs:default",
            "function handler() { return { called: 'handler' }; }",
            json!({"main": "handler"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server.invoke("named", json!({})).await;
    assert_eq!(
        answer.json["response"]["result"],
        json!({"called": "handler"})
    );
}

#[tokio::test]
async fn thrown_errors_and_rejections_are_application_errors() {
    let server = js_server().await;
    server
        .create_js("throws", "function main() { throw new Error('boom'); }")
        .await;
    let answer = server.invoke("throws", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "application error");
    assert_eq!(error_text(&answer), "An error has occurred: Error: boom");

    server
        .create_js(
            "rejects",
            "async function main() { throw new TypeError('nope'); }",
        )
        .await;
    let answer = server.invoke("rejects", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "application error");
    assert_eq!(error_text(&answer), "TypeError: nope");

    // A rejection with a plain value keeps the value, as OpenWhisk does.
    server
        .create_js(
            "refuses",
            "function main() { return Promise.reject({ reason: 'quota' }); }",
        )
        .await;
    let answer = server.invoke("refuses", json!({})).await;
    assert_eq!(
        answer.json["response"]["result"],
        json!({"error": {"reason": "quota"}})
    );

    server
        .create_js("needs_fs", "function main() { require('fs'); return {}; }")
        .await;
    let answer = server.invoke("needs_fs", json!({})).await;
    assert_eq!(answer.json["response"]["status"], "application error");
    let error = error_text(&answer);
    assert!(
        error.contains("Cannot find module 'fs'") && error.contains("not available"),
        "{error}"
    );
}

#[tokio::test]
async fn broken_source_is_accepted_at_create_and_fails_at_run() {
    let server = js_server().await;
    // OpenWhisk stores any text and reports the syntax error when it runs.
    server
        .create_js("broken", "function main( { return {} }")
        .await;
    let answer = server.invoke("broken", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    let error = error_text(&answer);
    assert!(
        error.starts_with("Initialization has failed due to: SyntaxError"),
        "{error}"
    );

    server
        .create_js("mainless", "function handler() { return {}; }")
        .await;
    let answer = server.invoke("mainless", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert_eq!(
        error_text(&answer),
        "Initialization has failed due to: Action entrypoint 'main' is not a function."
    );

    server
        .create_js("scalar", "function main() { return 42; }")
        .await;
    let answer = server.invoke("scalar", json!({})).await;
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert_eq!(
        error_text(&answer),
        "The action did not return a dictionary."
    );
}

#[tokio::test]
async fn an_endless_loop_hits_the_deadline_and_the_node_keeps_serving() {
    let server = js_server().await;
    let answer = server
        .put_js(
            "spin",
            "nodejs:20",
            "function main() { for (;;) {} }",
            json!({"limits": {"timeout": 300}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let answer = server.invoke("spin", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert_eq!(
        error_text(&answer),
        "The action exceeded its time limits of 300 milliseconds."
    );
    assert_eq!(annotation(&answer.json, "timeout"), Some(&json!(true)));

    server
        .create_js("ok", "function main() { return { fine: true }; }")
        .await;
    let answer = server.invoke("ok", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(answer.json["response"]["result"], json!({"fine": true}));
}

#[tokio::test]
async fn a_sequence_mixes_javascript_and_wasm_steps() {
    let server = js_server().await;
    server.create("greet", "hello").await;
    server
        .create_js(
            "shout",
            "function main(p) { return { payload: p.payload.toUpperCase() }; }",
        )
        .await;
    let created = server.create_sequence("loud", &["greet", "shout"]).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server.invoke("loud", json!({"name": "Ada"})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.json["response"]["result"],
        json!({"payload": "HELLO, ADA!"})
    );
}

#[tokio::test]
async fn javascript_is_refused_where_it_cannot_be_run_honestly() {
    let server = js_server().await;
    // Confidential JavaScript must come sealed by a Clemmys client: source
    // sent as text would be stored in the clear.
    let answer = server
        .put_js(
            "secret",
            "nodejs:20",
            "function main() { return {}; }",
            json!({"annotations": [{"key": "confidential", "value": true}]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("must be the base64 of its sealed source"),
        "{:?}",
        answer.json
    );
    // Nor can a plain one be turned confidential by an update.
    server
        .create_js("plain", "function main() { return {}; }")
        .await;
    let answer = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/plain?overwrite=true",
            Some(json!({"annotations": [{"key": "confidential", "value": true}]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.json);

    let answer = server
        .put_js(
            "bad_main",
            "nodejs:20",
            "function main() {}",
            json!({"main": "a.b"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // A node without the engine refuses JavaScript at create.
    let bare = TestServer::start().await;
    let answer = bare
        .put_js(
            "hello",
            "nodejs:20",
            "function main() { return {}; }",
            json!({}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not available on this node"),
        "{:?}",
        answer.json
    );
}

#[tokio::test]
async fn the_javascript_examples_answer_like_their_wasm_twins() {
    let server = js_server().await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/js");
    for name in ["hello", "wordcount", "cpu"] {
        let source = std::fs::read_to_string(examples.join(format!("{name}.js"))).expect("example");
        let answer = server
            .put_js(name, "nodejs:default", &source, json!({}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {:?}", answer.json);
    }
    let cases = [
        (
            "hello",
            json!({"name": "Ada"}),
            json!({"payload": "Hello, Ada!"}),
        ),
        (
            "wordcount",
            json!({"text": "a b\nc"}),
            json!({"words": 3, "lines": 2, "chars": 5}),
        ),
        ("cpu", json!({"n": 100}), json!({"n": 100, "primes": 25})),
    ];
    for (name, params, expected) in cases {
        let answer = server.invoke(name, params).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {:?}", answer.json);
        assert_eq!(answer.json["response"]["result"], expected, "{name}");
    }
    let answer = server.invoke("wordcount", json!({})).await;
    assert_eq!(answer.json["response"]["status"], "application error");
}

#[tokio::test]
async fn a_memory_hog_and_runaway_recursion_are_developer_errors() {
    let server = js_server().await;
    let answer = server
        .put_js(
            "hog",
            "nodejs:20",
            "function main() { const kept = []; for (;;) kept.push(new Float64Array(1e7)); }",
            json!({"limits": {"memory": 128}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    let answer = server.invoke("hog", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert_eq!(
        error_text(&answer),
        "The action exhausted its memory and was aborted."
    );

    // QuickJS has no stack check in wasm: the sandbox's stack limit traps.
    server
        .create_js(
            "deep",
            "function down(n) { return down(n + 1) + 1; }\nfunction main() { return { v: down(0) }; }",
        )
        .await;
    let answer = server.invoke("deep", json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json["response"]["status"], "action developer error");
    assert!(
        error_text(&answer).contains("call stack exhausted"),
        "{:?}",
        answer.json
    );

    // The node goes on serving.
    server
        .create_js("ok", "function main() { return { fine: true }; }")
        .await;
    let answer = server.invoke("ok", json!({})).await;
    assert_eq!(answer.json["response"]["result"], json!({"fine": true}));
}

/// The engine ships pre-initialized (a Wizer snapshot of QuickJS and the
/// prelude), but every activation is a fresh instance of that snapshot: a
/// global, a polluted prototype or a patched built-in left by one
/// activation is gone in the next.
#[tokio::test]
async fn a_global_set_by_one_activation_is_not_seen_by_the_next() {
    let server = js_server().await;
    server
        .create_js(
            "leaky",
            r#"function main() {
  const before = {
    global: typeof globalThis.leftBehind,
    prototype: "polluted" in {},
    json: JSON.stringify({ a: 1 }),
  };
  globalThis.leftBehind = "secret of an earlier activation";
  Object.prototype.polluted = true;
  JSON.stringify = () => "patched";
  return before;
}"#,
        )
        .await;
    for _ in 0..3 {
        let answer = server.invoke("leaky", json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        assert_eq!(
            answer.json["response"]["result"],
            json!({"global": "undefined", "prototype": false, "json": "{\"a\":1}"})
        );
    }
}

/// A snapshot freezes whatever ran when it was taken: `Math.random` must
/// be seeded for each activation (a frozen seed would give every
/// activation the same "random" numbers, e.g. the same tokens), and the
/// clock must be read when asked, not at build time.
#[tokio::test]
async fn math_random_and_date_are_not_frozen_at_snapshot_time() {
    let server = js_server().await;
    server
        .create_js(
            "dice",
            "function main() {\n\
             return { random: [Math.random(), Math.random()], now: Date.now(),\n\
                      date: new Date().getTime() };\n}",
        )
        .await;
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as f64;
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let answer = server.invoke("dice", json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        let result = &answer.json["response"]["result"];
        let random: Vec<f64> = result["random"]
            .as_array()
            .expect("two numbers")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(random.len(), 2, "{result}");
        assert!(random.iter().all(|r| (0.0..1.0).contains(r)), "{result}");
        assert_ne!(random[0], random[1], "{result}");
        firsts.push(random[0]);
        for clock in ["now", "date"] {
            let ms = result[clock].as_f64().expect("a number");
            // Not the build's time: at most a second before this test began.
            assert!(ms >= started_ms - 1000.0, "{clock} {ms} < {started_ms}");
        }
    }
    assert_ne!(firsts[0], firsts[1], "{firsts:?}");
    assert_ne!(firsts[1], firsts[2], "{firsts:?}");
    assert_ne!(firsts[0], firsts[2], "{firsts:?}");
}

/// A created or updated plain JavaScript action is compiled to bytecode
/// ahead of its first invoke, as a wasm action's module is: the first
/// invoke then runs bytecode without compiling first.
#[tokio::test]
async fn a_new_javascript_version_is_compiled_before_its_first_invoke() {
    let server = js_server().await;
    let invoker = server
        .node()
        .invoker
        .clone()
        .expect("an invoker in the node");
    let compiled = || invoker.stats().compiled_javascript;
    let wait_for = |count: usize| {
        let compiled = &compiled;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while compiled() < count {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} of {count} sources compiled without an invoke",
                    compiled()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(compiled(), 0);
    server
        .create_js("early", "function main(p) { return { n: p.n + 1 }; }")
        .await;
    wait_for(1).await;
    // An update is a new source: compiled again, ahead of its invoke.
    let answer = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/early?overwrite=true",
            Some(json!({"exec": {"kind": "nodejs:20",
                                 "code": "function main(p) { return { n: p.n + 2 }; }"}})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    wait_for(2).await;
    let answer = server.invoke("early", json!({"n": 1})).await;
    assert_eq!(answer.json["response"]["result"], json!({"n": 3}));
    // A source that does not compile is kept as such, not as bytecode.
    server.create_js("broken-early", "function main( {").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(compiled(), 2);
}

/// The invoker compiles a plain action's source once per version and runs
/// the bytecode after that: later activations must answer as the first
/// (which ran while it compiled), errors must keep the user's line
/// numbers, an update must run its new source, and a source that does not
/// compile must keep failing as such.
#[tokio::test]
async fn bytecode_runs_answer_like_the_source_and_follow_updates() {
    let server = js_server().await;
    let source = "// counts\nlet calls = 0;\nfunction main(p) {\n  calls += 1;\n  \
                  if (p.fail) throw new Error('asked');\n  \
                  return { calls, n: p.n * 2, line: new Error('here').stack.split('\\n')[0].trim() };\n}";
    server.create_js("twice", source).await;
    for _ in 0..3 {
        let answer = server.invoke("twice", json!({"n": 21})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
        let result = &answer.json["response"]["result"];
        assert_eq!((&result["calls"], &result["n"]), (&json!(1), &json!(42)));
        let line = result["line"].as_str().unwrap_or_default();
        assert!(line.starts_with("at main (action.js:6:"), "{line}");
    }
    let answer = server.invoke("twice", json!({"fail": true})).await;
    assert_eq!(error_text(&answer), "An error has occurred: Error: asked");

    // A new version is new code, under the same name.
    let answer = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/twice?overwrite=true",
            Some(json!({"exec": {"kind": "nodejs:20",
                                 "code": "function main() { return { version: 2 }; }"}})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    for _ in 0..2 {
        let answer = server.invoke("twice", json!({})).await;
        assert_eq!(answer.json["response"]["result"], json!({"version": 2}));
    }
    // The same source with another `exec.main` is compiled for that name.
    let answer = server
        .put_js(
            "other-main",
            "nodejs:20",
            "function main() { return { which: 'main' }; }\n\
             function handler() { return { which: 'handler' }; }",
            json!({"main": "handler"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    for _ in 0..2 {
        let answer = server.invoke("other-main", json!({})).await;
        assert_eq!(
            answer.json["response"]["result"],
            json!({"which": "handler"})
        );
    }

    server.create_js("broken-twice", "function main( {").await;
    for _ in 0..3 {
        let answer = server.invoke("broken-twice", json!({})).await;
        assert_eq!(answer.json["response"]["status"], "action developer error");
        let error = error_text(&answer);
        assert!(
            error.starts_with("Initialization has failed due to: SyntaxError"),
            "{error}"
        );
    }
}
