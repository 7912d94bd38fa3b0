//! The confidential layer: everything a client does so that the provider
//! sees only ciphertext.
//!
//! * [`BrokerIdentityDoc`] and [`BrokerPin`]: the broker's attested identity
//!   and what the client pinned about it (measurement; for `sim`, the
//!   platform key). Nothing secret goes to a broker that does not verify.
//! * [`Confidential::deploy`]: registers the action's policy and code digest
//!   with the broker, seals the code to the action key, stores it.
//! * [`Confidential::invoke`]: seals parameters to the action key, binding
//!   namespace, action, version, code digest, a nonce and a timestamp;
//!   opens the sealed answer and verifies the enclave's receipt.
//!
//! The specification is `docs/PROTOCOL.md`.

mod chain;
mod home;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clemmys_proto::broker::{
    ActionDescriptor, BoundLimits, BrokerIdentity, BrokerOp, BrokerReply, Delegation,
    OpenedBrokerReply, Policy, RegisteredKind, open_broker_reply, seal_broker_request_for,
};
use clemmys_proto::chain_check::ChainCheckError;
use clemmys_proto::chain_plan::{
    CHAIN_PLAN_ANNOTATION, ChainPlan, ChainPlanError, PlanComponent, SignedChainPlan,
    VerifiedChainPlan,
};
use clemmys_proto::code::{
    CodeBinding, CodeWithDefaults, DEFAULT_ENTRY, DEFAULTS_SALT_BYTES, DefaultParameters,
    JavaScriptCode, SealedCode,
};
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::invoke::{
    InvocationHeader, PendingAnswer, Receipt, SealedInvocation, SealedResultBody, SignedReceipt,
    open_logs, open_result, seal_invocation,
};
use clemmys_proto::refusal::Refusal;
use clemmys_proto::session::{
    SessionBinding, SessionInvocation, SessionKeys, SessionReceipt, SessionSalt,
    open_session_result,
};
use clemmys_proto::{ClientId, Digest, Measurement, ProtoError, SigningPublicKey, TeeKind};
use clemmys_tee::{
    AttestError, Evidence, Role, SIM_WARNING, SgxPolicy, VerifiedEvidence, Verifier, measurement,
    os_rng,
};
use clemmys_whisk::action::{ActionPut, ExecPut, FinalParameterOverridden};
use clemmys_whisk::limits::ActionLimitsPut;
use clemmys_whisk::{
    ActionLimits, Activation, ActivationId, ActivationResponse, ActivationStatus,
    CONFIDENTIAL_ANNOTATION, KeyValues, LimitError, now_ms,
};
use hyper::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub use home::{
    BrokerPin, ChainEntry, ClientHome, HomeVault, KeyringEntry, OpenedSession, Recalled,
    SessionEntry, SessionSecret,
};

use crate::{Client, ClientError, InvokeOptions, Invoked};

/// The field of a confidential invoke body (and result) holding sealed bytes.
pub const SEALED_FIELD: &str = "sealed";
/// The prefix of the log line that carries a confidential activation's
/// sealed logs.
pub const SEALED_LOGS_PREFIX: &str = "sealed:";
/// The annotations of the node's activation record that are shown beside
/// its opened, verified answer ([`OpenedActivation::reveal`]): its `path`,
/// rewritten from what this client invoked, and timings and a kind that
/// OpenWhisk clients read, each only with a value of its type that no
/// verified answer contradicts. Everything else the node writes is left
/// out: its claims about the run (what started it, a timeout, the limits
/// it records, where the enclave ran under the policy's) and whatever it
/// makes up.
pub const SHOWN_RECORD_ANNOTATIONS: [&str; 5] = ["path", "kind", "waitTime", "initTime", "topmost"];
/// What the enclave says when a fresh request would succeed.
/// The field of a refused result holding a restarted broker's replay floor.
const NOT_BEFORE_FIELD: &str = "notBeforeMs";
/// The field of a refused activation's result naming the refusal's code.
const REFUSAL_FIELD: &str = "refusal";
/// How far ahead of this client's clock a broker's replay floor may be for
/// the client to re-stamp at it: the broker's allowed skew (30 s) and some
/// clock difference. A provider that sends a later "floor" would otherwise
/// obtain a request signed for the future, to submit then.
const MAX_FLOOR_AHEAD_MS: u64 = 60 * 1000;

/// What adds annotations bound to the policy version a deploy registers
/// (the gateway's web tag).
type VersionAnnotator<'a> = &'a (dyn Fn(u64, &mut KeyValues) + Sync);

/// A confidential operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfidentialError {
    /// The API call failed.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// The broker's identity or an enclave's receipt failed attestation.
    #[error("attestation failed: {0}")]
    Attestation(String),
    /// The broker's measurement is not the one pinned or expected.
    #[error("the key broker reports measurement {found}, but {expected} is expected")]
    UnexpectedMeasurement {
        /// What the broker reported.
        found: Measurement,
        /// What the client expects.
        expected: Measurement,
    },
    /// No broker is pinned for this API host yet.
    #[error("no key broker is trusted for {0} yet: run `clemmys broker trust` first")]
    NotPinned(String),
    /// The broker presents something other than what was pinned: never
    /// accepted silently.
    #[error(
        "the key broker of {api_host} is not the one pinned ({changes}): if this is expected, run `clemmys broker trust` again"
    )]
    BrokerChanged {
        /// The API host.
        api_host: String,
        /// What changed, pinned → presented.
        changes: String,
    },
    /// The pin names no namespace (made by an older release).
    #[error(
        "the broker pin of {0} names no namespace: run `clemmys broker trust` again (the namespace is fixed there, not taken from the controller)"
    )]
    NoNamespace(String),
    /// A descriptor or plan of an identity this client does not trust.
    #[error(
        "action {action} is registered by {owner}, which this client does not trust (trust it with `clemmys broker trust --trust-owner {owner}`)"
    )]
    UntrustedOwner {
        /// The action.
        action: String,
        /// Its owner.
        owner: clemmys_proto::ClientId,
    },
    /// Under a broker pinned on hardware, a policy that lets `sim`
    /// enclaves (the provider's own processes) run the action.
    #[error(
        "the key broker is pinned on hardware, and the policy of action {0} lets a `sim` enclave (which gives NO hardware protection) run it: its key may be the provider's, so nothing is sealed for it (a new version deployed from a client pinned on hardware requires hardware, and gets a fresh key)"
    )]
    SimAllowedUnderHardware(String),
    /// The broker kept an action's key over a new version whose policy
    /// releases it to other enclaves: an enclave the old policy let have
    /// it would open what is sealed for the new one.
    #[error(
        "the key broker kept the key of action {0} over a policy that releases it to other enclaves: nothing was stored; the broker is not one this client can trust with the change"
    )]
    KeyKeptOverNewPolicy(String),
    /// The broker refused the request.
    #[error("the key broker refused: {0}")]
    Refused(String),
    /// The broker holds no confidential action of that name by a trusted
    /// owner: its own answer, sealed, which the node cannot forge. Only
    /// this refusal lets a client treat a name as not confidential; any
    /// other (a throttled client) is an error.
    #[error("the key broker knows no such confidential action: {0}")]
    NotRegistered(String),
    /// The node stored a new version's code but the broker did not register
    /// it: the action refuses to run until it is deployed again.
    #[error(
        "the node stored version {version} of {action}, but the key broker did not register it ({reason}): deploy it again (`clemmys action update {action} FILE`)"
    )]
    StoredNotRegistered {
        /// The action.
        action: String,
        /// The version stored.
        version: u64,
        /// Why the registration failed.
        reason: String,
    },
    /// The enclave refused to run the invocation, or the platform failed.
    #[error("{0}")]
    Execution(String),
    /// The enclave refused the request, for the reason its code names (as
    /// recorded by the provider: a hint, which at worst makes the client
    /// retry once or give up).
    #[error("{message}")]
    EnclaveRefused {
        /// The refusal's code.
        refusal: Refusal,
        /// What the record says.
        message: String,
    },
    /// The request was stamped before the replay floor of a broker that
    /// restarted; a request stamped at or after `floor_ms` is accepted (the
    /// client does so, once, when the floor is near enough).
    #[error("{message}")]
    StampedBeforeFloor {
        /// The broker's floor, epoch ms (as the provider relayed it).
        floor_ms: u64,
        /// The refusal.
        message: String,
    },
    /// The broker answered from state older than this client has seen from
    /// it: its state was rolled back (an old copy of its data restored).
    #[error(
        "the key broker answered from state version {found}, but this client has seen version {highest}: its state was rolled back"
    )]
    BrokerRolledBack {
        /// The state version of the answer.
        found: u64,
        /// The highest this client has seen.
        highest: u64,
    },
    /// The broker described an action at a lower version than this client
    /// has seen: the action was rolled back.
    #[error(
        "the key broker describes {action} at version {found}, but this client has seen version {highest}: it was rolled back"
    )]
    ActionRolledBack {
        /// `namespace/name`.
        action: String,
        /// The version described.
        found: u64,
        /// The highest this client has seen.
        highest: u64,
    },
    /// The broker says it knows no confidential action of this name, which
    /// it never forgets, and this client has seen a version of it.
    #[error(
        "the key broker says it knows no confidential action {action}, but this client has seen version {highest} of it: the broker was rolled back or is another one, so nothing was sent"
    )]
    ActionForgotten {
        /// `namespace/name`.
        action: String,
        /// The highest version this client has seen.
        highest: u64,
    },
    /// A sealed object did not open or verify: the provider tampered with,
    /// replayed, swapped or substituted something.
    #[error("tampering detected: {0}")]
    Tampered(ProtoError),
    /// The receipt does not prove what the client asked for.
    #[error("the receipt does not match the request: {0}")]
    ReceiptMismatch(&'static str),
    /// A confidential sequence's signed plan was refused: missing, forged,
    /// another sequence's, older than one seen, or not what the controller
    /// lists.
    #[error("the confidential sequence's plan is refused: {0}")]
    ChainPlan(#[from] ChainPlanError),
    /// A chain's answer does not prove that its ticket ran as signed.
    #[error("the chain's answer does not prove its ticket ran: {0}")]
    Chain(ChainCheckError),
    /// A confidential sequence named as a component of another.
    #[error(
        "{0} is a confidential sequence, and a confidential sequence cannot be a component of another: list its actions instead"
    )]
    NestedChain(String),
    /// A name the key broker registers as a confidential sequence, used
    /// as an action: the node shows it as one (the provider replaced the
    /// sequence), or it is named as a component of a chain.
    #[error(
        "the key broker registers {0} as a confidential sequence, but it is used as an action here (the node shows it as one, or it is a component of a chain): nothing was sealed or sent"
    )]
    RegisteredSequence(String),
    /// The node shows as a plain action a name that a trusted owner
    /// registered with the key broker as confidential: its owner deleted
    /// the confidential action and put a plain one under the name (the
    /// broker keeps every registration), or the provider replaced it.
    #[error(
        "the node shows {0} as a plain action, but it is registered with the key broker as confidential: nothing was sealed or sent. If the confidential action was deleted and a plain one created under its name, the broker still holds the confidential one: update it with code (`action update NAME FILE`) to make it confidential again, or use another name; otherwise the provider replaced it"
    )]
    ShownAsPlain(String),
    /// The node stored a confidential sequence but the broker did not
    /// register it: clients that never ran it cannot tell it is one.
    #[error(
        "the node stored sequence {sequence}, but the key broker did not register it ({reason}): create it again with `--overwrite`/`action update`, so that clients that never ran it know it is confidential"
    )]
    SequenceNotRegistered {
        /// The sequence.
        sequence: String,
        /// Why the registration failed.
        reason: String,
    },
    /// This client holds no key for that activation.
    #[error("activation {0} was not invoked by this client (no key in its keyring)")]
    NoKey(String),
    /// This client was answered under activation id `0` twice: the node
    /// reused an id, and which answer it names cannot be told.
    #[error(
        "activation {0} answered two invocations of this client: the node reused the id, so neither answer is shown as its"
    )]
    ActivationIdReused(String),
    /// The activation is not a confidential one, or not finished.
    #[error("activation {0} carries no sealed answer")]
    NotSealed(String),
    /// The node gave the record of another activation for one this client
    /// opened.
    #[error(
        "the node answered for activation {requested} with the record of activation {given}: refusing to show it"
    )]
    RecordOfAnother {
        /// The activation opened.
        requested: ActivationId,
        /// The one the node's record is of.
        given: ActivationId,
    },
    /// The client's state directory.
    #[error("client state: {0}")]
    State(String),
    /// The invoke names a parameter this client sealed as a `final`
    /// default of the action: refused before anything is sealed or sent,
    /// as OpenWhisk refuses it (400) before running anything.
    #[error(transparent)]
    FinalParameterOverridden(#[from] FinalParameterOverridden),
    /// A limit out of OpenWhisk's range: refused before anything is
    /// registered or sent.
    #[error(transparent)]
    Limits(#[from] LimitError),
    /// The action's default parameters are over the payload limit.
    #[error("the default parameters take {size} bytes, over the limit of {limit}")]
    DefaultParametersTooLarge {
        /// Their size as JSON.
        size: usize,
        /// [`clemmys_whisk::limits::MAX_PAYLOAD_BYTES`].
        limit: usize,
    },
    /// The action is not at the policy version the caller may run
    /// ([`Confidential::invoke_version`]): nothing was sealed or sent.
    #[error("{action} is at policy version {current}, not {expected}: nothing was run")]
    VersionNotCurrent {
        /// The action.
        action: String,
        /// The version the caller may run.
        expected: u64,
        /// The broker's current version.
        current: u64,
    },
}

impl From<ChainCheckError> for ConfidentialError {
    fn from(error: ChainCheckError) -> Self {
        match error {
            // A sealed part or the receipts' MAC failed: tampering, as
            // for any other sealed object.
            ChainCheckError::Tampered(error) => ConfidentialError::Tampered(error),
            other => ConfidentialError::Chain(other),
        }
    }
}

impl From<ProtoError> for ConfidentialError {
    fn from(error: ProtoError) -> Self {
        ConfidentialError::Tampered(error)
    }
}

/// `GET /api/v1/broker/identity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerIdentityDoc {
    /// The TEE kind.
    pub tee: TeeKind,
    /// The provider's statement of what `sim` does not protect.
    #[serde(default)]
    pub warning: Option<String>,
    /// Keys and evidence.
    pub identity: BrokerIdentity,
    /// For `sim`: the platform key that signs reports on that host.
    #[serde(default)]
    pub sim_platform_key: Option<SigningPublicKey>,
    /// The broker's replay floor (epoch ms): requests stamped earlier are
    /// refused. Unauthenticated: only a hint, bounded like a refusal's.
    #[serde(default)]
    pub replay_floor_ms: Option<u64>,
}

