//! One confidential invocation, end to end:
//!
//! 1. the client seals the parameters with HPKE to the action key
//!    ([`seal_invocation`]), binding namespace, action, policy version, code
//!    digest, a fresh nonce and a timestamp, and signs the result;
//! 2. the enclave opens it ([`SealedInvocation::open`]) with the action's
//!    key pair and the code digest from its grant;
//! 3. the enclave seals its answer (result, logs, signed receipt) under a key
//!    exported from the same HPKE context ([`seal_answer`]), so only the
//!    client that sealed the parameters can read it ([`open_result`], [`open_logs`]).

use clemmys_whisk::ActivationStatus;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::evidence::Evidence;
use crate::identity::{ClientIdentity, EnclaveKeys, EnclavePublicKeys, SIGNATURE_LEN};
use crate::suite::{ExportedKey, HpkeMessage, KemKeyPair, hpke_open, hpke_seal};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, KemPublicKey, Measurement, ProtoError};

const FRAME: &str = "clemmys/sealed-invocation/v1";
const RESULT_LABEL: &[u8] = b"clemmys/answer-result-key/v1";
const LOGS_LABEL: &[u8] = b"clemmys/answer-logs-key/v1";

/// The clear part of an invocation: who asks which action of which version,
/// with which nonce and when. Authenticated, not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationHeader {
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub action: String,
    /// The policy version the client expects to run.
    pub version: u64,
    /// Fresh random nonce; the broker refuses to see it twice.
    pub nonce: [u8; 16],
    /// The client's clock, epoch ms; old requests are refused.
    pub timestamp_ms: u64,
    /// Who sealed it.
    pub client: ClientId,
    /// Ask the enclave to keep a session with this client, so that later
    /// invocations use symmetric keys only (see [`crate::session`]).
    pub open_session: bool,
}

impl InvocationHeader {
    fn write(&self, writer: Writer) -> Writer {
        writer
            .str(&self.namespace)
            .str(&self.action)
            .u64(self.version)
            .bytes(&self.nonce)
            .u64(self.timestamp_ms)
            .bytes(self.client.as_bytes())
            .u64(u64::from(self.open_session))
    }

    fn info(&self) -> Vec<u8> {
        Writer::new("clemmys/invoke-info/v1")
            .str(&self.namespace)
            .str(&self.action)
            .finish()
    }

    fn aad(&self, code_digest: &Digest) -> Vec<u8> {
        self.write(Writer::new("clemmys/invoke-aad/v1"))
            .bytes(code_digest.as_bytes())
            .finish()
    }
}

/// Parameters sealed for one enclave run, signed by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedInvocation {
    /// The authenticated clear header.
    pub header: InvocationHeader,
    message: HpkeMessage,
    signature: [u8; SIGNATURE_LEN],
}

/// The two keys an answer is sealed under, exported from the invocation's
/// HPKE context: one for the result (with the receipt), one for the logs,
/// so that each can be fetched and opened on its own.
#[derive(Debug)]
pub struct AnswerKeys {
    /// Seals the [`SealedResultBody`].
    pub result: ExportedKey,
    /// Seals the log lines.
    pub logs: ExportedKey,
}

/// What the client keeps to read the answer.
#[derive(Debug)]
pub struct PendingAnswer {
    /// The keys the answer is sealed under.
    pub keys: AnswerKeys,
    /// The nonce of the invocation (the answer is bound to it).
    pub nonce: [u8; 16],
    /// Digest of the sealed invocation, which the receipt must name.
    pub input_hash: Digest,
}

