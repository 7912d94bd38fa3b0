//! Reading request bodies with a size cap and OpenWhisk's errors.

use axum::body::{Body, Bytes};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Reads at most `limit` bytes; a larger body is a 413.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request larger than allowed: more than {limit} bytes."),
            )
        } else {
            ApiError::bad_request(format!("Failed extracting request body: {error}"))
        }
    })
}

/// Parses a JSON body, mapping errors to OpenWhisk's "malformed" 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(ApiError::malformed)
}
