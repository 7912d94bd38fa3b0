//! Attestation evidence as it travels: which TEE produced it and its raw
//! bytes. Producing and verifying it is `clemmys-tee`'s job; this crate only
//! carries it and binds it into transcripts by digest.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Digest;

/// The kind of TEE that produced evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeeKind {
    /// The software simulation: no hardware protection at all.
    Sim,
    /// An Intel SGX DCAP quote.
    SgxDcap,
}

impl TeeKind {
    /// Whether evidence of this kind comes from hardware.
    pub fn is_hardware(self) -> bool {
        !matches!(self, TeeKind::Sim)
    }

    /// Short name, as shown to users.
    pub fn name(self) -> &'static str {
        match self {
            TeeKind::Sim => "sim",
            TeeKind::SgxDcap => "sgx-dcap",
        }
    }

    /// The kind whose [`Self::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [TeeKind::Sim, TeeKind::SgxDcap]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// Evidence bytes with their kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which TEE produced it.
    pub tee: TeeKind,
    /// The raw evidence (a sim report or a DCAP quote), base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl Evidence {
    /// The digest that transcripts bind.
    pub fn digest(&self) -> Digest {
        Digest::of(
            &crate::wire::Writer::new("clemmys/evidence/v1")
                .str(self.tee.name())
                .bytes(&self.data)
                .finish(),
        )
    }
}

/// Serde adapter: bytes as standard base64 text.
pub mod base64_bytes {
    use super::*;

    /// Serialises bytes as base64.
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Parses base64 into bytes.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}
