//! Web actions (`/api/v1/web/…`): OpenWhisk's routes, arguments, answers
//! and errors, over real HTTP without credentials.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, example, js_engine, wasm_body};

/// A node with the JavaScript engine.
async fn web_server() -> TestServer {
    TestServer::start_with(|config| config.js_engine = Some(js_engine())).await
}

/// A web answer: status, headers and raw body.
#[derive(Debug)]
struct WebAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl WebAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestServer {
    /// A request to `/api/v1/web{path}` with only the given headers.
    async fn web(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> WebAnswer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}/api/v1/web{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.http.request(request).await.expect("HTTP exchange");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        WebAnswer {
            status,
            headers,
            body,
        }
    }

    /// `GET /api/v1/web{path}` without credentials.
    async fn web_get(&self, path: &str) -> WebAnswer {
        self.web(Method::GET, path, &[], Bytes::new()).await
    }

    /// `PUT`s JavaScript action `path` (`name` or `pkg/name`) with
    /// `annotations` and `parameters`, asserting success.
    async fn put_web_js(&self, path: &str, source: &str, annotations: Value, parameters: Value) {
        let body = json!({
            "exec": { "kind": "nodejs:20", "code": source },
            "annotations": annotations,
            "parameters": parameters,
        });
        let answer = self
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{path}?overwrite=true"),
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    }

    /// A JavaScript action exported as `wsk action create --web true` does.
    async fn create_web_js(&self, path: &str, source: &str) {
        self.put_web_js(path, source, web_true(), json!([])).await;
    }
}

/// The annotations of `--web true`.
fn web_true() -> Value {
    json!([
        {"key": "web-export", "value": true},
        {"key": "raw-http", "value": false},
        {"key": "final", "value": true}
    ])
}

/// `web_true()` plus `extra`.
fn web_with(extra: Value) -> Value {
    let mut annotations = web_true();
    if let (Some(list), Some(more)) = (annotations.as_array_mut(), extra.as_array()) {
        list.extend(more.iter().cloned());
    }
    annotations
}

const ECHO: &str = "function main(params) { return { response: params }; }";

#[tokio::test]
async fn only_exported_actions_are_served_and_without_credentials() {
    let server = web_server().await;
    server
        .put_web_js("hidden", ECHO, json!([]), json!([]))
        .await;
    server
        .put_web_js(
            "unexported",
            ECHO,
            json!([{"key": "web-export", "value": false}]),
            json!([]),
        )
        .await;
    server.create_web_js("echo", ECHO).await;
    for path in [
        "/guest/default/hidden.json",
        "/guest/default/unexported.json",
        "/guest/default/missing.json",
        "/nobody/default/echo.json",
        "/guest/nopackage/echo.json",
        "/_/default/echo.json",
    ] {
        let answer = server.web_get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.error(), "The requested resource does not exist.");
    }
    // No Authorization header at all.
    let answer = server.web_get("/guest/default/echo.json?name=Jane").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let response = &answer.json()["response"];
    assert_eq!(response["name"], "Jane");
    assert_eq!(response["__ow_method"], "get");
    assert_eq!(response["__ow_path"], "");
    assert!(response["__ow_headers"]["host"].is_string(), "{response}");
    assert!(response.get("__ow_user").is_none());
    assert!(response.get("__ow_body").is_none());
}

#[tokio::test]
async fn a_plain_wasm_action_is_served_too_and_every_call_is_recorded() {
    let server = web_server().await;
    let mut body = wasm_body(&example("echo"));
    body["annotations"] = web_true();
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/wecho",
            Some(body),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server
        .web(
            Method::POST,
            "/guest/default/wecho.json",
            &[("content-type", "application/json")],
            r#"{"n": 1}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["n"], 1);
    assert_eq!(answer.json()["__ow_method"], "post");
    let id = answer
        .header("x-openwhisk-activation-id")
        .expect("activation id")
        .to_owned();
    let record = server.wait_for_activation(&id).await;
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "wecho");
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(record["response"]["result"]["n"], 1);
}

