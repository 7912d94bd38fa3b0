//! Web actions, without I/O: an HTTP request as a web action's arguments,
//! and a web action's result as an HTTP answer, with OpenWhisk's rules and
//! messages (`WebActions.scala`, `docs/webactions.md`).
//!
//! The request's body and the action's result are untrusted (any caller
//! sends the one, the action's code makes the other): both are parsed here
//! without panicking, and every header an answer carries is checked to be
//! a valid HTTP field. The controller moves the bytes.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::{ActivationResponse, ActivationStatus};

/// The annotation that exports an action to the web.
pub const WEB_EXPORT: &str = "web-export";
/// The annotation that hands a web action its raw query and body.
pub const RAW_HTTP: &str = "raw-http";
/// The annotation by which a web action answers `OPTIONS` itself.
pub const WEB_CUSTOM_OPTIONS: &str = "web-custom-options";
/// The annotation that protects a web action: `true` for the owner's API
/// key, a string or number for a secret sent as [`REQUIRE_WHISK_AUTH_HEADER`].
pub const REQUIRE_WHISK_AUTH: &str = "require-whisk-auth";
/// The header carrying a web action's secret.
pub const REQUIRE_WHISK_AUTH_HEADER: &str = "x-require-whisk-auth";
/// The package segment of an action outside any package.
pub const DEFAULT_PACKAGE: &str = "default";

/// The `__ow_*` names a request may not set.
pub const RESERVED: [&str; 6] = [
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_user",
    "__ow_query",
    "__ow_body",
];

/// Why a web request is refused or its result cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The result cannot be rendered as the extension's media type.
    #[error("Response is not valid '{0}'.")]
    InvalidMedia(&'static str),
    /// The projected or required field is missing from the result.
    #[error("Response does not include requested property.")]
    PropertyNotFound,
    /// The result's `content-type` header is not a media type.
    #[error("Response did not specify a known content-type.")]
    UnknownContentType,
    /// The result's body does not fit its `content-type` (e.g. binary
    /// content that is not base64).
    #[error("Response type in header did not match generated content type.")]
    ContentTypeMismatch,
    /// The action failed without an application error to show.
    #[error("There was an error processing your request.")]
    ActionFailed,
    /// The request sets an `__ow_*` name or a final parameter.
    #[error("Request defines parameters that are not allowed (e.g., reserved properties).")]
    ParametersNotAllowed,
    /// The query string cannot be decoded.
    #[error("The request content was malformed:\nthe query string cannot be decoded")]
    MalformedQuery,
    /// The body does not parse as its content type says.
    #[error("The request content was malformed:\n{0}")]
    MalformedBody(String),
    /// The action requires a secret or an API key the request lacks.
    #[error("The supplied authentication is invalid.")]
    Unauthorized,
    /// The action is confidential.
    #[error(
        "Confidential web actions are not served by the node, which would see the request and \
         the answer in the clear: call the same web path on the namespace owner's attested \
         gateway, or invoke the action with a Clemmys client."
    )]
    ConfidentialRefused,
    /// The action did not finish within the blocking wait.
    #[error("Response not yet ready.")]
    NotReady,
    /// A method web actions do not answer.
    #[error("The method is not allowed on this resource.")]
    MethodNotAllowed,
}

impl WebError {
    /// The HTTP status OpenWhisk answers with.
    pub fn status(&self) -> u16 {
        match self {
            WebError::PropertyNotFound => 404,
            WebError::Unauthorized => 401,
            WebError::ConfidentialRefused => 501,
            WebError::NotReady => 202,
            WebError::MethodNotAllowed => 405,
            WebError::InvalidMedia(_)
            | WebError::UnknownContentType
            | WebError::ContentTypeMismatch
            | WebError::ActionFailed
            | WebError::ParametersNotAllowed
            | WebError::MalformedQuery
            | WebError::MalformedBody(_) => 400,
        }
    }
}

// ---- media types ----

