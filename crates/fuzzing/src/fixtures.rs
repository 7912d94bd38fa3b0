//! Valid protocol objects for the oracles to parse and to edit, with the
//! keys that open them.
//!
//! Everything derives from fixed seeds (keys from fixed secrets, HPKE and
//! nonces from a seeded ChaCha20 RNG, Ed25519 is deterministic), so the
//! fixtures are the same bytes in every process: a crash found by the
//! fuzzer reproduces from its input alone.

use clemmys_proto::chain_plan::{ChainPlan, PlanComponent, SignedChainPlan};
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use clemmys_proto::broker::{
    ActionDescriptor, Admission, AdmissionKey, AdmitReply, AdmitRequest, BrokerIdentity, BrokerOp,
    BrokerReply, BrokerRequest, KeyGrant, KeyRequest, Policy, RegisteredKind, open_broker_request,
    seal_broker_reply, seal_broker_request, seal_grant,
};
use clemmys_proto::chain::{
    ChainKey, ChainStep, ChainTicket, HopBody, HopLink, SignedTicket, seal_hop,
};
use clemmys_proto::chain_session::{
    HopHeader, ReceiptMac, SessionHop, SessionHopBody, StepTrace, hop_key,
};
use clemmys_proto::code::{
    CodeBinding, CodeWithDefaults, DEFAULTS_SALT_BYTES, DefaultParameters, SealedCode,
};
use clemmys_proto::identity::{ClientIdentity, EnclaveKeys};
use clemmys_proto::invoke::{
    AnswerKeys, InvocationHeader, Receipt, SealedResultBody, SignedReceipt, seal_answer,
    seal_invocation,
};
use clemmys_proto::session::{
    SessionBinding, SessionInvocation, SessionKeys, SessionReceipt, SessionSalt,
    seal_session_answer,
};
use clemmys_proto::suite::{ChannelKey, ExportedKey, KemKeyPair};
use clemmys_proto::{Digest, Evidence, Measurement};
use clemmys_tee::sim::SimPlatform;
use clemmys_tee::{SgxPolicy, Verifier};
use clemmys_whisk::ActivationStatus;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

/// The namespace every fixture lives in.
pub const NAMESPACE: &str = "guest";
/// The sequence the plan fixture is signed for.
pub const PLAN_SEQUENCE: &str = "pipe";
/// The action of the invocation, code, session and answer fixtures.
pub const ACTION: &str = "hello";
/// The policy version they are sealed for.
pub const VERSION: u64 = 3;
/// The activation id of the answer fixture.
pub const ACTIVATION_ID: &str = "0123456789abcdef0123456789abcdef";
/// The enclave measurement of the evidence fixture.
pub const MEASUREMENT: Measurement = Measurement::sim([0x4d; 32]);

/// The module the code fixture seals (a valid, empty WebAssembly module).
pub const CODE: &[u8] = b"\0asm\x01\0\0\0";
/// The parameters the invocation, session and chain fixtures carry.
pub const PARAMS: &[u8] = br#"{"name":"fuzz"}"#;
/// The default parameters sealed with [`CODE`] in
/// [`Fixtures::code_with_defaults`].
pub const DEFAULTS: &[u8] = br#"{"greeting":"hi","secret":"s3"}"#;
/// The result the session answer fixture carries.
pub const RESULT: &[u8] = br#"{"greeting":"Hello, fuzz!"}"#;
/// The fixture gateway's TLS key (P-256, PKCS#8), made once for the fuzz
/// fixtures and used nowhere else: the same in every process.
const RATLS_FIXTURE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZMx92cXQ3VEz/I6X
GgprdXb34RVP0oS2T28uxnlJIB6hRANCAAQhAN10yn9AgiBrVRk6p1vXs9EKs/U7
Nu+H+4d2Gf/PrcET2lVp9R5X+IJa4CYV+GNGWyd2C6BxtfV97fSxi9K4
-----END PRIVATE KEY-----
";
/// The activation id of the session answer fixture.
pub const SESSION_ACTIVATION: &str = "fedcba9876543210fedcba9876543210";