impl BrokerIdentityDoc {
    /// Fetches the identity document of `client`'s API host.
    pub async fn fetch(client: &Client) -> Result<Self, ConfidentialError> {
        Ok(client
            .request(Method::GET, "/broker/identity", None)
            .await?
            .json("broker identity")?)
    }

    /// The measurement the evidence claims, before verification (to show).
    pub fn claimed_measurement(&self) -> Result<Measurement, ConfidentialError> {
        let verifier = verifier_for(self.sim_platform_key);
        let verified = verifier
            .verify(&self.identity.evidence)
            .map_err(attestation)?;
        Ok(verified.measurement())
    }

    /// Verifies the evidence against `expected_measurement` and, for `sim`,
    /// `trusted_platform`; answers what to pin.
    pub fn verify(
        &self,
        expected_measurement: Measurement,
        trusted_platform: Option<SigningPublicKey>,
    ) -> Result<BrokerPin, ConfidentialError> {
        let verifier = verifier_for(trusted_platform);
        let verified = verifier
            .verify(&self.identity.evidence)
            .map_err(attestation)?;
        verified
            .check_binds(&self.identity.keys)
            .map_err(attestation)?;
        if verified.measurement() != expected_measurement {
            return Err(ConfidentialError::UnexpectedMeasurement {
                found: verified.measurement(),
                expected: expected_measurement,
            });
        }
        let tee = verified.tee();
        Ok(BrokerPin {
            tee,
            measurement: verified.measurement(),
            // A hardware pin trusts no `sim` platform: the provider holds
            // that key and could otherwise pass its own "enclaves" off.
            sim_platform: trusted_platform.filter(|_| !tee.is_hardware()),
            keys: self.identity.keys,
            namespace: None,
            trusted_owners: Vec::new(),
        })
    }

    /// What differs between the pinned broker and this document, if
    /// anything (keys, TEE kind).
    pub fn changes_from(&self, pin: &BrokerPin) -> Option<String> {
        let mut changes = Vec::new();
        if self.tee != pin.tee {
            changes.push(format!("TEE {} → {}", pin.tee.name(), self.tee.name()));
        }
        if self.identity.keys.kem != pin.keys.kem {
            changes.push(format!(
                "HPKE key {} → {}",
                pin.keys.kem, self.identity.keys.kem
            ));
        }
        if self.identity.keys.signing != pin.keys.signing {
            changes.push(format!(
                "signing key {} → {}",
                pin.keys.signing, self.identity.keys.signing
            ));
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }
}

fn attestation(error: AttestError) -> ConfidentialError {
    ConfidentialError::Attestation(error.to_string())
}

/// A verifier of the roots this client trusts: Intel's SGX root (up-to-date
/// TCB only), and for `sim` the platform key pinned with the broker.
fn verifier_for(sim_platform: Option<SigningPublicKey>) -> Verifier {
    let verifier = Verifier::new().trust_sgx_dcap(SgxPolicy::new());
    match sim_platform {
        Some(key) => verifier.trust_sim_platform(key),
        None => verifier,
    }
}

/// The measurement a broker of this client's own release reports.
pub fn expected_broker_measurement() -> Measurement {
    measurement::expected(Role::KeyBroker)
}

/// The measurement an action runtime of this client's own release reports.
pub fn expected_runtime_measurement() -> Measurement {
    measurement::expected(Role::ActionRuntime)
}

/// The warning to print wherever `sim` attestation is shown.
pub fn sim_warning(tee: TeeKind) -> Option<&'static str> {
    (!tee.is_hardware()).then_some(SIM_WARNING)
}

/// Refuses, under a broker pinned on hardware (`pinned`), to seal for a
/// descriptor whose policy lets `sim` enclaves run the action (checked
/// where something is sealed, not where it is described, so that such an
/// action can still be deployed again or deleted): the broker releases
/// its key to any evidence the policy allows, and a `sim` platform key is
/// the host's, so parameters sealed for it would reach the provider (the
/// receipt check fails only after they were sent). A registration made
/// elsewhere (a gateway, whose pin is `sim`; another client of a trusted
/// owner) can carry such a policy.
pub(crate) fn check_hardware_policy(
    pinned: TeeKind,
    descriptor: &ActionDescriptor,
) -> Result<(), ConfidentialError> {
    if pinned.is_hardware() && !descriptor.policy.require_hardware {
        return Err(ConfidentialError::SimAllowedUnderHardware(format!(
            "{}/{}",
            descriptor.namespace, descriptor.name
        )));
    }
    Ok(())
}

/// A deploy's policy choices.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Refuse `sim` enclaves.
    pub require_hardware: bool,
    /// Enclave measurements allowed besides this release's action runtime.
    pub extra_measurements: Vec<Measurement>,
    /// Clients allowed to invoke besides the owner.
    pub allowed_clients: Vec<clemmys_proto::ClientId>,
}

/// A confidential JavaScript action's code, before it is sealed.
#[derive(Debug, Clone, Copy)]
pub struct JavaScriptSource<'a> {
    /// The source.
    pub source: &'a str,
    /// SHA-256 of the engine module it may run under.
    pub engine: Digest,
    /// Its OpenWhisk kind (`nodejs:20`, ...).
    pub kind: &'a str,
}

/// The code of a confidential action, before it is sealed.
enum ConfidentialCode<'a> {
    /// A WebAssembly module.
    Wasm(&'a [u8]),
    /// JavaScript source, with the engine it must run under.
    JavaScript {
        code: JavaScriptCode<'a>,
        /// Its OpenWhisk kind (`nodejs:20`, ...).
        kind: &'a str,
    },
}

impl ConfidentialCode<'_> {
    /// The bytes sealed to the action key, whose digest the policy names:
    /// the code, with `defaults` (and a fresh salt) when there are some.
    fn plaintext(
        &self,
        defaults: Option<&DefaultParameters>,
    ) -> Result<std::borrow::Cow<'_, [u8]>, ProtoError> {
        let code = match self {
            Self::Wasm(module) => std::borrow::Cow::Borrowed(*module),
            Self::JavaScript { code, .. } => std::borrow::Cow::Owned(code.to_bytes()),
        };
        let Some(defaults) = defaults else {
            return Ok(code);
        };
        let mut salt = [0u8; DEFAULTS_SALT_BYTES];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut salt);
        let mut bundle = CodeWithDefaults {
            salt,
            defaults,
            code: &code,
        }
        .to_bytes()?;
        Ok(std::borrow::Cow::Owned(std::mem::take(&mut *bundle)))
    }

    /// What runs when `exec.main` names nothing.
    fn default_entry(&self) -> &'static str {
        match self {
            Self::Wasm(_) => DEFAULT_ENTRY,
            Self::JavaScript { .. } => clemmys_whisk::action::DEFAULT_JAVASCRIPT_MAIN,
        }
    }

    /// The `exec` that stores `sealed` (base64, `binary: true`).
    fn exec(&self, sealed: &[u8], main: Option<String>) -> ExecPut {
        let mut exec = ExecPut::wasm(sealed, main);
        if let Self::JavaScript { kind, .. } = self {
            exec.kind = (*kind).to_owned();
        }
        exec
    }
}

/// Takes the bound parameters out of `put`, which the provider must never
/// see, as the default parameters to seal with the code (`None` when there
/// are none); `final_parameters` (the `final` annotation) is sealed with
/// them.
fn take_defaults(
    put: &mut ActionPut,
    final_parameters: bool,
) -> Result<Option<DefaultParameters>, ConfidentialError> {
    let parameters = put.parameters.take().unwrap_or_default();
    if parameters.is_empty() {
        return Ok(None);
    }
    let parameters = parameters.to_object();
    check_defaults_size(&parameters)?;
    Ok(Some(DefaultParameters::new(parameters, final_parameters)))
}

/// Refuses default parameters larger than an invoke's payload may be.
fn check_defaults_size(parameters: &Map<String, Value>) -> Result<(), ConfidentialError> {
    let size = serde_json::to_vec(parameters).map_or(0, |bytes| bytes.len());
    let limit = clemmys_whisk::limits::MAX_PAYLOAD_BYTES;
    if size > limit {
        return Err(ConfidentialError::DefaultParametersTooLarge { size, limit });
    }
    Ok(())
}

/// The default parameters to seal into an action of a package: the
/// action's own over the package's, as OpenWhisk merges them; `final`
/// (the action's annotation) then holds them all.
fn with_package_defaults(
    own: Option<&DefaultParameters>,
    package: Option<&Map<String, Value>>,
    final_parameters: bool,
) -> Result<Option<DefaultParameters>, ConfidentialError> {
    let Some(package) = package.filter(|package| !package.is_empty()) else {
        return Ok(own.map(|own| DefaultParameters::new(own.parameters().clone(), own.is_final())));
    };
    let mut merged = package.clone();
    if let Some(own) = own {
        merged.extend(own.parameters().clone());
    }
    check_defaults_size(&merged)?;
    let final_parameters = own.map_or(final_parameters, DefaultParameters::is_final);
    Ok(Some(DefaultParameters::new(merged, final_parameters)))
}

/// A verified answer of one confidential activation.
#[derive(Debug, Clone)]
pub struct OpenedActivation {
    /// The activation id.
    pub activation_id: ActivationId,
    /// The action this client invoked under that id (for a chain, the
    /// sequence), as its keyring names it (`package/name` in a package):
    /// what the node's record must be shown as, whatever name it carries.
    pub action: String,
    /// How the run ended (inside the enclave).
    pub status: ActivationStatus,
    /// The result.
    pub result: Value,
    /// The log lines, when the record carried them.
    pub logs: Option<Vec<String>>,
    /// The enclave's signed receipt, verified (for a chain: the last
    /// step's; within a session or chain session: that of the run that
    /// opened it, shared by all of its requests).
    pub receipt: Arc<SignedReceipt>,
    /// For a chain: every step's receipt, verified, in order.
    pub chain: Option<Vec<Receipt>>,
    /// For a request within a session: its MAC'd receipt, verified
    /// (`receipt` is then the session's opening receipt, signed).
    pub session: Option<SessionReceipt>,
    /// The TEE that ran it.
    pub tee: TeeKind,
}

