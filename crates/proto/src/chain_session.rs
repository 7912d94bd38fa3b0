//! Chain sessions: later runs of a confidential chain whose first run the
//! client opened with [`ChainTicket::open_session`](crate::chain::ChainTicket).
//!
//! In that first run every hop is sealed with HPKE to the next step's
//! action key (see [`chain`](crate::chain)), and both ends of each hop
//! export a secret from its HPKE context. Each step's enclave keeps, for
//! the session (named by the first run's chain id): the ticket, the chain
//! key, the key of the hop into it and the key of the hop out of it. A
//! later run carries a counter; each of its hops is ChaCha20-Poly1305
//! under the kept hop key, with the counter as nonce and (session, counter,
//! index, timestamp) as associated data, so a run costs no public-key
//! operation at all.
//!
//! Why it holds what the first run holds: a hop key is known only to the
//! two ends of that hop in the first run (the client for step 0), whose
//! action keys the broker released only to enclaves matching the policy.
//! So a hop that opens under it was sealed by the previous step of this
//! chain (order, no skip, no injection), for this index and run (no splice
//! between runs), and each (run, index) is admitted once by the broker (no
//! replay). Receipts are HMACs under the run's key ([`ChainKey::for_run`]),
//! which only the client and the chain's enclaves hold: they convince the
//! client, not a third party, as for invocation sessions. A receipt
//! travels compact ([`StepReceipt`]): only what the client cannot know in
//! advance (the activation id, the measurement and the output hash); the
//! MAC covers the whole receipt, which the client rebuilds from the ticket.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::chain::{ChainKey, ChainStep};
use crate::invoke::{ChainPosition, Receipt};
use crate::suite::ExportedKey;
use crate::wire::{Reader, Writer};
use crate::{Digest, Measurement, ProtoError};

const FRAME: &str = "clemmys/chain-session-hop/v1";
const BODY: &str = "clemmys/chain-session-hop-body/v1";
const HOP_KEY_LABEL: &[u8] = b"clemmys/chain-session-hop-key/v1";
const RECEIPTS: &str = "clemmys/chain-session-receipts/v1";
/// Most receipts a hop can carry (a sequence has at most 50 steps).
const MAX_RECEIPTS: u64 = 1024;

/// The key the hops of a session into one step are sealed under, from the
/// secret both ends of that step's first-run hop exported.
pub fn hop_key(hop_secret: &ExportedKey) -> Result<ExportedKey, ProtoError> {
    hop_secret.derive(HOP_KEY_LABEL)
}

/// The id of run `counter` of session `session_id`: what the broker admits
/// once per step, and what the run's answer, logs and receipts bind.
pub fn run_id(session_id: &[u8; 16], counter: u64) -> [u8; 16] {
    let digest = Digest::of(
        &Writer::new("clemmys/chain-session-run/v1")
            .bytes(session_id)
            .u64(counter)
            .finish(),
    );
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest.as_bytes()[..16]);
    id
}

/// A step's receipt in a session run, compact: the fields the client cannot
/// know in advance, and an HMAC-SHA256 under the run key over the whole
/// [`Receipt`] (which [`StepReceipt::verify`] rebuilds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReceipt {
    /// The activation id the provider assigned to the step.
    pub activation_id: String,
    /// Measurement of the enclave that ran it.
    pub measurement: Measurement,
    /// Digest of the result JSON it produced (the next step's input).
    pub output_hash: Digest,
    /// The MAC.
    #[serde(with = "crate::evidence::base64_bytes")]
    pub tag: Vec<u8>,
}

fn receipt_transcript(receipt: &Receipt) -> Vec<u8> {
    receipt
        .write_fields(Writer::new("clemmys/chain-session-receipt/v1"))
        .finish()
}

impl StepReceipt {
    /// MACs `receipt` under `run_key` (enclave side).
    pub fn new(receipt: &Receipt, run_key: &ChainKey) -> Result<Self, ProtoError> {
        Ok(Self {
            activation_id: receipt.activation_id.clone(),
            measurement: receipt.measurement,
            output_hash: receipt.output_hash,
            tag: run_key.mac(&receipt_transcript(receipt))?.to_vec(),
        })
    }

    /// The full receipt of step `index` (`step` in the ticket) of run
    /// `run_id`, whose input had digest `input_hash`, if the MAC under
    /// `run_key` says the step's enclave reported exactly that (client
    /// side).
    pub fn verify(
        &self,
        step: &ChainStep,
        run_id: [u8; 16],
        index: u64,
        input_hash: Digest,
        run_key: &ChainKey,
    ) -> Result<Receipt, ProtoError> {
        let receipt = Receipt {
            activation_id: self.activation_id.clone(),
            namespace: step.namespace.clone(),
            action: step.action.clone(),
            version: step.version,
            code_digest: step.code_digest,
            measurement: self.measurement,
            input_hash,
            output_hash: self.output_hash,
            nonce: run_id,
            chain: Some(ChainPosition {
                chain_id: run_id,
                index,
            }),
        };
        run_key.verify_mac(
            &receipt_transcript(&receipt),
            &self.tag,
            "chain session receipt",
        )?;
        Ok(receipt)
    }
}

