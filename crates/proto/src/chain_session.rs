//! Chain sessions: later runs of a confidential chain whose first run the
//! client opened with [`ChainTicket::open_session`](crate::chain::ChainTicket).
//!
//! In that first run every hop is sealed with HPKE to the next step's
//! action key (see [`chain`](crate::chain)), and both ends of each hop
//! export a secret from its HPKE context. Each step's enclave keeps, for
//! the session (named by the first run's chain id): the ticket, the chain
//! key, the key of the hop into it and the key of the hop out of it. A
//! later run carries a counter; each of its hops is AES-256-GCM
//! ([`ChannelKey`]) under the kept hop key, with the counter as nonce and (session, counter,
//! index, timestamp) as associated data, so a run costs no public-key
//! operation at all.
//!
//! Why it holds what the first run holds: a hop key is known only to the
//! two ends of that hop in the first run (the client for step 0), whose
//! action keys the broker released only to enclaves matching the policy.
//! So a hop that opens under it was sealed by the previous step of this
//! chain (order, no skip, no injection), for this index and run (no splice
//! between runs), and each (run, index) is admitted once by the broker (no
//! replay).
//!
//! Receipts: each step folds its whole [`Receipt`] into a running HMAC
//! under the run's key ([`ChainKey::for_run`], which only the client and the
//! chain's enclaves hold), and passes on only what the client cannot know
//! in advance: a [`StepTrace`] (its enclave's measurement and its output
//! hash). The client rebuilds every receipt from the ticket, its input, the
//! traces and the component activation ids of the sequence record, and the
//! running MAC must match. So a hop carries 32 bytes of MAC however long the
//! chain, and the receipts convince the client, not a third party, as for
//! invocation sessions.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::chain::{ChainKey, ChainStep};
use crate::invoke::{ChainPosition, Receipt};
use crate::suite::{ChannelKey, ExportedKey};
use crate::wire::{Reader, Writer};
use crate::{Digest, Measurement, ProtoError};

// v2: sealed under AES-256-GCM hop keys (v1: ChaCha20-Poly1305).
const FRAME: &str = "clemmys/chain-session-hop/v2";
const BODY: &str = "clemmys/chain-session-hop-body/v1";
// v2: hop keys are AES-256-GCM keys (v1 was ChaCha20-Poly1305).
const HOP_KEY_LABEL: &[u8] = b"clemmys/chain-session-hop-key/v2";
const TRACES: &str = "clemmys/chain-session-traces/v2";
const ANSWER: &str = "clemmys/chain-session-answer/v1";
/// Most traces a hop can carry (a sequence has at most 50 steps).
const MAX_TRACES: u64 = 1024;

/// The key the hops of a session into one step are sealed under, from the
/// secret both ends of that step's first-run hop exported.
pub fn hop_key(hop_secret: &ExportedKey) -> Result<ChannelKey, ProtoError> {
    ChannelKey::derive(hop_secret, HOP_KEY_LABEL)
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

/// What a step of a session run passes on about itself: what its receipt
/// holds that the client cannot know in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTrace {
    /// Measurement of the enclave that ran it.
    pub measurement: Measurement,
    /// Digest of the result JSON it produced (the next step's input).
    pub output_hash: Digest,
}

/// The running MAC of a session run's receipts, under the run key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReceiptMac([u8; 32]);

impl ReceiptMac {
    /// Before the first step.
    pub fn start() -> Self {
        Self([0; 32])
    }

    /// This MAC with step `receipt` folded in (enclave side).
    pub fn extend(&self, receipt: &Receipt, run_key: &ChainKey) -> Result<Self, ProtoError> {
        run_key.mac(&self.transcript(receipt)).map(Self)
    }

    fn transcript(&self, receipt: &Receipt) -> Vec<u8> {
        receipt
            .write_fields(Writer::new("clemmys/chain-session-receipt/v4").bytes(&self.0))
            .finish()
    }

