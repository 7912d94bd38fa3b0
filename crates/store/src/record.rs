//! An activation record encoded once for storage, with the fields its
//! indexes need, and the JSON codec of every stored document: shared by
//! both backends, so that they store the same bytes.

use clemmys_whisk::{Activation, ActivationId, ActivationResponse, KeyValues};
use serde_json::json;

use crate::StoreError;

/// An activation record encoded for storage, with what its indexes need.
#[derive(Debug)]
pub(crate) struct EncodedRecord {
    pub id: ActivationId,
    pub namespace: String,
    pub name: String,
    pub start: u64,
    pub json: Vec<u8>,
}

impl EncodedRecord {
    /// Encodes `activation`, keeping its indexed fields.
    pub fn encode(activation: Activation) -> Result<Self, StoreError> {
        let json = encode(&activation)?;
        Ok(Self::with_json(activation, json))
    }

    /// `activation`, whose encoding is `json`.
    pub fn with_json(activation: Activation, json: Vec<u8>) -> Self {
        Self {
            id: activation.activation_id,
            namespace: activation.namespace,
            name: activation.name,
            start: activation.start,
            json,
        }
    }
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Corrupted(error.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupted(error.to_string()))
}

/// `count` successful activation records of action `action` in
/// `namespace`, shaped like those of a plain echo action (annotations, a
/// small result), with random ids and one start per millisecond ending
/// now: a store as a long-running node would have it, for benchmarks.
pub(crate) fn preloaded(
    namespace: &str,
    action: &str,
    count: usize,
) -> impl Iterator<Item = Activation> {
    let ids = RandomIds::default();
    let now = clemmys_whisk::now_ms();
    let first_start = now.saturating_sub(u64::try_from(count).unwrap_or(u64::MAX));
    let mut annotations = KeyValues::default();
    annotations.set("path", json!(format!("{namespace}/{action}")));
    annotations.set("waitTime", json!(0));
    annotations.set("kind", json!("wasm:0.1"));
    annotations.set("timeout", json!(false));
    annotations.set(
        "limits",
        json!({"concurrency": 1, "logs": 10, "memory": 256, "timeout": 60000}),
    );
    let (namespace, action) = (namespace.to_owned(), action.to_owned());
    ids.take(count)
        .zip(first_start..)
        .map(move |(id, start)| Activation {
            namespace: namespace.clone(),
            name: action.clone(),
            subject: namespace.clone(),
            activation_id: id,
            version: "0.0.1".into(),
            publish: false,
            start,
            end: start,
            duration: 0,
            cause: None,
            response: ActivationResponse::success(json!({"preloaded": start})),
            logs: Vec::new(),
            annotations: annotations.clone(),
        })
}

/// Random activation ids, from the OS RNG in blocks.
#[derive(Default)]
struct RandomIds {
    block: Vec<[u8; 16]>,
}

impl Iterator for RandomIds {
    type Item = ActivationId;

    fn next(&mut self) -> Option<ActivationId> {
        if self.block.is_empty() {
            let mut bytes = [0u8; 16 * 4096];
            getrandom::fill(&mut bytes).ok()?;
            self.block = bytes
                .chunks_exact(16)
                .filter_map(|chunk| <[u8; 16]>::try_from(chunk).ok())
                .collect();
        }
        self.block.pop().map(ActivationId::from_bytes)
    }
}
