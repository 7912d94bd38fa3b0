//! `/api/v1/admin/namespaces[/{name}]`: namespace administration for
//! `clemmys admin` while the node runs (the store is then locked by this
//! process). Authenticated with HTTP Basic `admin:<token>`, the token being
//! the node's `DATA_DIR/admin.key`, never with a namespace key.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use clemmys_whisk::{AuthKey, EntityName, NamespaceLimits, NamespaceRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::body::{parse_json, read_limited};
use crate::{ApiError, Controller};

/// The body of `PUT /admin/v1/namespaces/{name}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NamespacePut {
    /// New limits (omitted: keep, or defaults on create).
    limits: Option<NamespaceLimits>,
    /// Replace the namespace's key.
    #[serde(default)]
    rekey: bool,
}

/// The user name of admin credentials.
pub const ADMIN_USER: &str = "admin";

fn check_admin(controller: &Controller, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = controller
        .config
        .admin_token
        .as_deref()
        .ok_or_else(ApiError::forbidden)?;
    let (user, given) =
        crate::auth::basic_credentials(headers).ok_or_else(ApiError::unauthorized)?;
    if user == ADMIN_USER && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// A namespace as the admin routes answer it, key included (admins see
/// keys).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminNamespace {
    /// The namespace's name.
    name: String,
    /// Its API key, `UUID:KEY`.
    auth: String,
    /// Its throttles.
    limits: NamespaceLimits,
}

/// The JSON of a namespace record, key included (admins see keys).
pub fn record_json(record: &NamespaceRecord) -> Value {
    // A struct of strings and numbers always serialises.
    serde_json::to_value(AdminNamespace {
        name: record.name.to_string(),
        auth: record.auth.to_string(),
        limits: record.limits,
    })
    .unwrap_or_default()
}

/// `GET /admin/v1/namespaces`.
#[utoipa::path(
    get,
    path = "/admin/namespaces",
    operation_id = "admin_list",
    tag = "Admin",
    summary = "List namespaces (admin)",
    responses((status = 200, description = "Every namespace with its key and limits.", body = [AdminNamespace]))
)]
pub async fn list(
    State(controller): State<Arc<Controller>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&controller, &headers)?;
    let records = controller.store.list_namespaces().await?;
    Ok(Json(Value::Array(
        records.iter().map(record_json).collect(),
    )))
}

/// `PUT /admin/v1/namespaces/{name}`: creates, re-limits or re-keys.
#[utoipa::path(
    put,
    path = "/admin/namespaces/{name}",
    operation_id = "admin_put",
    tag = "Admin",
    summary = "Create, re-limit or re-key a namespace (admin)",
    params(("name" = String, Path, description = "The namespace.")),
    request_body = NamespacePut,
    responses((status = 200, description = "The namespace with its key and limits.", body = AdminNamespace))
)]
pub async fn put(
    State(controller): State<Arc<Controller>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    check_admin(&controller, &headers)?;
    let name = EntityName::new(name).map_err(|error| ApiError::bad_request(error.to_string()))?;
    let bytes = read_limited(body, 64 * 1024).await?;
    let put: NamespacePut = if bytes.is_empty() {
        NamespacePut::default()
    } else {
        parse_json(&bytes)?
    };
    let existing = controller.store.get_namespace(&name).await?;
    let auth = match &existing {
        Some(record) if !put.rekey => record.auth.clone(),
        _ => random_key(),
    };
    let limits = put
        .limits
        .or(existing.as_ref().map(|record| record.limits))
        .unwrap_or_default();
    let record = NamespaceRecord { name, auth, limits };
    controller.store.put_namespace(record.clone()).await?;
    // Keys and limits are cached by key UUID: drop the old entry.
    if let Some(old) = existing {
        crate::write(&controller.namespaces).remove(&old.auth.uuid);
    }
    Ok(Json(record_json(&record)))
}

fn random_key() -> AuthKey {
    let mut uuid = [0u8; 16];
    let mut key = [0u8; 64];
    // See ids.rs: without OS randomness no key can be minted.
    getrandom::fill(&mut uuid).expect("operating system RNG unavailable");
    getrandom::fill(&mut key).expect("operating system RNG unavailable");
    AuthKey::from_random(uuid, key)
}
