//! Confidential chains: OpenWhisk sequences whose steps are confidential
//! actions, run by an untrusted orchestrator.
//!
//! The client signs a [`ChainTicket`] naming the chain id and, in order,
//! every step's action, version, code digest and action key; it draws a
//! random [`ChainKey`] known only to itself and the chain's enclaves. Each
//! value travelling between steps is a [`sealed hop`](seal_hop): HPKE to the
//! receiving step's action key, bound to (chain id, index), carrying the
//! ticket, the chain key, the value and the receipts so far, and MACed
//! under the chain key. A step's enclave checks that it is the step the
//! ticket names at that index and that (chain id, index) was never admitted
//! before; it seals its output to the next step, or, as the last step (or
//! when the chain stops on an error), seals the final answer to the client
//! under a key derived from the chain key. The orchestrator only ever
//! forwards opaque hops.

use hmac::{KeyInit, Mac};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::identity::{ClientIdentity, SIGNATURE_LEN};
use crate::invoke::{SignedReceipt, hex_bytes};
use crate::suite::{ENC_LEN, ExportedKey, KemKeyPair, hpke_export_from, hpke_export_to};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, KemPublicKey, ProtoError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// One step as the ticket names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStep {
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub action: String,
    /// The policy version the client expects.
    pub version: u64,
    /// The code digest the client expects.
    pub code_digest: Digest,
    /// The entry export the client expects (its policy's).
    #[serde(default = "crate::broker::default_entry")]
    pub entry: String,
    /// The action key values for this step are sealed to.
    pub action_key: KemPublicKey,
}

/// The client's signed plan of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTicket {
    /// Fresh random id: binds every hop, answer and receipt to this run.
    #[serde(with = "hex_bytes")]
    pub chain_id: [u8; 16],
    /// The steps, in order.
    pub steps: Vec<ChainStep>,
    /// The client that signed it.
    pub client: ClientId,
    /// The client's clock, epoch ms.
    pub timestamp_ms: u64,
    /// Whether each step keeps the keys of this run's hops for later runs
    /// of the same chain (a [chain session](crate::chain_session)).
    #[serde(default)]
    pub open_session: bool,
}

impl ChainTicket {
    fn transcript(&self) -> Vec<u8> {
        let mut writer = Writer::new("clemmys/chain-ticket/v3")
            .bytes(&self.chain_id)
            .bytes(self.client.as_bytes())
            .u64(self.timestamp_ms)
            .u64(u64::from(self.open_session))
            .u64(self.steps.len() as u64);
        for step in &self.steps {
            writer = writer
                .str(&step.namespace)
                .str(&step.action)
                .u64(step.version)
                .bytes(step.code_digest.as_bytes())
                .str(&step.entry)
                .bytes(step.action_key.as_bytes());
        }
        writer.finish()
    }

    /// Signs the ticket.
    pub fn sign(self, identity: &ClientIdentity) -> SignedTicket {
        let signature = identity.sign(&self.transcript()).to_vec();
        SignedTicket {
            ticket: self,
            signature,
        }
    }
}

/// A ticket with the client's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTicket {
    /// The plan.
    pub ticket: ChainTicket,
    /// Ed25519 signature by `ticket.client`.
    #[serde(with = "crate::evidence::base64_bytes")]
    pub signature: Vec<u8>,
}

impl SignedTicket {
    /// Checks the client's signature.
    pub fn verify(&self) -> Result<(), ProtoError> {
        let signature: [u8; SIGNATURE_LEN] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| ProtoError::BadSignature("chain ticket"))?;
        self.ticket
            .client
            .verify(&self.ticket.transcript(), &signature, "chain ticket")
    }
}