    /// Checks that `receipts`, in order, are what the steps folded into
    /// this MAC under `run_key` (client side; the last comparison is
    /// constant-time).
    pub fn verify(&self, receipts: &[Receipt], run_key: &ChainKey) -> Result<(), ProtoError> {
        let Some((last, earlier)) = receipts.split_last() else {
            return Err(ProtoError::Tampered("chain session receipts"));
        };
        let before = earlier
            .iter()
            .try_fold(Self::start(), |mac, receipt| mac.extend(receipt, run_key))?;
        run_key.verify_mac(&before.transcript(last), &self.0, "chain session receipts")
    }
}

impl std::fmt::Debug for ReceiptMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptMac({})", hex::encode(self.0))
    }
}

/// The receipt of step `index` (`step` in the ticket) of run `run_id`, as
/// the client rebuilds it from what it knows and the step's trace.
pub fn rebuild_receipt(
    step: &ChainStep,
    run_id: [u8; 16],
    index: u64,
    activation_id: String,
    input_hash: Digest,
    trace: &StepTrace,
) -> Receipt {
    Receipt {
        activation_id,
        namespace: step.namespace.clone(),
        action: step.action.clone(),
        version: step.version,
        code_digest: step.code_digest,
        entry: step.entry.clone(),
        measurement: trace.measurement,
        input_hash,
        output_hash: trace.output_hash,
        nonce: run_id,
        chain: Some(ChainPosition {
            chain_id: run_id,
            index,
        }),
    }
}

fn write_traces(writer: Writer, traces: &[StepTrace]) -> Writer {
    let list = traces
        .iter()
        .fold(Writer::new(TRACES).u64(traces.len() as u64), |w, trace| {
            trace
                .measurement
                .write(w)
                .bytes(trace.output_hash.as_bytes())
        })
        .finish();
    writer.bytes(&list)
}

fn read_traces(reader: &mut Reader<'_>) -> Result<Vec<StepTrace>, ProtoError> {
    let mut list = Reader::new(reader.bytes()?, TRACES)?;
    let count = list.u64()?;
    if count > MAX_TRACES {
        return Err(ProtoError::Malformed("too many chain session traces"));
    }
    let mut traces = Vec::with_capacity(count as usize);
    for _ in 0..count {
        traces.push(StepTrace {
            measurement: Measurement::read(&mut list)?,
            output_hash: Digest(list.array()?),
        });
    }
    list.finish()?;
    Ok(traces)
}

/// The final answer of a session run, sealed to the client under the run
/// key. Its `Debug` shows the result's size, not the result.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionAnswer {
    /// How the last step that ran ended.
    pub status: clemmys_whisk::ActivationStatus,
    /// Its result JSON, exactly as its trace's output hash hashes it.
    pub result: Vec<u8>,
    /// The index of the last step that ran.
    pub last_index: u64,
    /// One trace per step that ran, in order.
    pub traces: Vec<StepTrace>,
    /// The running MAC of their receipts.
    pub receipts: ReceiptMac,
}

impl std::fmt::Debug for SessionAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAnswer")
            .field("status", &self.status)
            .field("result_bytes", &self.result.len())
            .field("last_index", &self.last_index)
            .field("traces", &self.traces)
            .field("receipts", &self.receipts)
            .finish()
    }
}

fn answer_aad(run_id: &[u8; 16]) -> Vec<u8> {
    Writer::new("clemmys/chain-session-answer-aad/v1")
        .bytes(run_id)
        .finish()
}

