//! The OpenWhisk REST API as the gateway serves it.
//!
//! | Route | What the gateway does |
//! |---|---|
//! | `PUT …/actions/{name}` | a `wasm` action (base64 code, as OpenWhisk clients send it) is deployed confidential: policy registered with the broker, code sealed to the action key, its bound `parameters` (and `final` annotation) sealed with the code as its default parameters, as the owner's `clemmys` does; a `sequence` of the owner's confidential actions gets a chain plan the gateway signs |
//! | `POST …/actions/{name}` | parameters sealed to the action key; the answer opened and its receipt verified; `blocking`, `result`, `timeout` as OpenWhisk |
//! | `GET …/activations/{id}`, `/result`, `/logs` | the sealed answer of an activation invoked through this gateway, opened and verified |
//! | `GET …/actions/{name}` | the node's record, without the (sealed) code, with the bound `parameters` this gateway sealed into the current version (from its own sealed copy; `[]` if another client deployed that version) |
//! | `GET …/actions`, `GET …/activations`, `GET /namespaces` | forwarded: names, versions and ids only, nothing secret |
//! | `DELETE …/actions/{name}` | forwarded; once the node deleted it, the broker's version of it recorded as deleted, which the web path then serves no more |
//! | `PUT`, `GET`, `DELETE …/packages/{name}`, `GET …/packages` | confidential packages: the gateway keeps their parameters sealed and the node stores none; bindings are refused ([`crate::packages`]) |
//! | `…/actions/{package}/{name}` | as `…/actions/{name}`, for an action of a confidential package the gateway made: sealed with the package's parameters under its own, and registered, sealed and run as `package/name` |
//! | any method on `/api/v1/web/{ns}/{package}/{action}.{ext}` | the owner's web-exported confidential actions (`default`: outside packages), as the node serves plain ones ([`crate::web`]) |
//!
//! | `GET /clemmys/v1/gateway` | who it is: its identity, its owner, whether it runs in test mode |
//! | `POST /clemmys/v1/credentials/challenge`, `POST /clemmys/v1/credentials` | the owner's signed requests for a credential, or to revoke one ([`crate::credentials`]) |
//!
//! With an owner, every OpenWhisk route wants a credential the gateway
//! issued (HTTP Basic `UUID:KEY`, as OpenWhisk clients send the namespace
//! key); a namespace key is a 401. Anything else answers an
//! OpenWhisk-shaped error (`{"error", "code"}`, and `"refusal"`: the
//! [`Refusal`] code when an enclave
//! refused the activation, e.g. `client_not_allowed` once the owner
//! revoked the gateway's delegation):
//! nothing is ever forwarded in the clear to the node for a confidential
//! action (no plaintext invoke, no bound parameters in the clear, no
//! JavaScript source, no activation records with `docs=true`).
//!
//! Bound parameters are sealed with the code, so they change only with
//! it: a `PUT` that gives parameters without `exec.code` (OpenWhisk would
//! keep the stored code) is a 400, since the gateway cannot open the
//! stored code to seal it again; a `PUT` with code and no parameters
//! keeps them, as OpenWhisk does, from the copy the gateway keeps in its
//! sealed state of what it sealed (none if another client deployed the
//! current version). Its answer, and a later `GET`, show them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use clemmys_client::confidential::{
    ConfidentialError, ConfidentialInvoked, DeployOptions, OpenedActivation,
};
use clemmys_client::{ClientError, InvokeOptions};
use clemmys_proto::refusal::Refusal;
use clemmys_whisk::action::ActionPut;
use clemmys_whisk::{Activation, ActivationId, ActivationStatus, AuthKey, KeyValues};
use serde_json::{Value, json};

use crate::credentials::{CredentialError, SignedCredentialRequest};
use crate::{CredentialAnswer, CredentialFailure, Gateway};

/// The largest request body: OpenWhisk's 48 MiB code limit, base64'd.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The largest body of a route open to anyone but web actions (a signed
/// credential request).
const MAX_PUBLIC_BODY: usize = 64 * 1024;

