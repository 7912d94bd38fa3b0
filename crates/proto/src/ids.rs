//! Fixed-size public values: digests, measurements, public keys. They print
//! and serialise as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::ProtoError;

/// `bytes` as lowercase hex in `buf`, which is exactly twice as long.
pub(crate) fn hex_str<'b>(bytes: &[u8], buf: &'b mut [u8]) -> &'b str {
    // Both hold: `buf` is sized for `bytes` by every caller, and hex digits
    // are ASCII.
    hex::encode_to_slice(bytes, buf).expect("a buffer twice the input's length");
    std::str::from_utf8(buf).expect("hex digits are ASCII")
}

macro_rules! hex32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The hex form, written into `buf` (no allocation).
            fn hex<'b>(&self, buf: &'b mut [u8; 64]) -> &'b str {
                hex_str(&self.0, buf)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.hex(&mut [0; 64]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = ProtoError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes)
                    .map_err(|_| ProtoError::Malformed(concat!(stringify!($name), " is not 64 hex digits")))?;
                Ok(Self(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.hex(&mut [0; 64]))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex32!(
    /// A SHA-256 digest.
    Digest
);
hex32!(
    /// What a TEE measured: a digest of the enclave's code and configuration.
    Measurement
);
hex32!(
    /// An X25519 public key (HPKE recipient key).
    KemPublicKey
);
hex32!(
    /// An Ed25519 public key identifying a client.
    ClientId
);
hex32!(
    /// An Ed25519 public key of an enclave or broker.
    SigningPublicKey
);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            digest.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let back: Digest = digest.to_string().parse().expect("hex");
        assert_eq!(back, digest);
        assert!("zz".parse::<Digest>().is_err());
        let json = serde_json::to_string(&digest).expect("json");
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("json"), digest);
    }
}