/// Valid objects and the keys that open them.
pub struct Fixtures {
    /// The client that sealed and signed them.
    pub client: ClientIdentity,
    /// The action's key pair (the broker's and its enclaves').
    pub action_keys: KemKeyPair,
    /// What the code is bound to.
    pub code_digest: Digest,
    /// A [`SealedCode`] of [`CODE`], wire form.
    pub sealed_code: Vec<u8>,
    /// The plaintext of [`CODE`] sealed with [`DEFAULTS`] (what an enclave
    /// opens for an action with default parameters).
    pub code_with_defaults: Vec<u8>,
    /// A sealed invocation of [`ACTION`] with [`PARAMS`], wire form.
    pub invocation: Vec<u8>,
    /// The invocation's nonce.
    pub nonce: [u8; 16],
    /// The keys its answer is sealed under (the client keeps them).
    pub answer_keys: AnswerKeys,
    /// The sealed result part of the answer to it.
    pub sealed_result: Vec<u8>,
    /// Session keys both sides derived.
    pub session_keys: SessionKeys,
    /// A session invocation with [`PARAMS`], wire form.
    pub session_invocation: Vec<u8>,
    /// The enclave's sealed answer to it (the result part).
    pub session_answer: Vec<u8>,
    /// The sim platform that signed [`Fixtures::evidence`].
    pub platform: SimPlatform,
    /// Sim evidence of an enclave with [`MEASUREMENT`].
    pub evidence: Evidence,
    /// A verifier that trusts [`Fixtures::platform`] and Intel's SGX root,
    /// as clients and brokers do.
    pub verifier: Verifier,
    /// The key pairs of the two steps of the chain fixture.
    pub step_keys: [KemKeyPair; 2],
    /// The chain's signed ticket.
    pub ticket: SignedTicket,
    /// The owner's signed plan of sequence `pipe` (its two steps).
    pub plan: SignedChainPlan,
    /// The plan's wire form, as the sequence's annotation holds it.
    pub plan_bytes: Vec<u8>,
    /// The ticket as JSON, as it travels inside a hop.
    pub ticket_json: Vec<u8>,
    /// The sealed hop to step 1 (`step1`), wire form.
    pub hop: Vec<u8>,
    /// The key of a chain session's hops into step 1.
    pub session_hop_key: ChannelKey,
    /// A chain session run's sealed hop into step 1, wire form.
    pub session_hop: Vec<u8>,
    /// The broker's key pair.
    pub broker_keys: KemKeyPair,
    /// A sealed, signed broker request, wire form.
    pub broker_request: Vec<u8>,
    /// The request inside it.
    pub broker_request_body: BrokerRequest,
    /// The key the client opens the broker's reply with.
    pub broker_reply_key: ExportedKey,
    /// The broker's sealed reply to it (state version 7).
    pub broker_reply: Vec<u8>,
    /// The keys of the enclave whose evidence is [`Fixtures::evidence`].
    pub enclave: EnclaveKeys,
    /// The broker's identity (its keys; its signing key signs grants).
    pub broker_enclave: EnclaveKeys,
    /// The broker's identity document part: evidence binding its keys.
    pub broker_identity: BrokerIdentity,
    /// Its JSON, as the remote broker link reads it.
    pub broker_identity_json: Vec<u8>,
    /// The enclave's key request for [`ACTION`].
    pub key_request: KeyRequest,
    /// Its JSON, as the broker's `/grant` route reads it.
    pub key_request_json: Vec<u8>,
    /// The descriptor the grant carries.
    pub grant_descriptor: ActionDescriptor,
    /// The broker's sealed, signed grant answering it.
    pub grant: Vec<u8>,
    /// The grant's admission key.
    pub admission_key: AdmissionKey,
    /// An admission request MACed with it.
    pub admit_request: AdmitRequest,
    /// Its JSON, as the broker's `/admit` route reads it.
    pub admit_request_json: Vec<u8>,
    /// The broker's MACed answer (a refusal carrying a replay floor).
    pub admit_reply: AdmitReply,
    /// Its JSON, as the enclave's link reads it.
    pub admit_reply_json: Vec<u8>,
    /// The attested gateway's RA-TLS certificate (DER): a sim enclave of
    /// [`MEASUREMENT`] on [`Fixtures::platform`], binding its key and the
    /// client identity [`Fixtures::client`].
    pub ratls_certificate: Vec<u8>,
    /// The gateway a credential request is for (another identity than
    /// [`Fixtures::client`], its owner).
    pub credential_gateway: clemmys_proto::ClientId,
    /// The owner's signed request for a gateway credential, as JSON.
    pub credential_request_json: Vec<u8>,
}

impl Fixtures {
    /// The code binding of [`Fixtures::sealed_code`].
    pub fn code_binding(&self) -> CodeBinding<'static> {
        CodeBinding {
            namespace: NAMESPACE,
            action: ACTION,
            version: VERSION,
            code_digest: self.code_digest,
            entry: clemmys_proto::code::DEFAULT_ENTRY,
        }
    }

    /// The session binding of [`Fixtures::session_invocation`].
    pub fn session_binding(&self) -> SessionBinding<'static> {
        SessionBinding {
            namespace: NAMESPACE,
            action: ACTION,
            version: VERSION,
            code_digest: self.code_digest,
        }
    }
}