/// The key shared by the client and the chain's enclaves, zeroed on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    /// A fresh key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    /// A key from stored bytes (the client's keyring).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of run `run_id` of a chain session opened under this key:
    /// each run seals its answer, logs and receipts under its own key, so
    /// no key ever seals two messages with the same nonce.
    pub fn for_run(&self, run_id: &[u8; 16]) -> Result<ChainKey, ProtoError> {
        let label = Writer::new("clemmys/chain-run-key/v1")
            .bytes(run_id)
            .finish();
        let derived = ExportedKey::from_bytes(self.0).derive(&label)?;
        Ok(Self(*derived.as_bytes()))
    }

    pub(crate) fn mac(&self, transcript: &[u8]) -> Result<[u8; 32], ProtoError> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
        mac.update(transcript);
        Ok(mac.finalize().into_bytes().into())
    }

    pub(crate) fn verify_mac(
        &self,
        transcript: &[u8],
        tag: &[u8],
        what: &'static str,
    ) -> Result<(), ProtoError> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
        mac.update(transcript);
        // Constant-time comparison.
        mac.verify_slice(tag)
            .map_err(|_| ProtoError::Tampered(what))
    }

    /// The key the final answer is sealed under.
    pub fn answer_key(&self) -> Result<ExportedKey, ProtoError> {
        ExportedKey::from_bytes(self.0).derive(b"clemmys/chain-answer-key/v1")
    }

    /// The key step `index`'s logs are sealed under.
    pub fn logs_key(&self, index: u64) -> Result<ExportedKey, ProtoError> {
        let label = Writer::new("clemmys/chain-logs-key/v1").u64(index).finish();
        ExportedKey::from_bytes(self.0).derive(&label)
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

/// What a hop carries, sealed.
pub struct HopBody {
    /// The signed plan.
    pub ticket: SignedTicket,
    /// The chain key.
    pub chain_key: ChainKey,
    /// Which step this hop is for.
    pub index: u64,
    /// The step's parameters (the previous step's result), JSON.
    pub value: Zeroizing<Vec<u8>>,
    /// Receipts of the steps so far ([`SignedReceipt`]s, as JSON): only the
    /// client checks them, so each step passes them on without parsing
    /// them (a hop carries all of them, so a chain would parse each again
    /// at every later step).
    pub receipts: Vec<Box<RawValue>>,
}

const HOP_FRAME: &str = "clemmys/chain-hop/v2";
/// What both ends of a link export from its HPKE context.
const LINK_LABEL: &[u8] = b"clemmys/chain-link/v1";
const HOP_BODY: &str = "clemmys/chain-hop-body/v1";

fn hop_info(namespace: &str, action: &str) -> Vec<u8> {
    Writer::new("clemmys/chain-info/v1")
        .str(namespace)
        .str(action)
        .finish()
}

fn hop_aad(chain_id: &[u8; 16], index: u64) -> Vec<u8> {
    Writer::new("clemmys/chain-aad/v1")
        .bytes(chain_id)
        .u64(index)
        .finish()
}

fn hop_mac_transcript(
    chain_id: &[u8; 16],
    index: u64,
    enc: &[u8; ENC_LEN],
    ciphertext: &Digest,
) -> Vec<u8> {
    Writer::new("clemmys/chain-mac/v1")
        .bytes(chain_id)
        .u64(index)
        .bytes(enc)
        .bytes(ciphertext.as_bytes())
        .finish()
}

/// A secret a sender shares with the holders of one step's action key:
/// HPKE to that key (info: the step's namespace and action), from which
/// every hop's key is derived. A client makes one for each run's first
/// hop; an enclave keeps one per next step for a while and seals many
/// runs' hops over it, so that a hop costs no public-key operation on
/// either end once the receiving enclave has opened the link.
pub struct HopLink {
    enc: [u8; ENC_LEN],
    secret: ExportedKey,
    /// The receiving step's namespace, action and action key.
    to: (String, String, KemPublicKey),
}

impl HopLink {
    /// A new link to `step`'s action key.
    pub fn new(step: &ChainStep, rng: &mut impl CryptoRng) -> Result<Self, ProtoError> {
        let (enc, secret) = hpke_export_to(
            &step.action_key,
            &hop_info(&step.namespace, &step.action),
            LINK_LABEL,
            rng,
        )?;
        Ok(Self {
            enc,
            secret,
            to: (step.namespace.clone(), step.action.clone(), step.action_key),
        })
    }

    /// Whether this is a link to `step` (its namespace, action and key).
    pub fn leads_to(&self, step: &ChainStep) -> bool {
        let (namespace, action, key) = &self.to;
        *namespace == step.namespace && *action == step.action && *key == step.action_key
    }

    /// The link's encapsulated key: what its hops carry, and what the
    /// receiver knows the link by.
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// The key of hop `(chain_id, index)` over this link: each seals one
    /// message (the broker admits a step once, before its enclave seals
    /// the next hop).
    fn hop_key(&self, chain_id: &[u8; 16], index: u64) -> Result<ExportedKey, ProtoError> {
        self.derive("clemmys/chain-hop-key/v2", chain_id, index)
    }

    /// The secret a chain session keeps of hop `(chain_id, index)` whose
    /// ciphertext hashes to `ciphertext`: only the two ends of the link can
    /// derive it, and a hop sealed again (its AEAD nonce is random) gives
    /// another, so that a step a forked broker admits twice does not open
    /// a second session under the first one's keys.
    fn session_secret(
        &self,
        chain_id: &[u8; 16],
        index: u64,
        ciphertext: &Digest,
    ) -> Result<ExportedKey, ProtoError> {
        self.secret.derive(
            &Writer::new("clemmys/chain-hop-session/v3")
                .bytes(chain_id)
                .u64(index)
                .bytes(ciphertext.as_bytes())
                .finish(),
        )
    }

    /// A key of this link for `(chain_id, index)`, under `label`.
    fn derive(
        &self,
        label: &str,
        chain_id: &[u8; 16],
        index: u64,
    ) -> Result<ExportedKey, ProtoError> {
        self.secret
            .derive(&Writer::new(label).bytes(chain_id).u64(index).finish())
    }
}

impl std::fmt::Debug for HopLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HopLink(enc: {}, secret: <redacted>)",
            hex::encode(self.enc)
        )
    }
}