/// The gateway's router.
pub fn router(gateway: Arc<Gateway>) -> Router {
    // Callers of the API are authenticated before their body is read: a
    // body of up to `MAX_BODY` is buffered only for a caller who holds a
    // credential (or, in test mode, the namespace key).
    let api = Router::new()
        .route("/api/v1/namespaces", get(forward))
        .route("/api/v1/namespaces/{namespace}/actions", get(forward))
        .route(
            "/api/v1/namespaces/{namespace}/actions/{name}",
            get(get_action)
                .put(put_action)
                .post(invoke)
                .delete(delete_action),
        )
        .route(
            "/api/v1/namespaces/{namespace}/actions/{package}/{name}",
            get(get_action)
                .put(put_action)
                .post(invoke)
                .delete(delete_action),
        )
        .route("/api/v1/namespaces/{namespace}/packages", get(forward))
        .route(
            "/api/v1/namespaces/{namespace}/packages/{name}",
            get(crate::packages::get)
                .put(crate::packages::put)
                .delete(crate::packages::delete),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations",
            get(list_activations),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}",
            get(get_activation),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}/result",
            get(activation_result),
        )
        .route(
            "/api/v1/namespaces/{namespace}/activations/{id}/logs",
            get(activation_logs),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            caller_first,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    // Web actions read at most OpenWhisk's payload limit themselves.
    let web = Router::new().route(
        "/api/v1/web/{namespace}/{package}/{*rest}",
        axum::routing::any(crate::web::serve),
    );
    let public = Router::new()
        .route("/clemmys/v1/gateway", get(about))
        .route(
            "/clemmys/v1/credentials/challenge",
            axum::routing::post(challenge),
        )
        .route("/clemmys/v1/credentials", axum::routing::post(credential))
        .fallback(unsupported)
        .layer(DefaultBodyLimit::max(MAX_PUBLIC_BODY));
    api.merge(web).merge(public).with_state(gateway)
}

/// Refuses a caller of the API whose credentials do not verify, before
/// its body is read; a caller who verified is remembered, so the
/// handler's own check is a look-up.
async fn caller_first(
    State(gateway): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match connect(&gateway, request.headers()).await {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// A refusal, as OpenWhisk shapes them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No usable API key.
    #[error("The supplied authentication is invalid")]
    Unauthenticated,
    /// A credential or a credential request was refused.
    #[error(transparent)]
    Credential(#[from] CredentialFailure),
    /// A namespace this gateway does not serve.
    #[error("this gateway serves namespace {served}, not {asked}")]
    WrongNamespace {
        /// The namespace served.
        served: String,
        /// The one asked for.
        asked: String,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// An action `PUT` gives bound parameters without the code they are
    /// sealed with.
    #[error(
        "a confidential action's parameters are sealed with its code: PUT exec.code with them (the gateway cannot open the stored code to seal new parameters with it)"
    )]
    ParametersWithoutCode,
    /// A package binding: the gateway makes confidential packages only,
    /// which cannot be bound, and a binding's parameters would be stored
    /// by the provider in the clear.
    #[error(
        "the gateway does not bind packages: the packages it makes are confidential, which cannot be bound (their actions run only under their own names, with the parameters sealed into them), and a binding's parameters would be stored by the provider in the clear"
    )]
    BindingRefused,
    /// An action `PUT` into a package this gateway did not make, so whose
    /// parameters it does not hold to seal into the action.
    #[error(
        "package {0} was not created through this gateway, which so holds none of its parameters to seal into its actions: create it through the gateway (PUT …/packages/{0})"
    )]
    PackageNotKept(String),
    /// Something the gateway does not do (it would have to pass plaintext
    /// to the provider, or is not built).
    #[error("{0}")]
    Unsupported(String),
    /// The node answered other than it must (a record of another
    /// activation, or not a record).
    #[error("{0}")]
    Upstream(String),
    /// The confidential client failed.
    #[error(transparent)]
    Confidential(#[from] ConfidentialError),
}

impl From<CredentialError> for ApiError {
    fn from(error: CredentialError) -> Self {
        ApiError::Credential(CredentialFailure::Refused(error))
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        ApiError::Confidential(ConfidentialError::Api(error))
    }
}

