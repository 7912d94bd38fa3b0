//! A web action's result as an HTTP answer, per the extension of its URL
//! (`.http`, `.json`, `.html`, `.svg`, `.text`), with OpenWhisk's rules
//! and messages (`WebActions.scala`, `docs/webactions.md`).

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use clemmys_whisk::{ActivationResponse, ActivationStatus};
use serde_json::Value;

use super::WebError;
use super::media::{is_binary, is_json_family, media_type};

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

/// The HTTP answer for a finished web activation: the result of a success
/// (projected along `path`), the `error` field of an application error,
/// each rendered as `extension` asks; any other failure is a 400.
pub fn web_answer(
    extension: Extension,
    response: &ActivationResponse,
    path: &str,
) -> Result<Response, WebError> {
    let empty = Value::Object(serde_json::Map::new());
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
        Extension::Html => text_field(value, "html", "text/html").map(|html| {
            typed(
                StatusCode::OK,
                "text/html; charset=UTF-8",
                html.to_owned().into(),
            )
        }),
        Extension::Svg => text_field(value, "svg", "image/svg+xml")
            .map(|svg| typed(StatusCode::OK, "image/svg+xml", svg.to_owned().into())),
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

/// An answer with status, content type and body.
fn typed(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `.json`: an object or an array.
fn json_answer(value: &Value) -> Result<Response, WebError> {
    match value {
        Value::Object(_) | Value::Array(_) => Ok(axum::Json(value).into_response()),
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
fn text_answer(value: &Value) -> Result<Response, WebError> {
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
    Ok(typed(
        StatusCode::OK,
        "text/plain; charset=UTF-8",
        text.into(),
    ))
}

/// `.http`: `statusCode`, `headers` and `body` of the result.
fn http_answer(value: &Value) -> Result<Response, WebError> {
    let invalid = || WebError::InvalidMedia("message/http");
    let Value::Object(fields) = value else {
        return Err(invalid());
    };
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
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
    let content_type = headers
        .iter()
        .find(|(name, _)| *name == CONTENT_TYPE)
        .map(|(_, value)| value.clone());
    headers.retain(|(name, _)| *name != CONTENT_TYPE);
    let (status, content_type, body) = match fields.get("body") {
        Some(Value::String(text)) if !text.is_empty() => {
            let (content_type, bytes) = string_body(content_type, text)?;
            (status.unwrap_or(StatusCode::OK), Some(content_type), bytes)
        }
        // An empty body answers no content, whatever type was declared.
        None | Some(Value::Null) | Some(Value::String(_)) => {
            (status.unwrap_or(StatusCode::NO_CONTENT), None, Vec::new())
        }
        Some(json) => {
            let (content_type, bytes) = json_body(content_type, json)?;
            (status.unwrap_or(StatusCode::OK), Some(content_type), bytes)
        }
    };
    let mut response = (status, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.remove(CONTENT_TYPE);
    if let Some(content_type) = content_type {
        response_headers.insert(CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        response_headers.append(name, value);
    }
    Ok(response)
}

/// A status code an answer may carry.
fn status_code(code: u64) -> Option<StatusCode> {
    u16::try_from(code)
        .ok()
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
}

/// One header of `headers`: a string, number or boolean, or an array of
/// them for several values. `None` if the name or a value is not valid.
fn push_header(
    name: &str,
    value: &Value,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) -> Option<()> {
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
    let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let value = HeaderValue::from_str(&text).ok()?;
    headers.push((name, value));
    Some(())
}

/// The bytes of a string body: text as is, a binary type's base64
/// decoded (and, as OpenWhisk still does for old actions, a JSON type's
/// when it looks like base64).
fn string_body(
    content_type: Option<HeaderValue>,
    text: &str,
) -> Result<(HeaderValue, Vec<u8>), WebError> {
    let content_type =
        content_type.unwrap_or_else(|| HeaderValue::from_static("text/html; charset=UTF-8"));
    let media = content_type
        .to_str()
        .ok()
        .and_then(media_type)
        .ok_or(WebError::UnknownContentType)?;
    let bytes = if is_binary(&media) || (is_json_family(&media) && looks_like_base64(text)) {
        decode_base64(text).ok_or(WebError::ContentTypeMismatch)?
    } else {
        text.as_bytes().to_vec()
    };
    Ok((content_type, bytes))
}

/// A JSON (non-string) body: its type must be of the JSON family.
fn json_body(
    content_type: Option<HeaderValue>,
    json: &Value,
) -> Result<(HeaderValue, Vec<u8>), WebError> {
    let content_type = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
    let media = content_type
        .to_str()
        .ok()
        .and_then(media_type)
        .ok_or(WebError::UnknownContentType)?;
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
    use http_body_util::BodyExt as _;
    use serde_json::json;

    fn success(result: Value) -> ActivationResponse {
        ActivationResponse::success(result)
    }

    async fn parts(response: Response) -> (StatusCode, Option<String>, Vec<u8>) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes().to_vec())
            .unwrap_or_default();
        (status, content_type, body)
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

    #[tokio::test]
    async fn http_results_set_status_headers_and_body() {
        let answer = web_answer(
            Extension::Http,
            &success(json!({"statusCode": 201, "headers": {"x-a": ["1", 2], "set-cookie": "c=1"}, "body": "<p>hi</p>"})),
            "",
        )
        .expect("answer");
        assert_eq!(answer.headers().get_all("x-a").iter().count(), 2);
        let (status, content_type, body) = parts(answer).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(content_type.as_deref(), Some("text/html; charset=UTF-8"));
        assert_eq!(body, b"<p>hi</p>");

        let png = web_answer(
            Extension::Http,
            &success(json!({"headers": {"Content-Type": "image/png"}, "body": "AAEC/w=="})),
            "",
        )
        .expect("answer");
        let (status, content_type, body) = parts(png).await;
        assert_eq!(
            (status, content_type.as_deref()),
            (StatusCode::OK, Some("image/png"))
        );
        assert_eq!(body, [0, 1, 2, 255]);

        let empty = web_answer(
            Extension::Http,
            &success(json!({"headers": {"location": "/x"}, "statusCode": "302"})),
            "",
        )
        .expect("answer");
        assert_eq!(empty.status(), StatusCode::FOUND);

        let json =
            web_answer(Extension::Http, &success(json!({"body": {"a": 1}})), "").expect("answer");
        let (_, content_type, body) = parts(json).await;
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body, br#"{"a":1}"#);
    }

    #[test]
    fn malformed_http_results_are_refused() {
        for result in [
            json!("text"),
            json!({"statusCode": 1000}),
            json!({"statusCode": true}),
            json!({"headers": "x"}),
            json!({"headers": {"x": {"nested": 1}}}),
        ] {
            let error =
                web_answer(Extension::Http, &success(result.clone()), "").expect_err("invalid");
            assert!(
                matches!(error, WebError::InvalidMedia("message/http")),
                "{result}"
            );
        }
        let error = web_answer(
            Extension::Http,
            &success(json!({"headers": {"content-type": "image/png"}, "body": "not base64!"})),
            "",
        )
        .expect_err("mismatch");
        assert!(matches!(error, WebError::ContentTypeMismatch));
        let error = web_answer(
            Extension::Http,
            &success(json!({"headers": {"content-type": "text/html"}, "body": {"a": 1}})),
            "",
        )
        .expect_err("mismatch");
        assert!(matches!(error, WebError::ContentTypeMismatch));
        let error = web_answer(
            Extension::Http,
            &success(json!({"headers": {"content-type": "nonsense"}, "body": "x"})),
            "",
        )
        .expect_err("unknown");
        assert!(matches!(error, WebError::UnknownContentType));
    }

    #[tokio::test]
    async fn media_extensions_pick_their_field_or_the_projection() {
        let result = success(
            json!({"html": "<b>x</b>", "text": 42, "svg": "<svg/>", "deep": {"list": ["a", "b"]}}),
        );
        let (_, content_type, body) =
            parts(web_answer(Extension::Html, &result, "").expect("html")).await;
        assert_eq!(
            (content_type.as_deref(), body.as_slice()),
            (Some("text/html; charset=UTF-8"), &b"<b>x</b>"[..])
        );
        let (_, content_type, body) =
            parts(web_answer(Extension::Svg, &result, "").expect("svg")).await;
        assert_eq!(
            (content_type.as_deref(), body.as_slice()),
            (Some("image/svg+xml"), &b"<svg/>"[..])
        );
        let (_, _, body) = parts(web_answer(Extension::Text, &result, "").expect("text")).await;
        assert_eq!(body, b"42");
        let (_, _, body) =
            parts(web_answer(Extension::Text, &result, "/deep/list/1").expect("text")).await;
        assert_eq!(body, b"b");
        let (_, _, body) =
            parts(web_answer(Extension::Json, &result, "/deep").expect("json")).await;
        assert_eq!(body, br#"{"list":["a","b"]}"#);
        assert!(matches!(
            web_answer(Extension::Json, &result, "/missing"),
            Err(WebError::PropertyNotFound)
        ));
        assert!(matches!(
            web_answer(Extension::Json, &result, "/html"),
            Err(WebError::InvalidMedia("application/json"))
        ));
        assert!(matches!(
            web_answer(Extension::Html, &success(json!({"other": 1})), ""),
            Err(WebError::InvalidMedia("text/html"))
        ));
        assert!(matches!(
            web_answer(Extension::Text, &success(json!({"other": 1})), ""),
            Err(WebError::PropertyNotFound)
        ));
    }

    #[test]
    fn failures_show_the_error_field_or_refuse() {
        let failed = ActivationResponse {
            status: ActivationStatus::ApplicationError,
            success: false,
            result: Some(json!({"error": {"statusCode": 418, "body": "teapot"}})),
        };
        let answer = web_answer(Extension::Http, &failed, "/ignored").expect("answer");
        assert_eq!(answer.status(), StatusCode::IM_A_TEAPOT);
        let broken = ActivationResponse::error(ActivationStatus::DeveloperError, "boom");
        assert!(matches!(
            web_answer(Extension::Json, &broken, ""),
            Err(WebError::ActionFailed)
        ));
    }
}
