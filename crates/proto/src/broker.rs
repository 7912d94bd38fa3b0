//! Messages of the key broker (the paper's configuration and attestation
//! service):
//!
//! * client ↔ broker: [`BrokerRequest`]s sealed with HPKE to the broker's
//!   attested key and signed by the client; the [`BrokerReply`] is sealed
//!   under a key exported from the request's context, so only the requester
//!   reads it and only the broker could have written it;
//! * enclave ↔ broker: a [`KeyRequest`] carrying the enclave's evidence and
//!   public keys; the [`KeyGrant`] (the action's secret key and policy) is
//!   sealed to the key the evidence binds and signed by the broker.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::evidence::Evidence;
use crate::identity::{ClientIdentity, EnclaveKeys, EnclavePublicKeys, SIGNATURE_LEN};
use crate::refusal::Refusal;
use crate::suite::{ExportedKey, HpkeMessage, KemKeyPair, hpke_open, hpke_seal};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, KemPublicKey, Measurement, ProtoError, SigningPublicKey};
use clemmys_whisk::limits::{ActionLimits, LimitError};

/// Who may receive an action's key and who may invoke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Enclave measurements allowed to receive the action key.
    pub allowed_measurements: Vec<Measurement>,
    /// Refuse evidence that does not come from hardware (e.g. `sim`).
    pub require_hardware: bool,
    /// Clients allowed to invoke, besides the owner.
    #[serde(default)]
    pub allowed_clients: Vec<ClientId>,
    /// Versions below this are refused even if presented correctly sealed.
    #[serde(default)]
    pub min_version: u64,
    /// The export enclaves run (`exec.main`), whatever the host names.
    #[serde(default = "default_entry")]
    pub entry: String,
    /// What the registration names. Absent (an action) in registrations
    /// made before sequences were registered.
    #[serde(default, skip_serializing_if = "RegisteredKind::is_action")]
    pub kind: RegisteredKind,
    /// The limits enclaves run the action under, whatever the host's
    /// record of the action says. Absent in registrations made before
    /// limits were bound: enclaves then take the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BoundLimits>,
}

/// The limits of an action's runs that the owner binds into its policy:
/// the host writes the action's record, so limits taken from it would let
/// the provider choose them, and learn, from a chain step's public stop,
/// whether the step's memory use (which may depend on secret input) is
/// above a threshold of its choice, or change what a guest that reads its
/// deadline answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundLimits {
    /// Wall-clock limit of one run, in milliseconds.
    pub timeout_ms: u64,
    /// Memory limit, in OpenWhisk MB.
    pub memory_mb: u32,
    /// Log size limit, in OpenWhisk MB.
    pub logs_mb: u32,
}

impl BoundLimits {
    /// The bound part of `limits`.
    pub fn of(limits: &ActionLimits) -> Self {
        Self {
            timeout_ms: limits.timeout,
            memory_mb: limits.memory,
            logs_mb: limits.logs,
        }
    }

    /// `host`'s limits with the bound ones in their place (the host keeps
    /// only what schedules runs, such as concurrency).
    pub fn over(&self, host: ActionLimits) -> ActionLimits {
        ActionLimits {
            timeout: self.timeout_ms,
            memory: self.memory_mb,
            logs: self.logs_mb,
            ..host
        }
    }

    /// Checks them against OpenWhisk's ranges.
    pub fn validate(&self) -> Result<(), LimitError> {
        self.over(ActionLimits::default()).validate()
    }
}

impl Policy {
    /// The limits a run of this policy's action gets, given the host's.
    pub fn run_limits(&self, host: ActionLimits) -> ActionLimits {
        self.limits.map_or(host, |bound| bound.over(host))
    }

    /// Whether `next` releases the action key to exactly the enclaves this
    /// policy does (the same measurements, hardware required alike). When
    /// it does not, the next version gets a fresh key: one kept would still
    /// open, in an enclave this policy let have it, what is sealed for a
    /// version whose owner dropped that enclave (a flawed build, `sim`),
    /// and one kept over a widened policy would open, in a newly allowed
    /// enclave, what was sealed before.
    pub fn releases_key_alike(&self, next: &Policy) -> bool {
        let within = |these: &[Measurement], those: &[Measurement]| {
            these.iter().all(|measurement| those.contains(measurement))
        };
        self.require_hardware == next.require_hardware
            && within(&self.allowed_measurements, &next.allowed_measurements)
            && within(&next.allowed_measurements, &self.allowed_measurements)
    }
}

/// What a broker registration names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisteredKind {
    /// An action that enclaves run, under its action key.
    #[default]
    Action,
    /// A confidential sequence: registered so that a client that never
    /// ran it knows the name for one (and seals, whatever the node shows),
    /// and knows its newest signed plan (the registration's version is
    /// the plan's, its code digest the digest of the plan's bytes). No
    /// enclave runs it: its key is never released, and its policy allows
    /// no measurement.
    Sequence,
}