/// Seals `body` over `link`, which must be a link to the step `body` names
/// (its `index` in the ticket). Also returns the hop's session secret,
/// which only the sender and that step know (kept when the ticket opens a
/// chain session).
pub fn seal_hop(
    body: &HopBody,
    link: &HopLink,
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, ExportedKey), ProtoError> {
    let ticket = &body.ticket.ticket;
    let chain_id = &ticket.chain_id;
    let step = usize::try_from(body.index)
        .ok()
        .and_then(|index| ticket.steps.get(index))
        .ok_or(ProtoError::Malformed("hop index beyond the ticket"))?;
    if !link.leads_to(step) {
        return Err(ProtoError::Malformed("a link to another step"));
    }
    let ticket_json =
        serde_json::to_vec(&body.ticket).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let receipts =
        serde_json::to_vec(&body.receipts).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let plaintext = Zeroizing::new(
        Writer::new(HOP_BODY)
            .bytes(&ticket_json)
            .bytes(body.chain_key.as_bytes())
            .u64(body.index)
            .bytes(&body.value)
            .bytes(&receipts)
            .finish(),
    );
    let ciphertext = link.hop_key(chain_id, body.index)?.seal(
        &plaintext,
        &hop_aad(chain_id, body.index),
        rng,
    )?;
    let ciphertext_digest = Digest::of(&ciphertext);
    let tag = body.chain_key.mac(&hop_mac_transcript(
        chain_id,
        body.index,
        &link.enc,
        &ciphertext_digest,
    ))?;
    let frame = Writer::new(HOP_FRAME)
        .bytes(chain_id)
        .u64(body.index)
        .bytes(&link.enc)
        .bytes(&ciphertext)
        .bytes(&tag)
        .finish();
    let session_secret = link.session_secret(chain_id, body.index, &ciphertext_digest)?;
    Ok((frame, session_secret))
}

/// A chain hop as it travels: parsed, not opened.
#[derive(Debug, Clone)]
pub struct SealedHop {
    chain_id: [u8; 16],
    index: u64,
    enc: [u8; ENC_LEN],
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

impl SealedHop {
    pub(crate) const FRAME: &'static str = HOP_FRAME;

    /// Parses the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, HOP_FRAME)?;
        let hop = Self {
            chain_id: reader.array()?,
            index: reader.u64()?,
            enc: reader.array()?,
            ciphertext: reader.bytes()?.to_vec(),
            tag: reader.bytes()?.to_vec(),
        };
        reader.finish()?;
        Ok(hop)
    }

    /// The encapsulated key of the link this hop came over: a receiver that
    /// opened the link before knows its secret by it.
    pub fn link_enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// Opens the link this hop came over, for the step `(namespace,
    /// action)` with its action keys (HPKE: the one public-key operation
    /// of a receiver, once per link).
    pub fn open_link(
        &self,
        namespace: &str,
        action: &str,
        keys: &KemKeyPair,
    ) -> Result<HopLink, ProtoError> {
        let secret = hpke_export_from(
            keys,
            &self.enc,
            &hop_info(namespace, action),
            LINK_LABEL,
            "sealed chain hop",
        )?;
        Ok(HopLink {
            enc: self.enc,
            secret,
            to: (namespace.to_owned(), action.to_owned(), keys.public()),
        })
    }

