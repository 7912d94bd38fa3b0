//! An HTTP request as a web action's arguments: query and body
//! parameters, or the raw query and body for `raw-http` actions, plus the
//! `__ow_*` context, as OpenWhisk passes them.

use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::WebError;
use super::media::{is_binary, is_json_family, media_type};

/// The `__ow_*` names a request may not set.
pub const RESERVED: [&str; 6] = [
    "__ow_method",
    "__ow_headers",
    "__ow_path",
    "__ow_user",
    "__ow_query",
    "__ow_body",
];

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
    /// The request's method and headers as OpenWhisk shows them.
    pub fn new(method: &Method, headers: &HeaderMap, path: String, query: String) -> Self {
        let mut shown = Map::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match shown.get_mut(name.as_str()) {
                Some(Value::String(earlier)) => {
                    earlier.push_str(", ");
                    earlier.push_str(&value);
                }
                _ => {
                    shown.insert(name.as_str().to_owned(), Value::String(value));
                }
            }
        }
        Self {
            method: method.as_str().to_ascii_lowercase(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(query: &str, body: Option<Value>) -> WebRequest {
        let mut headers = HeaderMap::new();
        headers.append("x-many", "a".parse().expect("value"));
        headers.append("x-many", "b".parse().expect("value"));
        let mut request = WebRequest::new(&Method::POST, &headers, "/rest".into(), query.into());
        request.body = body;
        request
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
            request_body(Some("application/json"), br#"{"name":"Jane"}"#, true).expect("raw json");
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
}