impl RegisteredKind {
    /// Whether it is [`RegisteredKind::Action`].
    pub fn is_action(&self) -> bool {
        *self == Self::Action
    }
}

pub(crate) fn default_entry() -> String {
    crate::code::DEFAULT_ENTRY.to_owned()
}

/// An action as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDescriptor {
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
    /// Current policy version.
    pub version: u64,
    /// SHA-256 of the current plaintext module.
    pub code_digest: Digest,
    /// Where code and parameters are sealed to.
    pub action_key: KemPublicKey,
    /// The client that registered the action.
    pub owner: ClientId,
    /// Its policy.
    pub policy: Policy,
}

impl ActionDescriptor {
    /// Whether `client` may invoke the action.
    pub fn allows_client(&self, client: &ClientId) -> bool {
        &self.owner == client || self.policy.allowed_clients.contains(client)
    }
}

/// What a client asks the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BrokerOp {
    /// Creates the action (and its key) or moves it to a new version.
    Register {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// New version: strictly above the current one.
        version: u64,
        /// Digest of the new plaintext module.
        code_digest: Digest,
        /// The new policy.
        policy: Policy,
    },
    /// Authorizes `gateway` (an attested gateway's client identity) to act
    /// for the requester, the owner, until `expires_ms`: to register and
    /// describe the owner's actions ([`BrokerRequest::on_behalf_of`]) and to
    /// invoke them (enclaves ask the broker at admission). The owner
    /// verified the gateway's evidence, naming `measurement`, first.
    Delegate {
        /// The gateway's identity.
        gateway: ClientId,
        /// The gateway's measurement, as the owner verified it.
        measurement: Measurement,
        /// When the delegation ends, epoch ms.
        expires_ms: u64,
    },
    /// Withdraws the requester's delegation to `gateway`: from the answer
    /// on, the broker refuses the gateway's requests for the owner and
    /// enclaves' admissions of its invocations.
    Revoke {
        /// The gateway's identity.
        gateway: ClientId,
    },
    /// Reads the current descriptor of `owner`'s action `namespace/name`.
    /// Registrations are keyed by their owner, so a client names the owner
    /// it trusts: nobody else's registration of the same name can answer.
    Describe {
        /// The identity that registered the action.
        owner: ClientId,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// A signed client request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRequest {
    /// The operation.
    pub op: BrokerOp,
    /// The signer.
    pub client: ClientId,
    /// Client clock, epoch ms.
    pub timestamp_ms: u64,
    /// Fresh per request: the broker answers each (client, nonce) once
    /// within its replay window and refuses the rest unanswered.
    #[serde(with = "crate::invoke::hex_bytes")]
    pub nonce: [u8; 16],
    /// The owner the signer acts for, under the owner's delegation (a
    /// gateway): `Register` and `Describe` are then the owner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<ClientId>,
}

/// An owner's delegation to a gateway, as the broker holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegation {
    /// Who delegates.
    pub owner: ClientId,
    /// To whom.
    pub gateway: ClientId,
    /// The gateway's measurement the owner verified.
    pub measurement: Measurement,
    /// When it ends, epoch ms.
    pub expires_ms: u64,
    /// The stamp of the owner's request that made it, or that revoked it:
    /// the broker accepts a later delegation or revocation of the same
    /// gateway only if stamped after it, so that neither can be replayed
    /// over the other (also across the broker's restarts).
    #[serde(default)]
    pub changed_ms: u64,
    /// Withdrawn by the owner (kept, with its stamp, so that a replay of
    /// the delegation cannot bring it back).
    #[serde(default)]
    pub revoked: bool,
}

impl Delegation {
    /// Whether it is in force at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.revoked && now_ms < self.expires_ms
    }
}

/// An opened [`BrokerReply`] and the broker's state version when it
/// answered, which the client compares with the highest it has seen
/// (a lower one is a rolled-back broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedBrokerReply {
    /// The broker's state version (monotonic, bound to its TEE counter).
    pub state_version: u64,
    /// The answer.
    pub reply: BrokerReply,
}

/// The broker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived reply per broker request, almost always the descriptor"
)]
pub enum BrokerReply {
    /// The action as it now stands.
    Action(ActionDescriptor),
    /// Refused, with the reason.
    Refused {
        /// Why.
        reason: String,
        /// Why, as a code the client decides by: only `unknown_action`
        /// says the action is not a registered confidential one (absent
        /// from brokers before it was added: read as some other refusal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<crate::refusal::Refusal>,
    },
    /// A delegation as it now stands (after `Delegate`).
    Delegated(Delegation),
    /// A delegation withdrawn (after `Revoke`).
    Revoked {
        /// The gateway that no longer acts for the owner.
        gateway: ClientId,
    },
}

