//! `/api/v1/broker/…`: the key broker's public face, forwarded by the
//! untrusted controller. The controller sees the broker's public identity
//! and opaque sealed requests and replies; it can drop or delay them but not
//! read or forge them.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::body::{parse_json, read_limited};
use crate::{ApiError, Controller};

/// Largest sealed broker request.
const MAX_BROKER_REQUEST: usize = 256 * 1024;

/// What the controller needs from the key broker.
pub trait BrokerGateway: Send + Sync + 'static {
    /// The broker's identity document (evidence, keys, TEE kind, its replay
    /// floor and, for `sim`, the warning that it protects nothing), as the
    /// broker gives it now: a broker in its own process may have restarted
    /// since, with a later floor. May block.
    fn identity(&self) -> Result<Value, String>;
    /// Handles one sealed client request; answers the sealed reply.
    fn handle(&self, sealed: &[u8]) -> Result<Vec<u8>, String>;
}

/// The body of `POST /api/v1/broker/request`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "only described: the handler reads the field itself"
)]
pub(crate) struct BrokerRequest {
    /// A request sealed to the broker's key by a Clemmys client, in base64;
    /// the node forwards it without reading it.
    request: String,
}

/// The answer of `POST /api/v1/broker/request`.
#[derive(Serialize, ToSchema)]
pub(crate) struct BrokerReply {
    /// The broker's reply, sealed to the client, in base64.
    reply: String,
}

/// `GET /api/v1/broker/identity`.
#[utoipa::path(
    get,
    path = "/broker/identity",
    operation_id = "broker_identity",
    tag = "Key broker",
    summary = "Get the key broker's identity",
    responses((status = 200, description = "The broker's evidence, keys and TEE kind: a JSON object whose fields the TEE kind decides, read by Clemmys clients.", body = Object))
)]
pub async fn identity(
    State(controller): State<Arc<Controller>>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let broker = controller.broker()?.clone();
    let identity = tokio::task::spawn_blocking(move || broker.identity())
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the key broker did not answer: {error}"),
            )
        })?;
    Ok(Json(identity))
}

/// `POST /api/v1/broker/request` with `{"request": "<base64>"}`.
#[utoipa::path(
    post,
    path = "/broker/request",
    operation_id = "broker_request",
    tag = "Key broker",
    summary = "Forward a sealed request to the key broker",
    request_body = BrokerRequest,
    responses((status = 200, description = "The broker's sealed reply.", body = BrokerReply))
)]
pub async fn request(
    State(controller): State<Arc<Controller>>,
    _caller: Caller,
    body: Body,
) -> Result<Json<BrokerReply>, ApiError> {
    let broker = controller.broker()?.clone();
    let bytes = read_limited(body, MAX_BROKER_REQUEST).await?;
    let body: Value = parse_json(&bytes)?;
    let sealed = body["request"]
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .ok_or_else(|| {
            ApiError::bad_request("expected {\"request\": \"<base64 sealed request>\"}")
        })?;
    let reply = tokio::task::spawn_blocking(move || broker.handle(&sealed))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| {
            ApiError::bad_request(format!("the key broker refused the request: {error}"))
        })?;
    Ok(Json(BrokerReply {
        reply: base64::engine::general_purpose::STANDARD.encode(reply),
    }))
}

impl Controller {
    fn broker(&self) -> Result<&Arc<dyn BrokerGateway>, ApiError> {
        self.broker.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "this server runs no key broker",
            )
        })
    }
}