impl OpenedActivation {
    /// The activation JSON as OpenWhisk would show it for a plain action.
    pub fn response_json(&self) -> Value {
        json!({"status": self.status, "success": self.status == ActivationStatus::Success, "result": self.result})
    }

    /// Whether the node's annotation `key: value` is shown beside this
    /// answer: one of [`SHOWN_RECORD_ANNOTATIONS`], with a value of its
    /// type that the verified answer does not contradict (a kind that is
    /// `sequence` exactly when this was a chain, `topmost` only on one).
    fn shows_annotation(&self, key: &str, value: &Value) -> bool {
        if !SHOWN_RECORD_ANNOTATIONS.contains(&key) {
            return false;
        }
        let chain = self.chain.is_some();
        match key {
            "waitTime" | "initTime" => value.is_u64(),
            "topmost" => chain && value.is_boolean(),
            "kind" => value.as_str().is_some_and(|kind| {
                if chain {
                    kind == clemmys_whisk::SEQUENCE_KIND
                } else {
                    kind == clemmys_whisk::WASM_KIND
                        || clemmys_whisk::JAVASCRIPT_KINDS.contains(&kind)
                }
            }),
            // `path`, rewritten.
            _ => true,
        }
    }

    /// The log lines to show: the opened ones, or for a chain its steps'
    /// activation ids (what OpenWhisk logs for a sequence), from the
    /// verified receipts; else none.
    pub fn shown_logs(&self) -> Vec<String> {
        match (&self.logs, &self.chain) {
            (Some(logs), _) => logs.clone(),
            (None, Some(steps)) => steps
                .iter()
                .map(|step| step.activation_id.clone())
                .collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Shows `record`, the node's record of this activation, with the
    /// opened answer and logs in place of the sealed ones, named as what
    /// this client invoked (in `namespace`). The record's name, namespace
    /// and `path` are the provider's to write, so a record of one action
    /// relabelled as another would otherwise carry the other's name over a
    /// verified answer; its cause and every annotation but
    /// [`SHOWN_RECORD_ANNOTATIONS`] are dropped. A record of another
    /// activation is refused.
    pub fn reveal(
        &self,
        record: &mut Activation,
        namespace: &str,
    ) -> Result<(), ConfidentialError> {
        if record.activation_id != self.activation_id {
            return Err(ConfidentialError::RecordOfAnother {
                requested: self.activation_id,
                given: record.activation_id,
            });
        }
        record.response = ActivationResponse::new(self.status, self.result.clone());
        record.logs = self.shown_logs();
        let name = self
            .action
            .rsplit_once('/')
            .map_or(self.action.as_str(), |(_, name)| name);
        name.clone_into(&mut record.name);
        namespace.clone_into(&mut record.namespace);
        record.cause = None;
        record
            .annotations
            .0
            .retain(|pair| self.shows_annotation(&pair.key, &pair.value));
        record.annotations.set(
            "path",
            Value::String(format!("{namespace}/{}", self.action)),
        );
        Ok(())
    }
}

/// How a client's home files name `short` in `namespace` of the node it
/// knows as `node_key`.
fn home_key(node_key: &str, namespace: &str, short: &str) -> String {
    format!("{node_key} /{namespace}/{short}")
}

/// The parameters a client keeps of its confidential package `package`
/// of the node at `api_host`, read from its `home` alone (no node or
/// broker asked): in `namespace`, or else the one pinned with the broker.
/// `None` without a broker pin, where it never made one.
pub fn kept_package_defaults(
    home: &ClientHome,
    api_host: &str,
    namespace: Option<&str>,
    package: &str,
) -> Result<Option<Map<String, Value>>, ConfidentialError> {
    let Some(pin) = home.broker_pin(api_host)? else {
        return Ok(None);
    };
    let Some(namespace) = namespace.or(pin.namespace.as_deref()) else {
        return Ok(None);
    };
    home.package_defaults(&home_key(api_host, namespace, package))
}

/// How long a client runs a name as the kind it found (an action, or a
/// sequence's verified plan) before it reads the node's record and the
/// broker's registration again. Only the client checks which plan is
/// current, so a long-lived client (an attested gateway) would otherwise
/// go on running a plan its owner replaced, or that the provider put back
/// after the update, until it restarts.
pub const PLAN_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a client seals for an action's descriptor (its version, key
/// and policy) before it asks the broker again. The owner may update the
/// action from another client, with a fresh key when the new policy drops
/// an enclave (finding 67), and the provider need not refuse anything sealed
/// for the old one: a long-lived client (an attested gateway) would
/// otherwise go on sealing to the old key, which that enclave holds.
pub const DESCRIPTOR_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// An action's descriptor as the broker last answered it, and when.
struct KnownDescriptor {
    descriptor: Arc<ActionDescriptor>,
    described: Instant,
}

impl KnownDescriptor {
    fn now(descriptor: Arc<ActionDescriptor>) -> Self {
        Self {
            descriptor,
            described: Instant::now(),
        }
    }
}

/// What a client found a name to be, and when.
#[derive(Clone)]
struct KnownKind {
    /// The verified plan if the name is a sequence.
    plan: Option<Arc<VerifiedChainPlan>>,
    checked: Instant,
}

/// A client for confidential actions of one API host.
pub struct Confidential {
    client: Client,
    home: ClientHome,
    /// What `home` keeps this node's pin and marks under (see
    /// [`connect_as`](Self::connect_as)).
    node_key: String,
    identity: ClientIdentity,
    pin: BrokerPin,
    namespace: String,
    /// Action name → its descriptor, refreshed after
    /// [`DESCRIPTOR_RECHECK_INTERVAL`].
    descriptors: Mutex<HashMap<String, KnownDescriptor>>,
    /// Action name → its verified signed plan when it is a sequence, and
    /// when that was checked (see [`PLAN_RECHECK_INTERVAL`]).
    kinds: Mutex<HashMap<String, KnownKind>>,
    /// Whether to open sessions with enclaves (see `proto::session`).
    use_sessions: bool,
    /// Action name → this client's session with its enclave.
    sessions: Mutex<HashMap<String, Arc<ClientSession>>>,
    /// Sequence name → this client's chain session with its enclaves.
    chain_sessions: Mutex<HashMap<String, Arc<chain::ClientChainSession>>>,
    /// Evidence already verified, by digest.
    evidence: Mutex<HashMap<Digest, VerifiedEvidence>>,
    /// The replay floor of the broker, once it refused a request stamped
    /// before it (it restarted): requests are stamped no earlier.
    floor_ms: AtomicU64,
    /// The owner this client acts for under the owner's delegation (an
    /// attested gateway), if not for itself.
    acting_for: Option<ClientId>,
    /// Action name → the version last invoked and the names of the `final`
    /// defaults this client sealed into it (none: not final, or not
    /// sealed by this client).
    final_defaults: Mutex<HashMap<String, FinalDefaults>>,
}

/// The names of the `final` defaults this client sealed into `version` of
/// an action (`None`: none are final, or it sealed none).
struct FinalDefaults {
    version: u64,
    names: Option<Arc<[String]>>,
}

/// Most verified evidence kept (one per enclave met).
const MAX_CACHED_EVIDENCE: usize = 1024;

/// A session this client holds with an action's enclave.
struct ClientSession {
    keys: SessionKeys,
    /// The next request's counter.
    counter: AtomicU64,
    version: u64,
    code_digest: Digest,
    /// The entry export of the policy it was opened under.
    entry: String,
    /// The enclave's signed receipt of the opening invocation (verified).
    opening: Arc<SignedReceipt>,
    tee: TeeKind,
}

/// The JSON body of an invoke that carries `sealed`: `{"sealed": base64}`.
/// Base64 needs no JSON escaping, so it is written as is.
fn sealed_body(sealed: &[u8]) -> String {
    let mut body = String::with_capacity(16 + sealed.len().div_ceil(3) * 4);
    body.push_str("{\"");
    body.push_str(SEALED_FIELD);
    body.push_str("\":\"");
    base64::engine::general_purpose::STANDARD.encode_string(sealed, &mut body);
    body.push_str("\"}");
    body
}

/// The next request of `session`: its sealed bytes and its counter.
fn seal_session_request(
    session: &ClientSession,
    descriptor: &ActionDescriptor,
    params: &Value,
) -> Result<(Vec<u8>, u64), ConfidentialError> {
    let counter = session.counter.fetch_add(1, Ordering::Relaxed);
    let binding = SessionBinding {
        namespace: &descriptor.namespace,
        action: &descriptor.name,
        version: session.version,
        code_digest: session.code_digest,
    };
    let plaintext =
        serde_json::to_vec(params).map_err(|e| ConfidentialError::State(e.to_string()))?;
    let request = SessionInvocation::seal(&session.keys, &binding, counter, now_ms(), &plaintext)?;
    Ok((request.to_bytes(), counter))
}

/// Opens and checks a session answer (its logs are sealed inside it): the
/// MAC'd receipt must name this request, the session's code and the result.
fn open_in_session(
    keys: &SessionKeys,
    counter: u64,
    entry: &KeyringEntry,
    activation_id: ActivationId,
    sealed: &str,
    opening: &Arc<SignedReceipt>,
    tee: TeeKind,
) -> Result<OpenedActivation, ConfidentialError> {
    // The receipt of exactly this request; the answer adds the output hash
    // and the MAC, which opening checks.
    let expected = SessionReceipt {
        activation_id: activation_id.to_string(),
        session_id: keys.id,
        counter,
        version: entry.version,
        code_digest: entry.code_digest,
        entry: entry.entry.clone(),
        input_hash: entry.input_hash,
        output_hash: Digest::of(b""),
        mac: [0; clemmys_proto::session::SESSION_MAC_BYTES],
    };
    let body = open_session_result(&decode(sealed)?, keys, expected)?;
    Ok(OpenedActivation {
        activation_id,
        action: entry.action.clone(),
        status: body.status,
        result: body.result,
        logs: Some(body.logs),
        receipt: opening.clone(),
        chain: None,
        session: Some(body.receipt),
        tee,
    })
}

impl Confidential {
    /// Connects through `client`, re-verifying the broker against the pin in
    /// `home` (its keys may have changed; its measurement and platform must
    /// not).
    pub async fn connect(client: Client, home: ClientHome) -> Result<Self, ConfidentialError> {
        Self::connect_in(client, home, None).await
    }

    /// Connects as [`connect`](Self::connect) does, sealing for `namespace`
    /// (from the caller's own configuration) instead of the namespace
    /// pinned with the broker.
    pub async fn connect_in(
        client: Client,
        home: ClientHome,
        namespace: Option<String>,
    ) -> Result<Self, ConfidentialError> {
        let identity = home.identity()?;
        let node_key = client.api_host().to_owned();
        Self::connect_as(client, home, identity, namespace, node_key).await
    }

    /// Connects as [`connect_in`](Self::connect_in) does, as `identity`
    /// instead of the one in `home`: a caller that keeps its identity key
    /// sealed (the attested gateway) never writes it there. `home` keeps
    /// the node's broker pin, high-water marks and plan versions under
    /// `node_key`: the API host for a user's client, who chose it; a fixed
    /// name for the gateway, whose API host the provider passes it, so
    /// that another spelling of the same node finds the same pin and marks
    /// instead of none.
    pub async fn connect_as(
        client: Client,
        home: ClientHome,
        identity: ClientIdentity,
        namespace: Option<String>,
        node_key: String,
    ) -> Result<Self, ConfidentialError> {
        let api_host = client.api_host().to_owned();
        let pin = home
            .broker_pin(&node_key)?
            .ok_or_else(|| ConfidentialError::NotPinned(api_host.clone()))?;
        let doc = BrokerIdentityDoc::fetch(&client).await?;
        if let Some(changes) = doc.changes_from(&pin) {
            return Err(ConfidentialError::BrokerChanged { api_host, changes });
        }
        let namespace = namespace
            .or_else(|| pin.namespace.clone())
            .ok_or_else(|| ConfidentialError::NoNamespace(api_host.clone()))?;
        let connected = Self {
            client,
            home,
            node_key,
            identity,
            pin,
            namespace,
            descriptors: Mutex::new(HashMap::new()),
            kinds: Mutex::new(HashMap::new()),
            use_sessions: true,
            sessions: Mutex::new(HashMap::new()),
            chain_sessions: Mutex::new(HashMap::new()),
            evidence: Mutex::new(HashMap::new()),
            floor_ms: AtomicU64::new(0),
            acting_for: None,
            final_defaults: Mutex::new(HashMap::new()),
        };
        // A broker that started less than its skew ago refuses requests
        // stamped now; stamp at its floor from the first request on.
        if let Some(floor_ms) = doc.replay_floor_ms {
            connected.accept_floor(floor_ms);
        }
        Ok(connected)
    }

    /// The timestamp of a new request: now, or the broker's replay floor
    /// when it is later.
    fn stamp(&self) -> u64 {
        now_ms().max(self.floor_ms.load(Ordering::Relaxed))
    }

    /// After a refusal naming the broker's replay floor: whether to re-stamp
    /// at it and retry (only when it is not far in the future).
    fn accept_floor(&self, floor_ms: u64) -> bool {
        if floor_ms > now_ms().saturating_add(MAX_FLOOR_AHEAD_MS) {
            return false;
        }
        self.floor_ms.fetch_max(floor_ms, Ordering::Relaxed);
        true
    }

    /// Invokes without sessions: every invocation is sealed with HPKE,
    /// signed, and answered with a signed receipt. For one-shot clients
    /// (the CLI), where a session would never be reused.
    pub fn without_sessions(mut self) -> Self {
        self.use_sessions = false;
        self
    }

    /// Acts for `owner` under the owner's delegation to this client's
    /// identity (`clemmys gateway authorize`): actions are registered,
    /// described and their code sealed as the owner's, and invocations
    /// admitted while the broker holds the delegation live.
    pub fn acting_for(mut self, owner: ClientId) -> Self {
        self.acting_for = Some(owner);
        self
    }

    /// Whose actions this client deploys: the owner it acts for, or itself.
    pub fn owner(&self) -> ClientId {
        self.acting_for.unwrap_or_else(|| self.identity.id())
    }

    /// Delegates to `gateway` (whose evidence the caller verified, naming
    /// `measurement`) until `expires_ms`: the gateway may then act for this
    /// client's identity. Answers the delegation as the broker holds it.
    pub async fn delegate(
        &self,
        gateway: ClientId,
        measurement: Measurement,
        expires_ms: u64,
    ) -> Result<Delegation, ConfidentialError> {
        match self
            .broker_reply(BrokerOp::Delegate {
                gateway,
                measurement,
                expires_ms,
            })
            .await?
        {
            BrokerReply::Delegated(delegation)
                if delegation.owner == self.identity.id() && delegation.gateway == gateway =>
            {
                Ok(delegation)
            }
            BrokerReply::Refused { reason, .. } => Err(ConfidentialError::Refused(reason)),
            _ => Err(ConfidentialError::ReceiptMismatch(
                "the broker answered another request than the delegation",
            )),
        }
    }

    /// Withdraws this client's delegation to `gateway`.
    pub async fn revoke(&self, gateway: ClientId) -> Result<(), ConfidentialError> {
        match self.broker_reply(BrokerOp::Revoke { gateway }).await? {
            BrokerReply::Revoked { gateway: revoked } if revoked == gateway => Ok(()),
            BrokerReply::Refused { reason, .. } => Err(ConfidentialError::Refused(reason)),
            _ => Err(ConfidentialError::ReceiptMismatch(
                "the broker answered another request than the revocation",
            )),
        }
    }

    /// The underlying API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The pinned broker.
    pub fn pin(&self) -> &BrokerPin {
        &self.pin
    }

    /// The client's identity.
    pub fn client_id(&self) -> clemmys_proto::ClientId {
        self.identity.id()
    }

    /// The caller's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The client's state directory.
    pub fn home(&self) -> &ClientHome {
        &self.home
    }

    /// The default parameters sealed into the current version of action
    /// `name`, if this client sealed that version (its home keeps a copy:
    /// nobody can read them back out of the sealed code).
    pub async fn current_defaults(
        &self,
        name: &str,
    ) -> Result<Option<DefaultParameters>, ConfidentialError> {
        let short = self.short_name(name)?.to_owned();
        let current = match self.describe_of(self.owner(), &short).await {
            Ok(descriptor) => descriptor.version,
            Err(ConfidentialError::NotRegistered(_)) => return Ok(None),
            Err(other) => return Err(other),
        };
        self.home.sealed_set(&self.home_key(&short), current)
    }

    /// The parameters of this client's confidential package `package`: it
    /// keeps them (the node stores none) and seals them, under each
    /// action's own, into the confidential actions it deploys in it.
    pub fn package_defaults(
        &self,
        package: &str,
    ) -> Result<Option<Map<String, Value>>, ConfidentialError> {
        self.home.package_defaults(&self.home_key(package))
    }

    /// Keeps `parameters` as those of confidential package `package`
    /// (none: forgets them). Actions already sealed keep the set sealed
    /// into them until they are deployed again.
    pub fn keep_package_defaults(
        &self,
        package: &str,
        parameters: Option<&Map<String, Value>>,
    ) -> Result<(), ConfidentialError> {
        if let Some(parameters) = parameters {
            check_defaults_size(parameters)?;
        }
        self.home
            .keep_package_defaults(&self.home_key(package), parameters)
    }

    /// The newest version action `name` had when this client recorded
    /// its deletion ([`Self::keep_deleted_version`]), if it did.
    pub fn deleted_version(&self, name: &str) -> Result<Option<u64>, ConfidentialError> {
        let short = self.short_name(name)?;
        self.home.deleted_version(&self.home_key(short))
    }

    /// Records that action `name` was deleted through this client while
    /// the broker's current version of it was `version`: the broker keeps
    /// that version current (it knows nothing of the node's delete), so a
    /// caller that serves the action on the node's record alone (the
    /// gateway's web path) refuses it and older ones by this record.
    pub fn keep_deleted_version(&self, name: &str, version: u64) -> Result<(), ConfidentialError> {
        let short = self.short_name(name)?;
        self.home
            .keep_deleted_version(&self.home_key(short), version)
    }

    /// Deletes confidential action `name` on the node and records the
    /// broker's current version as deleted (see
    /// [`Self::keep_deleted_version`]), also when the node had no such
    /// action: an action made anew under the name then carries none of the
    /// deleted one's sealed parameters over, whatever the node shows.
    pub async fn delete_action(&self, name: &str) -> Result<(), ConfidentialError> {
        let current = match self.describe(name, true).await {
            Ok(descriptor) => Some(descriptor.version),
            Err(ConfidentialError::NotRegistered(_) | ConfidentialError::RegisteredSequence(_)) => {
                None
            }
            Err(other) => return Err(other),
        };
        let deleted = self.client.delete_action(name).await;
        if let Some(version) = current
            && match &deleted {
                Ok(_) => true,
                Err(error) => error.status() == Some(404),
            }
        {
            self.keep_deleted_version(name, version)?;
        }
        deleted.map(|_| ()).map_err(ConfidentialError::from)
    }

    /// The name `name` is registered, sealed and run under in this
    /// client's namespace: `action`, or `package/action` inside a package.
    fn short_name<'a>(&self, name: &'a str) -> Result<&'a str, ConfidentialError> {
        let qualified = crate::resolve_name(name)?;
        let namespace = qualified.namespace.as_str();
        if namespace != "_" && namespace != self.namespace {
            return Err(ConfidentialError::State(format!(
                "namespace {namespace} is not this key's"
            )));
        }
        // The last one or two segments of `name`, after any namespace.
        let segments = if qualified.package.is_some() { 2 } else { 1 };
        let start = name
            .rmatch_indices('/')
            .nth(segments - 1)
            .map_or(0, |(slash, _)| slash + 1);
        Ok(&name[start..])
    }