const REQUEST_FRAME: &str = "clemmys/broker-request/v1";
const REQUEST_BODY: &str = "clemmys/broker-request-body/v1";
const REQUEST_INFO: &[u8] = b"clemmys/broker-request-info/v1";
const REPLY_LABEL: &[u8] = b"clemmys/broker-reply-key/v1";
const REPLY_FRAME: &str = "clemmys/broker-reply/v2";
const REPLY_KEY_LABEL: &str = "clemmys/broker-reply-salted-key/v2";
const REPLY_SALT_LEN: usize = 16;

fn request_signature_transcript(json: &[u8]) -> Vec<u8> {
    Writer::new("clemmys/broker-request-sig/v1")
        .bytes(json)
        .finish()
}

/// Seals and signs a request to the broker; keep the key to open the reply.
pub fn seal_broker_request(
    identity: &ClientIdentity,
    broker_key: &KemPublicKey,
    op: BrokerOp,
    timestamp_ms: u64,
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, ExportedKey), ProtoError> {
    seal_broker_request_for(identity, broker_key, op, None, timestamp_ms, rng)
}

/// Seals and signs a request to the broker made for `on_behalf_of` (an
/// owner who delegated to `identity`), or for `identity` itself.
pub fn seal_broker_request_for(
    identity: &ClientIdentity,
    broker_key: &KemPublicKey,
    op: BrokerOp,
    on_behalf_of: Option<ClientId>,
    timestamp_ms: u64,
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, ExportedKey), ProtoError> {
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let request = BrokerRequest {
        op,
        client: identity.id(),
        timestamp_ms,
        nonce,
        on_behalf_of,
    };
    let json = serde_json::to_vec(&request).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let signature = identity.sign(&request_signature_transcript(&json));
    let body = Writer::new(REQUEST_BODY)
        .bytes(&json)
        .bytes(&signature)
        .finish();
    let (message, key) = hpke_seal(broker_key, REQUEST_INFO, b"", &body, Some(REPLY_LABEL), rng)?;
    let key = key.ok_or(ProtoError::Crypto("no exported key".into()))?;
    Ok((
        Writer::new(REQUEST_FRAME)
            .bytes(&message.enc)
            .bytes(&message.ciphertext)
            .finish(),
        key,
    ))
}

/// Opens a request (broker side) and checks the client's signature.
pub fn open_broker_request(
    broker: &KemKeyPair,
    bytes: &[u8],
) -> Result<(BrokerRequest, ExportedKey), ProtoError> {
    let mut reader = Reader::new(bytes, REQUEST_FRAME)?;
    let message = HpkeMessage {
        enc: reader.array()?,
        ciphertext: reader.bytes()?.to_vec(),
    };
    reader.finish()?;
    let (body, key) = hpke_open(
        broker,
        &message,
        REQUEST_INFO,
        b"",
        Some(REPLY_LABEL),
        "broker request",
    )?;
    let key = key.ok_or(ProtoError::Crypto("no exported key".into()))?;
    let mut reader = Reader::new(&body, REQUEST_BODY)?;
    let json = reader.bytes()?;
    let signature: [u8; SIGNATURE_LEN] = reader.array()?;
    reader.finish()?;
    let request: BrokerRequest = serde_json::from_slice(json)
        .map_err(|_| ProtoError::Malformed("broker request is not valid JSON"))?;
    request.client.verify(
        &request_signature_transcript(json),
        &signature,
        "broker request",
    )?;
    Ok((request, key))
}

/// The key one reply is sealed under: derived from the request's exported
/// key and a salt the broker draws per reply, so that even a request
/// answered twice (replayed across a broker restart) never reuses a
/// (key, nonce) pair.
fn reply_key(key: &ExportedKey, salt: &[u8; REPLY_SALT_LEN]) -> Result<ExportedKey, ProtoError> {
    key.derive(&Writer::new(REPLY_KEY_LABEL).bytes(salt).finish())
}