fn write_receipts(receipts: &[StepReceipt]) -> Vec<u8> {
    receipts
        .iter()
        .fold(
            Writer::new(RECEIPTS).u64(receipts.len() as u64),
            |writer, receipt| {
                writer
                    .str(&receipt.activation_id)
                    .bytes(receipt.measurement.as_bytes())
                    .bytes(receipt.output_hash.as_bytes())
                    .bytes(&receipt.tag)
            },
        )
        .finish()
}

fn read_receipts(bytes: &[u8]) -> Result<Vec<StepReceipt>, ProtoError> {
    let mut reader = Reader::new(bytes, RECEIPTS)?;
    let count = reader.u64()?;
    if count > MAX_RECEIPTS {
        return Err(ProtoError::Malformed("too many chain session receipts"));
    }
    let mut receipts = Vec::with_capacity(count as usize);
    for _ in 0..count {
        receipts.push(StepReceipt {
            activation_id: reader.str()?.to_owned(),
            measurement: Measurement(reader.array()?),
            output_hash: Digest(reader.array()?),
            tag: reader.bytes()?.to_vec(),
        });
    }
    reader.finish()?;
    Ok(receipts)
}

/// Where a session hop goes: all of it is bound into the AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopHeader {
    /// The session (the first run's chain id).
    pub session_id: [u8; 16],
    /// The run within the session; the AEAD nonce.
    pub counter: u64,
    /// The step this hop is for.
    pub index: u64,
    /// The client's clock when the run started, epoch ms.
    pub timestamp_ms: u64,
}

impl HopHeader {
    fn aad(&self) -> Vec<u8> {
        Writer::new("clemmys/chain-session-hop-aad/v1")
            .bytes(&self.session_id)
            .u64(self.counter)
            .u64(self.index)
            .u64(self.timestamp_ms)
            .finish()
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        nonce
    }

    /// The id of this hop's run.
    pub fn run_id(&self) -> [u8; 16] {
        run_id(&self.session_id, self.counter)
    }

    /// The header of the hop into the next step.
    pub fn next(&self) -> Self {
        Self {
            index: self.index + 1,
            ..*self
        }
    }
}

/// What a session hop carries, sealed.
pub struct SessionHopBody {
    /// The step's parameters (the previous step's result), JSON.
    pub value: Zeroizing<Vec<u8>>,
    /// Receipts of the steps of this run so far.
    pub receipts: Vec<StepReceipt>,
}

/// A sealed hop of a session run, as the orchestrator forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHop {
    /// Where it goes (in the clear, and authenticated).
    pub header: HopHeader,
    ciphertext: Vec<u8>,
}

impl SessionHop {
    /// Seals `body` under `key`, the hop key of step `header.index`. Each
    /// (key, counter) seals once: the client draws each counter once, and a
    /// step seals its output only after the broker admitted its run.
    pub fn seal(
        key: &ExportedKey,
        header: HopHeader,
        body: &SessionHopBody,
    ) -> Result<Self, ProtoError> {
        let plaintext = Zeroizing::new(
            Writer::new(BODY)
                .bytes(&body.value)
                .bytes(&write_receipts(&body.receipts))
                .finish(),
        );
        let ciphertext = key.seal_with_nonce(&plaintext, &header.aad(), &header.nonce())?;
        Ok(Self { header, ciphertext })
    }

    /// Opens the hop with the hop key of the step it names.
    pub fn open(&self, key: &ExportedKey) -> Result<SessionHopBody, ProtoError> {
        let plaintext = Zeroizing::new(key.open_with_nonce(
            &self.ciphertext,
            &self.header.aad(),
            &self.header.nonce(),
            "sealed chain session hop",
        )?);
        let mut reader = Reader::new(&plaintext, BODY)?;
        let value = Zeroizing::new(reader.bytes()?.to_vec());
        let receipts = read_receipts(reader.bytes()?)?;
        reader.finish()?;
        Ok(SessionHopBody { value, receipts })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(FRAME)
            .bytes(&self.header.session_id)
            .u64(self.header.counter)
            .u64(self.header.index)
            .u64(self.header.timestamp_ms)
            .bytes(&self.ciphertext)
            .finish()
    }

    /// Parses the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, FRAME)?;
        let header = HopHeader {
            session_id: reader.array()?,
            counter: reader.u64()?,
            index: reader.u64()?,
            timestamp_ms: reader.u64()?,
        };
        let ciphertext = reader.bytes()?.to_vec();
        reader.finish()?;
        Ok(Self { header, ciphertext })
    }
}