#[tokio::test]
async fn query_body_and_form_parameters_merge_over_bound_ones() {
    let server = web_server().await;
    server
        .put_web_js(
            "merge",
            ECHO,
            json!([{"key": "web-export", "value": true}]),
            json!([{"key": "greeting", "value": "hi"}, {"key": "name", "value": "bound"}]),
        )
        .await;
    let answer = server
        .web(
            Method::POST,
            "/guest/default/merge.json?name=query&q=1",
            &[("content-type", "application/json")],
            r#"{"name": "body", "n": [1, 2]}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let response = &answer.json()["response"];
    assert_eq!(response["greeting"], "hi");
    assert_eq!(response["name"], "body");
    assert_eq!(response["q"], "1");
    assert_eq!(response["n"], json!([1, 2]));
    assert_eq!(response["__ow_headers"]["content-type"], "application/json");

    let form = server
        .web(
            Method::PUT,
            "/guest/default/merge.json",
            &[("content-type", "application/x-www-form-urlencoded")],
            "name=Jane+Doe&x=%26",
        )
        .await;
    let response = &form.json()["response"];
    assert_eq!(response["name"], "Jane Doe");
    assert_eq!(response["x"], "&");
    assert_eq!(response["__ow_method"], "put");

    let text = server
        .web(
            Method::POST,
            "/guest/default/merge.json",
            &[("content-type", "text/plain")],
            "Jane",
        )
        .await;
    let response = &text.json()["response"];
    assert_eq!(response["__ow_body"], "Jane");
    assert_eq!(response["name"], "bound");

    let malformed = server
        .web(
            Method::POST,
            "/guest/default/merge.json",
            &[("content-type", "application/json")],
            "{",
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn final_and_reserved_parameters_cannot_be_overridden() {
    let server = web_server().await;
    server
        .put_web_js(
            "fixed",
            ECHO,
            web_true(),
            json!([{"key": "name", "value": "Jane"}]),
        )
        .await;
    let refused = "Request defines parameters that are not allowed (e.g., reserved properties).";
    for (path, body) in [
        ("/guest/default/fixed.json?name=Eve", ""),
        ("/guest/default/fixed.json", r#"{"name": "Eve"}"#),
        ("/guest/default/fixed.json?__ow_method=put", ""),
        ("/guest/default/fixed.json", r#"{"__ow_user": "admin"}"#),
    ] {
        let answer = server
            .web(
                Method::POST,
                path,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(answer.error(), refused);
    }
    let answer = server.web_get("/guest/default/fixed.json?other=1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["response"]["name"], "Jane");
    assert_eq!(answer.json()["response"]["other"], "1");
}

#[tokio::test]
async fn http_answers_carry_status_headers_and_decoded_bodies() {
    let server = web_server().await;
    server
        .create_web_js(
            "page",
            "function main(p) { return { statusCode: 201, headers: { 'X-Custom': 'yes', \
             'Set-Cookie': ['a=1', 'b=2'] }, body: '<b>hi ' + (p.name || 'you') + '</b>' }; }",
        )
        .await;
    for path in [
        "/guest/default/page.http?name=Ada",
        "/guest/default/page?name=Ada",
    ] {
        let answer = server.web_get(path).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(answer.header("x-custom"), Some("yes"));
        assert_eq!(answer.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
        assert_eq!(answer.text(), "<b>hi Ada</b>");
    }

    server
        .create_web_js(
            "redirect",
            "function main() { return { headers: { location: 'https://openwhisk.apache.org' }, \
             statusCode: 302 }; }",
        )
        .await;
    let answer = server.web_get("/guest/default/redirect.http").await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(
        answer.header("location"),
        Some("https://openwhisk.apache.org")
    );
    assert!(answer.body.is_empty());

    // A 1x1 PNG, returned base64 as OpenWhisk's docs show.
    let png = base64::engine::general_purpose::STANDARD.decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
    ).expect("png");
    server
        .create_web_js(
            "image",
            "function main() { return { headers: { 'Content-Type': 'image/png' }, statusCode: 200, \
             body: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==' }; }",
        )
        .await;
    let answer = server.web_get("/guest/default/image.http").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("image/png"));
    assert_eq!(answer.body.as_ref(), png.as_slice());

    server
        .create_web_js(
            "api",
            "function main(p) { return { body: { path: p.__ow_path, method: p.__ow_method } }; }",
        )
        .await;
    let answer = server
        .web(Method::DELETE, "/guest/default/api.http/users/7", &[], "")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json(),
        json!({"path": "/users/7", "method": "delete"})
    );
}

#[tokio::test]
async fn html_svg_text_and_json_answers_pick_their_field() {
    let server = web_server().await;
    server
        .create_web_js(
            "media",
            "function main(p) { return { html: '<h1>' + p.name + '</h1>', svg: '<svg/>', \
             text: 'plain ' + p.name, response: { name: p.name, list: [1, 2] } }; }",
        )
        .await;
    let answer = server.web_get("/guest/default/media.html?name=Ada").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(answer.text(), "<h1>Ada</h1>");
    let answer = server.web_get("/guest/default/media.svg").await;
    assert_eq!(answer.header("content-type"), Some("image/svg+xml"));
    assert_eq!(answer.text(), "<svg/>");
    let answer = server.web_get("/guest/default/media.text?name=Ada").await;
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    assert_eq!(answer.text(), "plain Ada");
    // The rest of the path projects a field (docs/webactions.md).
    let answer = server
        .web_get("/guest/default/media.text/response/name?name=Jane")
        .await;
    assert_eq!(answer.text(), "Jane");
    let answer = server
        .web_get("/guest/default/media.json/response?name=Jane")
        .await;
    assert_eq!(answer.json(), json!({"name": "Jane", "list": [1, 2]}));
    let answer = server.web_get("/guest/default/media.json/nothing").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.error(),
        "Response does not include requested property."
    );

    server
        .create_web_js("bare", "function main() { return { other: 1 }; }")
        .await;
    let answer = server.web_get("/guest/default/bare.html").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error(), "Response is not valid 'text/html'.");
    let answer = server.web_get("/guest/default/bare.http").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn raw_http_actions_get_the_query_and_body_unparsed() {
    let server = web_server().await;
    server
        .put_web_js(
            "raw",
            ECHO,
            json!([
                {"key": "web-export", "value": true},
                {"key": "raw-http", "value": true},
                {"key": "final", "value": true}
            ]),
            json!([{"key": "name", "value": "bound"}]),
        )
        .await;
    let answer = server
        .web(
            Method::POST,
            "/guest/default/raw.json?name=Jane&a=%26",
            &[("content-type", "application/json")],
            r#"{"name":"Jane"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let response = &answer.json()["response"];
    assert_eq!(response["__ow_query"], "name=Jane&a=%26");
    assert_eq!(response["__ow_body"], "eyJuYW1lIjoiSmFuZSJ9");
    assert_eq!(response["name"], "bound");
    let answer = server
        .web(
            Method::POST,
            "/guest/default/raw.json",
            &[("content-type", "text/plain")],
            "hello",
        )
        .await;
    assert_eq!(answer.json()["response"]["__ow_body"], "hello");
    assert_eq!(answer.json()["response"]["__ow_query"], "");
    let answer = server
        .web(
            Method::POST,
            "/guest/default/raw.json",
            &[("content-type", "application/octet-stream")],
            vec![0u8, 255],
        )
        .await;
    assert_eq!(answer.json()["response"]["__ow_body"], "AP8=");
}

#[tokio::test]
async fn require_whisk_auth_wants_the_secret_or_the_owners_key() {
    let server = web_server().await;
    server
        .put_web_js(
            "secret",
            ECHO,
            web_with(json!([{"key": "require-whisk-auth", "value": "s3cret"}])),
            json!([]),
        )
        .await;
    let path = "/guest/default/secret.json";
    let answer = server.web_get(path).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error(), "The supplied authentication is invalid.");
    let answer = server
        .web(Method::GET, path, &[("x-require-whisk-auth", "wrong")], "")
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = server
        .web(Method::GET, path, &[("x-require-whisk-auth", "s3cret")], "")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());

    server
        .put_web_js(
            "numbered",
            ECHO,
            web_with(json!([{"key": "require-whisk-auth", "value": 7_340_032}])),
            json!([]),
        )
        .await;
    let answer = server
        .web(
            Method::GET,
            "/guest/default/numbered.json",
            &[("x-require-whisk-auth", "7340032")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());

    server
        .put_web_js(
            "keyed",
            ECHO,
            web_with(json!([{"key": "require-whisk-auth", "value": true}])),
            json!([]),
        )
        .await;
    let path = "/guest/default/keyed.json";
    assert_eq!(server.web_get(path).await.status, StatusCode::UNAUTHORIZED);
    // Another namespace's valid key is not the owner's.
    let other = server.add_namespace("other").await;
    let other_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(other.to_string())
    );
    let answer = server
        .web(Method::GET, path, &[("authorization", &other_auth)], "")
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = server
        .web(Method::GET, path, &[("authorization", &server.auth)], "")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["response"]["__ow_user"], "guest");
    assert!(
        answer.json()["response"]["__ow_headers"]
            .get("authorization")
            .is_none(),
        "the owner's key is not handed to the action: {}",
        answer.text()
    );
}

#[tokio::test]
async fn a_callers_api_key_never_reaches_the_action() {
    let server = web_server().await;
    server.create_web_js("echo", ECHO).await;
    // Someone else's key, sent by mistake to another namespace's action.
    let other = server.add_namespace("other").await;
    let other_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(other.to_string())
    );
    for auth in [other_auth.as_str(), server.auth.as_str()] {
        let answer = server
            .web(
                Method::GET,
                "/guest/default/echo.json",
                &[("authorization", auth)],
                "",
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let headers = &answer.json()["response"]["__ow_headers"];
        assert!(headers.get("authorization").is_none(), "{headers}");
        assert!(!answer.text().contains(&other.key), "{}", answer.text());
    }
    // The app's own credentials are its business.
    let answer = server
        .web(
            Method::GET,
            "/guest/default/echo.json",
            &[("authorization", "Bearer app-token")],
            "",
        )
        .await;
    assert_eq!(
        answer.json()["response"]["__ow_headers"]["authorization"],
        "Bearer app-token"
    );
}

#[tokio::test]
async fn a_sequence_can_be_a_web_action() {
    let server = web_server().await;
    server
        .create_web_js(
            "first",
            "function main(p) { return { n: Number(p.n) + 1 }; }",
        )
        .await;
    server
        .create_web_js(
            "second",
            "function main(p) { return { html: '<i>' + p.n * 2 + '</i>' }; }",
        )
        .await;
    let body = json!({
        "exec": {"kind": "sequence", "components": ["/guest/first", "/guest/second"]},
        "annotations": web_true(),
    });
    let created = server
        .call(Method::PUT, "/api/v1/namespaces/_/actions/both", Some(body))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let answer = server.web_get("/guest/default/both.html?n=4").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "<i>10</i>");
}

#[tokio::test]
async fn options_answers_cors_unless_the_action_does() {
    let server = web_server().await;
    server.create_web_js("echo", ECHO).await;
    let answer = server
        .web(
            Method::OPTIONS,
            "/guest/default/echo.json",
            &[("access-control-request-headers", "x-custom")],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("x-custom")
    );

    server
        .put_web_js(
            "custom",
            "function main(p) { return { statusCode: 204, headers: { 'Access-Control-Allow-Origin': \
             'https://example.com', 'X-Method': p.__ow_method } }; }",
            web_with(json!([
                {"key": "web-custom-options", "value": true},
                {"key": "require-whisk-auth", "value": "s3cret"}
            ])),
            json!([]),
        )
        .await;
    // The action answers OPTIONS itself, even without the secret.
    let answer = server
        .web(Method::OPTIONS, "/guest/default/custom.http", &[], "")
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert_eq!(answer.header("x-method"), Some("options"));
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(answer.header("access-control-allow-methods"), None);
    let answer = server.web_get("/guest/default/custom.http").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let head = server
        .web(Method::HEAD, "/guest/default/echo.json", &[], "")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn package_actions_are_served_under_their_package() {
    let server = web_server().await;
    let created = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/demo",
            Some(json!({"parameters": [{"key": "greeting", "value": "hello"}]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    server
        .put_web_js(
            "demo/hello",
            "function main(p) { return { body: p.greeting + ' ' + (p.name || 'you') }; }",
            web_true(),
            json!([]),
        )
        .await;
    let answer = server.web_get("/guest/demo/hello.http?name=Jane").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "hello Jane");
    // The package's parameters are final too.
    let answer = server.web_get("/guest/demo/hello.http?greeting=bye").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // Not as a default-package action, nor through a binding.
    assert_eq!(
        server.web_get("/guest/default/hello.http").await.status,
        StatusCode::NOT_FOUND
    );
    let bound = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/packages/alias",
            Some(json!({"binding": {"namespace": "guest", "name": "demo"}})),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{:?}", bound.json);
    assert_eq!(
        server.web_get("/guest/alias/hello.http").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn failures_answer_as_openwhisk_and_the_connection_goes_on() {
    let server = web_server().await;
    server
        .create_web_js(
            "teapot",
            "function main() { return { error: { statusCode: 418, body: 'short and stout' } }; }",
        )
        .await;
    server
        .create_web_js("broken", "function main( { return {} }")
        .await;
    server.create_web_js("echo", ECHO).await;
    // An application error answers its `error` field.
    let answer = server.web_get("/guest/default/teapot.http").await;
    assert_eq!(answer.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(answer.text(), "short and stout");
    let answer = server.web_get("/guest/default/teapot.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"statusCode": 418, "body": "short and stout"})
    );
    // A developer error answers nothing of the action's.
    let answer = server.web_get("/guest/default/broken.json").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.error(),
        "There was an error processing your request."
    );
    let id = answer
        .header("x-openwhisk-activation-id")
        .expect("id")
        .to_owned();
    let record = server.wait_for_activation(&id).await;
    assert_eq!(record["response"]["status"], "action developer error");
    // The same keep-alive client gets its next answers.
    for _ in 0..3 {
        let answer = server
            .web(
                Method::POST,
                "/guest/default/echo.json",
                &[("content-type", "application/json")],
                r#"{"__ow_path": "x"}"#,
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        let answer = server.web_get("/guest/default/echo.json?ok=1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json()["response"]["ok"], "1");
    }
    let answer = server
        .web(Method::TRACE, "/guest/default/echo.json", &[], "")
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn confidential_web_actions_are_refused() {
    let server = web_server().await;
    let owner = server.owner().await;
    owner.deploy("sealed", "echo").await;
    let shown = server
        .call(
            Method::GET,
            "/api/v1/namespaces/_/actions/sealed?code=false",
            None,
        )
        .await;
    let mut annotations = shown.json["annotations"]
        .as_array()
        .expect("annotations")
        .clone();
    annotations.push(json!({"key": "web-export", "value": true}));
    let updated = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/_/actions/sealed?overwrite=true",
            Some(json!({"annotations": annotations})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    let answer = server.web_get("/guest/default/sealed.json?name=Jane").await;
    assert_eq!(answer.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        answer.error().contains("attested gateway"),
        "{}",
        answer.text()
    );
    assert!(answer.header("x-openwhisk-activation-id").is_none());
    let activations = server
        .call(Method::GET, "/api/v1/namespaces/_/activations", None)
        .await;
    assert_eq!(activations.json, json!([]));
}

#[tokio::test]
async fn web_calls_are_throttled_and_recorded_as_the_owners() {
    let server = web_server().await;
    // A namespace allowed two invocations a minute owns the action.
    let auth = clemmys_whisk::AuthKey::from_random([7; 16], [9; 64]);
    let limits = clemmys_whisk::NamespaceLimits {
        invocations_per_minute: 2,
        ..Default::default()
    };
    let record = clemmys_whisk::NamespaceRecord {
        name: clemmys_whisk::EntityName::new("tiny").expect("name"),
        auth: auth.clone(),
        limits,
    };
    server
        .node()
        .store
        .put_namespace(record)
        .await
        .expect("namespace");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth.to_string())
    );
    let body = json!({
        "exec": {"kind": "nodejs:20", "code": ECHO},
        "annotations": web_true(),
    });
    let created = server
        .raw(
            Method::PUT,
            "/api/v1/namespaces/_/actions/echo",
            Bytes::from(body.to_string()),
            Some(&basic),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    for _ in 0..2 {
        let answer = server.web_get("/tiny/default/echo.json").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let refused = server.web_get("/tiny/default/echo.json").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    let listed = server
        .raw(
            Method::GET,
            "/api/v1/namespaces/_/activations",
            Bytes::new(),
            Some(&basic),
        )
        .await;
    assert_eq!(
        listed.json.as_array().map(Vec::len),
        Some(2),
        "{:?}",
        listed.json
    );
    // The guest, who made the calls, is charged nothing.
    let guest = server
        .call(Method::GET, "/api/v1/namespaces/_/activations", None)
        .await;
    assert_eq!(guest.json, json!([]));
}