/// Seals a reply (broker side) with the broker's current state version,
/// under a key of its own (see `reply_key`).
pub fn seal_broker_reply(
    reply: &BrokerReply,
    state_version: u64,
    key: &ExportedKey,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, ProtoError> {
    let json = serde_json::to_vec(reply).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let mut salt = [0u8; REPLY_SALT_LEN];
    rng.fill_bytes(&mut salt);
    let body = Writer::new(REPLY_FRAME)
        .u64(state_version)
        .bytes(&json)
        .finish();
    let sealed = reply_key(key, &salt)?.seal(&body, REPLY_FRAME.as_bytes(), rng)?;
    let mut framed = salt.to_vec();
    framed.extend_from_slice(&sealed);
    Ok(framed)
}

/// Opens a reply (client side).
pub fn open_broker_reply(
    sealed: &[u8],
    key: &ExportedKey,
) -> Result<OpenedBrokerReply, ProtoError> {
    let (salt, sealed) = sealed
        .split_first_chunk::<REPLY_SALT_LEN>()
        .ok_or(ProtoError::Malformed("broker reply too short"))?;
    let body = reply_key(key, salt)?.open(sealed, REPLY_FRAME.as_bytes(), "broker reply")?;
    let mut reader = Reader::new(&body, REPLY_FRAME)?;
    let state_version = reader.u64()?;
    let json = reader.bytes()?;
    reader.finish()?;
    let reply = serde_json::from_slice(json)
        .map_err(|_| ProtoError::Malformed("broker reply is not valid JSON"))?;
    Ok(OpenedBrokerReply {
        state_version,
        reply,
    })
}

/// Why a call over a [`BrokerLink`] failed, as the enclave sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// An admission request names a grant the broker does not know (it
    /// restarted, or the grant is forged): ask for a new grant.
    #[error("unknown grant: ask for the action key again")]
    UnknownGrant,
    /// The broker refused, with its reason.
    #[error("the key broker refused: {0}")]
    Refused(String),
    /// The broker could not be reached, or answered nonsense.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
}

/// How an enclave reaches the key broker: a function call when both run in
/// one process, HTTP when the broker runs as its own. The link belongs to
/// the provider; everything that crosses it authenticates itself (evidence,
/// grants sealed and signed to the enclave, admissions MACed both ways).
pub trait BrokerLink: Send + Sync + 'static {
    /// The broker's identity (keys and evidence).
    fn identity(&self) -> BrokerIdentity;
    /// Asks for an action key; answers the sealed grant.
    fn request_key(&self, request: &KeyRequest) -> Result<Vec<u8>, LinkError>;
    /// Admits one invocation, session request or chain step: the request
    /// is MACed with the enclave's grant's admission key, and so is the
    /// answer, so neither can be forged or altered on the way. Refuses a
    /// version that is not the action's current one and anything seen
    /// before within the replay window.
    fn admit(&self, request: &AdmitRequest) -> Result<AdmitReply, LinkError>;
}

/// An enclave asking for an action's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    /// The enclave's evidence; its report data must bind `enclave`.
    pub evidence: Evidence,
    /// The enclave's public keys.
    pub enclave: EnclavePublicKeys,
    /// The identity that registered the action (the broker keys actions by
    /// owner; a wrong owner yields another registration's key, under which
    /// nothing sealed for this owner's action opens).
    pub owner: ClientId,
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
}

/// What the broker provisions into an enclave.
pub struct KeyGrant {
    /// The action's descriptor (version, code digest, policy, owner).
    pub action: ActionDescriptor,
    /// The action's HPKE key pair.
    pub action_keys: KemKeyPair,
    /// Broker clock when granted, epoch ms.
    pub issued_at_ms: u64,
    /// Names this grant in admission requests.
    pub grant_id: [u8; 16],
    /// Authenticates admission requests and the broker's answers between
    /// this enclave and the broker, over any untrusted link.
    pub admission_key: AdmissionKey,
}

impl std::fmt::Debug for KeyGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGrant")
            .field("action", &self.action)
            .field("issued_at_ms", &self.issued_at_ms)
            .finish_non_exhaustive()
    }
}

const GRANT_FRAME: &str = "clemmys/sealed-grant/v1";
const GRANT_BODY: &str = "clemmys/grant-body/v1";

fn grant_info(request: &KeyRequest) -> Vec<u8> {
    Writer::new("clemmys/grant-info/v2")
        .bytes(request.owner.as_bytes())
        .str(&request.namespace)
        .str(&request.name)
        .finish()
}

fn grant_aad(request: &KeyRequest) -> Vec<u8> {
    Writer::new("clemmys/grant-aad/v2")
        .bytes(request.owner.as_bytes())
        .str(&request.namespace)
        .str(&request.name)
        .bytes(request.evidence.digest().as_bytes())
        .finish()
}

fn grant_signature_transcript(request: &KeyRequest, message: &HpkeMessage) -> Vec<u8> {
    Writer::new("clemmys/grant-sig/v1")
        .bytes(request.evidence.digest().as_bytes())
        .bytes(request.enclave.kem.as_bytes())
        .bytes(&message.enc)
        .bytes(Digest::of(&message.ciphertext).as_bytes())
        .finish()
}