impl SessionAnswer {
    /// Seals the answer of run `run_id` (enclave side).
    pub fn seal(
        &self,
        run_key: &ChainKey,
        run_id: &[u8; 16],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, ProtoError> {
        let writer = Writer::new(ANSWER)
            .u64(u64::from(self.status.code()))
            .bytes(&self.result)
            .u64(self.last_index);
        let plaintext = Zeroizing::new(
            write_traces(writer, &self.traces)
                .bytes(&self.receipts.0)
                .finish(),
        );
        run_key
            .answer_key()?
            .seal(&plaintext, &answer_aad(run_id), rng)
    }

    /// Opens the answer of run `run_id` (client side). The receipts are
    /// still to be checked.
    pub fn open(sealed: &[u8], run_key: &ChainKey, run_id: &[u8; 16]) -> Result<Self, ProtoError> {
        let plaintext = Zeroizing::new(run_key.answer_key()?.open(
            sealed,
            &answer_aad(run_id),
            "sealed chain answer",
        )?);
        let mut reader = Reader::new(&plaintext, ANSWER)?;
        let status = u8::try_from(reader.u64()?)
            .ok()
            .and_then(clemmys_whisk::ActivationStatus::from_code)
            .ok_or(ProtoError::Malformed("chain answer status"))?;
        let result = reader.bytes()?.to_vec();
        let last_index = reader.u64()?;
        let traces = read_traces(&mut reader)?;
        let receipts = ReceiptMac(reader.array()?);
        reader.finish()?;
        Ok(Self {
            status,
            result,
            last_index,
            traces,
            receipts,
        })
    }
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
            index: self.index.saturating_add(1),
            ..*self
        }
    }
}

/// What a session hop carries, sealed.
pub struct SessionHopBody {
    /// The step's parameters (the previous step's result), JSON.
    pub value: Zeroizing<Vec<u8>>,
    /// The traces of the steps of this run so far.
    pub traces: Vec<StepTrace>,
    /// The running MAC of their receipts.
    pub receipts: ReceiptMac,
}

/// A sealed hop of a session run, as the orchestrator forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHop {
    /// Where it goes (in the clear, and authenticated).
    pub header: HopHeader,
    ciphertext: Vec<u8>,
}

impl SessionHop {
    pub(crate) const FRAME: &'static str = FRAME;

    /// Seals `body` under `key`, the hop key of step `header.index`. Each
    /// (key, counter) seals once: the client draws each counter once, and a
    /// step seals its output only after the broker admitted its run.
    pub fn seal(
        key: &ChannelKey,
        header: HopHeader,
        body: &SessionHopBody,
    ) -> Result<Self, ProtoError> {
        let plaintext = Zeroizing::new(
            write_traces(Writer::new(BODY).bytes(&body.value), &body.traces)
                .bytes(&body.receipts.0)
                .finish(),
        );
        let ciphertext = key.seal(&plaintext, &header.aad(), &header.nonce())?;
        Ok(Self { header, ciphertext })
    }