/// The `type/subtype` of a `Content-Type` value, lowercased and without
/// parameters; `None` if it is not of that form.
pub fn media_type(value: &str) -> Option<String> {
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    (is_token(kind) && is_token(subtype)).then_some(essence)
}

/// `application/json` and `*/*+json`.
pub fn is_json_family(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Whether content of this type is bytes rather than text: everything but
/// `text/*`, the JSON and XML families and the few textual `application`
/// types.
pub fn is_binary(media: &str) -> bool {
    let textual = media.starts_with("text/")
        || is_json_family(media)
        || media.ends_with("+xml")
        || matches!(
            media,
            "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/x-javascript"
        );
    !textual
}

/// An HTTP token (RFC 9110 `tchar`s): a header name or a media type part.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value HTTP can carry: no control characters but tab.
pub fn is_field_value(text: &str) -> bool {
    text.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}

// ---- requests ----

/// The answer format a web action's URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `.http`, also the default: the result says the status, headers and
    /// body.
    Http,
    /// `.json`: the result (an object or array) as JSON.
    Json,
    /// `.html`: the result's `body` or `html` string as `text/html`.
    Html,
    /// `.svg`: the result's `body` or `svg` string as `image/svg+xml`.
    Svg,
    /// `.text`: the result's `body` or `text` as `text/plain`.
    Text,
}

impl Extension {
    const ALL: [(&'static str, Extension); 5] = [
        (".http", Extension::Http),
        (".json", Extension::Json),
        (".html", Extension::Html),
        (".svg", Extension::Svg),
        (".text", Extension::Text),
    ];

    /// Splits `name.ext` into the action's name and the extension; a name
    /// without a known extension is taken whole, with `.http` (as
    /// OpenWhisk does, so `a.xml` names action `a.xml`).
    pub fn split(segment: &str) -> (&str, Extension) {
        Self::ALL
            .iter()
            .find_map(|(suffix, extension)| {
                segment.strip_suffix(suffix).map(|name| (name, *extension))
            })
            .unwrap_or((segment, Extension::Http))
    }

    /// Whether the rest of the URL's path projects a field of the result
    /// (the documented `/hello.json/response/name`); `.http` never
    /// projects, so that the path can route requests (`__ow_path`).
    fn projects(self) -> bool {
        self != Extension::Http
    }
}

/// What a web action sees of its request.
#[derive(Debug, Default)]
pub struct WebRequest {
    /// `get`, `post`, … (lowercase).
    pub method: String,
    /// Header names (lowercase) → values (repeated ones joined by `, `).
    pub headers: Map<String, Value>,
    /// The path after the action's name and extension (`""` or `/…`).
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    /// The body: a JSON value, form fields as an object, or the bytes as
    /// text (base64 for binary types); `None` when there is none.
    pub body: Option<Value>,
    /// The authenticated namespace, for actions that require it.
    pub user: Option<String>,
}

impl WebRequest {
    /// A request of `method` with `headers` (name, value bytes) as
    /// OpenWhisk shows them.
    pub fn new<'a>(
        method: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        path: String,
        query: String,
    ) -> Self {
        let mut shown = Map::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let value = String::from_utf8_lossy(value).into_owned();
            match shown.get_mut(&name) {
                Some(Value::String(earlier)) => {
                    earlier.push_str(", ");
                    earlier.push_str(&value);
                }
                _ => {
                    shown.insert(name, Value::String(value));
                }
            }
        }
        Self {
            method: method.to_ascii_lowercase(),
            headers: shown,
            path,
            query,
            body: None,
            user: None,
        }
    }

    /// The action's arguments. A plain web action gets query parameters,
    /// then body fields over them; a body that is not an object comes as
    /// `__ow_body`. A `raw` one gets `__ow_query` and `__ow_body` instead.
    /// Neither may set an `__ow_*` name, nor (for a plain action) one of
    /// `immutable`, the action's final parameters.
    pub fn arguments(
        self,
        raw: bool,
        immutable: &[String],
    ) -> Result<Map<String, Value>, WebError> {
        let mut arguments = Map::new();
        arguments.insert("__ow_method".into(), Value::String(self.method));
        arguments.insert("__ow_headers".into(), Value::Object(self.headers));
        arguments.insert("__ow_path".into(), Value::String(self.path));
        if let Some(user) = self.user {
            arguments.insert("__ow_user".into(), Value::String(user));
        }
        if raw {
            arguments.insert("__ow_query".into(), Value::String(self.query));
            let body = self.body.unwrap_or_else(|| Value::String(String::new()));
            arguments.insert("__ow_body".into(), body);
            return Ok(arguments);
        }
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(&self.query).map_err(|_| WebError::MalformedQuery)?;
        let forbidden = |key: &str| RESERVED.contains(&key) || immutable.iter().any(|k| k == key);
        let body_keys = match &self.body {
            Some(Value::Object(fields)) => fields.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        if query
            .iter()
            .map(|(key, _)| key.as_str())
            .chain(body_keys)
            .any(forbidden)
        {
            return Err(WebError::ParametersNotAllowed);
        }
        for (key, value) in query {
            arguments.insert(key, Value::String(value));
        }
        match self.body {
            Some(Value::Object(fields)) => arguments.extend(fields),
            Some(other) => {
                arguments.insert("__ow_body".into(), other);
            }
            None => {}
        }
        Ok(arguments)
    }
}