/// Seals `grant` to the enclave that sent `request` and signs it with the
/// broker's key. The caller must have verified the request's evidence.
pub fn seal_grant(
    grant: &KeyGrant,
    request: &KeyRequest,
    broker: &EnclaveKeys,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, ProtoError> {
    let descriptor =
        serde_json::to_vec(&grant.action).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let body = Zeroizing::new(
        Writer::new(GRANT_BODY)
            .bytes(&descriptor)
            .bytes(grant.action_keys.secret_bytes().as_slice())
            .u64(grant.issued_at_ms)
            .bytes(&grant.grant_id)
            .bytes(&grant.admission_key.0)
            .finish(),
    );
    let (message, _) = hpke_seal(
        &request.enclave.kem,
        &grant_info(request),
        &grant_aad(request),
        &body,
        None,
        rng,
    )?;
    let signature = broker.sign(&grant_signature_transcript(request, &message));
    Ok(Writer::new(GRANT_FRAME)
        .bytes(&message.enc)
        .bytes(&message.ciphertext)
        .bytes(&signature)
        .finish())
}

/// Opens a grant (enclave side): checks the broker's signature, opens it
/// with the enclave's keys and checks it is for the action asked for.
pub fn open_grant(
    sealed: &[u8],
    request: &KeyRequest,
    enclave: &EnclaveKeys,
    broker_signing: &SigningPublicKey,
) -> Result<KeyGrant, ProtoError> {
    let mut reader = Reader::new(sealed, GRANT_FRAME)?;
    let message = HpkeMessage {
        enc: reader.array()?,
        ciphertext: reader.bytes()?.to_vec(),
    };
    let signature: [u8; SIGNATURE_LEN] = reader.array()?;
    reader.finish()?;
    broker_signing.verify(
        &grant_signature_transcript(request, &message),
        &signature,
        "key grant",
    )?;
    let (body, _) = hpke_open(
        enclave.kem(),
        &message,
        &grant_info(request),
        &grant_aad(request),
        None,
        "key grant",
    )?;
    let mut reader = Reader::new(&body, GRANT_BODY)?;
    let action: ActionDescriptor = serde_json::from_slice(reader.bytes()?)
        .map_err(|_| ProtoError::Malformed("grant descriptor"))?;
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(reader.array()?);
    let issued_at_ms = reader.u64()?;
    let grant_id = reader.array()?;
    let admission_key = AdmissionKey(reader.array()?);
    reader.finish()?;
    let action_keys = KemKeyPair::from_secret(&secret)?;
    if action.owner != request.owner
        || action.namespace != request.namespace
        || action.name != request.name
        || action.action_key != action_keys.public()
    {
        return Err(ProtoError::Tampered("key grant"));
    }
    Ok(KeyGrant {
        action,
        action_keys,
        issued_at_ms,
        grant_id,
        admission_key,
    })
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The key shared by one grant's enclave and the broker, zeroed on drop.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct AdmissionKey([u8; 32]);

impl AdmissionKey {
    /// A fresh key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }

    fn hmac(&self, transcript: &[u8]) -> Result<HmacSha256, ProtoError> {
        use hmac::{KeyInit, Mac};
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
        mac.update(transcript);
        Ok(mac)
    }

    fn mac(&self, transcript: &[u8]) -> Result<[u8; 32], ProtoError> {
        use hmac::Mac;
        Ok(self.hmac(transcript)?.finalize().into_bytes().into())
    }

    /// Checks `tag` over `transcript`, in constant time.
    fn verify(
        &self,
        transcript: &[u8],
        tag: &[u8; 32],
        what: &'static str,
    ) -> Result<(), ProtoError> {
        use hmac::Mac;
        self.hmac(transcript)?
            .verify_slice(tag)
            .map_err(|_| ProtoError::Tampered(what))
    }
}

impl std::fmt::Debug for AdmissionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionKey(<redacted>)")
    }
}

/// What an enclave asks the broker to admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Admission {
    /// One invocation, by its nonce.
    Invocation {
        /// The nonce, once per action.
        #[serde(with = "crate::invoke::hex_bytes")]
        nonce: [u8; 16],
    },
    /// One request of a session. The broker checks the version only: the
    /// session's keys live in one enclave, which refuses a repeated counter
    /// itself ([`CounterWindow`](crate::replay::CounterWindow)). Naming the
    /// request makes the MACed answer unique to it.
    SessionRequest {
        /// The session.
        #[serde(with = "crate::invoke::hex_bytes")]
        session_id: [u8; 16],
        /// The request's counter.
        counter: u64,
    },
    /// One step of a chain, once per chain.
    ChainStep {
        /// The chain.
        #[serde(with = "crate::invoke::hex_bytes")]
        chain_id: [u8; 16],
        /// The step.
        index: u64,
    },
}

/// An enclave's admission request, MACed with its grant's admission key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmitRequest {
    /// The grant whose key MACs this request.
    #[serde(with = "crate::invoke::hex_bytes")]
    pub grant_id: [u8; 16],
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
    /// The version the enclave runs for this request.
    pub version: u64,
    /// What to admit.
    pub admission: Admission,
    /// The request's timestamp (client clock), epoch ms.
    pub timestamp_ms: u64,
    /// HMAC-SHA256 (hex in JSON).
    #[serde(with = "crate::invoke::hex_bytes")]
    pub mac: [u8; 32],
    /// A client the action's policy does not name, whom the enclave asks
    /// the broker to admit as a gateway the owner delegated to (the
    /// broker refuses if no live delegation says so). MACed with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<ClientId>,
    /// Drawn inside the enclave for every request: everything else in it
    /// is what the provider sees, so without it the same input given to
    /// the same enclave again would make the same request, which an
    /// answer the provider recorded would admit again, broker or not.
    #[serde(with = "crate::invoke::hex_bytes")]
    pub challenge: [u8; 16],
}

