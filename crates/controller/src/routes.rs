//! The route table of `/api/v1`, CORS, and JSON answers for unknown routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::{
    ApiError, Controller, actions, activations, admin, broker, invoke, namespaces, package_actions,
    packages, rules, triggers, web,
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
        .route(
            "/namespaces/{ns}/actions/{pkg}/",
            get(package_actions::list),
        )
        .route(
            "/namespaces/{ns}/actions/{pkg}/{name}",
            get(package_actions::get)
                .put(package_actions::put)
                .delete(package_actions::delete)
                .post(package_actions::invoke),
        )
        .route("/namespaces/{ns}/packages", get(packages::list))
        .route(
            "/namespaces/{ns}/packages/{name}",
            get(packages::get)
                .put(packages::put)
                .delete(packages::delete),
        )
        .route("/namespaces/{ns}/triggers", get(triggers::list))
        .route(
            "/namespaces/{ns}/triggers/{name}",
            get(triggers::get)
                .put(triggers::put)
                .delete(triggers::delete)
                .post(triggers::fire),
        )
        .route("/namespaces/{ns}/rules", get(rules::list))
        .route(
            "/namespaces/{ns}/rules/{name}",
            get(rules::get)
                .put(rules::put)
                .delete(rules::delete)
                .post(rules::set_status),
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
        .route("/web/{ns}/{pkg}/{*rest}", any(web::serve))
        .route("/broker/identity", get(broker::identity))
        .route("/broker/request", axum::routing::post(broker::request))
        .route("/", get(api_info));
    Router::new()
        .nest("/api/v1", api)
        .route("/", get(root_info))
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

/// `GET /`: what this server is, its API paths, default limits and
/// runtimes, in OpenWhisk's shape (durations in ms, memory and logs in
/// bytes, as OpenWhisk's root answers them).
async fn root_info(State(controller): State<Arc<Controller>>) -> impl IntoResponse {
    use clemmys_whisk::limits::{
        MAX_LOGS_MB, MAX_MEMORY_MB, MAX_TIMEOUT_MS, MB, MIN_LOGS_MB, MIN_MEMORY_MB, MIN_TIMEOUT_MS,
    };
    let defaults = clemmys_whisk::NamespaceLimits::default();
    axum::Json(json!({
        "description": "Clemmys: confidential serverless with the Apache OpenWhisk API",
        "api_paths": ["/api/v1"],
        "limits": {
            "actions_per_minute": defaults.invocations_per_minute,
            "triggers_per_minute": defaults.fires_per_minute,
            "concurrent_actions": defaults.concurrent_invocations,
            "sequence_length": crate::actions::MAX_SEQUENCE_LENGTH,
            "min_action_duration": MIN_TIMEOUT_MS,
            "max_action_duration": MAX_TIMEOUT_MS,
            "min_action_memory": u64::from(MIN_MEMORY_MB) * MB,
            "max_action_memory": u64::from(MAX_MEMORY_MB) * MB,
            "min_action_logs": u64::from(MIN_LOGS_MB) * MB,
            "max_action_logs": u64::from(MAX_LOGS_MB) * MB,
        },
        "runtimes": runtimes(&controller),
    }))
}

/// `GET /api/v1`: the API's version, in OpenWhisk's shape (no
/// `swagger_paths`: there is no OpenAPI document yet).
async fn api_info(State(controller): State<Arc<Controller>>) -> impl IntoResponse {
    axum::Json(json!({
        "description": "Clemmys: confidential serverless with the Apache OpenWhisk API",
        "api_version": "1.0.0",
        "api_version_path": "v1",
        "build": env!("CARGO_PKG_VERSION"),
        "buildno": env!("CARGO_PKG_VERSION"),
        "runtimes": runtimes(&controller),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// The kinds this node runs, by language, in OpenWhisk's shape: wasm
/// always, JavaScript when the node has its engine.
fn runtimes(controller: &Controller) -> Value {
    let mut runtimes = json!({ "wasm": [{ "kind": clemmys_whisk::WASM_KIND, "default": true }] });
    if controller.code_check.runs_javascript() {
        runtimes["nodejs"] = clemmys_whisk::JAVASCRIPT_KINDS
            .iter()
            .map(|kind| json!({ "kind": kind, "default": *kind == "nodejs:default" }))
            .collect();
    }
    runtimes
}

/// The methods CORS answers allow.
pub(crate) const CORS_ALLOW_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";
/// The request headers CORS answers allow.
pub(crate) const CORS_ALLOW_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// Answers CORS preflights and allows any origin, as OpenWhisk does. Web
/// actions answer CORS themselves (an action may answer `OPTIONS`).
async fn cors(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/v1/web/") {
        return next.run(request).await;
    }
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
        HeaderValue::from_static(CORS_ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    response
}
