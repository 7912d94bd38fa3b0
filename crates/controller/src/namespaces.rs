//! `/namespaces` and `/namespaces/{ns}/limits`.

use axum::Json;
use axum::extract::Path;
use serde_json::Value;

use crate::ApiError;
use crate::auth::Caller;

/// `GET /namespaces`: the namespaces the caller's key may use.
pub async fn list(caller: Caller) -> Json<Value> {
    Json(Value::Array(vec![Value::String(caller.0.name.to_string())]))
}

/// `GET /namespaces/{ns}/limits`.
pub async fn limits(caller: Caller, Path(ns): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.namespace(&ns)?;
    Ok(Json(caller.0.limits.to_api_json()))
}
