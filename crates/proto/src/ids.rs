//! Fixed-size public values: digests, measurements, public keys. They print
//! and serialise as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::wire::{Reader, Writer};
use crate::{ProtoError, TeeKind};

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

/// What a TEE measured, typed by the TEE that measured it: a `sim`
/// measurement (a digest the provider's software claims) never equals an
/// `sgx-dcap` one (an MRENCLAVE the CPU computed), even with the same
/// digest, so a policy or pin naming one can never be met by the other.
///
/// Its text form is `KIND:HEX` (`sim:…`, `sgx-dcap:…`); a bare digest does
/// not parse, because it would not say which TEE must have measured it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurement {
    tee: TeeKind,
    digest: [u8; 32],
}

impl Measurement {
    /// The measurement `digest` as measured by a TEE of kind `tee`.
    pub const fn new(tee: TeeKind, digest: [u8; 32]) -> Self {
        Self { tee, digest }
    }

    /// A `sim` measurement: `digest` as the software simulation reports it.
    pub const fn sim(digest: [u8; 32]) -> Self {
        Self::new(TeeKind::Sim, digest)
    }

    /// An `sgx-dcap` measurement: an enclave's MRENCLAVE.
    pub const fn sgx_dcap(mr_enclave: [u8; 32]) -> Self {
        Self::new(TeeKind::SgxDcap, mr_enclave)
    }

    /// The kind of TEE that measured it.
    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    /// The digest, without its kind: compare whole measurements instead.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Appends kind and digest, injectively, to `writer`.
    pub(crate) fn write(&self, writer: Writer) -> Writer {
        writer.str(self.tee.name()).bytes(&self.digest)
    }

    /// Reads what [`Self::write`] wrote.
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, ProtoError> {
        let tee = TeeKind::from_name(reader.str()?)
            .ok_or(ProtoError::Malformed("unknown TEE kind of a measurement"))?;
        Ok(Self::new(tee, reader.array()?))
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.tee.name(),
            hex_str(&self.digest, &mut [0; 64])
        )
    }
}

impl fmt::Debug for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Measurement({self})")
    }
}

impl FromStr for Measurement {
    type Err = ProtoError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "a measurement is KIND:HEX, KIND one of sim, sgx-dcap";
        let (kind, hex_digest) = text.split_once(':').ok_or(ProtoError::Malformed(FORM))?;
        let tee = TeeKind::from_name(kind).ok_or(ProtoError::Malformed(FORM))?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| {
            ProtoError::Malformed("the digest of a measurement is not 64 hex digits")
        })?;
        Ok(Self::new(tee, digest))
    }
}

impl Serialize for Measurement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Measurement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

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

    #[test]
    fn measurements_of_different_tees_differ_and_need_their_kind() {
        let sim = Measurement::sim([7; 32]);
        let sgx = Measurement::sgx_dcap([7; 32]);
        assert_ne!(sim, sgx, "same digest, different TEE");
        for measurement in [sim, sgx] {
            let text = measurement.to_string();
            assert_eq!(text.parse::<Measurement>().expect("parses"), measurement);
            let json = serde_json::to_string(&measurement).expect("json");
            assert_eq!(
                serde_json::from_str::<Measurement>(&json).expect("json"),
                measurement
            );
        }
        assert!(sgx.to_string().starts_with("sgx-dcap:0707"));
        let bare = hex::encode([7u8; 32]);
        assert!(matches!(
            bare.parse::<Measurement>(),
            Err(ProtoError::Malformed(_))
        ));
        assert!(format!("tdx:{bare}").parse::<Measurement>().is_err());
        assert!("sim:zz".parse::<Measurement>().is_err());
    }
}