/// Seals `params` (JSON bytes) for `action_key`, expecting code `code_digest`.
pub fn seal_invocation(
    identity: &ClientIdentity,
    action_key: &KemPublicKey,
    header: InvocationHeader,
    code_digest: &Digest,
    params: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(SealedInvocation, PendingAnswer), ProtoError> {
    let (message, result_key) = hpke_seal(
        action_key,
        &header.info(),
        &header.aad(code_digest),
        params,
        Some(RESULT_LABEL),
        rng,
    )?;
    let result_key = result_key.ok_or(ProtoError::Crypto("no exported key".into()))?;
    let logs_key = ExportedKey::derive(&result_key, LOGS_LABEL)?;
    let signature = identity.sign(&signed_transcript(&header, &message));
    let sealed = SealedInvocation {
        header,
        message,
        signature,
    };
    let keys = AnswerKeys {
        result: result_key,
        logs: logs_key,
    };
    let pending = PendingAnswer {
        keys,
        nonce: sealed.header.nonce,
        input_hash: sealed.input_hash(),
    };
    Ok((sealed, pending))
}

fn signed_transcript(header: &InvocationHeader, message: &HpkeMessage) -> Vec<u8> {
    header
        .write(Writer::new("clemmys/invoke-sig/v1"))
        .bytes(&message.enc)
        .bytes(Digest::of(&message.ciphertext).as_bytes())
        .finish()
}

/// An invocation the enclave opened.
pub struct OpenedInvocation {
    /// The parameters (JSON bytes).
    pub params: Zeroizing<Vec<u8>>,
    /// The keys to seal the answer under.
    pub answer_keys: AnswerKeys,
}

impl SealedInvocation {
    pub(crate) const FRAME: &'static str = FRAME;

    /// Checks the client's signature.
    pub fn verify_signature(&self) -> Result<(), ProtoError> {
        self.header.client.verify(
            &signed_transcript(&self.header, &self.message),
            &self.signature,
            "invocation",
        )
    }

    /// Opens with the action's key pair, for the code the enclave runs.
    /// Fails if anything in the header, the ciphertext or the expected code
    /// differs from what the client sealed.
    pub fn open(
        &self,
        action_keys: &KemKeyPair,
        code_digest: &Digest,
    ) -> Result<OpenedInvocation, ProtoError> {
        let (params, key) = hpke_open(
            action_keys,
            &self.message,
            &self.header.info(),
            &self.header.aad(code_digest),
            Some(RESULT_LABEL),
            "sealed parameters",
        )?;
        let result = key.ok_or(ProtoError::Crypto("no exported key".into()))?;
        let logs = ExportedKey::derive(&result, LOGS_LABEL)?;
        Ok(OpenedInvocation {
            params,
            answer_keys: AnswerKeys { result, logs },
        })
    }

    /// The digest receipts name as the input.
    pub fn input_hash(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.header
            .write(Writer::new(FRAME))
            .bytes(&self.message.enc)
            .bytes(&self.message.ciphertext)
            .bytes(&self.signature)
            .finish()
    }

    /// Parses the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, FRAME)?;
        let header = InvocationHeader {
            namespace: reader.str()?.to_owned(),
            action: reader.str()?.to_owned(),
            version: reader.u64()?,
            nonce: reader.array()?,
            timestamp_ms: reader.u64()?,
            client: ClientId(reader.array()?),
            open_session: match reader.u64()? {
                0 => false,
                1 => true,
                _ => return Err(ProtoError::Malformed("session flag")),
            },
        };
        let enc = reader.array()?;
        let ciphertext = reader.bytes()?.to_vec();
        let signature = reader.array()?;
        reader.finish()?;
        Ok(Self {
            header,
            message: HpkeMessage { enc, ciphertext },
            signature,
        })
    }
}

/// What an enclave attests about one run. Signed by the enclave's key,
/// which its evidence binds to its measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The activation id the provider assigned.
    pub activation_id: String,
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub action: String,
    /// Policy version that ran.
    pub version: u64,
    /// SHA-256 of the module that ran.
    pub code_digest: Digest,
    /// The export of the module that ran (the policy's entry).
    pub entry: String,
    /// Measurement of the enclave that ran it.
    pub measurement: Measurement,
    /// Digest of the sealed invocation it opened.
    pub input_hash: Digest,
    /// Digest of the result JSON it produced.
    pub output_hash: Digest,
    /// The invocation nonce (for a chain step, the chain id).
    #[serde(with = "hex_bytes")]
    pub nonce: [u8; 16],
    /// For a chain step: its position in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainPosition>,
}