impl ApiError {
    /// The one table of statuses.
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Credential(CredentialFailure::Refused(refused)) => match refused {
                CredentialError::NotIssued | CredentialError::Revoked => StatusCode::UNAUTHORIZED,
                CredentialError::Malformed(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            },
            ApiError::Credential(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::WrongNamespace { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_)
            | ApiError::ParametersWithoutCode
            | ApiError::BindingRefused
            | ApiError::PackageNotKept(_) => StatusCode::BAD_REQUEST,
            ApiError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Confidential(error) => match error {
                ConfidentialError::Api(ClientError::Api { status, .. }) => {
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
                }
                ConfidentialError::Api(_) => StatusCode::BAD_GATEWAY,
                ConfidentialError::Refused(_)
                | ConfidentialError::NotRegistered(_)
                | ConfidentialError::UntrustedOwner { .. }
                | ConfidentialError::EnclaveRefused {
                    refusal: Refusal::ClientNotAllowed,
                    ..
                } => StatusCode::FORBIDDEN,
                ConfidentialError::NoKey(_) | ConfidentialError::NotSealed(_) => {
                    StatusCode::NOT_FOUND
                }
                ConfidentialError::DefaultParametersTooLarge { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                ConfidentialError::FinalParameterOverridden(_) | ConfidentialError::Limits(_) => {
                    StatusCode::BAD_REQUEST
                }
                ConfidentialError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
                // Attestation, tampering, rollback, a refused or failed
                // run: the node behind the gateway did not answer as it
                // must.
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// The enclave's typed refusal, when one refused the activation.
    fn refusal(&self) -> Option<Refusal> {
        match self {
            ApiError::Confidential(ConfidentialError::EnclaveRefused { refusal, .. }) => {
                Some(*refusal)
            }
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            // The node's own message, without this client's decoration.
            ApiError::Confidential(ConfidentialError::Api(ClientError::Api {
                message, ..
            })) => message.clone(),
            ApiError::Confidential(ConfidentialError::Api(other)) => {
                format!("the node behind the gateway: {other}")
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "gateway request failed");
        }
        let mut body = error_body(&self.message());
        if let Some(refusal) = self.refusal() {
            body["refusal"] = refusal.code().into();
        }
        (status, axum::Json(body)).into_response()
    }
}

/// `{"error": message, "code": id}` with `status`, as OpenWhisk answers.
pub(crate) fn openwhisk_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(error_body(message))).into_response()
}

/// `{"error": message, "code": id}`.
fn error_body(message: &str) -> Value {
    // A request id, as OpenWhisk's `code`, to quote in a report.
    let mut code = [0u8; 16];
    rand_core::Rng::fill_bytes(&mut clemmys_tee::os_rng(), &mut code);
    let code: String = code.iter().map(|byte| format!("{byte:02x}")).collect();
    json!({"error": message, "code": code})
}

/// The confidential client for the caller of `headers`: with an owner,
/// only for a credential the gateway issued (see
/// [`Gateway::authenticate`]).
pub(crate) async fn connect(
    gateway: &Gateway,
    headers: &HeaderMap,
) -> Result<Arc<clemmys_client::confidential::Confidential>, ApiError> {
    connect_with(gateway, headers.get(header::AUTHORIZATION)).await
}

/// [`connect`] for the caller whose `Authorization` header is `header`.
async fn connect_with(
    gateway: &Gateway,
    header: Option<&HeaderValue>,
) -> Result<Arc<clemmys_client::confidential::Confidential>, ApiError> {
    let header = header.ok_or(ApiError::Unauthenticated)?;
    if let Some(connection) = gateway.verified_caller(header.as_bytes())? {
        return Ok(connection);
    }
    let presented = auth_value(header)?;
    let node_auth = gateway.authenticate(presented.clone())?;
    let connection = gateway.connection(node_auth).await?;
    gateway.remember_verified(header.as_bytes(), &presented, &connection);
    Ok(connection)
}

/// The API key of the request's HTTP Basic credentials.
pub(crate) fn auth(headers: &HeaderMap) -> Result<AuthKey, ApiError> {
    auth_value(
        headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?,
    )
}

/// The API key of HTTP Basic credentials `header`.
fn auth_value(header: &HeaderValue) -> Result<AuthKey, ApiError> {
    let value = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or(ApiError::Unauthenticated)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::Unauthenticated)?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::Unauthenticated)?;
    text.parse().map_err(|_| ApiError::Unauthenticated)
}