/// The body of a request of `content_type` as a web action sees it: for
/// a plain action, JSON parsed and form fields as an object; otherwise
/// text, or base64 for binary types (and for JSON, which a raw action
/// gets encoded, as in OpenWhisk).
pub fn request_body(
    content_type: Option<&str>,
    bytes: &[u8],
    raw: bool,
) -> Result<Option<Value>, WebError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    // A body without a (readable) type is bytes.
    let media = content_type
        .and_then(media_type)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if !raw && is_json_family(&media) {
        let value = serde_json::from_slice(bytes)
            .map_err(|error| WebError::MalformedBody(error.to_string()))?;
        return Ok(Some(value));
    }
    if !raw && media == "application/x-www-form-urlencoded" {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|error| WebError::MalformedBody(error.to_string()))?;
        let object = fields
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        return Ok(Some(Value::Object(object)));
    }
    if is_binary(&media) || media == "application/json" {
        return Ok(Some(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )));
    }
    Ok(Some(Value::String(
        String::from_utf8_lossy(bytes).into_owned(),
    )))
}

// ---- answers ----

/// An HTTP answer to a web request, checked: the status is in 100-599,
/// every header name is a token and every value a valid field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAnswer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if the answer has a body.
    pub content_type: Option<String>,
    /// Other headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl WebAnswer {
    fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status: 200,
            content_type: Some(content_type.to_owned()),
            headers: Vec::new(),
            body,
        }
    }
}

/// The HTTP answer for a finished web activation: the result of a success
/// (projected along `path`), the `error` field of an application error,
/// each rendered as `extension` asks; any other failure is a 400.
pub fn web_answer(
    extension: Extension,
    response: &ActivationResponse,
    path: &str,
) -> Result<WebAnswer, WebError> {
    let empty = Value::Object(Map::new());
    let result = response.result.as_ref().unwrap_or(&empty);
    let projected = match response.status {
        ActivationStatus::Success if extension.projects() => {
            project(result, path.split('/').filter(|field| !field.is_empty()))
        }
        ActivationStatus::Success => Some(result),
        // The path is ignored: the error is what there is to show.
        ActivationStatus::ApplicationError => result.get("error"),
        ActivationStatus::DeveloperError | ActivationStatus::InternalError => {
            return Err(WebError::ActionFailed);
        }
    };
    let value = projected.ok_or(WebError::PropertyNotFound)?;
    match extension {
        Extension::Http => http_answer(value),
        Extension::Json => json_answer(value),
        Extension::Html => text_field(value, "html", "text/html")
            .map(|html| WebAnswer::ok("text/html; charset=UTF-8", html.as_bytes().to_vec())),
        Extension::Svg => text_field(value, "svg", "image/svg+xml")
            .map(|svg| WebAnswer::ok("image/svg+xml", svg.as_bytes().to_vec())),
        Extension::Text => text_answer(value),
    }
}

