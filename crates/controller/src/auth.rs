//! HTTP Basic authentication with OpenWhisk `UUID:KEY` credentials.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use clemmys_whisk::{EntityName, NamespaceRecord};
use subtle::ConstantTimeEq;

use crate::{ApiError, Controller};

/// The authenticated caller.
pub struct Caller(pub Arc<NamespaceRecord>);

impl Caller {
    /// The namespace a path segment names: `_` or the caller's own. Other
    /// namespaces are forbidden (no cross-namespace sharing yet).
    pub fn namespace(&self, segment: &str) -> Result<&EntityName, ApiError> {
        if segment == "_" || segment == self.0.name.as_str() {
            Ok(&self.0.name)
        } else {
            Err(ApiError::forbidden())
        }
    }
}

impl FromRequestParts<Arc<Controller>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        controller: &Arc<Controller>,
    ) -> Result<Self, Self::Rejection> {
        let (uuid, key) = basic_credentials(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let record = controller
            .namespace_for(&uuid)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if bool::from(record.auth.key.as_bytes().ct_eq(key.as_bytes())) {
            Ok(Caller(record))
        } else {
            Err(ApiError::unauthorized())
        }
    }
}

/// The user and password of an HTTP Basic `Authorization` header.
pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (uuid, key) = text.split_once(':')?;
    Some((uuid.to_owned(), key.to_owned()))
}

impl Controller {
    /// Whether `headers` carry a valid API key of any namespace (as HTTP
    /// Basic), which a web action must not be handed.
    pub(crate) async fn carries_api_key(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some((uuid, key)) = basic_credentials(headers) else {
            return false;
        };
        match self.namespace_for(&uuid).await {
            Ok(Some(record)) => bool::from(record.auth.key.as_bytes().ct_eq(key.as_bytes())),
            // Unknown or unreadable: not a key this node would accept.
            Ok(None) | Err(_) => false,
        }
    }

    /// The namespace owning API key `uuid`, cached after the first lookup.
    async fn namespace_for(&self, uuid: &str) -> Result<Option<Arc<NamespaceRecord>>, ApiError> {
        if let Some(record) = crate::read(&self.namespaces).get(uuid) {
            return Ok(Some(record.clone()));
        }
        let Some(record) = self.store.find_namespace_by_uuid(uuid).await? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        crate::write(&self.namespaces).insert(uuid.to_owned(), record.clone());
        Ok(Some(record))
    }
}