pub(crate) fn check_namespace(gateway: &Gateway, namespace: &str) -> Result<(), ApiError> {
    if namespace == "_" || namespace == gateway.namespace() {
        Ok(())
    } else {
        Err(ApiError::WrongNamespace {
            served: gateway.namespace().to_owned(),
            asked: namespace.to_owned(),
        })
    }
}

pub(crate) fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|value| sets_flag(value))
}

/// Whether a query flag's `value` sets it: only `true` does, as in
/// OpenWhisk.
fn sets_flag(value: &str) -> bool {
    value == "true"
}

/// The node's answer, as it came.
pub(crate) fn relay(response: clemmys_client::RawResponse) -> Response {
    let status = StatusCode::from_u16(response.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        response.body,
    )
        .into_response()
}

/// The action a request path names: `…/actions/{name}`, or
/// `…/actions/{package}/{name}` in a package.
#[derive(Debug, serde::Deserialize)]
struct ActionPath {
    namespace: String,
    #[serde(default)]
    package: Option<String>,
    name: String,
}

impl ActionPath {
    /// The name the action is registered, sealed and run under:
    /// `name`, or `package/name`; each segment a valid entity name.
    fn action(&self) -> Result<String, ApiError> {
        let name = clemmys_whisk::EntityName::new(self.name.as_str())
            .map_err(|error| ApiError::BadRequest(format!("action {}: {error}", self.name)))?;
        Ok(match &self.package {
            Some(package) => format!("{}/{name}", crate::packages::package_name(package)?),
            None => name.to_string(),
        })
    }
}

/// The path of `uri` below `/api/v1`, with its query.
pub(crate) fn below_api(uri: &Uri) -> String {
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |path| path.as_str());
    path_and_query
        .strip_prefix("/api/v1")
        .unwrap_or(path_and_query)
        .to_owned()
}

/// Routes whose answers hold nothing secret: forwarded as they are.
async fn forward(
    State(gateway): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let connection = connect(&gateway, &headers).await?;
    let response = connection
        .client()
        .request(method, &below_api(&uri), None)
        .await?;
    Ok(relay(response))
}

async fn list_activations(
    State(gateway): State<Arc<Gateway>>,
    Path(namespace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &namespace)?;
    if flag(&query, "docs") {
        return Err(ApiError::Unsupported(
            "listing activations with docs=true is not supported by the gateway: get each activation by id to read its opened result".into(),
        ));
    }
    forward(State(gateway), method, uri, headers).await
}

async fn delete_action(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<ActionPath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &path.namespace)?;
    let name = path.action()?;
    let connection = connect(&gateway, &headers).await?;
    // The broker's current version, asked before the node deletes: the
    // broker keeps it current after the delete (it knows nothing of the
    // node's), so the provider could put the record back on the node,
    // web tag included, and have the web path run it; the gateway records
    // the version as deleted and serves it no more ([`crate::web`]). Not
    // a registered action (plain, a sequence): nothing to record.
    let current = match connection.describe(&name, true).await {
        Ok(descriptor) => Some(descriptor.version),
        Err(ConfidentialError::NotRegistered(_) | ConfidentialError::RegisteredSequence(_)) => None,
        Err(other) => return Err(other.into()),
    };
    let response = connection
        .client()
        .request(method, &below_api(&uri), None)
        .await?;
    // Deleted, or the node has no such action (the provider may have
    // deleted it itself): the owner is told it is gone.
    if let Some(version) = current
        && (response.status.is_success() || response.status.as_u16() == 404)
    {
        connection.keep_deleted_version(&name, version)?;
    }
    Ok(relay(response))
}