/// The value at `fields` below `value` (an array is indexed by number).
fn project<'a, 'p>(
    value: &'a Value,
    mut fields: impl Iterator<Item = &'p str>,
) -> Option<&'a Value> {
    fields.try_fold(value, |value, field| match value {
        Value::Object(object) => object.get(field),
        Value::Array(items) => field.parse::<usize>().ok().and_then(|at| items.get(at)),
        _ => None,
    })
}

/// `.json`: an object or an array.
fn json_answer(value: &Value) -> Result<WebAnswer, WebError> {
    match value {
        Value::Object(_) | Value::Array(_) => {
            let body = serde_json::to_vec(value)
                .map_err(|_| WebError::InvalidMedia("application/json"))?;
            Ok(WebAnswer::ok("application/json", body))
        }
        _ => Err(WebError::InvalidMedia("application/json")),
    }
}

/// `.html` and `.svg`: the `body` or `field` string of an object, or the
/// (projected) string itself.
fn text_field<'a>(value: &'a Value, field: &str, media: &'static str) -> Result<&'a str, WebError> {
    let chosen = match value {
        Value::Object(object) => object.get("body").or_else(|| object.get(field)),
        other => Some(other),
    };
    match chosen {
        Some(Value::String(text)) => Ok(text),
        _ => Err(WebError::InvalidMedia(media)),
    }
}

/// `.text`: the `body` or `text` of an object, or the value itself; JSON
/// values are shown pretty-printed.
fn text_answer(value: &Value) -> Result<WebAnswer, WebError> {
    let chosen = match value {
        Value::Object(object) => object
            .get("body")
            .or_else(|| object.get("text"))
            .ok_or(WebError::PropertyNotFound)?,
        other => other,
    };
    let text = match chosen {
        Value::String(text) => text.clone(),
        Value::Object(_) | Value::Array(_) => serde_json::to_string_pretty(chosen)
            .map_err(|_| WebError::InvalidMedia("text/plain"))?,
        other => other.to_string(),
    };
    Ok(WebAnswer::ok(
        "text/plain; charset=UTF-8",
        text.into_bytes(),
    ))
}

/// `.http`: `statusCode`, `headers` and `body` of the result.
fn http_answer(value: &Value) -> Result<WebAnswer, WebError> {
    let invalid = || WebError::InvalidMedia("message/http");
    let Value::Object(fields) = value else {
        return Err(invalid());
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    match fields.get("headers") {
        None => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                push_header(name, value, &mut headers).ok_or_else(invalid)?;
            }
        }
        Some(_) => return Err(invalid()),
    }
    let status = match fields.get("statusCode") {
        None => None,
        Some(Value::Number(number)) => {
            Some(number.as_u64().and_then(status_code).ok_or_else(invalid)?)
        }
        Some(Value::String(text)) => Some(
            text.parse::<u64>()
                .ok()
                .and_then(status_code)
                .ok_or_else(invalid)?,
        ),
        Some(_) => return Err(invalid()),
    };
    let declared = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.clone());
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
    let (status, content_type, body) = match fields.get("body") {
        Some(Value::String(text)) if !text.is_empty() => {
            let (content_type, bytes) = string_body(declared, text)?;
            (status.unwrap_or(200), Some(content_type), bytes)
        }
        // An empty body answers no content, whatever type was declared.
        None | Some(Value::Null) | Some(Value::String(_)) => {
            (status.unwrap_or(204), None, Vec::new())
        }
        Some(json) => {
            let (content_type, bytes) = json_body(declared, json)?;
            (status.unwrap_or(200), Some(content_type), bytes)
        }
    };
    Ok(WebAnswer {
        status,
        content_type,
        headers,
        body,
    })
}