/// Where a receipt's run sits in a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainPosition {
    /// The chain id of the client's ticket.
    #[serde(with = "hex_bytes")]
    pub chain_id: [u8; 16],
    /// The step index.
    pub index: u64,
}

impl Receipt {
    fn transcript(&self, enclave: &EnclavePublicKeys, evidence: &Evidence) -> Vec<u8> {
        self.write_fields(Writer::new("clemmys/receipt/v3"))
            .bytes(enclave.kem.as_bytes())
            .bytes(enclave.signing.as_bytes())
            .bytes(evidence.digest().as_bytes())
            .finish()
    }

    /// Appends every field, injectively, to `writer` (what a signature or a
    /// MAC over the receipt covers).
    pub(crate) fn write_fields(&self, writer: Writer) -> Writer {
        let writer = writer
            .str(&self.activation_id)
            .str(&self.namespace)
            .str(&self.action)
            .u64(self.version)
            .bytes(self.code_digest.as_bytes())
            .str(&self.entry);
        let writer = self
            .measurement
            .write(writer)
            .bytes(self.input_hash.as_bytes())
            .bytes(self.output_hash.as_bytes())
            .bytes(&self.nonce);
        match &self.chain {
            None => writer.u64(0),
            Some(position) => writer.u64(1).bytes(&position.chain_id).u64(position.index),
        }
    }
}

/// A receipt with the enclave's keys, evidence and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// What is attested.
    pub receipt: Receipt,
    /// The enclave's public keys (bound by `evidence`).
    pub enclave: EnclavePublicKeys,
    /// The enclave's attestation evidence.
    pub evidence: Evidence,
    /// Ed25519 signature by `enclave.signing`.
    #[serde(with = "crate::evidence::base64_bytes")]
    pub signature: Vec<u8>,
}

impl SignedReceipt {
    /// Signs `receipt` with the enclave's keys.
    pub fn sign(receipt: Receipt, keys: &EnclaveKeys, evidence: Evidence) -> Self {
        let enclave = keys.public();
        let signature = keys.sign(&receipt.transcript(&enclave, &evidence)).to_vec();
        Self {
            receipt,
            enclave,
            evidence,
            signature,
        }
    }

    /// Checks the signature. The caller must still verify `evidence` (with
    /// `clemmys-tee`) and that it binds `enclave`.
    pub fn verify_signature(&self) -> Result<(), ProtoError> {
        let signature: [u8; SIGNATURE_LEN] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| ProtoError::BadSignature("receipt"))?;
        self.enclave.signing.verify(
            &self.receipt.transcript(&self.enclave, &self.evidence),
            &signature,
            "receipt",
        )
    }
}

/// The result part of an enclave's answer. Its `Debug` shows the status
/// and the receipt, not the result (plaintext inside the enclave).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedResultBody {
    /// How the run ended.
    pub status: ActivationStatus,
    /// The result object (or `{error}`).
    pub result: serde_json::Value,
    /// The signed receipt.
    pub receipt: SignedReceipt,
    /// When the invocation opened a session: the enclave's salt of its
    /// keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_salt: Option<crate::session::SessionSalt>,
}

impl std::fmt::Debug for SealedResultBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedResultBody")
            .field("status", &self.status)
            .field("receipt", &self.receipt)
            .finish_non_exhaustive()
    }
}

/// An enclave's answer, sealed to the client in two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAnswer {
    /// The sealed [`SealedResultBody`].
    pub result: Vec<u8>,
    /// The sealed log lines.
    pub logs: Vec<u8>,
}

