//! Credentials (`UUID:KEY`) and namespace records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::NamespaceLimits;
use crate::name::EntityName;

/// An OpenWhisk API key, `UUID:KEY`, used as HTTP Basic user and password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthKey {
    /// The public half (the Basic user).
    pub uuid: String,
    /// The secret half (the Basic password).
    pub key: String,
}

/// Text that is not of the form `UUID:KEY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an API key must have the form UUID:KEY")]
pub struct MalformedAuthKey;

impl AuthKey {
    /// Builds a key from 16 random bytes for the UUID and 64 for the secret,
    /// in OpenWhisk's format (a v4 UUID and 64 alphanumeric characters).
    pub fn from_random(uuid_bytes: [u8; 16], key_bytes: [u8; 64]) -> Self {
        let mut u = uuid_bytes;
        u[6] = (u[6] & 0x0f) | 0x40; // version 4
        u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
        let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        // One character per byte: a byte modulo 62 slightly favours the
        // first 8 characters (5 chances in 256 instead of 4), which still
        // leaves 64 characters carrying over 375 bits of entropy.
        let key = key_bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        Self { uuid, key }
    }
}

impl std::str::FromStr for AuthKey {
    type Err = MalformedAuthKey;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (uuid, key) = text.trim().split_once(':').ok_or(MalformedAuthKey)?;
        if uuid.is_empty() || key.is_empty() {
            return Err(MalformedAuthKey);
        }
        Ok(Self {
            uuid: uuid.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl fmt::Display for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uuid, self.key)
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey({}:<redacted>)", self.uuid)
    }
}

/// A namespace with its credential and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// The namespace's name.
    pub name: EntityName,
    /// Its API key.
    pub auth: AuthKey,
    /// Its limits.
    pub limits: NamespaceLimits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_have_openwhisk_format() {
        let auth = AuthKey::from_random([7; 16], [200; 64]);
        assert_eq!(auth.uuid.len(), 36);
        assert_eq!(auth.uuid.as_bytes()[14], b'4');
        assert_eq!(auth.key.len(), 64);
        assert!(auth.key.chars().all(|c| c.is_ascii_alphanumeric()));
        let parsed: AuthKey = auth.to_string().parse().expect("round trip");
        assert_eq!(parsed, auth);
        assert!(!format!("{auth:?}").contains(&auth.key));
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!("nocolon".parse::<AuthKey>().is_err());
        assert!(":key".parse::<AuthKey>().is_err());
        assert!("uuid:".parse::<AuthKey>().is_err());
    }
}
