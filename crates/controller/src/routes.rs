//! The route table of `/api/v1`, CORS, and JSON answers for unknown routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::{
    ApiError, Controller, actions, activations, admin, broker, invoke, namespaces, packages,
};

/// The OpenWhisk API router over `controller`.
pub fn router(controller: Arc<Controller>) -> Router {
    let api = Router::new()
        .route("/namespaces", get(namespaces::list))
        .route("/namespaces/{ns}/limits", get(namespaces::limits))
        .route("/namespaces/{ns}/actions", get(actions::list))
        .route(
            "/namespaces/{ns}/actions/{name}",
            get(actions::get)
                .put(actions::put)
                .delete(actions::delete)
                .post(invoke::invoke),
        )
        .route("/namespaces/{ns}/packages", get(packages::list))
        .route(
            "/namespaces/{ns}/packages/{name}",
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        )
        .route("/namespaces/{ns}/activations", get(activations::list))
        .route("/namespaces/{ns}/activations/{id}", get(activations::get))
        .route(
            "/namespaces/{ns}/activations/{id}/result",
            get(activations::result),
        )
        .route(
            "/namespaces/{ns}/activations/{id}/logs",
            get(activations::logs),
        )
        .route("/admin/namespaces", get(admin::list))
        .route("/admin/namespaces/{name}", axum::routing::put(admin::put))
        .route("/broker/identity", get(broker::identity))
        .route("/broker/request", axum::routing::post(broker::request))
        .route("/", get(api_info));
    Router::new()
        .nest("/api/v1", api)
        .route("/ping", get(|| async { "pong" }))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not allowed on this resource.",
            )
        })
        .layer(middleware::from_fn(cors))
        .with_state(controller)
}

/// `GET /api/v1`: what this server is.
async fn api_info() -> impl IntoResponse {
    axum::Json(json!({
        "description": "Clemmys: confidential serverless with the Apache OpenWhisk API",
        "api_paths": ["/api/v1"],
        "runtimes": { "wasm": [{ "kind": clemmys_whisk::WASM_KIND, "default": true }] },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Answers CORS preflights and allows any origin, as OpenWhisk does.
async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
        ),
    );
    response
}
