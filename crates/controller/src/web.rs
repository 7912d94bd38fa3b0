//! `/api/v1/web/{ns}/{pkg|default}/{action}[.ext][/path]`: OpenWhisk's
//! web actions, answered without credentials for actions annotated
//! `web-export: true`.
//!
//! The request becomes the action's arguments and its result the HTTP
//! answer in [`clemmys_whisk::web`] and [`clemmys_whisk::web_http`] (no
//! I/O there, and shared with the attested gateway, so both answer
//! alike); here the action runs, blocking, through the same path as an
//! invoke (throttled, recorded in the owner's namespace, charged to the
//! owner). Confidential actions are refused: the node cannot open their
//! answers, and a node that could would show them to the provider. The
//! owner's attested gateway serves them on the same paths.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
use clemmys_whisk::package::package_parameters;
use clemmys_whisk::web::{DEFAULT_PACKAGE, WEB_EXPORT, WebError};
use clemmys_whisk::web_http::{self, WebCall, WebTarget};
use clemmys_whisk::{Action, EntityName, NamespaceRecord};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::auth::basic_credentials;
use crate::body::read_limited;
use crate::invoke::{self, InvokeMode, Outcome};
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
    /// The action's name, the answer's format and the path after them.
    web: WebTarget,
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
    if !web_http::is_web_method(&method) {
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
    let action = Arc::clone(&target.action);
    web_http::answer_with_cors(&action.annotations, &method, &headers, async {
        run(&controller, target, &method, &uri, &headers, &bytes)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    })
    .await
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
    let web = WebTarget::parse(rest).ok_or_else(ApiError::not_found)?;
    let (namespace, action_name) = (name(namespace)?, web.action.clone());
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
        web,
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
        web,
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
        web_http::authorize(annotations, headers, |headers| owner_key(headers, &owner))?
    };
    // A platform API key is a credential of the platform, not of the web
    // app: the action never sees it (a caller may have sent it by
    // mistake; the owner's is vouched for by `__ow_user`). Other
    // `Authorization` values (bearer tokens, …) are the app's own.
    let mut shown = headers.clone();
    if controller.carries_api_key(headers).await {
        shown.remove(AUTHORIZATION);
    }
    let call = WebCall {
        method,
        headers: &shown,
        query: uri.query(),
        body: bytes,
    };
    let merged = web_http::arguments(call, &web, annotations, bound, user)?;
    let payload = invoke::checked_payload(merged)?;
    let mode = InvokeMode {
        blocking: true,
        result_only: false,
        wait: controller.config.max_blocking_wait,
    };
    let (id, outcome) = invoke::activate(controller, &owner, action, payload, mode).await?;
    let response = match outcome {
        Outcome::Finished(activation) => match web_http::render(&web, &activation.response) {
            Ok(answer) => answer.map(Body::from).into_response(),
            Err(error) => refuse(error),
        },
        Outcome::Answered(answer) if answer.status() == StatusCode::ACCEPTED => {
            refuse(WebError::NotReady)
        }
        Outcome::Answered(answer) => answer,
    };
    Ok(invoke::with_activation_header(response, id))
}

/// The owner's namespace, when `headers` carry the owner's API key (for
/// `require-whisk-auth: true`).
fn owner_key(headers: &HeaderMap, owner: &NamespaceRecord) -> Option<String> {
    basic_credentials(headers)
        .filter(|(uuid, key)| {
            let uuid_ok = uuid.as_bytes().ct_eq(owner.auth.uuid.as_bytes());
            let key_ok = key.as_bytes().ct_eq(owner.auth.key.as_bytes());
            bool::from(uuid_ok & key_ok)
        })
        .map(|_| owner.name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_whisk::AuthKey;

    #[test]
    fn only_the_owners_key_names_the_owner() {
        let owner = NamespaceRecord {
            name: EntityName::new("guest").expect("name"),
            auth: AuthKey {
                uuid: "u".into(),
                key: "k".into(),
            },
            limits: Default::default(),
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().expect("value"));
            headers
        };
        // base64("u:k"), base64("u:x")
        assert_eq!(owner_key(&with("Basic dTpr"), &owner), Some("guest".into()));
        assert_eq!(owner_key(&with("Basic dTp4"), &owner), None);
        assert_eq!(owner_key(&HeaderMap::new(), &owner), None);
    }
}