    /// Opens this hop over `link` (see [`SealedHop::open_link`]): checks
    /// the AEAD, the ticket's signature, the MAC, and that the hop's index
    /// and chain id agree with what is sealed inside. The caller checks
    /// that the ticket's step at that index is really this enclave's
    /// action. Also returns the hop's session secret (see [`seal_hop`]).
    pub fn open_over(&self, link: &HopLink) -> Result<(HopBody, ExportedKey), ProtoError> {
        let (chain_id, index) = (self.chain_id, self.index);
        if link.enc != self.enc {
            return Err(ProtoError::Tampered("sealed chain hop"));
        }
        let plaintext = Zeroizing::new(link.hop_key(&chain_id, index)?.open(
            &self.ciphertext,
            &hop_aad(&chain_id, index),
            "sealed chain hop",
        )?);
        let mut reader = Reader::new(&plaintext, HOP_BODY)?;
        let ticket: SignedTicket = serde_json::from_slice(reader.bytes()?)
            .map_err(|_| ProtoError::Malformed("chain ticket"))?;
        let chain_key = ChainKey(reader.array()?);
        let inner_index = reader.u64()?;
        let value = Zeroizing::new(reader.bytes()?.to_vec());
        let receipts: Vec<Box<RawValue>> = serde_json::from_slice(reader.bytes()?)
            .map_err(|_| ProtoError::Malformed("chain receipts"))?;
        reader.finish()?;
        let ciphertext_digest = Digest::of(&self.ciphertext);
        chain_key.verify_mac(
            &hop_mac_transcript(&chain_id, index, &self.enc, &ciphertext_digest),
            &self.tag,
            "chain hop MAC",
        )?;
        if inner_index != index || ticket.ticket.chain_id != chain_id {
            return Err(ProtoError::Tampered("sealed chain hop"));
        }
        ticket.verify()?;
        let body = HopBody {
            ticket,
            chain_key,
            index,
            value,
            receipts,
        };
        let session_secret = link.session_secret(&chain_id, index, &ciphertext_digest)?;
        Ok((body, session_secret))
    }

    /// Opens the link, then the hop over it.
    pub fn open(
        &self,
        namespace: &str,
        action: &str,
        keys: &KemKeyPair,
    ) -> Result<(HopBody, ExportedKey), ProtoError> {
        self.open_over(&self.open_link(namespace, action, keys)?)
    }
}

/// Parses and opens a hop: [`SealedHop::from_bytes`] then [`SealedHop::open`].
pub fn open_hop(
    bytes: &[u8],
    namespace: &str,
    action: &str,
    keys: &KemKeyPair,
) -> Result<(HopBody, ExportedKey), ProtoError> {
    SealedHop::from_bytes(bytes)?.open(namespace, action, keys)
}

/// The final answer of a chain's first run, sealed to the client (`R`, a
/// step's receipt, is signed on the wire; the client checks the chain with
/// the receipts alone once their signatures verified). A run of a
/// [chain session](crate::chain_session) answers with its own format. Its
/// `Debug` leaves the result out (plaintext inside the enclave).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainAnswer<R = SignedReceipt> {
    /// How the last step that ran ended.
    pub status: clemmys_whisk::ActivationStatus,
    /// Its result.
    pub result: serde_json::Value,
    /// The index of the last step that ran (below the last one only when
    /// the chain stopped on an error).
    pub last_index: u64,
    /// One receipt per step that ran, in order.
    pub receipts: Vec<R>,
}

impl<R: std::fmt::Debug> std::fmt::Debug for ChainAnswer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainAnswer")
            .field("status", &self.status)
            .field("last_index", &self.last_index)
            .field("receipts", &self.receipts)
            .finish_non_exhaustive()
    }
}

fn answer_aad(chain_id: &[u8; 16]) -> Vec<u8> {
    Writer::new("clemmys/chain-answer-aad/v1")
        .bytes(chain_id)
        .finish()
}