fn answer_aad(part: &str, activation_id: &str, nonce: &[u8; 16]) -> Vec<u8> {
    Writer::new("clemmys/answer-aad/v1")
        .str(part)
        .str(activation_id)
        .bytes(nonce)
        .finish()
}

/// Seals an answer for the client (enclave side).
pub fn seal_answer(
    body: &SealedResultBody,
    logs: &[String],
    keys: &AnswerKeys,
    activation_id: &str,
    nonce: &[u8; 16],
    rng: &mut impl CryptoRng,
) -> Result<SealedAnswer, ProtoError> {
    let result =
        Zeroizing::new(serde_json::to_vec(body).map_err(|e| ProtoError::Crypto(e.to_string()))?);
    let logs =
        Zeroizing::new(serde_json::to_vec(logs).map_err(|e| ProtoError::Crypto(e.to_string()))?);
    Ok(SealedAnswer {
        result: keys
            .result
            .seal(&result, &answer_aad("result", activation_id, nonce), rng)?,
        logs: keys
            .logs
            .seal(&logs, &answer_aad("logs", activation_id, nonce), rng)?,
    })
}

/// Opens the result part of an answer (client side).
pub fn open_result(
    sealed: &[u8],
    keys: &AnswerKeys,
    activation_id: &str,
    nonce: &[u8; 16],
) -> Result<SealedResultBody, ProtoError> {
    let plaintext = Zeroizing::new(keys.result.open(
        sealed,
        &answer_aad("result", activation_id, nonce),
        "sealed result",
    )?);
    serde_json::from_slice(&plaintext)
        .map_err(|_| ProtoError::Malformed("result is not valid JSON"))
}

/// Opens the logs part of an answer (client side).
pub fn open_logs(
    sealed: &[u8],
    keys: &AnswerKeys,
    activation_id: &str,
    nonce: &[u8; 16],
) -> Result<Vec<String>, ProtoError> {
    let plaintext = Zeroizing::new(keys.logs.open(
        sealed,
        &answer_aad("logs", activation_id, nonce),
        "sealed logs",
    )?);
    serde_json::from_slice(&plaintext).map_err(|_| ProtoError::Malformed("logs are not valid JSON"))
}