/// The node's record of an action, without its code (sealed: only
/// enclaves granted the action key can open it), with the bound parameters
/// the gateway sealed into its current version.
async fn get_action(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<ActionPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &path.namespace)?;
    let name = path.action()?;
    let connection = connect(&gateway, &headers).await?;
    let mut doc = connection.client().get_action(&name, false).await?;
    // A registered action's enclaves run under the limits its policy
    // binds, whatever the node's record says (the provider writes that).
    let registered = match connection.describe(&name, true).await {
        Ok(descriptor) => {
            if let Some(bound) = descriptor.policy.limits {
                doc.limits = Some(bound.over(doc.limits.unwrap_or_default()));
            }
            true
        }
        // A sequence the owner registered: shown only as its signed plan
        // lists it, checked as an invoke checks it.
        Err(ConfidentialError::RegisteredSequence(_)) => {
            let plan = connection.sequence_plan(&name).await?.ok_or_else(|| {
                ApiError::Upstream(format!(
                    "the key broker registers {name} as a confidential sequence, but the node does not show it as one"
                ))
            })?;
            // The record shown, not only the one the plan was checked
            // against (the node may answer each fetch differently, and a
            // plan checked within the last second is not fetched again).
            plan.check_listed(doc.exec.components.as_deref().unwrap_or_default())
                .map_err(ConfidentialError::from)?;
            true
        }
        Err(ConfidentialError::NotRegistered(_)) => false,
        // Not the node's record shown as a plain action's because the
        // broker could not be asked (or refused, throttled).
        Err(other) => return Err(other.into()),
    };
    let mut shown = without_code(
        serde_json::to_value(doc).map_err(|e| ConfidentialError::State(e.to_string()))?,
    );
    let parameters = match connection.current_defaults(&name).await? {
        Some(defaults) => Some(KeyValues::from_object(defaults.parameters())),
        // Its parameters are sealed with its code: any the node shows
        // beside them are the provider's.
        None if registered => Some(KeyValues::default()),
        None => None,
    };
    if let (Some(parameters), Some(fields)) = (parameters, shown.as_object_mut()) {
        fields.insert(
            "parameters".into(),
            serde_json::to_value(parameters)
                .map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
    }
    Ok(axum::Json(shown).into_response())
}

fn without_code(mut doc: Value) -> Value {
    if let Some(exec) = doc.get_mut("exec").and_then(Value::as_object_mut) {
        exec.remove("code");
    }
    doc
}

/// Creates or updates a confidential action from an OpenWhisk action body:
/// its bound parameters become default parameters sealed with the code
/// (by the client library, as for the owner's `clemmys`).
async fn put_action(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<ActionPath>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &path.namespace)?;
    let name = path.action()?;
    let connection = connect(&gateway, &headers).await?;
    let mut put: ActionPut = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the action is not valid JSON: {error}")))?;
    // Sealed with the code by `deploy_annotated`, which takes them out of
    // `put`; kept here only to answer them back to the caller.
    let parameters = put
        .parameters
        .clone()
        .filter(|parameters| !parameters.is_empty());
    let exec = match put.exec.as_mut() {
        Some(exec) => exec,
        None if parameters.is_some() => return Err(ApiError::ParametersWithoutCode),
        None => {
            return Err(ApiError::BadRequest(
                "exec is required: the gateway deploys wasm actions".into(),
            ));
        }
    };
    if exec.kind == clemmys_whisk::SEQUENCE_KIND {
        if parameters.is_some() {
            return Err(ApiError::Unsupported(
                "a confidential sequence has no sealed code to carry bound parameters, and the provider would store them in the clear: bind them to its actions, or pass them with each invoke".into(),
            ));
        }
        return put_sequence(&connection, &name, put, flag(&query, "overwrite")).await;
    }
    if exec.kind != clemmys_whisk::WASM_KIND {
        return Err(ApiError::Unsupported(format!(
            "the gateway makes every action confidential and deploys wasm modules only: kind {} is not supported here (a confidential JavaScript action is deployed with the Clemmys CLI, `clemmys action create NAME FILE.js`)",
            exec.kind
        )));
    }
    let code = match exec.code.take() {
        Some(code) => code,
        None if parameters.is_some() => return Err(ApiError::ParametersWithoutCode),
        None => return Err(ApiError::BadRequest("exec.code is required".into())),
    };
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(code.trim())
        .map_err(|_| ApiError::BadRequest("exec.code is not base64".into()))?;
    let overwrite = flag(&query, "overwrite");
    // Sealed with the package's parameters, which the gateway must hold:
    // checked before the broker registers a version of the action.
    if let Some(package) = &path.package {
        crate::packages::check_kept(&connection, package).await?;
    }
    // The web annotations are tagged for the policy version this deploy
    // registers: the node cannot export, or lift the protection of, an
    // action the owner did not ([`crate::web`]).
    let tag = |version: u64, annotations: &mut KeyValues| {
        crate::web::tag_web_annotations(&gateway, &name, version, annotations);
    };
    let doc = connection
        .deploy_annotated(
            &name,
            &wasm,
            put,
            overwrite,
            &DeployOptions::default(),
            &tag,
        )
        .await?;
    tracing::info!(action = %name, "deployed a confidential action");
    let mut shown = without_code(
        serde_json::to_value(doc).map_err(|e| ConfidentialError::State(e.to_string()))?,
    );
    // What was sealed, answered over the attested channel to the caller
    // who gave it, as OpenWhisk answers a PUT.
    if let (Some(parameters), Some(fields)) = (parameters, shown.as_object_mut()) {
        fields.insert(
            "parameters".into(),
            serde_json::to_value(parameters)
                .map_err(|e| ConfidentialError::State(e.to_string()))?,
        );
    }
    Ok(axum::Json(shown).into_response())
}

