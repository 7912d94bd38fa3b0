//! The key broker as its own process: an HTTP service over [`Broker`].
//!
//! Every route is self-authenticating, so the service needs no transport
//! security of its own: client requests are sealed to the broker's attested
//! key, key requests carry evidence and get grants sealed to the key it
//! binds, admission requests and answers are MACed with the grant's
//! admission key. The provider can drop or delay messages, not forge them.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use clemmys_proto::SigningPublicKey;
use clemmys_proto::broker::{AdmitRequest, KeyRequest};
use serde_json::{Value, json};

use clemmys_broker::{Broker, BrokerError};

/// The routes' shared state.
#[derive(Clone)]
struct Service {
    broker: Arc<Broker>,
    sim_platform: Option<SigningPublicKey>,
}

/// An error answer: `{error, kind}` where `kind` lets the remote link map
/// it back to the [`BrokerError`] the enclave acts on.
fn error(status: StatusCode, error: &BrokerError) -> Response {
    let kind = match error {
        BrokerError::UnknownGrant => "unknown-grant",
        _ => "refused",
    };
    (
        status,
        Json(json!({ "error": error.to_string(), "kind": kind })),
    )
        .into_response()
}

/// The broker's HTTP routes: `GET /identity`, `POST /client`,
/// `POST /grant`, `POST /admit`.
pub fn router(broker: Arc<Broker>, sim_platform: Option<SigningPublicKey>) -> Router {
    Router::new()
        .route("/identity", get(identity))
        .route("/client", post(client))
        .route("/grant", post(grant))
        .route("/admit", post(admit))
        .with_state(Service {
            broker,
            sim_platform,
        })
}

async fn identity(State(service): State<Service>) -> Json<Value> {
    Json(service.broker.identity_document(service.sim_platform))
}

async fn client(State(service): State<Service>, Json(body): Json<Value>) -> Response {
    let Some(sealed) = body["request"]
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "expected {\"request\": base64}" })),
        )
            .into_response();
    };
    let broker = service.broker.clone();
    match tokio::task::spawn_blocking(move || broker.handle_client(&sealed)).await {
        Ok(Ok(reply)) => {
            Json(json!({ "reply": base64::engine::general_purpose::STANDARD.encode(reply) }))
                .into_response()
        }
        Ok(Err(refused)) => error(StatusCode::BAD_REQUEST, &refused),
        Err(failed) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &BrokerError::Storage(failed.to_string()),
        ),
    }
}

async fn grant(State(service): State<Service>, Json(request): Json<KeyRequest>) -> Response {
    let broker = service.broker.clone();
    match tokio::task::spawn_blocking(move || broker.grant(&request)).await {
        Ok(Ok(sealed)) => {
            Json(json!({ "grant": base64::engine::general_purpose::STANDARD.encode(sealed) }))
                .into_response()
        }
        Ok(Err(refused)) => error(StatusCode::FORBIDDEN, &refused),
        Err(failed) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &BrokerError::Storage(failed.to_string()),
        ),
    }
}

async fn admit(State(service): State<Service>, Json(request): Json<AdmitRequest>) -> Response {
    match service.broker.admit(&request) {
        Ok(reply) => Json(reply).into_response(),
        Err(refused @ BrokerError::UnknownGrant) => error(StatusCode::NOT_FOUND, &refused),
        Err(refused) => error(StatusCode::BAD_REQUEST, &refused),
    }
}