/// Serde adapter: fixed-size bytes (a nonce, an id, a MAC) as hex.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as hex (on the stack: these are ids, nonces and MACs of
    /// every request).
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 128];
        match buf.get_mut(..2 * N) {
            Some(buf) => serializer.serialize_str(crate::ids::hex_str(bytes, buf)),
            None => serializer.serialize_str(&hex::encode(bytes)),
        }
    }

    /// Parses hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; N];
        hex::decode_to_slice(text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::TeeKind;
    use crate::suite::tests::os_rng;

    fn header(client: &ClientIdentity) -> InvocationHeader {
        InvocationHeader {
            namespace: "guest".into(),
            action: "a".into(),
            version: 3,
            nonce: [7; 16],
            timestamp_ms: 1_000,
            client: client.id(),
            open_session: false,
        }
    }

    #[test]
    fn invocation_round_trip_and_answer() {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let action = KemKeyPair::generate(&mut rng);
        let code = Digest::of(b"code");
        let (sealed, pending) = seal_invocation(
            &client,
            &action.public(),
            header(&client),
            &code,
            br#"{"x":1}"#,
            &mut rng,
        )
        .expect("seal");
        let parsed = SealedInvocation::from_bytes(&sealed.to_bytes()).expect("parse");
        parsed.verify_signature().expect("signed");
        let opened = parsed.open(&action, &code).expect("open");
        assert_eq!(opened.params.as_slice(), br#"{"x":1}"#);
        assert_eq!(parsed.input_hash(), pending.input_hash);

        let keys = EnclaveKeys::generate(&mut rng);
        let evidence = Evidence {
            tee: TeeKind::Sim,
            data: vec![1, 2, 3],
        };
        let receipt = Receipt {
            activation_id: "id".into(),
            namespace: "guest".into(),
            action: "a".into(),
            version: 3,
            code_digest: code,
            entry: "_start".into(),
            measurement: Measurement::sim([1; 32]),
            input_hash: parsed.input_hash(),
            output_hash: Digest::of(b"{}"),
            nonce: [7; 16],
            chain: None,
        };
        let body = SealedResultBody {
            status: ActivationStatus::Success,
            result: serde_json::json!({"y": 2}),
            receipt: SignedReceipt::sign(receipt, &keys, evidence),
            session_salt: None,
        };
        let logs = vec!["line".to_owned()];
        let sealed =
            seal_answer(&body, &logs, &opened.answer_keys, "id", &[7; 16], &mut rng).expect("seal");
        let opened_body =
            open_result(&sealed.result, &pending.keys, "id", &pending.nonce).expect("open");
        assert_eq!(opened_body, body);
        opened_body
            .receipt
            .verify_signature()
            .expect("receipt signed");
        assert_eq!(
            open_logs(&sealed.logs, &pending.keys, "id", &pending.nonce).expect("open"),
            logs
        );
        // Each part is bound to its activation id and to its role.
        assert!(open_result(&sealed.result, &pending.keys, "other", &pending.nonce).is_err());
        assert!(open_logs(&sealed.result, &pending.keys, "id", &pending.nonce).is_err());
        assert!(open_result(&sealed.logs, &pending.keys, "id", &pending.nonce).is_err());
    }

    #[test]
    fn tampering_with_any_part_is_detected() {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let action = KemKeyPair::generate(&mut rng);
        let code = Digest::of(b"code");
        let (sealed, _) = seal_invocation(
            &client,
            &action.public(),
            header(&client),
            &code,
            b"{}",
            &mut rng,
        )
        .expect("seal");

        let mut other_version = sealed.clone();
        other_version.header.version = 2;
        assert!(other_version.verify_signature().is_err());
        assert!(other_version.open(&action, &code).is_err());

        let mut other_nonce = sealed.clone();
        other_nonce.header.nonce = [8; 16];
        assert!(other_nonce.open(&action, &code).is_err());

        assert!(
            sealed.open(&action, &Digest::of(b"substituted")).is_err(),
            "other code"
        );

        let mut bytes = sealed.to_bytes();
        let middle = bytes.len() - 80;
        bytes[middle] ^= 1;
        let flipped = SealedInvocation::from_bytes(&bytes).expect("parses");
        assert!(flipped.open(&action, &code).is_err() || flipped.verify_signature().is_err());
    }

    #[test]
    fn receipts_with_changed_fields_do_not_verify() {
        let mut rng = os_rng();
        let keys = EnclaveKeys::generate(&mut rng);
        let receipt = Receipt {
            activation_id: "id".into(),
            namespace: "guest".into(),
            action: "a".into(),
            version: 1,
            code_digest: Digest::of(b"code"),
            entry: "_start".into(),
            measurement: Measurement::sim([1; 32]),
            input_hash: Digest::of(b"in"),
            output_hash: Digest::of(b"out"),
            nonce: [0; 16],
            chain: None,
        };
        let signed = SignedReceipt::sign(
            receipt,
            &keys,
            Evidence {
                tee: TeeKind::Sim,
                data: vec![],
            },
        );
        signed.verify_signature().expect("valid");
        let mut forged = signed.clone();
        forged.receipt.code_digest = Digest::of(b"other");
        assert!(forged.verify_signature().is_err());
        let mut other_entry = signed.clone();
        other_entry.receipt.entry = "other".into();
        assert!(
            other_entry.verify_signature().is_err(),
            "the signature binds the entry export that ran"
        );
        let json = serde_json::to_string(&signed).expect("json");
        let back: SignedReceipt = serde_json::from_str(&json).expect("json");
        back.verify_signature()
            .expect("valid after a JSON round trip");
    }
}