/// Creates or updates confidential sequence `name` from an OpenWhisk
/// sequence body: the plan of its components (the owner's confidential
/// actions, as the broker describes them) is signed inside the gateway, so
/// the node cannot reorder, drop or substitute a step of it.
async fn put_sequence(
    connection: &clemmys_client::confidential::Confidential,
    name: &str,
    mut put: ActionPut,
    overwrite: bool,
) -> Result<Response, ApiError> {
    let components = put
        .exec
        .take()
        .and_then(|exec| exec.components)
        .filter(|components| !components.is_empty())
        .ok_or_else(|| ApiError::BadRequest("exec.components is required for a sequence".into()))?;
    let doc = connection
        .put_sequence(name, &components, put, overwrite)
        .await?;
    tracing::info!(action = %name, steps = components.len(), "created a confidential sequence");
    Ok(
        axum::Json(serde_json::to_value(doc).map_err(|e| ConfidentialError::State(e.to_string()))?)
            .into_response(),
    )
}

/// The request's `Authorization` header alone: what an invoke reads of
/// its headers, taken without copying them all as `HeaderMap` does.
struct Authorization(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for Authorization {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(header::AUTHORIZATION).cloned()))
    }
}

/// What an invoke reads of its query, as OpenWhisk does: a flag is set by
/// the value `true`, and the last of repeated parameters counts. Read
/// without a map of every parameter (this is on every invoke's path).
#[derive(Debug, Default, PartialEq, Eq)]
struct InvokeQuery {
    blocking: bool,
    result: bool,
    timeout: Option<String>,
}

impl InvokeQuery {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*name {
                "blocking" => parsed.blocking = sets_flag(&value),
                "result" => parsed.result = sets_flag(&value),
                "timeout" => parsed.timeout = Some(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

/// Seals the parameters, invokes, and opens the answer.
async fn invoke(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<ActionPath>,
    uri: Uri,
    Authorization(authorization): Authorization,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_namespace(&gateway, &path.namespace)?;
    let name = path.action()?;
    let query = InvokeQuery::parse(uri.query());
    let connection = connect_with(&gateway, authorization.as_ref()).await?;
    let params: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::BadRequest(format!("the parameters are not valid JSON: {error}"))
        })?
    };
    if !params.is_object() {
        return Err(ApiError::BadRequest(
            "the parameters must be a JSON object".into(),
        ));
    }
    let timeout_ms = match &query.timeout {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("timeout must be milliseconds".into()))?,
        ),
        None => None,
    };
    let options = InvokeOptions {
        blocking: query.blocking,
        result: query.blocking && query.result,
        timeout_ms,
    };
    match connection.invoke(&name, &params, options).await? {
        ConfidentialInvoked::Accepted { activation_id } => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "activationId": activation_id })),
        )
            .into_response()),
        ConfidentialInvoked::Completed(opened) => {
            let status = completed_status(opened.status);
            if options.result {
                return Ok((status, axum::Json(opened.result)).into_response());
            }
            let record = opened_record(&connection, &opened).await?;
            Ok((status, axum::Json(record)).into_response())
        }
    }
}