/// The receipt the client expects for [`Fixtures::session_invocation`]:
/// everything but the output hash and the MAC, which the answer supplies.
pub fn session_expectation(
    keys: &SessionKeys,
    code_digest: Digest,
    invocation: &[u8],
) -> SessionReceipt {
    SessionReceipt {
        activation_id: SESSION_ACTIVATION.into(),
        session_id: keys.id,
        counter: 1,
        version: VERSION,
        code_digest,
        entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
        input_hash: Digest::of(invocation),
        output_hash: Digest::of(b""),
        mac: [0; clemmys_proto::session::SESSION_MAC_BYTES],
    }
}

/// The fixtures, built once per process.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build)
}

/// The salt of the session the fixture's invocation opens.
const SESSION_SALT: SessionSalt = SessionSalt([0x5a; 16]);

/// The randomness of the fixtures' AEAD nonces: a stream apart from
/// `build`'s, so that the keys drawn after a seal stay those the committed
/// corpora were made with.
fn nonces() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([0x6e; 32])
}

fn build() -> Fixtures {
    let mut rng = ChaCha20Rng::from_seed([0x5e; 32]);
    let client = ClientIdentity::from_secret(&[0x01; 32]);
    let action_keys = KemKeyPair::generate(&mut rng);
    let code_digest = Digest::of(CODE);
    let timestamp_ms = 1_764_000_000_000;

    let binding = CodeBinding {
        namespace: NAMESPACE,
        action: ACTION,
        version: VERSION,
        code_digest,
        entry: clemmys_proto::code::DEFAULT_ENTRY,
    };
    let sealed_code =
        SealedCode::seal(CODE, client.id(), &action_keys.public(), &binding, &mut rng)
            .expect("fixture: seal code")
            .to_bytes();

    let defaults = DefaultParameters::new(
        serde_json::from_slice(DEFAULTS).expect("fixture: defaults"),
        false,
    );
    let code_with_defaults = CodeWithDefaults {
        salt: [0x5a; DEFAULTS_SALT_BYTES],
        defaults: &defaults,
        code: CODE,
    }
    .to_bytes()
    .expect("fixture: code with defaults")
    .to_vec();

    let nonce = [0x6e; 16];
    let header = InvocationHeader {
        namespace: NAMESPACE.into(),
        action: ACTION.into(),
        version: VERSION,
        nonce,
        timestamp_ms,
        client: client.id(),
        open_session: true,
    };
    let (sealed, pending) = seal_invocation(
        &client,
        &action_keys.public(),
        header,
        &code_digest,
        PARAMS,
        &mut rng,
    )
    .expect("fixture: seal invocation");
    let invocation = sealed.to_bytes();

    let platform = SimPlatform::from_secret(&[0x02; 32]);
    let enclave = EnclaveKeys::generate(&mut rng);
    let evidence = platform.report(MEASUREMENT.digest(), &enclave.public().report_data());
    let verifier = Verifier::new()
        .trust_sgx_dcap(SgxPolicy::new())
        .trust_sim_platform(platform.public_key());
    let receipt = |activation_id: &str, input_hash, output: &[u8], nonce, chain| {
        SignedReceipt::sign(
            Receipt {
                activation_id: activation_id.into(),
                namespace: NAMESPACE.into(),
                action: ACTION.into(),
                version: VERSION,
                code_digest,
                entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                measurement: MEASUREMENT,
                input_hash,
                output_hash: Digest::of(output),
                nonce,
                chain,
            },
            &enclave,
            evidence.clone(),
        )
    };
    let result = serde_json::json!({"greeting": "Hello, fuzz!"});
    let result_bytes = serde_json::to_vec(&result).expect("fixture: result JSON");
    let body = SealedResultBody {
        status: ActivationStatus::Success,
        result,
        receipt: receipt(
            ACTIVATION_ID,
            pending.input_hash,
            &result_bytes,
            nonce,
            None,
        ),
        session_salt: Some(SESSION_SALT),
    };
    let sealed_result = seal_answer(
        &body,
        &["a log line".to_owned()],
        &pending.keys,
        ACTIVATION_ID,
        &nonce,
        &mut nonces(),
    )
    .expect("fixture: seal answer")
    .result;

    let session_keys = SessionKeys::derive(&pending.keys, &pending.input_hash, &SESSION_SALT)
        .expect("fixture: derive session keys");
    let session_binding = SessionBinding {
        namespace: NAMESPACE,
        action: ACTION,
        version: VERSION,
        code_digest,
    };
    let session_invocation =
        SessionInvocation::seal(&session_keys, &session_binding, 1, timestamp_ms, PARAMS)
            .expect("fixture: seal session invocation")
            .to_bytes();
    let session_receipt = SessionReceipt {
        output_hash: Digest::of(RESULT),
        ..session_expectation(&session_keys, code_digest, &session_invocation)
    }
    .seal(&session_keys)
    .expect("fixture: session receipt MAC");
    let session_answer = seal_session_answer(
        ActivationStatus::Success,
        RESULT,
        &session_receipt,
        &[],
        &session_keys,
    )
    .expect("fixture: seal session answer");

    let step_keys = [
        KemKeyPair::generate(&mut rng),
        KemKeyPair::generate(&mut rng),
    ];
    let chain_id = [0x63; 16];
    let ticket = ChainTicket {
        chain_id,
        steps: step_keys
            .iter()
            .enumerate()
            .map(|(index, keys)| ChainStep {
                namespace: NAMESPACE.into(),
                action: format!("step{index}"),
                version: 1,
                code_digest,
                entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                action_key: keys.public(),
            })
            .collect(),
        client: client.id(),
        timestamp_ms,
        open_session: true,
    }
    .sign(&client);
    let ticket_json = serde_json::to_vec(&ticket).expect("fixture: ticket JSON");
    let plan = ChainPlan {
        owner: client.id(),
        namespace: NAMESPACE.into(),
        name: PLAN_SEQUENCE.into(),
        version: 7,
        components: ticket
            .ticket
            .steps
            .iter()
            .map(|step| PlanComponent {
                owner: client.id(),
                namespace: step.namespace.clone(),
                name: step.action.clone(),
            })
            .collect(),
    }
    .sign(&client);
    let plan_bytes = plan.to_bytes();
    let link = HopLink::new(&ticket.ticket.steps[1], &mut rng).expect("fixture: a link to step 1");
    let (hop, _) = seal_hop(
        &HopBody {
            ticket: ticket.clone(),
            chain_key: ChainKey::from_bytes([0x6b; 32]),
            index: 1,
            value: Zeroizing::new(PARAMS.to_vec()),
            receipts: vec![
                serde_json::value::to_raw_value(&body.receipt).expect("fixture: receipt JSON"),
            ],
        },
        &link,
        &mut nonces(),
    )
    .expect("fixture: seal hop");
    let session_hop_key = hop_key(&ExportedKey::from_bytes([0x73; 32])).expect("fixture: hop key");
    let session_hop = SessionHop::seal(
        &session_hop_key,
        HopHeader {
            session_id: chain_id,
            counter: 2,
            index: 1,
            timestamp_ms,
        },
        &SessionHopBody {
            value: Zeroizing::new(PARAMS.to_vec()),
            traces: vec![StepTrace {
                measurement: MEASUREMENT,
                output_hash: Digest::of(PARAMS),
            }],
            receipts: ReceiptMac::start(),
        },
    )
    .expect("fixture: seal session hop")
    .to_bytes();

    let broker_keys = KemKeyPair::generate(&mut rng);
    let op = BrokerOp::Describe {
        owner: client.id(),
        namespace: NAMESPACE.into(),
        name: ACTION.into(),
    };
    let (broker_request, _) = seal_broker_request(
        &client,
        &broker_keys.public(),
        op.clone(),
        timestamp_ms,
        &mut rng,
    )
    .expect("fixture: seal broker request");
    // The nonce is drawn inside; the body is what the broker opens.
    let (broker_request_body, _) =
        open_broker_request(&broker_keys, &broker_request).expect("fixture: open broker request");
    debug_assert_eq!(broker_request_body.op, op);
    let (_, broker_reply_key) =
        open_broker_request(&broker_keys, &broker_request).expect("fixture: open broker request");
    let grant_descriptor = ActionDescriptor {
        namespace: NAMESPACE.into(),
        name: ACTION.into(),
        version: VERSION,
        code_digest,
        action_key: action_keys.public(),
        owner: client.id(),
        policy: Policy {
            allowed_measurements: vec![MEASUREMENT],
            require_hardware: false,
            allowed_clients: Vec::new(),
            min_version: VERSION,
            entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
            kind: RegisteredKind::Action,
            limits: None,
        },
    };
    let broker_reply = seal_broker_reply(
        &BrokerReply::Action(grant_descriptor.clone()),
        7,
        &broker_reply_key,
        &mut nonces(),
    )
    .expect("fixture: seal broker reply");
    // The 16 bytes of the reply's salt this stream gave before the reply's
    // nonce came from `nonces` (see there).
    rand_core::Rng::fill_bytes(&mut rng, &mut [0u8; 16]);
    let broker_enclave = EnclaveKeys::generate(&mut rng);
    let broker_identity = BrokerIdentity {
        evidence: platform.report(MEASUREMENT.digest(), &broker_enclave.public().report_data()),
        keys: broker_enclave.public(),
    };
    let broker_identity_json =
        serde_json::to_vec(&broker_identity).expect("fixture: identity JSON");
    let key_request = KeyRequest {
        evidence: evidence.clone(),
        enclave: enclave.public(),
        owner: grant_descriptor.owner,
        namespace: NAMESPACE.into(),
        name: ACTION.into(),
    };
    let key_request_json = serde_json::to_vec(&key_request).expect("fixture: key request JSON");
    let admission_key = AdmissionKey::generate(&mut rng);
    let grant = seal_grant(
        &KeyGrant {
            action: grant_descriptor.clone(),
            action_keys: KemKeyPair::from_secret(&action_keys.secret_bytes())
                .expect("fixture: action keys"),
            issued_at_ms: timestamp_ms,
            grant_id: [0x67; 16],
            admission_key: AdmissionKey::generate(&mut rng),
        },
        &key_request,
        &broker_enclave,
        &mut rng,
    )
    .expect("fixture: seal grant");
    let admit_request = AdmitRequest::new(
        &admission_key,
        [0x67; 16],
        NAMESPACE,
        ACTION,
        VERSION,
        Admission::Invocation { nonce },
        timestamp_ms,
        // Its own stream, so the fixtures drawn after it stay as they were.
        &mut ChaCha20Rng::from_seed([0x61; 32]),
    )
    .expect("fixture: admission request");
    let admit_request_json =
        serde_json::to_vec(&admit_request).expect("fixture: admission request JSON");
    let admit_reply = AdmitReply::stamped_before_floor(
        &admission_key,
        &admit_request,
        "stamped before the floor".into(),
        timestamp_ms.saturating_add(1),
    )
    .expect("fixture: admission reply");
    let admit_reply_json = serde_json::to_vec(&admit_reply).expect("fixture: admission reply JSON");
    // A fixed TLS key: the oracle accepts a certificate only for the
    // fixture's key, and seeds written by another process must carry the
    // same one. (rcgen still draws the ECDSA signature's nonce from the OS,
    // a part no check relies on.)
    let gateway_tee = clemmys_tee::sim::SimTee::new(
        std::sync::Arc::new(SimPlatform::from_secret(&[0x02; 32])),
        MEASUREMENT.digest(),
    );
    let ratls_certificate = clemmys_gateway::ratls::make_certificate(
        &gateway_tee,
        &rcgen::KeyPair::from_pem(RATLS_FIXTURE_KEY).expect("fixture: TLS key"),
        &client.id(),
        &["localhost".to_owned()],
    )
    .expect("fixture: RA-TLS certificate")
    .der()
    .to_vec();

    let credential_gateway = ClientIdentity::from_secret(&[0x05; 32]).id();
    let credential_request_json = serde_json::to_vec(
        &clemmys_gateway::credentials::CredentialRequest {
            action: clemmys_gateway::credentials::CredentialAction::Issue,
            gateway: credential_gateway,
            owner: client.id(),
            challenge: "07".repeat(32),
        }
        .sign(&client),
    )
    .expect("fixture: credential request JSON");

    Fixtures {
        client,
        action_keys,
        code_digest,
        sealed_code,
        code_with_defaults,
        invocation,
        nonce,
        answer_keys: pending.keys,
        sealed_result,
        session_keys,
        session_invocation,
        session_answer,
        platform,
        evidence,
        verifier,
        step_keys,
        ticket,
        ticket_json,
        plan,
        plan_bytes,
        hop,
        session_hop_key,
        session_hop,
        broker_keys,
        broker_request,
        broker_request_body,
        broker_reply_key,
        broker_reply,
        enclave,
        broker_enclave,
        broker_identity,
        broker_identity_json,
        key_request,
        key_request_json,
        grant_descriptor,
        grant,
        admission_key,
        admit_request,
        admit_request_json,
        admit_reply,
        admit_reply_json,
        ratls_certificate,
        credential_gateway,
        credential_request_json,
    }
}