    async fn broker(&self, op: BrokerOp) -> Result<ActionDescriptor, ConfidentialError> {
        match self.broker_reply(op).await? {
            BrokerReply::Action(descriptor) => Ok(descriptor),
            BrokerReply::Refused {
                reason,
                refusal: Some(Refusal::UnknownAction),
            } => Err(ConfidentialError::NotRegistered(reason)),
            BrokerReply::Refused { reason, .. } => Err(ConfidentialError::Refused(reason)),
            BrokerReply::Delegated(_) | BrokerReply::Revoked { .. } => Err(
                ConfidentialError::ReceiptMismatch("the broker answered another request"),
            ),
        }
    }

    /// Sends `op` to the broker (for the owner this client acts for, if
    /// any) and opens its answer, checking it is not older than answers
    /// seen before.
    async fn broker_reply(&self, op: BrokerOp) -> Result<BrokerReply, ConfidentialError> {
        // Delegations are the signer's own, never made for another.
        let on_behalf_of = match op {
            BrokerOp::Delegate { .. } | BrokerOp::Revoke { .. } => None,
            _ => self.acting_for,
        };
        let (sealed, key) = seal_broker_request_for(
            &self.identity,
            &self.pin.keys.kem,
            op,
            on_behalf_of,
            now_ms(),
            &mut os_rng(),
        )?;
        let body = json!({ "request": base64::engine::general_purpose::STANDARD.encode(sealed) });
        let response = self
            .client
            .request(
                Method::POST,
                "/broker/request",
                Some(Bytes::from(body.to_string())),
            )
            .await?;
        #[derive(Deserialize)]
        struct Reply {
            reply: String,
        }
        let reply: Reply = response.json("broker reply")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(reply.reply)
            .map_err(|_| {
                ConfidentialError::Tampered(ProtoError::Malformed("broker reply is not base64"))
            })?;
        let OpenedBrokerReply {
            state_version,
            reply,
        } = open_broker_reply(&bytes, &key)?;
        let action = match &reply {
            BrokerReply::Action(descriptor) => Some((
                format!(
                    "{}:{}/{}",
                    descriptor.owner, descriptor.namespace, descriptor.name
                ),
                descriptor.version,
            )),
            _ => None,
        };
        self.home.check_fresh(
            &self.node_key,
            state_version,
            action
                .as_ref()
                .map(|(name, version)| (name.as_str(), *version)),
        )?;
        Ok(reply)
    }

    /// The broker's current descriptor of `name` (cached until a refresh).
    pub async fn describe(
        &self,
        name: &str,
        refresh: bool,
    ) -> Result<Arc<ActionDescriptor>, ConfidentialError> {
        let name = self.short_name(name)?;
        if !refresh
            && let Some(known) = self.lock().get(name)
            && known.described.elapsed() < DESCRIPTOR_RECHECK_INTERVAL
        {
            return Ok(known.descriptor.clone());
        }
        let descriptor = self.describe_trusted(name).await?;
        if !descriptor.policy.kind.is_action() {
            return Err(ConfidentialError::RegisteredSequence(name.to_owned()));
        }
        let descriptor = Arc::new(descriptor);
        self.lock()
            .insert(name.to_owned(), KnownDescriptor::now(descriptor.clone()));
        Ok(descriptor)
    }