/// Whether `bytes` are a session hop.
pub fn is_session_hop(bytes: &[u8]) -> bool {
    Reader::new(bytes, FRAME).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(counter: u64, index: u64) -> HopHeader {
        HopHeader {
            session_id: [3; 16],
            counter,
            index,
            timestamp_ms: 1_000,
        }
    }

    fn body() -> SessionHopBody {
        SessionHopBody {
            value: Zeroizing::new(br#"{"v":1}"#.to_vec()),
            receipts: Vec::new(),
        }
    }

    #[test]
    fn a_hop_opens_under_its_key_and_header_only() {
        let key = hop_key(&ExportedKey::from_bytes([1; 32])).expect("key");
        let hop = SessionHop::seal(&key, header(4, 1), &body()).expect("seal");
        let parsed = SessionHop::from_bytes(&hop.to_bytes()).expect("parse");
        assert!(is_session_hop(&hop.to_bytes()));
        assert_eq!(
            parsed.open(&key).expect("open").value.as_slice(),
            br#"{"v":1}"#
        );

        // Another step's key (reorder, skip, inject).
        let other = hop_key(&ExportedKey::from_bytes([2; 32])).expect("key");
        assert!(parsed.open(&other).is_err());
        // Any header field rewritten: another run, step, session or time.
        for forged in [header(5, 1), header(4, 2), header(4, 1).next()] {
            let moved = SessionHop {
                header: forged,
                ciphertext: parsed.ciphertext.clone(),
            };
            assert!(moved.open(&key).is_err(), "{forged:?}");
        }
        let moved = SessionHop {
            header: HopHeader {
                timestamp_ms: 2_000,
                ..header(4, 1)
            },
            ciphertext: parsed.ciphertext.clone(),
        };
        assert!(moved.open(&key).is_err());
        let mut flipped = hop.to_bytes();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(
            SessionHop::from_bytes(&flipped)
                .expect("parse")
                .open(&key)
                .is_err()
        );
    }

    #[test]
    fn runs_have_distinct_ids_and_keys() {
        assert_ne!(run_id(&[3; 16], 1), run_id(&[3; 16], 2));
        assert_ne!(run_id(&[3; 16], 1), run_id(&[4; 16], 1));
        let chain_key = ChainKey::from_bytes([9; 32]);
        let (one, two) = (
            chain_key.for_run(&run_id(&[3; 16], 1)).expect("key"),
            chain_key.for_run(&run_id(&[3; 16], 2)).expect("key"),
        );
        assert_ne!(one.as_bytes(), two.as_bytes());
    }

    #[test]
    fn a_receipt_verifies_under_its_run_key_and_step_only() {
        let run = run_id(&[3; 16], 1);
        let key = ChainKey::from_bytes([9; 32]).for_run(&run).expect("key");
        let step = ChainStep {
            namespace: "guest".into(),
            action: "step".into(),
            version: 2,
            code_digest: Digest::of(b"code"),
            action_key: crate::KemPublicKey([1; 32]),
        };
        let input = Digest::of(b"in");
        let receipt = Receipt {
            activation_id: "a1".into(),
            namespace: step.namespace.clone(),
            action: step.action.clone(),
            version: step.version,
            code_digest: step.code_digest,
            measurement: Measurement([5; 32]),
            input_hash: input,
            output_hash: Digest::of(b"out"),
            nonce: run,
            chain: Some(ChainPosition {
                chain_id: run,
                index: 0,
            }),
        };
        let compact = StepReceipt::new(&receipt, &key).expect("mac");
        assert_eq!(
            compact
                .verify(&step, run, 0, input, &key)
                .expect("verifies"),
            receipt
        );
        // Carried in a hop, it comes back the same.
        assert_eq!(
            read_receipts(&write_receipts(std::slice::from_ref(&compact))).expect("parse"),
            vec![compact.clone()]
        );

        let other_run = run_id(&[3; 16], 2);
        let other_key = ChainKey::from_bytes([9; 32])
            .for_run(&other_run)
            .expect("key");
        assert!(
            compact.verify(&step, run, 0, input, &other_key).is_err(),
            "another run's key"
        );
        assert!(
            compact.verify(&step, other_run, 0, input, &key).is_err(),
            "another run"
        );
        assert!(
            compact.verify(&step, run, 1, input, &key).is_err(),
            "another index"
        );
        assert!(
            compact
                .verify(&step, run, 0, Digest::of(b"other"), &key)
                .is_err(),
            "another input"
        );
        let newer = ChainStep {
            version: 3,
            ..step.clone()
        };
        assert!(
            compact.verify(&newer, run, 0, input, &key).is_err(),
            "another version"
        );
        let mut forged = compact.clone();
        forged.output_hash = Digest::of(b"other");
        assert!(
            forged.verify(&step, run, 0, input, &key).is_err(),
            "another output"
        );
    }
}
