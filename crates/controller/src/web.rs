//! `/api/v1/web/{ns}/{pkg|default}/{action}[.ext][/path]`: OpenWhisk's
//! web actions, answered without credentials for actions annotated
//! `web-export: true`.
//!
//! The request becomes the action's arguments and its result the HTTP
//! answer in [`clemmys_whisk::web`] (no I/O there); here the action runs,
//! blocking, through the same path as an invoke (throttled, recorded in
//! the owner's namespace, charged to the owner). Confidential actions are
//! refused: without an attested gateway terminating the caller's TLS, the
//! provider would see the request and the answer in the clear.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, AUTHORIZATION, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::package::package_parameters;
use clemmys_whisk::web::{
    self, DEFAULT_PACKAGE, Extension, RAW_HTTP, REQUIRE_WHISK_AUTH, REQUIRE_WHISK_AUTH_HEADER,
    WEB_CUSTOM_OPTIONS, WEB_EXPORT, WebAnswer, WebError, WebRequest,
};
use clemmys_whisk::{Action, EntityName, KeyValues, NamespaceRecord};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::auth::basic_credentials;
use crate::body::read_limited;
use crate::invoke::{self, InvokeMode, Outcome};
use crate::routes::{CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS};
use crate::{ApiError, Controller};

impl From<WebError> for ApiError {
    fn from(error: WebError) -> Self {
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, error.to_string())
    }
}

/// A [`WebError`] as an answer (the orphan rule keeps this a function).
fn refuse(error: WebError) -> Response {
    ApiError::from(error).into_response()
}

/// A web-exported action found from a URL.
struct Target {
    /// The namespace owning it, which runs and pays for it.
    owner: NamespaceRecord,
    action: Arc<Action>,
    /// Its package's parameters under its own.
    bound: Map<String, Value>,
    extension: Extension,
    /// The URL's path after the action's segment.
    path: String,
}