/// A status code an answer may carry.
fn status_code(code: u64) -> Option<u16> {
    u16::try_from(code)
        .ok()
        .filter(|code| (100..=599).contains(code))
}

/// One header of `headers`: a string, number or boolean, or an array of
/// them for several values. `None` if the name or a value is not valid.
fn push_header(name: &str, value: &Value, headers: &mut Vec<(String, String)>) -> Option<()> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Array(values) => {
            for value in values {
                if value.is_array() {
                    return None;
                }
                push_header(name, value, headers)?;
            }
            return Some(());
        }
        _ => return None,
    };
    if !is_token(name) || !is_field_value(&text) {
        return None;
    }
    headers.push((name.to_owned(), text));
    Some(())
}

/// The bytes of a string body: text as is, a binary type's base64
/// decoded (and, as OpenWhisk still does for old actions, a JSON type's
/// when it looks like base64).
fn string_body(declared: Option<String>, text: &str) -> Result<(String, Vec<u8>), WebError> {
    let content_type = declared.unwrap_or_else(|| "text/html; charset=UTF-8".to_owned());
    let media = media_type(&content_type).ok_or(WebError::UnknownContentType)?;
    let bytes = if is_binary(&media) || (is_json_family(&media) && looks_like_base64(text)) {
        decode_base64(text).ok_or(WebError::ContentTypeMismatch)?
    } else {
        text.as_bytes().to_vec()
    };
    Ok((content_type, bytes))
}

/// A JSON (non-string) body: its type must be of the JSON family.
fn json_body(declared: Option<String>, json: &Value) -> Result<(String, Vec<u8>), WebError> {
    let content_type = declared.unwrap_or_else(|| "application/json".to_owned());
    let media = media_type(&content_type).ok_or(WebError::UnknownContentType)?;
    if !is_json_family(&media) {
        return Err(WebError::ContentTypeMismatch);
    }
    let bytes = serde_json::to_vec(json).map_err(|_| WebError::ContentTypeMismatch)?;
    Ok((content_type, bytes))
}

/// Standard base64, padding optional (as Java's decoder reads it).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(text.trim()).ok()
}