/// A blocking invoke's status: 200 for success, 502 otherwise (as
/// OpenWhisk answers an action that failed).
fn completed_status(status: ActivationStatus) -> StatusCode {
    if status == ActivationStatus::Success {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    }
}

/// The node's record of `opened`, shown with its opened answer as the
/// client library shows one ([`OpenedActivation::reveal`]): named as what
/// the gateway invoked, with only the annotations a verified answer does
/// not contradict, and refused if it is another activation's.
async fn opened_record(
    connection: &clemmys_client::confidential::Confidential,
    opened: &OpenedActivation,
) -> Result<Activation, ApiError> {
    let path = format!("/namespaces/_/activations/{}", opened.activation_id);
    let mut record: Activation = connection
        .client()
        .request(Method::GET, &path, None)
        .await?
        .json("activation")?;
    opened.reveal(&mut record, connection.namespace())?;
    Ok(record)
}

fn activation_id(text: &str) -> Result<ActivationId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("{text} is not an activation id")))
}

async fn open(
    gateway: &Gateway,
    headers: &HeaderMap,
    namespace: &str,
    id: &str,
) -> Result<
    (
        Arc<clemmys_client::confidential::Confidential>,
        OpenedActivation,
    ),
    ApiError,
> {
    check_namespace(gateway, namespace)?;
    let id = activation_id(id)?;
    let connection = connect(gateway, headers).await?;
    let opened = connection.open_activation(id).await?;
    Ok((connection, opened))
}

async fn get_activation(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (connection, opened) = open(&gateway, &headers, &namespace, &id).await?;
    Ok(axum::Json(opened_record(&connection, &opened).await?).into_response())
}

async fn activation_result(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, opened) = open(&gateway, &headers, &namespace, &id).await?;
    Ok(axum::Json(opened.response_json()).into_response())
}

async fn activation_logs(
    State(gateway): State<Arc<Gateway>>,
    Path((namespace, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, opened) = open(&gateway, &headers, &namespace, &id).await?;
    Ok(axum::Json(json!({"logs": opened.shown_logs()})).into_response())
}

/// Who this gateway is, answered inside the RA-TLS channel (so from the
/// enclave the certificate's evidence names).
async fn about(State(gateway): State<Arc<Gateway>>) -> Response {
    let broker = gateway.broker().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "could not pin the node's key broker");
        None
    });
    axum::Json(json!({
        "identity": gateway.identity(),
        "owner": gateway.owner(),
        "namespace": gateway.namespace(),
        "testMode": gateway.owner().is_none(),
        "broker": broker,
    }))
    .into_response()
}

async fn challenge(State(gateway): State<Arc<Gateway>>) -> Result<Response, ApiError> {
    let challenge = gateway.challenge()?;
    Ok(axum::Json(json!({"challenge": hex::encode(challenge)})).into_response())
}

async fn credential(
    State(gateway): State<Arc<Gateway>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signed: SignedCredentialRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!("not a signed credential request: {error}"))
    })?;
    Ok(match gateway.answer(signed)? {
        CredentialAnswer::Issued(auth) => {
            axum::Json(json!({"uuid": auth.uuid, "key": auth.key, "auth": auth.to_string()}))
                .into_response()
        }
        CredentialAnswer::Revoked(uuid, new) => {
            axum::Json(json!({"revoked": uuid, "new": new})).into_response()
        }
    })
}