impl AdmitRequest {
    fn transcript(&self) -> Vec<u8> {
        let writer = Writer::new("clemmys/admit-request/v2")
            .bytes(&self.challenge)
            .bytes(&self.grant_id)
            .str(&self.namespace)
            .str(&self.name)
            .u64(self.version)
            .u64(self.timestamp_ms);
        let writer = match self.admission {
            Admission::Invocation { nonce } => writer.u64(0).bytes(&nonce),
            Admission::ChainStep { chain_id, index } => writer.u64(1).bytes(&chain_id).u64(index),
            Admission::SessionRequest {
                session_id,
                counter,
            } => writer.u64(2).bytes(&session_id).u64(counter),
        };
        match &self.delegate {
            // Requests without a delegate keep their transcript.
            None => writer.finish(),
            Some(client) => writer.str("delegate").bytes(client.as_bytes()).finish(),
        }
    }

    /// A MACed request (enclave side), with a fresh challenge from `rng`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: &AdmissionKey,
        grant_id: [u8; 16],
        namespace: &str,
        name: &str,
        version: u64,
        admission: Admission,
        timestamp_ms: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, ProtoError> {
        let mut challenge = [0u8; 16];
        rng.fill_bytes(&mut challenge);
        let mut request = Self {
            grant_id,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version,
            admission,
            timestamp_ms,
            mac: [0; 32],
            delegate: None,
            challenge,
        };
        request.mac = key.mac(&request.transcript())?;
        Ok(request)
    }

    /// This request for `delegate`, a client the policy does not name (see
    /// [`AdmitRequest::delegate`]), MACed again if that changes it.
    pub fn for_delegate(
        mut self,
        key: &AdmissionKey,
        delegate: Option<ClientId>,
    ) -> Result<Self, ProtoError> {
        // Most requests have no delegate: their MAC already covers that.
        if self.delegate == delegate {
            return Ok(self);
        }
        self.delegate = delegate;
        self.mac = key.mac(&self.transcript())?;
        Ok(self)
    }

    /// Checks the MAC (broker side).
    pub fn verify(&self, key: &AdmissionKey) -> Result<(), ProtoError> {
        key.verify(&self.transcript(), &self.mac, "admission request")
    }
}

/// The broker's answer to an [`AdmitRequest`], MACed with the same key and
/// bound to the request's MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmitReply {
    /// Why it was refused; `None` when admitted.
    pub refusal: Option<String>,
    /// The refusal's code (MACed with the rest), for the enclave to pass
    /// on and the client to decide by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Refusal>,
    /// With a refusal of a request stamped before the broker's replay
    /// floor (it restarted): the floor, at or after which the client
    /// re-stamps. MACed with the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
    /// HMAC-SHA256 (hex in JSON).
    #[serde(with = "crate::invoke::hex_bytes")]
    pub mac: [u8; 32],
}

fn reply_transcript(
    request: &AdmitRequest,
    refusal: Option<&str>,
    code: Option<Refusal>,
    not_before_ms: Option<u64>,
) -> Vec<u8> {
    let writer = Writer::new("clemmys/admit-reply/v4").bytes(&request.mac);
    let writer = match refusal {
        None => writer.u64(0),
        Some(reason) => writer.u64(1).str(reason),
    };
    let writer = match code {
        None => writer.u64(0),
        Some(code) => writer.u64(1).str(code.code()),
    };
    match not_before_ms {
        None => writer.u64(0),
        Some(floor) => writer.u64(1).u64(floor),
    }
    .finish()
}

impl AdmitReply {
    /// The broker's MACed answer: admitted, or refused with a code and a
    /// reason.
    pub fn new(
        key: &AdmissionKey,
        request: &AdmitRequest,
        refusal: Option<(Refusal, String)>,
    ) -> Result<Self, ProtoError> {
        let (code, refusal) =
            refusal.map_or((None, None), |(code, reason)| (Some(code), Some(reason)));
        let mac = key.mac(&reply_transcript(request, refusal.as_deref(), code, None))?;
        Ok(Self {
            refusal,
            code,
            not_before_ms: None,
            mac,
        })
    }

