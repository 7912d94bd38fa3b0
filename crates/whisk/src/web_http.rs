//! Web actions over the `http` crate's request and answer types: the part
//! of serving one that the node (plain actions) and the attested gateway
//! (confidential ones) share, so both answer exactly alike. Still no I/O:
//! the caller finds the action, runs it and moves the bytes.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, CONTENT_TYPE,
};
use std::future::Future;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use crate::KeyValues;
use crate::web::{
    self, Extension, RAW_HTTP, REQUIRE_WHISK_AUTH, REQUIRE_WHISK_AUTH_HEADER, WebAnswer, WebError,
    WebRequest,
};
use crate::{ActivationResponse, EntityName};

/// The methods CORS answers allow.
pub const CORS_ALLOW_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
/// The request headers CORS answers allow.
pub const CORS_ALLOW_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// The part of a web URL after `/{ns}/{pkg}/`: the action, the format it
/// asks for and the path after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebTarget {
    /// The action's name.
    pub action: EntityName,
    /// The answer's format.
    pub extension: Extension,
    /// The URL's path after the action's segment (`""` or `/…`).
    pub path: String,
}

impl WebTarget {
    /// Parses `{action}[.ext][/path]`; `None` when the action's name is
    /// not a valid name (answered as a missing action).
    pub fn parse(rest: &str) -> Option<Self> {
        let rest = rest.trim_start_matches('/');
        let (segment, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (action, extension) = Extension::split(segment);
        Some(Self {
            action: EntityName::new(action).ok()?,
            extension,
            path: path.to_owned(),
        })
    }
}

/// Whether web actions answer `method` at all.
pub fn is_web_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
            | Method::HEAD
            | Method::OPTIONS
    )
}

/// The bound parameters a request may not override: all those with a
/// value, when the action is annotated `final: true`.
pub fn immutable_parameters(annotations: &KeyValues, bound: &Map<String, Value>) -> Vec<String> {
    if !annotations.is_true("final") {
        return Vec::new();
    }
    bound
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, _)| key.clone())
        .collect()
}