async fn unsupported(method: Method, uri: Uri) -> Response {
    openwhisk_error(
        StatusCode::NOT_IMPLEMENTED,
        &format!(
            "{method} {} is not supported by the Clemmys gateway: it serves confidential wasm actions (create, get, list, delete, invoke, web), confidential packages of them, and their activations, and forwards nothing else, so that no plaintext reaches the provider",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_garbage_refused() {
        let mut headers = HeaderMap::new();
        assert!(matches!(auth(&headers), Err(ApiError::Unauthenticated)));
        let encoded = base64::engine::general_purpose::STANDARD.encode("uuid:secret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().expect("header"),
        );
        let key = auth(&headers).expect("a key");
        assert_eq!((key.uuid.as_str(), key.key.as_str()), ("uuid", "secret"));
        headers.insert(header::AUTHORIZATION, "Basic %%%".parse().expect("header"));
        assert!(matches!(auth(&headers), Err(ApiError::Unauthenticated)));
    }

    #[test]
    fn an_invokes_query_reads_as_openwhisk_reads_it() {
        assert_eq!(InvokeQuery::parse(None), InvokeQuery::default());
        let query = InvokeQuery::parse(Some("blocking=true&result=true&timeout=250&other=x"));
        assert_eq!(
            query,
            InvokeQuery {
                blocking: true,
                result: true,
                timeout: Some("250".into()),
            }
        );
        // Only the value `true` sets a flag; the last repetition counts;
        // values are percent-decoded.
        let query = InvokeQuery::parse(Some("blocking=TRUE&result=true&result=false&timeout=%31"));
        assert_eq!(
            query,
            InvokeQuery {
                blocking: false,
                result: false,
                timeout: Some("1".into()),
            }
        );
    }

    #[test]
    fn a_failed_run_is_a_bad_gateway_as_in_openwhisk() {
        assert_eq!(completed_status(ActivationStatus::Success), StatusCode::OK);
        assert_eq!(
            completed_status(ActivationStatus::ApplicationError),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn an_action_record_loses_its_sealed_code() {
        let doc =
            json!({"name": "a", "exec": {"kind": "wasm", "code": "c2VhbGVk", "binary": true}});
        assert_eq!(
            without_code(doc),
            json!({"name": "a", "exec": {"kind": "wasm", "binary": true}})
        );
    }

    #[test]
    fn an_enclaves_refusal_carries_its_code_and_a_revoked_gateway_is_forbidden() {
        let refused = |refusal| {
            ApiError::Confidential(ConfidentialError::EnclaveRefused {
                refusal,
                message: "refused".into(),
            })
        };
        let revoked = refused(Refusal::ClientNotAllowed);
        assert_eq!(revoked.status(), StatusCode::FORBIDDEN);
        assert_eq!(revoked.refusal(), Some(Refusal::ClientNotAllowed));
        assert_eq!(refused(Refusal::Replayed).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(ApiError::Unauthenticated.refusal(), None);
    }

    #[test]
    fn an_action_path_names_its_package_and_only_valid_names() {
        let path = |package: Option<&str>, name: &str| ActionPath {
            namespace: "_".into(),
            package: package.map(str::to_owned),
            name: name.into(),
        };
        assert_eq!(path(None, "a").action().ok().as_deref(), Some("a"));
        assert_eq!(path(Some("p"), "a").action().ok().as_deref(), Some("p/a"));
        // A percent-encoded slash cannot smuggle a package in.
        for (package, name) in [(None, "p/a"), (Some("p/q"), "a"), (Some("p"), "")] {
            assert!(
                matches!(path(package, name).action(), Err(ApiError::BadRequest(_))),
                "{package:?} {name}"
            );
        }
    }

    #[test]
    fn a_binding_or_a_package_the_gateway_did_not_make_is_the_callers_fault() {
        assert_eq!(ApiError::BindingRefused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::PackageNotKept("theirs".into()).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn parameters_without_code_and_too_many_defaults_are_the_callers_fault() {
        assert_eq!(
            ApiError::ParametersWithoutCode.status(),
            StatusCode::BAD_REQUEST
        );
        let too_large = ApiError::Confidential(ConfidentialError::DefaultParametersTooLarge {
            size: 2,
            limit: 1,
        });
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