    /// Opens the hop with the hop key of the step it names.
    pub fn open(&self, key: &ChannelKey) -> Result<SessionHopBody, ProtoError> {
        let plaintext = Zeroizing::new(key.open(
            &self.ciphertext,
            &self.header.aad(),
            &self.header.nonce(),
            "sealed chain session hop",
        )?);
        let mut reader = Reader::new(&plaintext, BODY)?;
        let value = Zeroizing::new(reader.bytes()?.to_vec());
        let traces = read_traces(&mut reader)?;
        let receipts = ReceiptMac(reader.array()?);
        reader.finish()?;
        Ok(SessionHopBody {
            value,
            traces,
            receipts,
        })
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
            traces: Vec::new(),
            receipts: ReceiptMac::start(),
        }
    }

    #[test]
    fn a_hop_opens_under_its_key_and_header_only() {
        let key = hop_key(&ExportedKey::from_bytes([1; 32])).expect("key");
        let hop = SessionHop::seal(&key, header(4, 1), &body()).expect("seal");
        let parsed = SessionHop::from_bytes(&hop.to_bytes()).expect("parse");
        assert!(matches!(
            crate::inbound::SealedInput::from_bytes(&hop.to_bytes()),
            Ok(crate::inbound::SealedInput::ChainSessionHop(_))
        ));
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

    fn step(index: u8) -> ChainStep {
        ChainStep {
            namespace: "guest".into(),
            action: format!("step{index}"),
            version: 2,
            code_digest: Digest::of(&[index]),
            entry: "_start".into(),
            action_key: crate::KemPublicKey([index; 32]),
        }
    }

    /// Two steps' receipts as the enclaves make them, their traces and MAC.
    fn two_steps(run: [u8; 16], key: &ChainKey) -> (Vec<Receipt>, Vec<StepTrace>, ReceiptMac) {
        let mut input = Digest::of(b"in");
        let (mut receipts, mut traces, mut mac) = (Vec::new(), Vec::new(), ReceiptMac::start());
        for index in 0..2u8 {
            let trace = StepTrace {
                measurement: Measurement::sim([5; 32]),
                output_hash: Digest::of(&[b'o', index]),
            };
            let receipt = rebuild_receipt(
                &step(index),
                run,
                index.into(),
                format!("a{index}"),
                input,
                &trace,
            );
            mac = mac.extend(&receipt, key).expect("mac");
            input = trace.output_hash;
            receipts.push(receipt);
            traces.push(trace);
        }
        (receipts, traces, mac)
    }

    #[test]
    fn receipts_verify_only_as_the_steps_made_them() {
        let run = run_id(&[3; 16], 1);
        let key = ChainKey::from_bytes([9; 32]).for_run(&run).expect("key");
        let (receipts, _, mac) = two_steps(run, &key);
        mac.verify(&receipts, &key).expect("verifies");

        let other_key = ChainKey::from_bytes([9; 32])
            .for_run(&run_id(&[3; 16], 2))
            .expect("key");
        assert!(
            mac.verify(&receipts, &other_key).is_err(),
            "another run's key"
        );
        assert!(mac.verify(&receipts[..1], &key).is_err(), "truncated");
        assert!(mac.verify(&[], &key).is_err(), "none");
        let swapped = vec![receipts[1].clone(), receipts[0].clone()];
        assert!(mac.verify(&swapped, &key).is_err(), "reordered");
        for change in [
            (|r: &mut Receipt| r.activation_id = "other".into()) as fn(&mut Receipt),
            |r| r.version = 3,
            |r| r.code_digest = Digest::of(b"other"),
            |r| r.entry = "other".into(),
            |r| r.measurement = Measurement::sim([6; 32]),
            |r| r.input_hash = Digest::of(b"other"),
            |r| r.output_hash = Digest::of(b"other"),
        ] {
            let mut forged = receipts.clone();
            change(&mut forged[0]);
            assert!(mac.verify(&forged, &key).is_err());
        }
    }

    #[test]
    fn answers_round_trip_and_open_only_for_their_run() {
        let run = run_id(&[3; 16], 1);
        let key = ChainKey::from_bytes([9; 32]).for_run(&run).expect("key");
        let (_, traces, receipts) = two_steps(run, &key);
        let answer = SessionAnswer {
            status: clemmys_whisk::ActivationStatus::Success,
            result: br#"{"ok":true}"#.to_vec(),
            last_index: 1,
            traces,
            receipts,
        };
        let sealed = answer
            .seal(&key, &run, &mut crate::suite::tests::os_rng())
            .expect("seal");
        assert_eq!(
            SessionAnswer::open(&sealed, &key, &run).expect("open"),
            answer
        );
        let other = run_id(&[3; 16], 2);
        assert!(
            SessionAnswer::open(&sealed, &key, &other).is_err(),
            "another run"
        );

        // Carried in a hop, traces and MAC come back the same.
        let hop_key = hop_key(&ExportedKey::from_bytes([1; 32])).expect("key");
        let body = SessionHopBody {
            value: Zeroizing::new(b"{}".to_vec()),
            traces: answer.traces.clone(),
            receipts: answer.receipts,
        };
        let hop = SessionHop::seal(&hop_key, header(1, 2), &body).expect("seal");
        let opened = hop.open(&hop_key).expect("open");
        assert_eq!(
            (opened.traces, opened.receipts),
            (answer.traces, answer.receipts)
        );
    }
}