    /// Whether `name` is confidential by what the node cannot forge: a
    /// trusted owner registered it with the key broker (asked afresh), as
    /// an action or as a sequence, or this client signed or ran a chain
    /// plan of that sequence. What the node shows is not asked: a client
    /// that believed it would send a confidential action's parameters or
    /// new code in the clear once the provider showed the action as plain.
    /// A name in another namespace than this client seals for is never
    /// one.
    pub async fn is_confidential(&self, name: &str) -> Result<bool, ConfidentialError> {
        let Ok(short) = self.short_name(name) else {
            return Ok(false);
        };
        if self.home.newest_plan(&self.home_key(short))?.is_some() {
            return Ok(true);
        }
        match self.describe(short, true).await {
            Ok(_) | Err(ConfidentialError::RegisteredSequence(_)) => Ok(true),
            Err(ConfidentialError::NotRegistered(_)) => {
                // The broker never forgets a registration: one this client
                // has seen a version of and that it now says it does not
                // know was rolled back, or the broker is another one.
                for owner in self.trusted_owners() {
                    let action = format!("{owner}:{}/{short}", self.namespace);
                    if let Some(highest) = self.home.highest_seen(&self.node_key, &action)? {
                        return Err(ConfidentialError::ActionForgotten {
                            action: format!("{}/{short}", self.namespace),
                            highest,
                        });
                    }
                }
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// The identities whose actions and signed chain plans this client
    /// accepts: itself first, then those pinned with the broker
    /// (`--trust-owner`).
    pub fn trusted_owners(&self) -> impl Iterator<Item = ClientId> + '_ {
        std::iter::once(self.owner()).chain(self.pin.trusted_owners.iter().copied())
    }

    /// Whose signed chain plans this client accepts: the trusted owners,
    /// and, when it acts for an owner, itself. A gateway has no key of the
    /// owner's, so it signs the plans of the sequences it creates with its
    /// own identity (see [`put_sequence`](Self::put_sequence)), under the
    /// owner's delegation.
    fn plan_signers(&self) -> Vec<ClientId> {
        let mut signers: Vec<ClientId> = self.trusted_owners().collect();
        if self.acting_for.is_some() {
            signers.push(self.identity.id());
        }
        signers
    }

    /// Describes `short` as registered by each trusted owner in turn; the
    /// first registration found answers. Registrations are keyed by owner
    /// at the broker, so no other identity's action can answer.
    async fn describe_trusted(&self, short: &str) -> Result<ActionDescriptor, ConfidentialError> {
        let mut first_refusal = None;
        for owner in self.trusted_owners() {
            match self.describe_of(owner, short).await {
                Ok(descriptor) => return Ok(descriptor),
                Err(ConfidentialError::NotRegistered(reason)) => {
                    first_refusal.get_or_insert(reason);
                }
                Err(other) => return Err(other),
            }
        }
        Err(ConfidentialError::NotRegistered(
            first_refusal.unwrap_or_else(|| "no trusted owner".into()),
        ))
    }

    /// Describes `owner`'s action `short` in this client's namespace, and
    /// checks the broker answered for exactly that.
    async fn describe_of(
        &self,
        owner: ClientId,
        short: &str,
    ) -> Result<ActionDescriptor, ConfidentialError> {
        let descriptor = self
            .broker(BrokerOp::Describe {
                owner,
                namespace: self.namespace.clone(),
                name: short.to_owned(),
            })
            .await?;
        if descriptor.owner != owner {
            return Err(ConfidentialError::UntrustedOwner {
                action: short.to_owned(),
                owner: descriptor.owner,
            });
        }
        if descriptor.namespace != self.namespace || descriptor.name != short {
            return Err(ConfidentialError::ReceiptMismatch(
                "the broker described another action than asked",
            ));
        }
        Ok(descriptor)
    }

    /// Refuses an invoke of the described version that names a `final`
    /// default this client sealed into it, before anything is sealed or
    /// sent: OpenWhisk answers such an invoke 400 without running it. The
    /// enclave refuses it too, but only once the request reached it.
    fn check_final_defaults(
        &self,
        descriptor: &ActionDescriptor,
        params: &Value,
    ) -> Result<(), ConfidentialError> {
        let named = |names: &[String]| {
            params
                .as_object()
                .is_some_and(|given| names.iter().any(|name| given.contains_key(name)))
        };
        match self.final_names_of(&descriptor.name, descriptor.version)? {
            Some(names) if named(&names) => Err(FinalParameterOverridden.into()),
            _ => Ok(()),
        }
    }

    /// The names of the `final` defaults this client sealed into `version`
    /// of action `name` (`None`: none are final, or it sealed none). Read
    /// from the home once per version, not on every invoke.
    pub fn final_default_names(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<Arc<[String]>>, ConfidentialError> {
        self.final_names_of(self.short_name(name)?, version)
    }

    /// [`final_default_names`](Self::final_default_names) of the action
    /// this client's home names `short`.
    fn final_names_of(
        &self,
        short: &str,
        version: u64,
    ) -> Result<Option<Arc<[String]>>, ConfidentialError> {
        let mut known = self
            .final_defaults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(kept) = known.get(short).filter(|kept| kept.version == version) {
            return Ok(kept.names.clone());
        }
        let names = self
            .home
            .sealed_set(&self.home_key(short), version)?
            .filter(DefaultParameters::is_final)
            .map(|set| set.parameters().keys().cloned().collect::<Arc<[String]>>());
        known.insert(
            short.to_owned(),
            FinalDefaults {
                version,
                names: names.clone(),
            },
        );
        Ok(names)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KnownDescriptor>> {
        self.descriptors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Deploys `wasm` as confidential action `name`: registers a new policy
    /// version with the broker, seals the code to the action key and stores
    /// it with `put` (limits, annotations) through the API.
    ///
    /// `put.parameters` are the action's default parameters: they are
    /// sealed with the code (with `final`, if `put.annotations` says so) and
    /// never sent in the clear; the enclave merges each invoke's parameters
    /// over them. They are the new version's whole set: an update that
    /// gives none leaves the action without defaults, since nobody outside
    /// an enclave can read the old ones.
    pub async fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        put: ActionPut,
        overwrite: bool,
        options: &DeployOptions,
    ) -> Result<crate::ActionDoc, ConfidentialError> {
        self.deploy_code(
            name,
            ConfidentialCode::Wasm(wasm),
            put,
            overwrite,
            options,
            None,
        )
        .await
    }

    /// As [`Self::deploy`], and `annotate` adds to the action's annotations
    /// once the broker has registered its policy version (given to it),
    /// before the node stores the action: for a caller (the attested
    /// gateway) that binds annotations to the version they were made for,
    /// so that the host cannot carry them over to another version.
    pub async fn deploy_annotated(
        &self,
        name: &str,
        wasm: &[u8],
        put: ActionPut,
        overwrite: bool,
        options: &DeployOptions,
        annotate: &(dyn Fn(u64, &mut KeyValues) + Sync),
    ) -> Result<crate::ActionDoc, ConfidentialError> {
        self.deploy_code(
            name,
            ConfidentialCode::Wasm(wasm),
            put,
            overwrite,
            options,
            Some(annotate),
        )
        .await
    }

    /// Deploys `javascript` as confidential action `name`, to run only
    /// under the engine module it names: the source and the engine's digest
    /// are sealed together, so the policy's code digest names both.
    pub async fn deploy_javascript(
        &self,
        name: &str,
        javascript: JavaScriptSource<'_>,
        put: ActionPut,
        overwrite: bool,
        options: &DeployOptions,
    ) -> Result<crate::ActionDoc, ConfidentialError> {
        let code = ConfidentialCode::JavaScript {
            code: JavaScriptCode {
                engine: javascript.engine,
                source: javascript.source,
            },
            kind: javascript.kind,
        };
        self.deploy_code(name, code, put, overwrite, options, None)
            .await
    }

    async fn deploy_code(
        &self,
        name: &str,
        code: ConfidentialCode<'_>,
        mut put: ActionPut,
        overwrite: bool,
        options: &DeployOptions,
        annotate: Option<VersionAnnotator<'_>>,
    ) -> Result<crate::ActionDoc, ConfidentialError> {
        let short = self.short_name(name)?.to_owned();
        let kept_key = self.home_key(&short);
        let given = put.parameters.is_some();
        // An action the broker knows keeps its action key from version to
        // version while its policy releases the key to the same enclaves,
        // so the next version's code can be sealed and stored before it is
        // registered: a store the node refuses (the action exists, a limit
        // is out of range) then leaves the registered version, and the
        // code the node holds for it, as they were (not for annotations
        // bound to the version, nor for a fresh key: see below).
        let current = match self.describe_of(self.owner(), &short).await {
            Ok(current) => Some(current),
            Err(ConfidentialError::NotRegistered(_)) => None,
            Err(other) => return Err(other),
        };
        let version = current.as_ref().map_or(1, |current| current.version + 1);
        let limits = Self::bound_limits(current.as_ref(), &mut put, overwrite)?;
        let final_parameters = put
            .annotations
            .as_ref()
            .is_some_and(|annotations| annotations.is_true("final"));
        let mut defaults = take_defaults(&mut put, final_parameters)?;
        if overwrite && !given && self.still_stored(&short, &kept_key, version).await? {
            // As OpenWhisk keeps an action's parameters on an update that
            // names none: ours are sealed, so the copy is this client's,
            // and serves only if this client sealed the current version.
            defaults = self
                .home
                .sealed_defaults(&kept_key, version.saturating_sub(1))?;
            // Whether they are final is the update's to say when it names
            // annotations (what the node will show), as `wsk action update
            // --web true` adds `final`; else it stays as sealed.
            if put.annotations.is_some() {
                defaults = defaults.map(|kept| {
                    DefaultParameters::new(kept.parameters().clone(), final_parameters)
                });
            }
        }
        // An action of a package runs with the package's parameters under
        // its own: this client's copy of them (the node has none) is
        // sealed with the code.
        let package_defaults = match short.split_once('/') {
            Some((package, _)) => self.home.package_defaults(&self.home_key(package))?,
            None => None,
        };
        let sealed_set = with_package_defaults(
            defaults.as_ref(),
            package_defaults.as_ref(),
            final_parameters,
        )?;
        let plaintext = code.plaintext(sealed_set.as_ref())?;
        let code_digest = Digest::of(&plaintext);
        let main = put.exec.as_ref().and_then(|exec| exec.main.clone());
        // The export (or function) to run is part of the code: the policy
        // names it, so that enclaves run it whatever `exec.main` the host
        // stores.
        let entry = main
            .clone()
            .unwrap_or_else(|| code.default_entry().to_owned());
        let policy = self.action_policy(version, &entry, limits, options);
        // A policy that releases the key to other enclaves (under a
        // hardware pin, one that drops `sim`) gets a fresh key from the
        // broker: the code is sealed to it once registered.
        let keeps_key = current
            .as_ref()
            .is_some_and(|current| current.policy.releases_key_alike(&policy));
        let binding = CodeBinding {
            namespace: &self.namespace,
            action: &short,
            version,
            code_digest,
            entry: &entry,
        };
        let mut annotations = put.annotations.take().unwrap_or_default();
        if let Some(annotate) = annotate {
            annotate(version, &mut annotations);
        }
        annotations.set(CONFIDENTIAL_ANNOTATION, Value::Bool(true));
        put.annotations = Some(annotations);
        // Annotations bound to the version (the gateway's web tag) are made
        // only for a version the broker registered with this code: stored
        // first, a registration the provider dropped would leave them on
        // the node for a version later registered with other code.
        let store_first = current.as_ref().filter(|_| keeps_key && annotate.is_none());
        if store_first.is_none() && !overwrite {
            // Asked before the broker registers a new version: a create the
            // node then refused would move the broker's version (and, for
            // a fresh key, the key) past the code the node holds.
            match self.client.get_action(&short, false).await {
                Ok(_) => {
                    return Err(ConfidentialError::Api(ClientError::Api {
                        status: 409,
                        message: "resource already exists".into(),
                        code: None,
                    }));
                }
                Err(error) if error.status() == Some(404) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let stored = match store_first {
            Some(current) => {
                // Sealed as the registration's owner's code: the enclave
                // opens it with the owner the broker's descriptor names.
                let sealed = SealedCode::seal(
                    &plaintext,
                    current.owner,
                    &current.action_key,
                    &binding,
                    &mut os_rng(),
                )?;
                put.exec = Some(code.exec(&sealed.to_bytes(), main));
                let stored = self.client.put_action(&short, &put, overwrite).await?;
                let descriptor = self
                    .register(&short, version, code_digest, policy)
                    .await
                    .map_err(|error| ConfidentialError::StoredNotRegistered {
                        action: short.clone(),
                        version,
                        reason: error.to_string(),
                    })?;
                if descriptor.action_key != current.action_key {
                    // Registered anew between the two calls: the stored
                    // code is sealed to a key no enclave is given.
                    return Err(ConfidentialError::StoredNotRegistered {
                        action: short,
                        version,
                        reason: "the broker registered it with another action key".into(),
                    });
                }
                self.lock()
                    .insert(short.clone(), KnownDescriptor::now(Arc::new(descriptor)));
                stored
            }
            None => {
                // New to the broker (its registration makes the action key:
                // nothing of this owner's can run under this name yet, so a
                // store the node refuses breaks nothing), annotated, or
                // given a fresh key (a store the node refuses then leaves
                // the action without runnable code until the next deploy).
                let descriptor = self.register(&short, version, code_digest, policy).await?;
                if let Some(current) = current.as_ref().filter(|_| !keeps_key)
                    && descriptor.action_key == current.action_key
                {
                    return Err(ConfidentialError::KeyKeptOverNewPolicy(short));
                }
                let sealed = SealedCode::seal(
                    &plaintext,
                    descriptor.owner,
                    &descriptor.action_key,
                    &binding,
                    &mut os_rng(),
                )?;
                self.lock()
                    .insert(short.clone(), KnownDescriptor::now(Arc::new(descriptor)));
                put.exec = Some(code.exec(&sealed.to_bytes(), main));
                match self.client.put_action(&short, &put, overwrite).await {
                    Ok(stored) => stored,
                    Err(error) => {
                        // The node runs the version before, with its
                        // defaults: the next update goes over them.
                        self.home.carry_sealed_defaults(
                            &kept_key,
                            version.saturating_sub(1),
                            version,
                        )?;
                        return Err(error.into());
                    }
                }
            }
        };
        self.home.keep_sealed_defaults(
            &kept_key,
            version,
            (defaults.as_ref(), package_defaults.as_ref()),
            sealed_set.as_ref().is_some_and(DefaultParameters::is_final),
        )?;
        Ok(stored)
    }

    /// Whether the version before `version` of action `short` (kept under
    /// `kept_key`) is still the action an update goes over: not deleted
    /// through this client, and still on the node (an update of a deleted
    /// action makes it anew, without the deleted one's parameters, as in
    /// OpenWhisk).
    async fn still_stored(
        &self,
        short: &str,
        kept_key: &str,
        version: u64,
    ) -> Result<bool, ConfidentialError> {
        let previous = version.saturating_sub(1);
        if self
            .home
            .deleted_version(kept_key)?
            .is_some_and(|deleted| deleted >= previous)
        {
            return Ok(false);
        }
        match self.client.get_action(short, false).await {
            Ok(_) => Ok(true),
            Err(error) if error.status() == Some(404) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The limits the next version of an action runs under, bound into its
    /// policy since the node's record of them is the provider's: those
    /// `put` names over the registered ones on an update (OpenWhisk keeps
    /// the limits an update leaves out), over OpenWhisk's defaults on a
    /// create or for a registration made before limits were bound (never
    /// the node's record, which the provider may have lowered). `put`
    /// then names them all, so that the node records what enclaves use.
    fn bound_limits(
        current: Option<&ActionDescriptor>,
        put: &mut ActionPut,
        overwrite: bool,
    ) -> Result<BoundLimits, ConfidentialError> {
        let kept = match current.and_then(|current| current.policy.limits) {
            Some(bound) if overwrite => bound.over(ActionLimits::default()),
            _ => ActionLimits::default(),
        };
        let given = put.limits.unwrap_or_default();
        let limits = kept.updated_with(&given)?;
        put.limits = Some(ActionLimitsPut {
            timeout: Some(limits.timeout),
            memory: Some(limits.memory),
            logs: Some(limits.logs),
            concurrency: given.concurrency,
        });
        Ok(BoundLimits::of(&limits))
    }

    /// The policy of `version` of an action: its entry export and limits,
    /// and what `options` describe (the new version is also its minimum).
    fn action_policy(
        &self,
        version: u64,
        entry: &str,
        limits: BoundLimits,
        options: &DeployOptions,
    ) -> Policy {
        let mut allowed_measurements = vec![expected_runtime_measurement()];
        allowed_measurements.extend(options.extra_measurements.iter().copied());
        Policy {
            allowed_measurements,
            // Under a hardware broker, hardware is the default: a `sim`
            // enclave would be the provider's own process.
            require_hardware: options.require_hardware || self.pin.tee.is_hardware(),
            allowed_clients: options.allowed_clients.clone(),
            min_version: version,
            entry: entry.to_owned(),
            kind: RegisteredKind::Action,
            limits: Some(limits),
        }
    }

    /// Registers `version` of action `short`, its code digest
    /// `code_digest`, under `policy` with the broker.
    async fn register(
        &self,
        short: &str,
        version: u64,
        code_digest: Digest,
        policy: Policy,
    ) -> Result<ActionDescriptor, ConfidentialError> {
        self.broker(BrokerOp::Register {
            namespace: self.namespace.clone(),
            name: short.to_owned(),
            version,
            code_digest,
            policy,
        })
        .await
    }

    /// Registers `version` of sequence `short` (its signed plan's version,
    /// `plan_digest` the digest of the plan's bytes) with the broker, so
    /// that every client, not only those that signed or ran a plan of it,
    /// knows the name for a confidential sequence and the newest plan.
    async fn register_sequence(
        &self,
        short: &str,
        version: u64,
        plan_digest: Digest,
    ) -> Result<ActionDescriptor, ConfidentialError> {
        self.broker(BrokerOp::Register {
            namespace: self.namespace.clone(),
            name: short.to_owned(),
            version,
            code_digest: plan_digest,
            policy: Policy {
                allowed_measurements: Vec::new(),
                require_hardware: self.pin.tee.is_hardware(),
                // Described to any client: see the broker's `Describe`.
                allowed_clients: Vec::new(),
                min_version: version,
                entry: clemmys_proto::code::DEFAULT_ENTRY.to_owned(),
                kind: RegisteredKind::Sequence,
                limits: None,
            },
        })
        .await
    }

    /// Seals `params` for action `name` without sending them.
    pub async fn seal(
        &self,
        name: &str,
        params: &Value,
    ) -> Result<(SealedInvocation, PendingAnswer, Arc<ActionDescriptor>), ConfidentialError> {
        let descriptor = self.describe(name, false).await?;
        check_hardware_policy(self.pin.tee, &descriptor)?;
        let mut nonce = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut nonce);
        let header = InvocationHeader {
            namespace: descriptor.namespace.clone(),
            action: descriptor.name.clone(),
            version: descriptor.version,
            nonce,
            timestamp_ms: self.stamp(),
            client: self.identity.id(),
            open_session: self.use_sessions,
        };
        let plaintext =
            serde_json::to_vec(params).map_err(|e| ConfidentialError::State(e.to_string()))?;
        let (sealed, pending) = seal_invocation(
            &self.identity,
            &descriptor.action_key,
            header,
            &descriptor.code_digest,
            &plaintext,
            &mut os_rng(),
        )?;
        Ok((sealed, pending, descriptor))
    }

    /// The JSON body that carries a sealed invocation.
    pub fn invoke_body(sealed: &SealedInvocation) -> Value {
        json!({ SEALED_FIELD: base64::engine::general_purpose::STANDARD.encode(sealed.to_bytes()) })
    }

    /// Invokes confidential action `name`: seals, sends, and (when the
    /// answer comes back within the wait) opens and verifies it. A refusal
    /// that a fresh request would cure (the action was updated, the broker
    /// restarted) is retried once.
    pub async fn invoke(
        &self,
        name: &str,
        params: &Value,
        options: InvokeOptions,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        self.invoke_pinned(name, params, options, None).await
    }

    /// As [`Self::invoke`] for action `name` (not a sequence), but only at
    /// policy version `version`: when the broker's current version is
    /// another, nothing is sealed or sent (`VersionNotCurrent`), also when
    /// a refusal (which the provider may forge) makes it describe the
    /// action again. For a caller that was allowed to run one version
    /// only: the gateway serves a web action at the version its tag names.
    pub async fn invoke_version(
        &self,
        name: &str,
        version: u64,
        params: &Value,
        options: InvokeOptions,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        self.invoke_pinned(name, params, options, Some(version))
            .await
    }

    async fn invoke_pinned(
        &self,
        name: &str,
        params: &Value,
        options: InvokeOptions,
        pinned: Option<u64>,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        // A refusal a fresh request cures is retried, once: a restarted
        // broker's floor (re-stamp at it), an updated action or a
        // forgotten session (refresh and reseal). A refusal is the
        // provider's word, which may come after the request already ran:
        // once, so that it makes the request run at most twice, and a
        // stale version only when the broker describes another version.
        let mut retried = false;
        loop {
            let plan = match pinned {
                Some(_) => None,
                None => self.sequence_plan(name).await?,
            };
            // The versions held before the attempt: those it seals for (a
            // concurrent deploy through this client may move them on while
            // it runs), where it does not describe them first.
            let held_before = self.held_versions(name, plan.as_deref());
            let outcome = match &plan {
                Some(plan) => self.invoke_chain_once(name, plan, params, options).await,
                None => self.invoke_once(name, params, options, pinned).await,
            };
            match outcome {
                Err(ConfidentialError::StampedBeforeFloor { floor_ms, .. })
                    if !retried && self.accept_floor(floor_ms) =>
                {
                    retried = true;
                    self.end_session(name);
                    self.end_chain_session(name);
                }
                Err(ConfidentialError::EnclaveRefused { refusal, message })
                    if !retried && refusal.is_cured_by_a_fresh_request() =>
                {
                    retried = true;
                    self.end_session(name);
                    self.end_chain_session(name);
                    if refusal == Refusal::UnknownSession {
                        // Most likely the node restarted, and its broker
                        // with it: the one retry is stamped at the floor
                        // the broker announces (a hint, bounded as a
                        // refusal's), or it would be refused for that.
                        if let Ok(BrokerIdentityDoc {
                            replay_floor_ms: Some(floor_ms),
                            ..
                        }) = BrokerIdentityDoc::fetch(&self.client).await
                        {
                            self.accept_floor(floor_ms);
                        }
                    }
                    let sealed_for = match pinned {
                        Some(version) => vec![(name.to_owned(), Some(version))],
                        None => held_before
                            .into_iter()
                            .zip(self.held_versions(name, plan.as_deref()))
                            .map(|((name, before), (_, after))| (name, before.or(after)))
                            .collect(),
                    };
                    let moved = self.describe_again(&sealed_for).await?;
                    if refusal == Refusal::StaleVersion && !moved {
                        return Err(ConfidentialError::EnclaveRefused { refusal, message });
                    }
                }
                other => return other,
            }
        }
    }

    /// The actions an invoke of `name` runs (those of `plan` for a
    /// sequence), each with the version this client holds for it, if any.
    fn held_versions(
        &self,
        name: &str,
        plan: Option<&VerifiedChainPlan>,
    ) -> Vec<(String, Option<u64>)> {
        let names = match plan {
            Some(plan) => plan
                .components()
                .iter()
                .map(|component| component.qualified())
                .collect(),
            None => vec![name.to_owned()],
        };
        let descriptors = self.lock();
        names
            .into_iter()
            .map(|name| {
                let held = self
                    .short_name(&name)
                    .ok()
                    .and_then(|short| descriptors.get(short))
                    .map(|held| held.descriptor.version);
                (name, held)
            })
            .collect()
    }

    /// Describes each of the `held` actions afresh; whether any version
    /// moved from the one held (or none was).
    async fn describe_again(
        &self,
        held: &[(String, Option<u64>)],
    ) -> Result<bool, ConfidentialError> {
        let mut moved = false;
        for (name, version) in held {
            let described = self.describe(name, true).await?;
            moved |= *version != Some(described.version);
        }
        Ok(moved)
    }

    /// One invocation of action `name`; with `pinned`, only at that
    /// policy version (see [`Self::invoke_version`]).
    async fn invoke_once(
        &self,
        name: &str,
        params: &Value,
        options: InvokeOptions,
        pinned: Option<u64>,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        let mut descriptor = self.describe(name, false).await?;
        if pinned.is_some_and(|version| descriptor.version < version) {
            // Known from before the pinned version was made.
            descriptor = self.describe(name, true).await?;
        }
        check_pinned(&descriptor, pinned)?;
        check_hardware_policy(self.pin.tee, &descriptor)?;
        self.check_final_defaults(&descriptor, params)?;
        if let Some(session) = self.session_for(&descriptor) {
            return self
                .invoke_in_session(&session, &descriptor, params, options)
                .await;
        }
        let (sealed, pending, descriptor) = self.seal(name, params).await?;
        // `seal` describes again: another request may have refreshed it.
        check_pinned(&descriptor, pinned)?;
        let invoked = self
            .client
            .invoke_body(
                &descriptor.name,
                sealed_body(&sealed.to_bytes()).into(),
                options,
            )
            .await?;
        let activation_id = invoked.activation_id();
        let entry = KeyringEntry::new(
            activation_id.to_string(),
            descriptor.namespace.clone(),
            descriptor.name.clone(),
            descriptor.version,
            descriptor.code_digest,
            pending.nonce,
            pending.input_hash,
            Some(&pending.keys),
        )
        .with_entry(&descriptor.policy.entry);
        self.home.remember(&entry)?;
        match invoked {
            Invoked::Accepted { activation_id } => {
                Ok(ConfidentialInvoked::Accepted { activation_id })
            }
            Invoked::Completed { body, .. } => {
                let (result, logs) = if options.result {
                    (body, None)
                } else {
                    split_record(body)
                };
                let (opened, session_salt) = self.open_with_salt(
                    &entry,
                    &descriptor,
                    activation_id,
                    &result,
                    logs.as_deref(),
                )?;
                // The answer opened and its signed receipt verified: the
                // enclave holds the session this invocation asked for, keyed
                // with the salt it sent (without one, there is none).
                if let (true, Some(salt)) = (self.use_sessions, session_salt) {
                    let session = ClientSession {
                        keys: SessionKeys::for_client(&pending, &salt)?,
                        counter: AtomicU64::new(1),
                        version: descriptor.version,
                        code_digest: descriptor.code_digest,
                        entry: descriptor.policy.entry.clone(),
                        opening: opened.receipt.clone(),
                        tee: opened.tee,
                    };
                    self.home.remember_session(
                        &session.keys.id,
                        &OpenedSession {
                            receipt: SignedReceipt::clone(&session.opening),
                            tee: session.tee,
                            secret: Some(SessionSecret::of(&session.keys)),
                        },
                    )?;
                    self.lock_sessions()
                        .insert(descriptor.name.clone(), Arc::new(session));
                }
                Ok(ConfidentialInvoked::Completed(Box::new(opened)))
            }
        }
    }

    /// Seals `params` as the next request of this client's session with
    /// `descriptor`'s action, without sending it (tests that play the
    /// provider replay or tamper with it). `None` without a session.
    pub fn seal_in_session(&self, descriptor: &ActionDescriptor, params: &Value) -> Option<Value> {
        let session = self.session_for(descriptor)?;
        let (sealed, _) = seal_session_request(&session, descriptor, params).ok()?;
        serde_json::from_str(&sealed_body(&sealed)).ok()
    }

    /// The open session for `descriptor`'s action at its current version.
    fn session_for(&self, descriptor: &ActionDescriptor) -> Option<Arc<ClientSession>> {
        if !self.use_sessions {
            return None;
        }
        let sessions = self.lock_sessions();
        sessions
            .get(&descriptor.name)
            .filter(|session| session.version == descriptor.version)
            .cloned()
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ClientSession>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the client's session with `name` (the enclave forgot it, or the
    /// action moved on); the next invoke opens a new one.
    fn end_session(&self, name: &str) {
        if let Ok(short) = self.short_name(name) {
            self.lock_sessions().remove(short);
        }
    }

    /// One request within a session: symmetric keys only.
    async fn invoke_in_session(
        &self,
        session: &ClientSession,
        descriptor: &ActionDescriptor,
        params: &Value,
        options: InvokeOptions,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        let (sealed, counter) = seal_session_request(session, descriptor, params)?;
        let input_hash = Digest::of(&sealed);
        let invoked = self
            .client
            .invoke_body::<SessionAnswerBody>(
                &descriptor.name,
                sealed_body(&sealed).into(),
                options,
            )
            .await?;
        let activation_id = invoked.activation_id();
        let mut entry = KeyringEntry::new(
            activation_id.to_string(),
            descriptor.namespace.clone(),
            descriptor.name.clone(),
            session.version,
            session.code_digest,
            session.keys.replay_nonce(counter),
            input_hash,
            None,
        )
        .with_entry(&session.entry);
        entry.session = Some(SessionEntry::new(&session.keys, counter));
        self.home.remember(&entry)?;
        match invoked {
            Invoked::Accepted { activation_id } => {
                Ok(ConfidentialInvoked::Accepted { activation_id })
            }
            Invoked::Completed { body, .. } => {
                let result = body.into_stored_result(options.result);
                let opened = open_in_session(
                    &session.keys,
                    counter,
                    &entry,
                    activation_id,
                    result.sealed()?,
                    &session.opening,
                    session.tee,
                )?;
                Ok(ConfidentialInvoked::Completed(Box::new(opened)))
            }
        }
    }

    /// How this client's home files name action, sequence or package
    /// `short`: with the API host and the namespace.
    fn home_key(&self, short: &str) -> String {
        home_key(&self.node_key, &self.namespace, short)
    }

    /// The verified signed plan of `name` if it is a sequence (cached per
    /// name for [`PLAN_RECHECK_INTERVAL`]). The controller's answer is untrusted: the plan must be signed
    /// by a trusted owner for this sequence, not older than the newest seen,
    /// and the controller must list exactly its components.
    pub async fn sequence_plan(
        &self,
        name: &str,
    ) -> Result<Option<Arc<VerifiedChainPlan>>, ConfidentialError> {
        let short = self.short_name(name)?.to_owned();
        if let Some(known) = self.lock_kinds().get(&short)
            && known.checked.elapsed() < PLAN_RECHECK_INTERVAL
        {
            return Ok(known.plan.clone());
        }
        let checked = Instant::now();
        let doc = self.client.get_action(&short, false).await?;
        if doc.exec.kind.as_deref() != Some(clemmys_whisk::SEQUENCE_KIND) {
            // Sealed parameters sent to a plain action would only come
            // back unopenable, reported as tampering: where a trusted
            // owner registered the name as a confidential action, say so
            // before anything is sent.
            if !doc.annotations.is_true(CONFIDENTIAL_ANNOTATION)
                && self
                    .trusted_registration(&short)
                    .await?
                    .is_some_and(|registered| registered.policy.kind.is_action())
            {
                return Err(ConfidentialError::ShownAsPlain(short));
            }
            self.lock_kinds().insert(
                short,
                KnownKind {
                    plan: None,
                    checked,
                },
            );
            return Ok(None);
        }
        let encoded = doc
            .annotations
            .get(CHAIN_PLAN_ANNOTATION)
            .and_then(Value::as_str)
            .ok_or(ChainPlanError::Missing)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                ChainPlanError::Malformed(ProtoError::Malformed("chain plan is not base64"))
            })?;
        let signed = SignedChainPlan::from_bytes(&bytes).map_err(ChainPlanError::Malformed)?;
        let plan_digest = Digest::of(&signed.to_bytes());
        let key = self.home_key(&short);
        let registered = self.trusted_registration(&short).await?;
        let newest_seen = self
            .home
            .newest_plan(&key)?
            .max(registered.as_ref().map(|registered| registered.version));
        // A plan a trusted owner registered is that owner's word, whoever
        // signed it: the owner's gateway, which registers as its delegate,
        // signs the sequences made through it. The registration names the
        // plan's exact bytes, and only the owner or a delegate can make it.
        let mut signers = self.plan_signers();
        if registered.as_ref().is_some_and(|registered| {
            !registered.policy.kind.is_action() && registered.code_digest == plan_digest
        }) {
            signers.push(signed.unverified().owner);
        }
        let plan = signed.verify(&signers, &self.namespace, &short, newest_seen)?;
        if let Some(registered) = &registered {
            plan.check_registered(&plan_digest, registered)?;
        }
        plan.check_listed(doc.exec.components.as_deref().unwrap_or_default())?;
        self.home.see_plan(&key, plan.plan().version)?;
        let plan = Arc::new(plan);
        let mut kinds = self.lock_kinds();
        // A slower check that began before a newer plan was cached does
        // not put its older plan back.
        let newer_cached = kinds
            .get(&short)
            .and_then(|known| known.plan.as_ref())
            .is_some_and(|cached| cached.plan().version > plan.plan().version);
        if !newer_cached {
            kinds.insert(
                short,
                KnownKind {
                    plan: Some(plan.clone()),
                    checked,
                },
            );
        }
        Ok(Some(plan))
    }

    /// The registration of `short` by a trusted owner, the broker's
    /// answer: a sequence's plan runs only if it is the registered one
    /// ([`VerifiedChainPlan::check_registered`]), so a client that never
    /// saw the newest plan still refuses any other. `None` when no trusted
    /// owner registered it (a sequence made before sequences were
    /// registered, whose plans only the client's own marks floor).
    async fn trusted_registration(
        &self,
        short: &str,
    ) -> Result<Option<ActionDescriptor>, ConfidentialError> {
        match self.describe_trusted(short).await {
            Ok(descriptor) => Ok(Some(descriptor)),
            Err(ConfidentialError::NotRegistered(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Creates (or, with `overwrite`, updates) confidential sequence `name`
    /// of `components` (`/namespace/name` or short names): signs its plan
    /// (each component's owner as the broker describes it, a version above
    /// any this client has seen) and stores it with the sequence through
    /// the API, with `put`'s limits and annotations. A client acting for an
    /// owner signs with its own identity: it trusts such plans itself, and
    /// the owner's other clients only if they trust its identity.
    pub async fn put_sequence(
        &self,
        name: &str,
        components: &[String],
        mut put: ActionPut,
        overwrite: bool,
    ) -> Result<crate::ActionDoc, ConfidentialError> {
        let short = self.short_name(name)?.to_owned();
        let mut planned = Vec::with_capacity(components.len());
        for component in components {
            // Said plainly: the broker would only say it knows no such
            // action (a sequence is not registered there).
            let component_short = self.short_name(component)?;
            if self
                .home
                .newest_plan(&self.home_key(component_short))?
                .is_some()
            {
                return Err(ConfidentialError::NestedChain(component.clone()));
            }
            let descriptor =
                self.describe(component, false)
                    .await
                    .map_err(|error| match error {
                        ConfidentialError::RegisteredSequence(_) => {
                            ConfidentialError::NestedChain(component.clone())
                        }
                        other => other,
                    })?;
            planned.push(PlanComponent {
                owner: descriptor.owner,
                namespace: descriptor.namespace.clone(),
                name: descriptor.name.clone(),
            });
        }
        let key = self.home_key(&short);
        // Above any plan seen here and any version the broker holds of the
        // name (a plan or an action registered from elsewhere), so that
        // the registration after the store cannot be refused as stale.
        let registered = match self.describe_of(self.owner(), &short).await {
            Ok(descriptor) => Some(descriptor.version),
            Err(ConfidentialError::NotRegistered(_)) => None,
            Err(other) => return Err(other),
        };
        let version = self
            .home
            .newest_plan(&key)?
            .max(registered)
            .map_or(0, |v| v.saturating_add(1))
            .max(now_ms());
        let signed = ChainPlan {
            owner: self.identity.id(),
            namespace: self.namespace.clone(),
            name: short.clone(),
            version,
            components: planned,
        }
        .sign(&self.identity);
        put.exec = Some(ExecPut::sequence(
            signed
                .unverified()
                .components
                .iter()
                .map(PlanComponent::qualified)
                .collect(),
        ));
        let plan_bytes = signed.to_bytes();
        let mut annotations = put.annotations.take().unwrap_or_default();
        annotations.set(
            CHAIN_PLAN_ANNOTATION,
            Value::String(base64::engine::general_purpose::STANDARD.encode(&plan_bytes)),
        );
        put.annotations = Some(annotations);
        let doc = self.client.put_action(&short, &put, overwrite).await?;
        // Marked once stored: a mark above the stored plan would refuse it.
        self.home.see_plan(&key, version)?;
        self.lock_kinds().remove(&short);
        self.end_chain_session(&short);
        // Registered once stored, as an action's new version is: a
        // registration above the stored plan would refuse it.
        self.register_sequence(&short, version, Digest::of(&plan_bytes))
            .await
            .map_err(|error| ConfidentialError::SequenceNotRegistered {
                sequence: short.clone(),
                reason: error.to_string(),
            })?;
        Ok(doc)
    }

    fn lock_kinds(&self) -> std::sync::MutexGuard<'_, HashMap<String, KnownKind>> {
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies an enclave's evidence once: an enclave presents the same
    /// evidence with every receipt, so later checks are a lookup by digest.
    fn verify_evidence(&self, evidence: &Evidence) -> Result<VerifiedEvidence, ConfidentialError> {
        let digest = evidence.digest();
        let mut cache = self
            .evidence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(verified) = cache.get(&digest) {
            return Ok(verified.clone());
        }
        let verified = verifier_for(self.pin.sim_platform)
            .verify(evidence)
            .map_err(attestation)?;
        if cache.len() >= MAX_CACHED_EVIDENCE {
            cache.clear();
        }
        cache.insert(digest, verified.clone());
        Ok(verified)
    }

    /// Opens and verifies a stored activation that this client invoked.
    pub async fn open_activation(
        &self,
        id: ActivationId,
    ) -> Result<OpenedActivation, ConfidentialError> {
        let entry = self
            .home
            .recall(&id.to_string())?
            .ok_or_else(|| ConfidentialError::NoKey(id.to_string()))?;
        let record = self.client.get_activation(id).await?;
        let record =
            serde_json::to_value(record).map_err(|e| ConfidentialError::State(e.to_string()))?;
        if entry.chain.is_some() {
            return self.open_chain(&entry, id, &record, None).await;
        }
        if let Some(session_entry) = &entry.session {
            let opened = self
                .home
                .recall_session(&session_entry.session_id()?)?
                .ok_or_else(|| ConfidentialError::NoKey(id.to_string()))?;
            let keys = session_entry.keys(opened.secret.as_ref())?;
            let (result, _) = split_record(record);
            let (opening, tee) = (Arc::new(opened.receipt), opened.tee);
            return open_in_session(
                &keys,
                session_entry.counter,
                &entry,
                id,
                sealed_answer(&result)?,
                &opening,
                tee,
            );
        }
        let (result, logs) = split_record(record);
        let descriptor = self.describe(&entry.action, false).await?;
        self.open(&entry, &descriptor, id, &result, logs.as_deref())
    }

    fn open(
        &self,
        entry: &KeyringEntry,
        descriptor: &ActionDescriptor,
        activation_id: ActivationId,
        result: &Value,
        sealed_logs: Option<&str>,
    ) -> Result<OpenedActivation, ConfidentialError> {
        self.open_with_salt(entry, descriptor, activation_id, result, sealed_logs)
            .map(|(opened, _)| opened)
    }

    /// [`Self::open`], and the salt of the session the answer opened, if
    /// it opened one.
    fn open_with_salt(
        &self,
        entry: &KeyringEntry,
        descriptor: &ActionDescriptor,
        activation_id: ActivationId,
        result: &Value,
        sealed_logs: Option<&str>,
    ) -> Result<(OpenedActivation, Option<SessionSalt>), ConfidentialError> {
        let id = activation_id.to_string();
        let sealed = sealed_answer(result)?;
        let keys = entry.keys()?;
        let sealed = decode(sealed)?;
        let body = open_result(&sealed, &keys, &id, &entry.nonce)?;
        let logs = match sealed_logs {
            Some(text) => Some(open_logs(&decode(text)?, &keys, &id, &entry.nonce)?),
            None => None,
        };
        let tee = self.verify_receipt(&body, entry, descriptor, &id)?;
        let opened = OpenedActivation {
            activation_id,
            action: entry.action.clone(),
            status: body.status,
            result: body.result,
            logs,
            receipt: Arc::new(body.receipt),
            chain: None,
            session: None,
            tee,
        };
        Ok((opened, body.session_salt))
    }

    /// Checks that the receipt is signed by an enclave whose evidence
    /// verifies, whose measurement the policy allows, and that it names
    /// this request, this code and this result.
    fn verify_receipt(
        &self,
        body: &SealedResultBody,
        entry: &KeyringEntry,
        descriptor: &ActionDescriptor,
        activation_id: &str,
    ) -> Result<TeeKind, ConfidentialError> {
        let signed = &body.receipt;
        signed.verify_signature()?;
        let verified = self.verify_evidence(&signed.evidence)?;
        verified.check_binds(&signed.enclave).map_err(attestation)?;
        let receipt = &signed.receipt;
        if receipt.measurement != verified.measurement() {
            return Err(ConfidentialError::ReceiptMismatch(
                "measurement differs from the evidence",
            ));
        }
        if !descriptor
            .policy
            .allowed_measurements
            .contains(&receipt.measurement)
        {
            return Err(ConfidentialError::ReceiptMismatch(
                "the enclave's measurement is not in the policy",
            ));
        }
        if receipt.activation_id != activation_id
            || receipt.nonce != entry.nonce
            || receipt.input_hash != entry.input_hash
        {
            return Err(ConfidentialError::ReceiptMismatch(
                "it is the receipt of another request",
            ));
        }
        if receipt.code_digest != entry.code_digest || receipt.version != entry.version {
            return Err(ConfidentialError::ReceiptMismatch(
                "another code version ran",
            ));
        }
        if receipt.entry != entry.entry {
            return Err(ConfidentialError::ReceiptMismatch(
                "another entry export of the code ran",
            ));
        }
        let output = serde_json::to_vec(&body.result)
            .map_err(|e| ConfidentialError::State(e.to_string()))?;
        if receipt.output_hash != Digest::of(&output) {
            return Err(ConfidentialError::ReceiptMismatch(
                "the result is not the one the enclave produced",
            ));
        }
        Ok(verified.tee())
    }
}

/// The outcome of a confidential invoke.
#[derive(Debug)]
pub enum ConfidentialInvoked {
    /// Answered within the wait, opened and verified.
    Completed(Box<OpenedActivation>),
    /// Still running; open it later with [`Confidential::open_activation`].
    Accepted {
        /// The activation id.
        activation_id: ActivationId,
    },
}

/// The sealed result and sealed logs of an activation record.
fn split_record(mut record: Value) -> (Value, Option<String>) {
    let result = record["response"]["result"].take();
    let logs = match record["logs"]
        .as_array_mut()
        .and_then(|lines| lines.first_mut())
    {
        Some(Value::String(line)) if line.starts_with(SEALED_LOGS_PREFIX) => {
            let mut line = std::mem::take(line);
            line.drain(..SEALED_LOGS_PREFIX.len());
            Some(line)
        }
        _ => None,
    };
    (result, logs)
}

/// The sealed answer in an activation's result. Without one, the enclave
/// refused or the platform failed; the error it recorded is not secret and
/// says why.
fn sealed_answer(result: &Value) -> Result<&str, ConfidentialError> {
    sealed_or_error(
        result.get(SEALED_FIELD),
        result.get("error"),
        result.get(NOT_BEFORE_FIELD).and_then(Value::as_u64),
        result
            .get(REFUSAL_FIELD)
            .and_then(|code| serde_json::from_value(code.clone()).ok()),
    )
}

/// Refuses `descriptor` when the caller may run only version `pinned`
/// and it is another.
fn check_pinned(
    descriptor: &ActionDescriptor,
    pinned: Option<u64>,
) -> Result<(), ConfidentialError> {
    match pinned {
        Some(expected) if descriptor.version != expected => {
            Err(ConfidentialError::VersionNotCurrent {
                action: format!("{}/{}", descriptor.namespace, descriptor.name),
                expected,
                current: descriptor.version,
            })
        }
        _ => Ok(()),
    }
}

fn sealed_or_error<'a>(
    sealed: Option<&'a Value>,
    error: Option<&Value>,
    not_before_ms: Option<u64>,
    refusal: Option<Refusal>,
) -> Result<&'a str, ConfidentialError> {
    sealed.and_then(Value::as_str).ok_or_else(|| {
        let message = error
            .and_then(Value::as_str)
            .unwrap_or("no sealed answer")
            .to_owned();
        match (not_before_ms, refusal) {
            (Some(floor_ms), _) => ConfidentialError::StampedBeforeFloor { floor_ms, message },
            (None, Some(refusal)) => ConfidentialError::EnclaveRefused { refusal, message },
            (None, None) => ConfidentialError::Execution(message),
        }
    })
}

/// A confidential activation's result as the platform stored it: the
/// fields [`sealed_answer`] reads, without the rest.
#[derive(Debug, Default, Deserialize)]
struct StoredResult {
    #[serde(default)]
    sealed: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, rename = "notBeforeMs")]
    not_before_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient_refusal")]
    refusal: Option<Refusal>,
}

impl StoredResult {
    fn sealed(&self) -> Result<&str, ConfidentialError> {
        sealed_or_error(
            self.sealed.as_ref(),
            self.error.as_ref(),
            self.not_before_ms,
            self.refusal,
        )
    }
}

/// A refusal code, or none for a code this release does not know.
fn lenient_refusal<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Refusal>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|code| serde_json::from_value(code).ok()))
}

/// What a session request reads of its blocking invoke's answer: the
/// stored result, which is the whole body with `result=true` and the
/// record's `response.result` otherwise. A session answer carries its logs
/// inside the sealed result, so the rest of the record is skipped unread
/// instead of being built as JSON values and dropped. (`sealed` and
/// `error` repeat [`StoredResult`]'s fields rather than `#[serde(flatten)]`
/// it, which would buffer every field of the record first.)
#[derive(Debug, Deserialize)]
struct SessionAnswerBody {
    #[serde(default)]
    response: Option<RecordResponse>,
    #[serde(default)]
    sealed: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, rename = "notBeforeMs")]
    not_before_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient_refusal")]
    refusal: Option<Refusal>,
}

#[derive(Debug, Deserialize)]
struct RecordResponse {
    #[serde(default)]
    result: Option<StoredResult>,
}

impl SessionAnswerBody {
    fn into_stored_result(self, result_only: bool) -> StoredResult {
        if result_only {
            StoredResult {
                sealed: self.sealed,
                error: self.error,
                not_before_ms: self.not_before_ms,
                refusal: self.refusal,
            }
        } else {
            self.response
                .and_then(|response| response.result)
                .unwrap_or_default()
        }
    }
}

fn decode(text: &str) -> Result<Vec<u8>, ConfidentialError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| {
            ConfidentialError::Tampered(ProtoError::Malformed("sealed field is not base64"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &str, result_only: bool) -> StoredResult {
        serde_json::from_str::<SessionAnswerBody>(body)
            .expect("an answer body")
            .into_stored_result(result_only)
    }

    fn descriptor(require_hardware: bool) -> ActionDescriptor {
        let mut rng = clemmys_tee::os_rng();
        ActionDescriptor {
            namespace: "guest".into(),
            name: "a".into(),
            version: 1,
            code_digest: Digest::of(b"code"),
            action_key: clemmys_proto::suite::KemKeyPair::generate(&mut rng).public(),
            owner: ClientIdentity::generate(&mut rng).id(),
            policy: Policy {
                allowed_measurements: vec![expected_runtime_measurement()],
                require_hardware,
                allowed_clients: vec![],
                min_version: 1,
                entry: "_start".into(),
                kind: RegisteredKind::Action,
                limits: None,
            },
        }
    }

    #[test]
    fn a_hardware_pin_seals_only_for_policies_that_require_hardware() {
        let lets_sim_run = descriptor(false);
        assert!(matches!(
            check_hardware_policy(TeeKind::SgxDcap, &lets_sim_run),
            Err(ConfidentialError::SimAllowedUnderHardware(action)) if action == "guest/a"
        ));
        check_hardware_policy(TeeKind::SgxDcap, &descriptor(true)).expect("hardware only");
        // Under a `sim` pin nothing is hardware anyway: said on every surface.
        check_hardware_policy(TeeKind::Sim, &lets_sim_run).expect("sim");
    }

    #[test]
    fn a_session_answer_is_read_from_a_record_or_a_bare_result() {
        let record = r#"{"activationId":"a","logs":[],"annotations":[{"key":"limits","value":{"memory":256}}],
            "response":{"status":"success","success":true,"result":{"sealed":"c2VhbGVk"}}}"#;
        assert_eq!(stored(record, false).sealed().expect("sealed"), "c2VhbGVk");
        assert_eq!(
            stored(r#"{"sealed":"c2VhbGVk"}"#, true)
                .sealed()
                .expect("sealed"),
            "c2VhbGVk"
        );
    }

    #[test]
    fn an_answer_without_a_sealed_result_says_why() {
        let refused =
            r#"{"response":{"result":{"error":"confidential execution refused: replay"}}}"#;
        let error = stored(refused, false)
            .sealed()
            .expect_err("no sealed answer");
        assert!(
            matches!(&error, ConfidentialError::Execution(m) if m.contains("replay")),
            "{error}"
        );
        for body in [
            r#"{"response":{"result":null}}"#,
            r#"{"response":{}}"#,
            "{}",
        ] {
            let error = stored(body, false).sealed().expect_err(body);
            assert!(
                matches!(&error, ConfidentialError::Execution(m) if m == "no sealed answer"),
                "{body}: {error}"
            );
        }
        // A sealed field that is not a string is no answer either.
        let error = stored(r#"{"sealed":7}"#, true)
            .sealed()
            .expect_err("a number");
        assert!(matches!(error, ConfidentialError::Execution(_)));
        // The same rules as for a record read whole.
        assert!(sealed_answer(&json!({"sealed": 7})).is_err());
        assert_eq!(
            sealed_answer(&json!({"sealed": "eA=="})).expect("sealed"),
            "eA=="
        );
    }
}