/// OpenWhisk's test for base64 code: non-empty, a multiple of 4 long, and
/// only base64 characters with padding at the end.
fn looks_like_base64(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn success(result: Value) -> ActivationResponse {
        ActivationResponse::success(result)
    }

    fn request(query: &str, body: Option<Value>) -> WebRequest {
        let headers: [(&str, &[u8]); 2] = [("X-Many", b"a"), ("x-many", b"b")];
        let mut request = WebRequest::new("POST", headers, "/rest".into(), query.into());
        request.body = body;
        request
    }

    #[test]
    fn media_types_parse_and_classify() {
        assert_eq!(
            media_type("Text/HTML; charset=UTF-8").as_deref(),
            Some("text/html")
        );
        assert_eq!(media_type("nonsense"), None);
        assert_eq!(media_type("a/"), None);
        assert!(is_json_family("application/vnd.api+json"));
        assert!(is_binary("image/png"));
        assert!(is_binary("application/octet-stream"));
        assert!(!is_binary("image/svg+xml"));
        assert!(!is_binary("text/plain"));
        assert!(!is_binary("application/json"));
    }

    #[test]
    fn plain_arguments_merge_query_then_body() {
        let arguments = request("a=1&b=2", Some(json!({"b": 3})))
            .arguments(false, &[])
            .expect("arguments");
        assert_eq!(
            Value::Object(arguments),
            json!({"__ow_method": "post", "__ow_headers": {"x-many": "a, b"}, "__ow_path": "/rest",
                   "a": "1", "b": 3})
        );
        let arguments = request("", Some(json!("text")))
            .arguments(false, &[])
            .expect("arguments");
        assert_eq!(arguments["__ow_body"], "text");
    }

    #[test]
    fn raw_arguments_box_query_and_body() {
        let arguments = request("a=1&__ow_path=x", Some(json!("eyJ9")))
            .arguments(true, &["a".into()])
            .expect("arguments");
        assert_eq!(arguments["__ow_query"], "a=1&__ow_path=x");
        assert_eq!(arguments["__ow_body"], "eyJ9");
        assert_eq!(arguments["__ow_path"], "/rest");
        assert!(!arguments.contains_key("a"));
    }

    #[test]
    fn reserved_and_final_names_are_refused() {
        for (query, body) in [
            ("__ow_method=get", None),
            ("", Some(json!({"__ow_headers": {}}))),
            ("fixed=1", None),
            ("", Some(json!({"fixed": 2}))),
        ] {
            let refused = request(query, body).arguments(false, &["fixed".into()]);
            assert!(
                matches!(refused, Err(WebError::ParametersNotAllowed)),
                "{query}"
            );
        }
    }

    #[test]
    fn bodies_are_read_by_their_type() {
        let json = request_body(Some("application/json"), br#"{"a":1}"#, false).expect("json");
        assert_eq!(json, Some(json!({"a": 1})));
        let form = request_body(
            Some("application/x-www-form-urlencoded"),
            b"name=Jane+Doe&x=%26",
            false,
        )
        .expect("form");
        assert_eq!(form, Some(json!({"name": "Jane Doe", "x": "&"})));
        let text = request_body(Some("text/plain"), b"Jane", false).expect("text");
        assert_eq!(text, Some(json!("Jane")));
        let binary = request_body(Some("image/png"), &[0, 255], false).expect("binary");
        assert_eq!(binary, Some(json!("AP8=")));
        let untyped = request_body(None, b"x", false).expect("untyped");
        assert_eq!(untyped, Some(json!("eA==")));
        let raw_json =
            request_body(Some("application/json"), br#"{"name":"Jane"}"#, true).expect("raw");
        assert_eq!(raw_json, Some(json!("eyJuYW1lIjoiSmFuZSJ9")));
        assert_eq!(
            request_body(Some("application/json"), b"", false).expect("empty"),
            None
        );
        assert!(matches!(
            request_body(Some("application/json"), b"{", false),
            Err(WebError::MalformedBody(_))
        ));
    }

    #[test]
    fn extensions_split_like_openwhisk() {
        assert_eq!(Extension::split("hello.json"), ("hello", Extension::Json));
        assert_eq!(Extension::split("hello"), ("hello", Extension::Http));
        assert_eq!(Extension::split("a.b.text"), ("a.b", Extension::Text));
        assert_eq!(
            Extension::split("hello.xml"),
            ("hello.xml", Extension::Http)
        );
    }

    #[test]
    fn http_results_set_status_headers_and_body() {
        let answer = web_answer(
            Extension::Http,
            &success(
                json!({"statusCode": 201, "headers": {"x-a": ["1", 2], "set-cookie": "c=1"},
                            "body": "<p>hi</p>"}),
            ),
            "",
        )
        .expect("answer");
        assert_eq!(answer.status, 201);
        assert_eq!(
            answer.content_type.as_deref(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(
            answer.headers,
            [
                ("set-cookie".to_owned(), "c=1".to_owned()),
                ("x-a".to_owned(), "1".to_owned()),
                ("x-a".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(answer.body, b"<p>hi</p>");

        let png = web_answer(
            Extension::Http,
            &success(json!({"headers": {"Content-Type": "image/png"}, "body": "AAEC/w=="})),
            "",
        )
        .expect("answer");
        assert_eq!(
            (png.status, png.content_type.as_deref()),
            (200, Some("image/png"))
        );
        assert_eq!(png.body, [0, 1, 2, 255]);
        assert!(png.headers.is_empty());

        let empty = web_answer(
            Extension::Http,
            &success(json!({"headers": {"location": "/x"}, "statusCode": "302"})),
            "",
        )
        .expect("answer");
        assert_eq!((empty.status, empty.content_type), (302, None));

        let json =
            web_answer(Extension::Http, &success(json!({"body": {"a": 1}})), "").expect("answer");
        assert_eq!(json.content_type.as_deref(), Some("application/json"));
        assert_eq!(json.body, br#"{"a":1}"#);
    }

    #[test]
    fn malformed_http_results_are_refused() {
        for result in [
            json!("text"),
            json!({"statusCode": 1000}),
            json!({"statusCode": true}),
            json!({"headers": "x"}),
            json!({"headers": {"x": {"nested": 1}}}),
            json!({"headers": {"bad name": "x"}}),
            json!({"headers": {"x": "line\nbreak"}}),
        ] {
            let error =
                web_answer(Extension::Http, &success(result.clone()), "").expect_err("invalid");
            assert_eq!(error, WebError::InvalidMedia("message/http"), "{result}");
        }
        let mismatch = |result: Value| web_answer(Extension::Http, &success(result), "");
        assert_eq!(
            mismatch(json!({"headers": {"content-type": "image/png"}, "body": "not base64!"})),
            Err(WebError::ContentTypeMismatch)
        );
        assert_eq!(
            mismatch(json!({"headers": {"content-type": "text/html"}, "body": {"a": 1}})),
            Err(WebError::ContentTypeMismatch)
        );
        assert_eq!(
            mismatch(json!({"headers": {"content-type": "nonsense"}, "body": "x"})),
            Err(WebError::UnknownContentType)
        );
    }

    #[test]
    fn media_extensions_pick_their_field_or_the_projection() {
        let result = success(json!({"html": "<b>x</b>", "text": 42, "svg": "<svg/>",
                                    "deep": {"list": ["a", "b"]}}));
        let html = web_answer(Extension::Html, &result, "").expect("html");
        assert_eq!(
            (html.content_type.as_deref(), html.body.as_slice()),
            (Some("text/html; charset=UTF-8"), &b"<b>x</b>"[..])
        );
        let svg = web_answer(Extension::Svg, &result, "").expect("svg");
        assert_eq!(
            (svg.content_type.as_deref(), svg.body.as_slice()),
            (Some("image/svg+xml"), &b"<svg/>"[..])
        );
        assert_eq!(
            web_answer(Extension::Text, &result, "").expect("text").body,
            b"42"
        );
        assert_eq!(
            web_answer(Extension::Text, &result, "/deep/list/1")
                .expect("text")
                .body,
            b"b"
        );
        assert_eq!(
            web_answer(Extension::Json, &result, "/deep")
                .expect("json")
                .body,
            br#"{"list":["a","b"]}"#
        );
        assert_eq!(
            web_answer(Extension::Json, &result, "/missing"),
            Err(WebError::PropertyNotFound)
        );
        assert_eq!(
            web_answer(Extension::Json, &result, "/html"),
            Err(WebError::InvalidMedia("application/json"))
        );
        assert_eq!(
            web_answer(Extension::Html, &success(json!({"other": 1})), ""),
            Err(WebError::InvalidMedia("text/html"))
        );
        assert_eq!(
            web_answer(Extension::Text, &success(json!({"other": 1})), ""),
            Err(WebError::PropertyNotFound)
        );
    }

    #[test]
    fn failures_show_the_error_field_or_refuse() {
        let failed = ActivationResponse::new(
            ActivationStatus::ApplicationError,
            json!({"error": {"statusCode": 418, "body": "teapot"}}),
        );
        let answer = web_answer(Extension::Http, &failed, "/ignored").expect("answer");
        assert_eq!(answer.status, 418);
        let broken = ActivationResponse::error(ActivationStatus::DeveloperError, "boom");
        assert_eq!(
            web_answer(Extension::Json, &broken, ""),
            Err(WebError::ActionFailed)
        );
    }
}
