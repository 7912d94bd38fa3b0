//! The one place where failures become OpenWhisk error responses:
//! `{"error": "...", "code": "<request id>"}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clemmys_store::StoreError;
use clemmys_whisk::EntityName;

/// An API failure: the HTTP status and the message the caller sees.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (OpenWhisk's wording where it has one).
    pub message: String,
}

impl ApiError {
    /// An error of any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with OpenWhisk's message.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "The requested resource does not exist.",
        )
    }

    /// 403 with OpenWhisk's message.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "The supplied authentication is not authorized to access this resource.",
        )
    }

    /// 401 with OpenWhisk's message.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid.",
        )
    }

    /// 409 with OpenWhisk's message.
    pub fn conflict() -> Self {
        Self::new(StatusCode::CONFLICT, "resource already exists")
    }

    /// 413 for a `field` of `is` bytes over `allowed`.
    pub fn too_large(field: &str, is: usize, allowed: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{field} larger than allowed: {is} > {allowed} bytes."),
        )
    }

    /// 400 for a body that is not the expected JSON.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("The request content was malformed:\n{detail}"))
    }

    /// 503: the database is away for now; the caller may retry the same
    /// request. The detail goes to the server log only.
    pub fn store_unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "the database is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; try again shortly.",
        )
    }

    /// 500: the platform failed. The detail goes to the server log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "There was an error processing your request.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::conflict(),
            StoreError::Unavailable(detail) => Self::store_unavailable(detail),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": crate::ids::request_code() });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A name from a request's path or body as an entity name: 400 with the
/// reason when it is not one.
pub(crate) fn entity_name(text: &str) -> Result<EntityName, ApiError> {
    EntityName::new(text).map_err(|error| ApiError::bad_request(error.to_string()))
}