/// Any method on `/api/v1/web/{ns}/{pkg}/{*rest}`.
#[utoipa::path(
    method(get, post, put, delete, patch, head, options),
    path = "/web/{ns}/{pkg}/{*rest}",
    operation_id = "web_serve",
    tag = "Web actions",
    summary = "Run a web action",
    security(()),
    params(("ns" = String, Path, description = "The namespace owning the action."), ("pkg" = String, Path, description = "The package, or `default` for none."), ("rest" = String, Path, description = "The action's name, its extension (`.json`, `.html`, `.http`, `.svg`, `.text`) and any further path (`__ow_path`).")),
    responses((status = 200, description = "What the action answered, as its extension asks."))
)]
pub async fn serve(
    State(controller): State<Arc<Controller>>,
    method: Method,
    Path((ns, package, rest)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !matches!(
        method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
            | Method::HEAD
            | Method::OPTIONS
    ) {
        return refuse(WebError::MethodNotAllowed);
    }
    // Read first: an answer that leaves the body unread would cost a
    // keep-alive client its connection.
    let bytes = match read_limited(body, MAX_PAYLOAD_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let target = match find(&controller, &ns, &package, &rest).await {
        Ok(target) => target,
        Err(error) => return error.into_response(),
    };
    // Unless the action answers OPTIONS itself, the platform does, with
    // OpenWhisk's CORS headers on every answer.
    let platform_cors = !target.action.annotations.is_true(WEB_CUSTOM_OPTIONS);
    let mut response = if platform_cors && method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        run(&controller, target, &method, &uri, &headers, &bytes)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    if platform_cors {
        add_cors(response.headers_mut(), &headers);
    }
    response
}

/// The web-exported action a URL names; anything else is 404, so that
/// nothing tells an unexported action from a missing one.
async fn find(
    controller: &Controller,
    namespace: &str,
    package: &str,
    rest: &str,
) -> Result<Target, ApiError> {
    let name = |text: &str| EntityName::new(text).map_err(|_| ApiError::not_found());
    let rest = rest.trim_start_matches('/');
    let (segment, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (action_name, extension) = Extension::split(segment);
    let (namespace, action_name) = (name(namespace)?, name(action_name)?);
    let owner = controller
        .store
        .get_namespace(&namespace)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (action, bound) = if package == DEFAULT_PACKAGE {
        let action = controller
            .action(&namespace, &action_name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let bound = action.parameters.to_object();
        (action, bound)
    } else {
        // As in OpenWhisk, not through a binding: the URL names the
        // package that holds the action.
        let package = controller
            .store
            .get_package(&namespace, &name(package)?)
            .await?
            .filter(|package| package.binding.is_none())
            .ok_or_else(ApiError::not_found)?;
        let action = controller
            .store
            .get_package_action(&namespace, &package.name, &action_name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let mut bound = package_parameters(&package, None);
        bound.extend(action.parameters.to_object());
        (Arc::new(action), bound)
    };
    if !action.annotations.is_true(WEB_EXPORT) {
        return Err(ApiError::not_found());
    }
    Ok(Target {
        owner,
        action,
        bound,
        extension,
        path: path.to_owned(),
    })
}

/// Checks the caller, runs the action on the request and renders its
/// result.
async fn run(
    controller: &Arc<Controller>,
    target: Target,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let Target {
        owner,
        action,
        bound,
        extension,
        path,
    } = target;
    if action.is_confidential() {
        return Err(WebError::ConfidentialRefused.into());
    }
    let annotations = &action.annotations;
    // An action answering OPTIONS itself is run for it unauthenticated,
    // so that it can answer preflights (which carry no credentials).
    let user = if *method == Method::OPTIONS {
        None
    } else {
        authorize(annotations, headers, &owner)?
    };
    let raw = annotations.is_true(RAW_HTTP);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    // A platform API key is a credential of the platform, not of the web
    // app: the action never sees it (a caller may have sent it by
    // mistake; the owner's is vouched for by `__ow_user`). Other
    // `Authorization` values (bearer tokens, …) are the app's own.
    let mut shown = headers.clone();
    if controller.carries_api_key(headers).await {
        shown.remove(AUTHORIZATION);
    }
    let mut request = WebRequest::new(
        method.as_str(),
        shown
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        path.clone(),
        uri.query().unwrap_or_default().to_owned(),
    );
    request.body = web::request_body(content_type, bytes, raw)?;
    request.user = user;
    let arguments = request.arguments(raw, &immutable_parameters(annotations, &bound))?;
    let mut merged = bound;
    merged.extend(arguments);
    let payload = invoke::checked_payload(merged)?;
    let mode = InvokeMode {
        blocking: true,
        result_only: false,
        wait: controller.config.max_blocking_wait,
    };
    let (id, outcome) = invoke::activate(controller, &owner, action, payload, mode).await?;
    let response = match outcome {
        Outcome::Finished(activation) => {
            match web::web_answer(extension, &activation.response, &path) {
                Ok(answer) => into_response(answer),
                Err(error) => refuse(error),
            }
        }
        Outcome::Answered(answer) if answer.status() == StatusCode::ACCEPTED => {
            refuse(WebError::NotReady)
        }
        Outcome::Answered(answer) => answer,
    };
    Ok(invoke::with_activation_header(response, id))
}

/// A checked [`WebAnswer`] as an HTTP answer; a header HTTP refuses
/// after all makes it an invalid `.http` result.
fn into_response(answer: WebAnswer) -> Response {
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
            _ => return refuse(WebError::InvalidMedia("message/http")),
        }
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    // The body's own type, never axum's default for bytes.
    response.headers_mut().remove(CONTENT_TYPE);
    response.headers_mut().extend(headers);
    response
}

/// The bound parameters a request may not override: all those with a
/// value, when the action is annotated `final: true`.
fn immutable_parameters(annotations: &KeyValues, bound: &Map<String, Value>) -> Vec<String> {
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
/// `X-Require-Whisk-Auth` header; `true` needs the owner's API key, whose
/// namespace the action then sees as `__ow_user`. Any other value lets
/// nobody in, as in OpenWhisk.
fn authorize(
    annotations: &KeyValues,
    headers: &HeaderMap,
    owner: &NamespaceRecord,
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
        Value::Bool(true) => basic_credentials(headers)
            .filter(|(uuid, key)| {
                let uuid_ok = uuid.as_bytes().ct_eq(owner.auth.uuid.as_bytes());
                let key_ok = key.as_bytes().ct_eq(owner.auth.key.as_bytes());
                bool::from(uuid_ok & key_ok)
            })
            .map(|_| Some(owner.name.to_string())),
        _ => None,
    };
    allowed.ok_or(WebError::Unauthorized)
}

/// OpenWhisk's CORS headers for web actions, where the answer has none of
/// its own; allowed headers echo a preflight's request.
fn add_cors(headers: &mut HeaderMap, request: &HeaderMap) {
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
    use super::*;
    use clemmys_whisk::AuthKey;
    use serde_json::json;

    fn owner() -> NamespaceRecord {
        NamespaceRecord {
            name: EntityName::new("guest").expect("name"),
            auth: AuthKey {
                uuid: "u".into(),
                key: "k".into(),
            },
            limits: Default::default(),
        }
    }

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

    #[test]
    fn require_whisk_auth_checks_secrets_and_keys() {
        let owner = owner();
        let none = HeaderMap::new();
        assert_eq!(authorize(&KeyValues::default(), &none, &owner), Ok(None));
        let secret = annotated(json!("s3cret"));
        assert_eq!(
            authorize(
                &secret,
                &with_header("x-require-whisk-auth", "s3cret"),
                &owner
            ),
            Ok(None)
        );
        assert_eq!(
            authorize(
                &secret,
                &with_header("x-require-whisk-auth", "wrong"),
                &owner
            ),
            Err(WebError::Unauthorized)
        );
        assert_eq!(
            authorize(&secret, &none, &owner),
            Err(WebError::Unauthorized)
        );
        let number = annotated(json!(1234));
        assert_eq!(
            authorize(
                &number,
                &with_header("x-require-whisk-auth", "1234"),
                &owner
            ),
            Ok(None)
        );
        let key = annotated(json!(true));
        // base64("u:k")
        assert_eq!(
            authorize(&key, &with_header("authorization", "Basic dTpr"), &owner),
            Ok(Some("guest".into()))
        );
        // base64("u:x")
        assert_eq!(
            authorize(&key, &with_header("authorization", "Basic dTp4"), &owner),
            Err(WebError::Unauthorized)
        );
        assert_eq!(
            authorize(&annotated(json!(false)), &none, &owner),
            Err(WebError::Unauthorized)
        );
    }

    #[test]
    fn only_final_actions_have_immutable_parameters() {
        let bound = json!({"a": 1, "unset": null});
        let Value::Object(bound) = bound else {
            unreachable!("an object literal")
        };
        assert!(immutable_parameters(&KeyValues::default(), &bound).is_empty());
        let mut annotations = KeyValues::default();
        annotations.set("final", json!(true));
        assert_eq!(immutable_parameters(&annotations, &bound), ["a"]);
    }
}