/// Whether the request may run the action, per `require-whisk-auth`: no
/// annotation lets anyone in; a string or number must come as the
/// `X-Require-Whisk-Auth` header; `true` needs the owner's API key, which
/// `owner_key` checks, answering the namespace the action then sees as
/// `__ow_user`. Any other value lets nobody in, as in OpenWhisk.
pub fn authorize(
    annotations: &KeyValues,
    headers: &HeaderMap,
    owner_key: impl FnOnce(&HeaderMap) -> Option<String>,
) -> Result<Option<String>, WebError> {
    let Some(required) = annotations.get(REQUIRE_WHISK_AUTH) else {
        return Ok(None);
    };
    let secret_matches = |expected: &str| {
        let given = headers
            .get(REQUIRE_WHISK_AUTH_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        bool::from(given.ct_eq(expected.as_bytes()))
    };
    let allowed = match required {
        Value::String(secret) => secret_matches(secret).then_some(None),
        Value::Number(secret) => secret_matches(&secret.to_string()).then_some(None),
        Value::Bool(true) => owner_key(headers).map(Some),
        _ => None,
    };
    allowed.ok_or(WebError::Unauthorized)
}

/// A web request as it came.
#[derive(Debug, Clone, Copy)]
pub struct WebCall<'a> {
    /// Its method.
    pub method: &'a Method,
    /// The headers the action may see (a platform API key removed).
    pub headers: &'a HeaderMap,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The action's arguments for `call`: `bound` (its package's and its own
/// parameters), then what the request says, as [`WebRequest`] makes it.
pub fn arguments(
    call: WebCall<'_>,
    target: &WebTarget,
    annotations: &KeyValues,
    bound: Map<String, Value>,
    user: Option<String>,
) -> Result<Map<String, Value>, WebError> {
    let raw = annotations.is_true(RAW_HTTP);
    let content_type = call
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let mut request = WebRequest::new(
        call.method.as_str(),
        call.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        target.path.clone(),
        call.query.unwrap_or_default().to_owned(),
    );
    request.body = web::request_body(content_type, call.body, raw)?;
    request.user = user;
    let arguments = request.arguments(raw, &immutable_parameters(annotations, &bound))?;
    let mut merged = bound;
    merged.extend(arguments);
    Ok(merged)
}

/// The HTTP answer for a finished web activation's `response`, rendered
/// as the URL's extension asks.
pub fn render(
    target: &WebTarget,
    response: &ActivationResponse,
) -> Result<http::Response<Vec<u8>>, WebError> {
    into_http(web::web_answer(target.extension, response, &target.path)?)
}

/// A checked [`WebAnswer`] as an HTTP answer; a header HTTP refuses after
/// all makes it an invalid `.http` result.
pub fn into_http(answer: WebAnswer) -> Result<http::Response<Vec<u8>>, WebError> {
    let mut headers = HeaderMap::new();
    let content_type = answer
        .content_type
        .map(|value| (CONTENT_TYPE.as_str().to_owned(), value));
    for (name, value) in content_type.into_iter().chain(answer.headers) {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => return Err(WebError::InvalidMedia("message/http")),
        }
    }
    let mut response = http::Response::new(answer.body);
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    *response.headers_mut() = headers;
    Ok(response)
}

/// Answers a web request for an action annotated `annotations`: unless
/// the action answers OPTIONS itself (`web-custom-options`), the platform
/// answers OPTIONS, and adds OpenWhisk's CORS headers to every answer;
/// anything else is `run`'s answer.
pub async fn answer_with_cors<B: Default>(
    annotations: &KeyValues,
    method: &Method,
    request: &HeaderMap,
    run: impl Future<Output = http::Response<B>>,
) -> http::Response<B> {
    let platform_cors = !annotations.is_true(web::WEB_CUSTOM_OPTIONS);
    let mut response = if platform_cors && method == Method::OPTIONS {
        http::Response::new(B::default())
    } else {
        run.await
    };
    if platform_cors {
        add_cors(response.headers_mut(), request);
    }
    response
}

/// OpenWhisk's CORS headers for web actions, where the answer has none of
/// its own; allowed headers echo a preflight's request.
pub fn add_cors(headers: &mut HeaderMap, request: &HeaderMap) {
    let allow_headers = request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(CORS_ALLOW_HEADERS));
    headers
        .entry(ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert_with(|| HeaderValue::from_static("*"));
    headers
        .entry(ACCESS_CONTROL_ALLOW_METHODS)
        .or_insert_with(|| HeaderValue::from_static(CORS_ALLOW_METHODS));
    headers
        .entry(ACCESS_CONTROL_ALLOW_HEADERS)
        .or_insert(allow_headers);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ActivationStatus;

    fn annotated(value: Value) -> KeyValues {
        let mut annotations = KeyValues::default();
        annotations.set(REQUIRE_WHISK_AUTH, value);
        annotations
    }

    fn with_header(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().expect("value"));
        headers
    }

    fn owner_is(expected: &'static str) -> impl FnOnce(&HeaderMap) -> Option<String> {
        move |headers: &HeaderMap| {
            (headers.get("authorization")?.as_bytes() == expected.as_bytes())
                .then(|| "guest".to_owned())
        }
    }

    #[test]
    fn require_whisk_auth_checks_secrets_and_keys() {
        let none = HeaderMap::new();
        let owner = || owner_is("Basic dTpr");
        assert_eq!(authorize(&KeyValues::default(), &none, owner()), Ok(None));
        let secret = annotated(json!("s3cret"));
        let header = |value| with_header("x-require-whisk-auth", value);
        assert_eq!(authorize(&secret, &header("s3cret"), owner()), Ok(None));
        assert_eq!(
            authorize(&secret, &header("wrong"), owner()),
            Err(WebError::Unauthorized)
        );
        assert_eq!(
            authorize(&secret, &none, owner()),
            Err(WebError::Unauthorized)
        );
        let number = annotated(json!(1234));
        assert_eq!(authorize(&number, &header("1234"), owner()), Ok(None));
        let key = annotated(json!(true));
        assert_eq!(
            authorize(&key, &with_header("authorization", "Basic dTpr"), owner()),
            Ok(Some("guest".into()))
        );
        assert_eq!(
            authorize(&key, &with_header("authorization", "Basic dTp4"), owner()),
            Err(WebError::Unauthorized)
        );
        assert_eq!(
            authorize(&annotated(json!(false)), &none, owner()),
            Err(WebError::Unauthorized)
        );
    }

    #[test]
    fn only_final_actions_have_immutable_parameters() {
        let Value::Object(bound) = json!({"a": 1, "unset": null}) else {
            unreachable!("an object literal")
        };
        assert!(immutable_parameters(&KeyValues::default(), &bound).is_empty());
        let mut annotations = KeyValues::default();
        annotations.set("final", json!(true));
        assert_eq!(immutable_parameters(&annotations, &bound), ["a"]);
    }

    #[test]
    fn targets_split_name_extension_and_path() {
        let target = WebTarget::parse("hello.json/response/name").expect("target");
        assert_eq!(target.action.as_str(), "hello");
        assert_eq!(target.extension, Extension::Json);
        assert_eq!(target.path, "/response/name");
        assert_eq!(
            WebTarget::parse("a.xml").expect("target").extension,
            Extension::Http
        );
        assert!(WebTarget::parse("").is_none());
    }

    #[test]
    fn requests_become_arguments_and_results_answers() {
        let target = WebTarget::parse("a.json").expect("target");
        let headers = with_header("content-type", "application/json");
        let call = WebCall {
            method: &Method::POST,
            headers: &headers,
            query: Some("q=1"),
            body: br#"{"b": 2}"#,
        };
        let args =
            arguments(call, &target, &KeyValues::default(), Map::new(), None).expect("arguments");
        assert_eq!(args["q"], json!("1"));
        assert_eq!(args["b"], json!(2));
        assert_eq!(args["__ow_method"], json!("post"));
        let response = ActivationResponse::new(ActivationStatus::Success, json!({"ok": true}));
        let answer = render(&target, &response).expect("answer");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(answer.body(), br#"{"ok":true}"#);
        let mut cors = HeaderMap::new();
        add_cors(&mut cors, &HeaderMap::new());
        assert_eq!(cors[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
