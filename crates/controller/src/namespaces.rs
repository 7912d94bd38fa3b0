//! `/namespaces` and `/namespaces/{ns}/limits`.

use axum::Json;
use axum::extract::Path;
use serde_json::Value;

use crate::ApiError;
use crate::auth::Caller;

/// `GET /namespaces`: the namespaces the caller's key may use.
#[utoipa::path(
    get,
    path = "/namespaces",
    operation_id = "namespaces_list",
    tag = "Namespaces",
    summary = "List namespaces",
    responses((status = 200, description = "The namespaces the caller's key may use.", body = [String]))
)]
pub async fn list(caller: Caller) -> Json<Value> {
    Json(Value::Array(vec![Value::String(caller.0.name.to_string())]))
}

/// `GET /namespaces/{ns}/limits`.
#[utoipa::path(
    get,
    path = "/namespaces/{ns}/limits",
    operation_id = "namespaces_limits",
    tag = "Namespaces",
    summary = "Get a namespace's limits",
    params(crate::api_docs::NamespacePath),
    responses((status = 200, description = "The namespace's limits (memory and logs in MB).", body = clemmys_whisk::ApiNamespaceLimits))
)]
pub async fn limits(caller: Caller, Path(ns): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.namespace(&ns)?;
    Ok(Json(caller.0.limits.to_api_json()))
}
