//! Store errors.

/// A store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `PutMode::CreateOnly` found an existing entity.
    #[error("resource already exists")]
    Conflict,
    /// Another process holds the database.
    #[error("the data directory is in use by another process (is a server running on it?)")]
    Locked,
    /// A stored document could not be decoded.
    #[error("stored document is corrupted: {0}")]
    Corrupted(String),
    /// The storage engine failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The database cannot be reached (or is going away, or refuses
    /// connections for now): a call may succeed later, unchanged.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database location is not a valid `postgres://` URL.
    #[error("invalid database location: {0}")]
    InvalidLocation(String),
    /// The store has shut down.
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    pub(crate) fn backend(error: impl std::fmt::Display) -> Self {
        Self::Backend(error.to_string())
    }
}