    /// The broker's MACed refusal of a request stamped before its replay
    /// floor `floor_ms`.
    pub fn stamped_before_floor(
        key: &AdmissionKey,
        request: &AdmitRequest,
        reason: String,
        floor_ms: u64,
    ) -> Result<Self, ProtoError> {
        let code = Some(Refusal::StampedBeforeFloor);
        let mac = key.mac(&reply_transcript(
            request,
            Some(&reason),
            code,
            Some(floor_ms),
        ))?;
        Ok(Self {
            refusal: Some(reason),
            code,
            not_before_ms: Some(floor_ms),
            mac,
        })
    }

    /// Checks the answer came from the broker for this request (enclave
    /// side); then `Ok(Ok(()))` when admitted, `Ok(Err((code, reason)))`
    /// if not.
    pub fn verify(
        &self,
        key: &AdmissionKey,
        request: &AdmitRequest,
    ) -> Result<Result<(), (Refusal, String)>, ProtoError> {
        key.verify(
            &reply_transcript(
                request,
                self.refusal.as_deref(),
                self.code,
                self.not_before_ms,
            ),
            &self.mac,
            "broker admission answer",
        )?;
        Ok(match &self.refusal {
            None => Ok(()),
            Some(reason) => Err((self.code.unwrap_or(Refusal::Other), reason.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::TeeKind;
    use crate::suite::tests::os_rng;

    fn descriptor(owner: ClientId, key: KemPublicKey) -> ActionDescriptor {
        ActionDescriptor {
            namespace: "guest".into(),
            name: "a".into(),
            version: 1,
            code_digest: Digest::of(b"code"),
            action_key: key,
            owner,
            policy: Policy {
                allowed_measurements: vec![Measurement::sim([1; 32])],
                require_hardware: false,
                allowed_clients: vec![],
                min_version: 1,
                entry: "_start".into(),
                kind: RegisteredKind::Action,
                limits: None,
            },
        }
    }

    #[test]
    fn a_policy_releases_the_key_alike_only_to_the_same_enclaves() {
        let key = KemKeyPair::generate(&mut os_rng()).public();
        let current = descriptor(ClientIdentity::generate(&mut os_rng()).id(), key).policy;
        let changed = |edit: fn(&mut Policy)| {
            let mut next = current.clone();
            edit(&mut next);
            current.releases_key_alike(&next)
        };
        // What decides where the key goes.
        assert!(!changed(|next| next.require_hardware = true));
        assert!(!changed(|next| next.allowed_measurements.clear()));
        assert!(!changed(
            |next| next.allowed_measurements[0] = Measurement::sim([2; 32])
        ));
        assert!(!changed(|next| {
            next.allowed_measurements.push(Measurement::sim([2; 32]))
        }));
        // What does not.
        assert!(changed(|next| {
            next.allowed_measurements.push(Measurement::sim([1; 32]))
        }));
        assert!(changed(|next| next.min_version = 7));
        assert!(changed(|next| next.entry = "other".into()));
        assert!(changed(|next| next
            .allowed_clients
            .push(ClientIdentity::generate(&mut os_rng()).id())));
    }

    #[test]
    fn client_requests_are_confidential_signed_and_answered_privately() {
        let mut rng = os_rng();
        let broker = EnclaveKeys::generate(&mut rng);
        let client = ClientIdentity::generate(&mut rng);
        let op = BrokerOp::Describe {
            owner: client.id(),
            namespace: "guest".into(),
            name: "a".into(),
        };
        let (sealed, key) =
            seal_broker_request(&client, &broker.public().kem, op.clone(), 5, &mut rng)
                .expect("seal");
        let (request, broker_key) = open_broker_request(broker.kem(), &sealed).expect("open");
        assert_eq!(request.op, op);
        assert_eq!(request.client, client.id());
        let reply = BrokerReply::Refused {
            reason: "nope".into(),
            refusal: Some(crate::refusal::Refusal::UnknownAction),
        };
        let sealed_reply = seal_broker_reply(&reply, 7, &broker_key, &mut rng).expect("seal");
        let opened = open_broker_reply(&sealed_reply, &key).expect("open");
        assert_eq!(opened.reply, reply);
        assert_eq!(opened.state_version, 7);
        // A second answer to the same request is sealed under another key:
        // the same plaintext gives another ciphertext.
        let again = seal_broker_reply(&reply, 7, &broker_key, &mut rng).expect("seal");
        assert_ne!(again[REPLY_SALT_LEN..], sealed_reply[REPLY_SALT_LEN..]);
        assert!(open_broker_reply(&sealed_reply[..REPLY_SALT_LEN - 1], &key).is_err());
        // Each request carries its own nonce.
        let (other, _) =
            seal_broker_request(&client, &broker.public().kem, op.clone(), 5, &mut rng)
                .expect("seal");
        let (other, _) = open_broker_request(broker.kem(), &other).expect("open");
        assert_ne!(other.nonce, request.nonce);

        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(open_broker_request(broker.kem(), &flipped).is_err());
    }

    #[test]
    fn grants_open_only_for_the_requesting_enclave_and_from_the_broker() {
        let mut rng = os_rng();
        let broker = EnclaveKeys::generate(&mut rng);
        let enclave = EnclaveKeys::generate(&mut rng);
        let action_keys = KemKeyPair::generate(&mut rng);
        let owner = ClientIdentity::generate(&mut rng).id();
        let request = KeyRequest {
            evidence: Evidence {
                tee: TeeKind::Sim,
                data: vec![1],
            },
            enclave: enclave.public(),
            owner,
            namespace: "guest".into(),
            name: "a".into(),
        };
        let grant = KeyGrant {
            action: descriptor(owner, action_keys.public()),
            action_keys: KemKeyPair::from_secret(&action_keys.secret_bytes()).expect("key"),
            issued_at_ms: 9,
            grant_id: [3; 16],
            admission_key: AdmissionKey::generate(&mut rng),
        };
        let sealed = seal_grant(&grant, &request, &broker, &mut rng).expect("seal");
        let opened =
            open_grant(&sealed, &request, &enclave, &broker.public().signing).expect("open");
        assert_eq!(opened.action, grant.action);
        assert_eq!(opened.action_keys.public(), action_keys.public());

        // Another enclave cannot open it.
        let thief = EnclaveKeys::generate(&mut rng);
        assert!(open_grant(&sealed, &request, &thief, &broker.public().signing).is_err());
        // A grant not signed by the broker is refused.
        let impostor = EnclaveKeys::generate(&mut rng);
        let forged = seal_grant(&grant, &request, &impostor, &mut rng).expect("seal");
        assert!(matches!(
            open_grant(&forged, &request, &enclave, &broker.public().signing),
            Err(ProtoError::BadSignature(_))
        ));
        assert_eq!(opened.grant_id, [3; 16]);
        // A grant made for other evidence does not open for this request.
        let mut other = request.clone();
        other.evidence.data = vec![2];
        assert!(open_grant(&sealed, &other, &enclave, &broker.public().signing).is_err());
        // Nor for the same name asked of another owner.
        let mut other = request.clone();
        other.owner = ClientId([9; 32]);
        assert!(open_grant(&sealed, &other, &enclave, &broker.public().signing).is_err());
    }

    #[test]
    fn admission_answers_are_bound_to_their_request_and_key() {
        let mut rng = os_rng();
        let key = AdmissionKey::generate(&mut rng);
        let invocation = |nonce: u8, rng: &mut _| {
            AdmitRequest::new(
                &key,
                [1; 16],
                "guest",
                "a",
                2,
                Admission::Invocation { nonce: [nonce; 16] },
                7,
                rng,
            )
            .expect("request")
        };
        let request = invocation(5, &mut rng);
        request.verify(&key).expect("the broker accepts it");
        let mut forged = request.clone();
        forged.version = 1;
        assert!(forged.verify(&key).is_err(), "a changed request is refused");
        let admitted = AdmitReply::new(&key, &request, None).expect("reply");
        assert_eq!(admitted.verify(&key, &request).expect("authentic"), Ok(()));
        let refused = AdmitReply::new(&key, &request, Some((Refusal::Replayed, "replayed".into())))
            .expect("reply");
        assert_eq!(
            refused.verify(&key, &request).expect("authentic"),
            Err((Refusal::Replayed, "replayed".into()))
        );
        // Nor can it change the refusal's code (to make a client retry).
        let mut recoded = refused.clone();
        recoded.code = Some(Refusal::StaleVersion);
        assert!(recoded.verify(&key, &request).is_err());
        // The floor of a restarted broker is MACed with the refusal.
        let floored =
            AdmitReply::stamped_before_floor(&key, &request, "early".into(), 99).expect("reply");
        assert!(floored.verify(&key, &request).is_ok());
        let mut moved = floored.clone();
        moved.not_before_ms = Some(u64::MAX);
        assert!(moved.verify(&key, &request).is_err());
        // A provider that flips a refusal into an admission is caught.
        let mut flipped = refused.clone();
        flipped.refusal = None;
        assert!(flipped.verify(&key, &request).is_err());
        // An answer to another request does not verify for this one.
        let other = invocation(6, &mut rng);
        assert!(admitted.verify(&key, &other).is_err());
        // Nor does it for the same request made again: each draws its own
        // challenge, so a recorded answer admits nothing twice.
        let again = invocation(5, &mut rng);
        assert_ne!(again.challenge, request.challenge);
        assert!(admitted.verify(&key, &again).is_err());
        assert!(
            admitted
                .verify(&AdmissionKey::generate(&mut rng), &request)
                .is_err()
        );
    }
}

/// The broker's public identity: its keys and the evidence binding them to
/// its measurement. Clients verify it before sending anything secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerIdentity {
    /// Evidence whose report data binds `keys`.
    pub evidence: Evidence,
    /// The broker's HPKE and signing keys.
    pub keys: EnclavePublicKeys,
}
