//! Protocol errors. Each variant names what failed so that the party that
//! detects an attack can say which one.

/// A protocol step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// Bytes that do not parse as the expected object.
    #[error("malformed protocol object: {0}")]
    Malformed(&'static str),
    /// An AEAD tag did not verify: the ciphertext or its context was
    /// tampered with, or it was sealed for someone else.
    #[error(
        "{0} failed authentication (tampered, replayed into another context, or sealed for another key)"
    )]
    Tampered(&'static str),
    /// A signature did not verify.
    #[error("invalid signature on {0}")]
    BadSignature(&'static str),
    /// A key is not a valid curve point.
    #[error("invalid public key")]
    InvalidKey,
    /// The cryptographic library failed for a reason that is not the input's.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}