/// Seals the final answer (enclave side, with the receipts as the steps
/// passed them on).
pub fn seal_chain_answer<R: Serialize>(
    answer: &ChainAnswer<R>,
    key: &ChainKey,
    chain_id: &[u8; 16],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, ProtoError> {
    let json =
        Zeroizing::new(serde_json::to_vec(answer).map_err(|e| ProtoError::Crypto(e.to_string()))?);
    key.answer_key()?.seal(&json, &answer_aad(chain_id), rng)
}

/// Opens the final answer (client side).
pub fn open_chain_answer(
    sealed: &[u8],
    key: &ChainKey,
    chain_id: &[u8; 16],
) -> Result<ChainAnswer, ProtoError> {
    let json = Zeroizing::new(key.answer_key()?.open(
        sealed,
        &answer_aad(chain_id),
        "sealed chain answer",
    )?);
    serde_json::from_slice(&json).map_err(|_| ProtoError::Malformed("chain answer"))
}

fn logs_aad(chain_id: &[u8; 16], index: u64) -> Vec<u8> {
    Writer::new("clemmys/chain-logs-aad/v1")
        .bytes(chain_id)
        .u64(index)
        .finish()
}

/// Seals step `index`'s logs to the client.
pub fn seal_chain_logs(
    logs: &[String],
    key: &ChainKey,
    chain_id: &[u8; 16],
    index: u64,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, ProtoError> {
    let json =
        Zeroizing::new(serde_json::to_vec(logs).map_err(|e| ProtoError::Crypto(e.to_string()))?);
    key.logs_key(index)?
        .seal(&json, &logs_aad(chain_id, index), rng)
}

/// Opens step `index`'s logs.
pub fn open_chain_logs(
    sealed: &[u8],
    key: &ChainKey,
    chain_id: &[u8; 16],
    index: u64,
) -> Result<Vec<String>, ProtoError> {
    let json = Zeroizing::new(key.logs_key(index)?.open(
        sealed,
        &logs_aad(chain_id, index),
        "sealed chain logs",
    )?);
    serde_json::from_slice(&json).map_err(|_| ProtoError::Malformed("chain logs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::os_rng;

    fn plan(client: &ClientIdentity, keys: &[&KemKeyPair]) -> SignedTicket {
        ChainTicket {
            chain_id: [9; 16],
            steps: keys
                .iter()
                .enumerate()
                .map(|(i, key)| ChainStep {
                    namespace: "guest".into(),
                    action: format!("step{i}"),
                    version: 1,
                    code_digest: Digest::of(&[i as u8]),
                    entry: "_start".into(),
                    action_key: key.public(),
                })
                .collect(),
            client: client.id(),
            timestamp_ms: 5,
            open_session: false,
        }
        .sign(client)
    }

    fn hop(ticket: &SignedTicket, key: &ChainKey, index: u64) -> HopBody {
        HopBody {
            ticket: ticket.clone(),
            // A test fixture: the hop's own key with the same bytes.
            chain_key: ChainKey::from_bytes(*key.as_bytes()),
            index,
            value: Zeroizing::new(br#"{"v":1}"#.to_vec()),
            receipts: vec![],
        }
    }

    #[test]
    fn hops_open_only_at_their_step() {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let (a, b) = (
            KemKeyPair::generate(&mut rng),
            KemKeyPair::generate(&mut rng),
        );
        let ticket = plan(&client, &[&a, &b]);
        let key = ChainKey::generate(&mut rng);
        let link = HopLink::new(&ticket.ticket.steps[1], &mut rng).expect("link");
        let (sealed, sent) = seal_hop(&hop(&ticket, &key, 1), &link, &mut rng).expect("seal");
        let (opened, received) = open_hop(&sealed, "guest", "step1", &b).expect("open");
        assert_eq!(opened.index, 1);
        assert_eq!(
            sent.as_bytes(),
            received.as_bytes(),
            "both ends share the hop secret"
        );
        assert_eq!(opened.value.as_slice(), br#"{"v":1}"#);
        assert!(matches!(
            crate::inbound::SealedInput::from_bytes(&sealed),
            Ok(crate::inbound::SealedInput::ChainHop(_))
        ));
        // Delivered to another step (reorder, skip): its key and info differ.
        assert!(open_hop(&sealed, "guest", "step0", &a).is_err());
        // Any bit flipped fails.
        let mut flipped = sealed.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        assert!(open_hop(&flipped, "guest", "step1", &b).is_err());
    }

    #[test]
    fn hops_of_two_chains_over_one_link_open_only_as_themselves() {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let (a, b) = (
            KemKeyPair::generate(&mut rng),
            KemKeyPair::generate(&mut rng),
        );
        let first = plan(&client, &[&a, &b]);
        let mut second = first.ticket.clone();
        second.chain_id = [7; 16];
        let second = second.sign(&client);
        let key = ChainKey::generate(&mut rng);
        let link = HopLink::new(&first.ticket.steps[1], &mut rng).expect("link");
        assert!(
            seal_hop(&hop(&first, &key, 0), &link, &mut rng).is_err(),
            "a link to step 1 does not carry step 0's hop"
        );
        let (one, one_secret) = seal_hop(&hop(&first, &key, 1), &link, &mut rng).expect("seal");
        let (two, two_secret) = seal_hop(&hop(&second, &key, 1), &link, &mut rng).expect("seal");
        assert_ne!(one_secret.as_bytes(), two_secret.as_bytes());

        // The receiver opens the link once, then both hops over it.
        let (one, two) = (
            SealedHop::from_bytes(&one).expect("parse"),
            SealedHop::from_bytes(&two).expect("parse"),
        );
        assert_eq!(one.link_enc(), two.link_enc());
        let opened = one.open_link("guest", "step1", &b).expect("link");
        assert_eq!(opened.enc(), link.enc());
        let (body, secret) = one.open_over(&opened).expect("open");
        assert_eq!(body.ticket.ticket.chain_id, [9; 16]);
        assert_eq!(secret.as_bytes(), one_secret.as_bytes());
        assert_eq!(
            two.open_over(&opened)
                .expect("open")
                .0
                .ticket
                .ticket
                .chain_id,
            [7; 16]
        );

        // One chain's ciphertext under the other's header: its hop key
        // (chain id, index) differs.
        let mut spliced = two.clone();
        spliced.ciphertext = one.ciphertext.clone();
        assert!(spliced.open_over(&opened).is_err());
        // Another link's secret for the same encapsulated key: refused.
        let other = HopLink::new(&first.ticket.steps[1], &mut rng).expect("link");
        assert!(one.open_over(&other).is_err());
        // Only the receiving step's key opens the link.
        assert!(
            one.open_link("guest", "step1", &a)
                .and_then(|link| one.open_over(&link))
                .is_err()
        );
    }

    #[test]
    fn a_forged_ticket_or_foreign_chain_key_is_refused() {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let a = KemKeyPair::generate(&mut rng);
        let mut ticket = plan(&client, &[&a]);
        ticket.ticket.timestamp_ms += 1;
        let key = ChainKey::generate(&mut rng);
        let link = HopLink::new(&ticket.ticket.steps[0], &mut rng).expect("link");
        let (sealed, _) = seal_hop(&hop(&ticket, &key, 0), &link, &mut rng).expect("seal");
        assert_eq!(
            open_hop(&sealed, "guest", "step0", &a).err(),
            Some(ProtoError::BadSignature("chain ticket"))
        );
    }

    #[test]
    fn answers_and_logs_open_only_with_the_chain_key() {
        let mut rng = os_rng();
        let key = ChainKey::generate(&mut rng);
        let answer: ChainAnswer = ChainAnswer {
            status: clemmys_whisk::ActivationStatus::Success,
            result: serde_json::json!({"done": true}),
            last_index: 2,
            receipts: vec![],
        };
        let sealed = seal_chain_answer(&answer, &key, &[1; 16], &mut rng).expect("seal");
        assert_eq!(
            open_chain_answer(&sealed, &key, &[1; 16]).expect("open"),
            answer
        );
        assert!(
            open_chain_answer(&sealed, &key, &[2; 16]).is_err(),
            "another chain"
        );
        assert!(open_chain_answer(&sealed, &ChainKey::generate(&mut rng), &[1; 16]).is_err());
        let logs = seal_chain_logs(&["l".to_owned()], &key, &[1; 16], 0, &mut rng).expect("seal");
        assert!(
            open_chain_logs(&logs, &key, &[1; 16], 1).is_err(),
            "another step"
        );
        assert_eq!(
            open_chain_logs(&logs, &key, &[1; 16], 0).expect("open"),
            vec!["l".to_owned()]
        );
    }
}
