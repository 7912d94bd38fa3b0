//! [`Enclave`]: one enclave of the action runtime. It generates its keys
//! inside and attests them when it starts, holds the key of at most one
//! action (fixed by its first provisioning, then never changed), and runs
//! any number of that action's activations at once, each in a fresh wasm
//! instance of the module it compiled from the sealed code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use clemmys_proto::broker::{
    ActionDescriptor, Admission, AdmitRequest, BrokerLink, KeyGrant, KeyRequest, LinkError,
    open_grant,
};
use clemmys_proto::code::{
    CodeBinding, DEFAULT_ENTRY, DefaultParameters, JavaScriptCode, OpenedCode, SealedCode,
};
use clemmys_proto::identity::{EnclaveKeys, EnclavePublicKeys};
use clemmys_proto::inbound::SealedInput;
use clemmys_proto::invoke::{
    ChainPosition, Receipt, SealedInvocation, SealedResultBody, SignedReceipt, seal_answer,
};
use clemmys_proto::refusal::Refusal;
use clemmys_proto::replay::CounterWindow;
use clemmys_proto::session::{
    SessionBinding, SessionInvocation, SessionKeys, SessionReceipt, SessionSalt,
    seal_session_answer,
};
use clemmys_proto::suite::ENC_LEN;
use clemmys_proto::{ClientId, Digest, Evidence, KemPublicKey, Measurement, SigningPublicKey};
use clemmys_sandbox::javascript::{JsEngine, engine_response};
use clemmys_sandbox::{ActivationContext, Failure, PreparedModule, RunRequest, Sandbox};
use clemmys_tee::{Tee, Verifier, os_rng};
use clemmys_whisk::{ActionLimits, ActivationStatus};

use zeroize::Zeroizing;

use crate::EnclaveError;

mod bytecode;
mod chain;
mod lease;

use bytecode::{BytecodeKey, JsRun, KeptBytecode};

use chain::{ChainSession, ChainSessionStep, KeptLink};
use lease::{LeaseScope, SessionLeases};
pub use lease::{SESSION_LEASE, SESSION_LEASE_USES};

/// One run the host asks for: everything in it is sealed or public.
#[derive(Debug)]
pub struct SealedRun<'a> {
    /// Namespace of the action to run.
    pub namespace: &'a str,
    /// Name of the action to run.
    pub action: &'a str,
    /// The activation id, bound into the receipt and the sealed answer.
    pub activation_id: &'a str,
    /// The sealed invocation from the client.
    pub invocation: &'a [u8],
    /// The action's limits as the host records them; those the owner's
    /// policy binds (see `Policy::limits`) replace them.
    pub limits: ActionLimits,
    /// The export the host names (`exec.main`; `_start` if none). The
    /// enclave runs the export the owner's policy binds, and refuses the
    /// run if this names another.
    pub entry: Option<String>,
}

/// What the host gets back: sealed bytes, one public flag and timings.
#[derive(Debug)]
pub struct SealedOutcome {
    /// What goes in the activation's result: the answer sealed to the
    /// client, or, for a chain step that is not the last, the next step's
    /// sealed input.
    pub result: Vec<u8>,
    /// The logs, sealed to the client; `None` when they are sealed inside
    /// `result` (a session answer).
    pub logs: Option<Vec<u8>>,
    /// A chain step that failed: the chain must stop here (its sealed final
    /// answer carries the error). The one bit the orchestrator must know.
    pub stop_chain: bool,
    /// Time spent opening, compiling and running.
    pub duration: Duration,
    /// Time this run spent before it could start the function: starting an
    /// enclave, obtaining the key and compiling, or waiting for another run
    /// or a prewarm doing so. `None` when the enclave was ready (warm).
    pub init_time: Option<Duration>,
    /// Whether the run hit its time limit (the host sees this anyway).
    pub timed_out: bool,
    /// The action's code opened but failed to compile: the sealed answer
    /// says why; the host may record and log only
    /// [`GENERIC_COMPILE_ERROR`](crate::GENERIC_COMPILE_ERROR).
    pub compile_failed: bool,
}

/// What one run inside the enclave produced.
struct Ran {
    status: ActivationStatus,
    result: serde_json::Value,
    /// `result` as JSON bytes (what the receipt hashes).
    output: Vec<u8>,
    logs: Vec<String>,
    timed_out: bool,
    /// The code did not compile; `result` says why.
    compile_failed: bool,
}

impl Ran {
    /// The answer to a run whose code opened under the policy but did not
    /// compile: why (derived from the code) is sealed to the client only.
    fn compile_failed(failure: &crate::CompileFailure) -> Self {
        let result = serde_json::json!({
            "error": format!("the action's code failed to compile: {}", failure.detail())
        });
        Self {
            status: ActivationStatus::DeveloperError,
            output: serde_json::to_vec(&result).unwrap_or_default(),
            result,
            logs: Vec::new(),
            timed_out: false,
            compile_failed: true,
        }
    }

    /// The answer to a run refused before the function started because of
    /// its parameters (sealed to the client: it names no value).
    fn refused_parameters(error: &str) -> Self {
        let result = serde_json::json!({ "error": error });
        Self {
            status: ActivationStatus::ApplicationError,
            output: serde_json::to_vec(&result).unwrap_or_default(),
            result,
            logs: Vec::new(),
            timed_out: false,
            compile_failed: false,
        }
    }
}

/// What an opened action runs: its own module, or the node's JavaScript
/// engine with the action's source.
struct Runnable {
    module: Arc<PreparedModule>,
    /// A JavaScript action's opened source and the bytecode compiled from
    /// it (the module is then the engine the owner pinned).
    javascript: Option<OpenedJavaScript>,
    /// The default parameters its owner sealed with the code.
    defaults: Option<DefaultParameters>,
}

/// A confidential JavaScript action's source, opened in this enclave, and
/// its bytecode once a run compiled it: both stay in enclave memory.
struct OpenedJavaScript {
    source: Zeroizing<String>,
    bytecode: KeptBytecode,
}

/// The action's grant, and what it runs once the sealed code was opened.
struct Provisioned {
    grant: KeyGrant,
    module: OnceLock<Arc<Runnable>>,
    /// Held while the sealed code is opened and compiled, so concurrent
    /// first runs compile once.
    compiling: Mutex<()>,
}

impl Provisioned {
    fn version(&self) -> u64 {
        self.grant.action.version
    }
}

/// One enclave: its keys, its evidence and the one action provisioned to it.
pub struct Enclave {
    keys: EnclaveKeys,
    evidence: Evidence,
    measurement: Measurement,
    broker: Arc<dyn BrokerLink>,
    broker_signing: SigningPublicKey,
    sandbox: Arc<Sandbox>,
    /// `(namespace, name)` of the only action this enclave may ever hold a
    /// key for, fixed by its first provisioning.
    action: OnceLock<(String, String)>,
    /// The identity that registered that action, as its stored sealed code
    /// first named it (untrusted routing: the broker keys actions by
    /// owner), fixed like the action: a host that could switch it would
    /// have this enclave ask for another owner's grant of the same name
    /// and admit a request under that registration while running this
    /// owner's code. Another owner's code gets a fresh enclave.
    owner: OnceLock<ClientId>,
    /// The current grant; replaced when the action moves to a new version.
    /// Runs under way keep the grant they started with.
    provisioned: Mutex<Option<Arc<Provisioned>>>,
    /// Held while asking the broker, so concurrent runs ask once.
    provisioning: Mutex<()>,
    /// The node's JavaScript engine, if it has one: a confidential
    /// JavaScript action runs under it only when its digest is the one the
    /// owner sealed with the source.
    javascript: Option<JsEngine>,
    /// Sessions opened by clients, by id.
    sessions: Mutex<HashMap<[u8; 16], Arc<Session>>>,
    /// Chain sessions this enclave takes part in, by (session id, step).
    chain_sessions: Mutex<HashMap<ChainSessionStep, Arc<ChainSession>>>,
    /// The broker's last admission, reused for session requests in its
    /// scope for a short while, and the admissions asked (see [`lease`]).
    session_lease: Mutex<SessionLeases>,
    /// Links to the next steps of chains, by the next step's action key;
    /// each seals hops for at most [`chain::LINK_LIFETIME`].
    links_out: Mutex<HashMap<KemPublicKey, Arc<KeptLink>>>,
    /// Links from previous steps (or clients) this enclave opened, by
    /// their encapsulated key.
    links_in: Mutex<HashMap<[u8; ENC_LEN], Arc<KeptLink>>>,
}

/// Most sessions (and, separately, chain session steps) one enclave keeps;
/// past it the oldest is dropped (its client opens a new one).
const MAX_SESSIONS: usize = 4096;

/// A client's session with this enclave's action.
struct Session {
    keys: SessionKeys,
    client: ClientId,
    /// The policy version it was opened for; an update ends it.
    version: u64,
    opened: Instant,
    /// The request counters accepted so far. Only this enclave holds the
    /// session's keys, so only it could open a replayed request: the
    /// replay guard of a session lives here, not in the broker.
    counters: Mutex<CounterWindow>,
}

impl Enclave {
    /// Starts an enclave: verifies the broker's evidence against
    /// `expected_broker` before trusting anything it sends, then generates
    /// its keys inside and attests them.
    pub fn start(
        tee: &dyn Tee,
        sandbox: Arc<Sandbox>,
        broker: Arc<dyn BrokerLink>,
        verifier: &Verifier,
        expected_broker: Measurement,
    ) -> Result<Self, EnclaveError> {
        let identity = broker.identity();
        let verified = verifier
            .verify(&identity.evidence)
            .map_err(|error| EnclaveError::BrokerNotTrusted(error.to_string()))?;
        if verified.measurement() != expected_broker {
            return Err(EnclaveError::BrokerNotTrusted(format!(
                "measurement {} is not the expected {expected_broker}",
                verified.measurement()
            )));
        }
        verified
            .check_binds(&identity.keys)
            .map_err(|error| EnclaveError::BrokerNotTrusted(error.to_string()))?;
        let keys = EnclaveKeys::generate(&mut os_rng());
        let evidence = tee.attest(&keys.public().report_data())?;
        Ok(Self {
            keys,
            evidence,
            measurement: tee.measurement(),
            broker,
            broker_signing: identity.keys.signing,
            sandbox,
            action: OnceLock::new(),
            owner: OnceLock::new(),
            provisioned: Mutex::new(None),
            provisioning: Mutex::new(()),
            javascript: None,
            sessions: Mutex::new(HashMap::new()),
            chain_sessions: Mutex::new(HashMap::new()),
            links_out: Mutex::new(HashMap::new()),
            links_in: Mutex::new(HashMap::new()),
            session_lease: Mutex::default(),
        })
    }

    /// Gives the enclave the node's JavaScript engine module. The host
    /// chooses it, so it is checked at every first run: its digest must be
    /// the one sealed with the action's source.
    pub fn with_javascript_engine(mut self, engine: JsEngine) -> Self {
        self.javascript = Some(engine);
        self
    }

    /// This enclave's evidence.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// This enclave's public keys (its receipts are signed with them).
    pub fn public_keys(&self) -> EnclavePublicKeys {
        self.keys.public()
    }

    /// `(namespace, name)` of the action this enclave is bound to, if any.
    pub fn action(&self) -> Option<(&str, &str)> {
        self.action
            .get()
            .map(|(namespace, name)| (namespace.as_str(), name.as_str()))
    }

    /// Whether it holds its action's key.
    pub fn is_provisioned(&self) -> bool {
        self.current().is_some()
    }

    /// Whether it holds its action's key and compiled module: a run needs
    /// neither the broker nor the compiler (unless the version moved).
    pub fn is_ready(&self) -> bool {
        self.current()
            .is_some_and(|provisioned| provisioned.module.get().is_some())
    }

    /// Provisions `namespace/name` ahead of its invocations: asks the broker
    /// for the current grant (a deploy just moved the version), then opens
    /// and compiles the sealed code `load_code` fetches. Returns whether
    /// anything was done (false: already ready at the current version).
    pub fn prewarm(
        &self,
        namespace: &str,
        name: &str,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<bool, EnclaveError> {
        self.bind(namespace, name)?;
        let code = load_code().ok_or(EnclaveError::CodeMissing)?;
        self.learn_owner(&code)?;
        let provisioned = {
            let _provisioning = lock(&self.provisioning);
            let fresh = self.request_grant(namespace, name)?;
            match self.current() {
                // Same version: keep the grant (and module) runs already use.
                Some(current) if current.version() == fresh.version() => current,
                // An older one than held is an answer the provider kept.
                Some(current) if current.version() > fresh.version() => {
                    return Err(EnclaveError::VersionMismatch {
                        requested: fresh.version(),
                        current: current.version(),
                    });
                }
                _ => {
                    *lock(&self.provisioned) = Some(fresh.clone());
                    fresh
                }
            }
        };
        if provisioned.module.get().is_some() {
            return Ok(false);
        }
        self.module(&provisioned, move || Some(code), &mut None)?;
        Ok(true)
    }

    /// Reads the action's owner from its stored sealed code: the first
    /// one binds this enclave, any other is refused.
    fn learn_owner(&self, sealed_code: &[u8]) -> Result<(), EnclaveError> {
        let found = SealedCode::from_bytes(sealed_code)
            .map_err(EnclaveError::CodeRejected)?
            .owner();
        let bound = *self.owner.get_or_init(|| found);
        if bound != found {
            return Err(EnclaveError::OwnedByAnother { bound, found });
        }
        Ok(())
    }

    /// Runs one sealed input: a client's invocation, a request in a
    /// session, or one step of a confidential chain. The bytes are parsed
    /// once, here, before anything else; each kind then has one path:
    /// authenticate and open, admit, execute, seal. `load_code` fetches the
    /// action's sealed code from the untrusted store when this enclave has
    /// not compiled it yet.
    pub async fn run(
        &self,
        run: SealedRun<'_>,
        load_code: impl Fn() -> Option<Vec<u8>> + Sync,
    ) -> Result<SealedOutcome, EnclaveError> {
        let input = SealedInput::from_bytes(run.invocation)?;
        if self.current().is_none() {
            // The first grant needs the owner the stored code names.
            self.learn_owner(&load_code().ok_or(EnclaveError::CodeMissing)?)?;
        }
        let load_code = &load_code;
        match input {
            SealedInput::Invocation(invocation) => {
                self.run_invocation(run, invocation, load_code).await
            }
            SealedInput::SessionRequest(request) => self.run_session(run, request, load_code).await,
            SealedInput::ChainHop(hop) => self.run_chain_step(run, hop, load_code).await,
            SealedInput::ChainSessionHop(hop) => {
                self.run_chain_session_step(run, hop, load_code).await
            }
        }
    }

    async fn run_invocation(
        &self,
        run: SealedRun<'_>,
        invocation: SealedInvocation,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let header = &invocation.header;
        if header.namespace != run.namespace || header.action != run.action {
            return Err(EnclaveError::WrongAction {
                claimed: format!("{}/{}", header.namespace, header.action),
                running: format!("{}/{}", run.namespace, run.action),
            });
        }
        let mut init_time = None;
        let provisioned = self.provisioned_for(&run, header.version, &mut init_time)?;
        let descriptor = &provisioned.grant.action;
        // A client the policy does not name may still be a gateway the
        // owner delegated to: the broker, which holds the delegations,
        // decides at admission (and refuses once it is revoked).
        let delegate = (!descriptor.allows_client(&header.client)).then_some(header.client);
        invocation.verify_signature()?;
        // Authenticated and opened before admission: only the client's own
        // request may use up its nonce.
        let opened = invocation.open(&provisioned.grant.action_keys, &descriptor.code_digest)?;
        // One call to the broker both refuses replays and stale versions
        // (this enclave's grant may predate an update).
        self.admit_for(
            &run,
            &provisioned,
            header.version,
            Admission::Invocation {
                nonce: header.nonce,
            },
            header.timestamp_ms,
            delegate,
        )?;
        let session_salt = header
            .open_session
            .then(|| SessionSalt::generate(&mut os_rng()));
        if let Some(salt) = &session_salt {
            let keys = SessionKeys::derive(&opened.answer_keys, &invocation.input_hash(), salt)?;
            self.keep_session(Session {
                keys,
                client: header.client,
                version: header.version,
                opened: Instant::now(),
                counters: Mutex::new(CounterWindow::new()),
            });
        }
        let ran = self
            .execute(
                &run,
                &provisioned,
                &opened.params,
                load_code,
                &mut init_time,
            )
            .await?;
        let receipt = self.receipt(
            &run,
            descriptor,
            invocation.input_hash(),
            &ran.output,
            header.nonce,
            None,
        );
        let body = SealedResultBody {
            status: ran.status,
            result: ran.result,
            receipt,
            session_salt,
        };
        let sealed = seal_answer(
            &body,
            &ran.logs,
            &opened.answer_keys,
            run.activation_id,
            &header.nonce,
            &mut os_rng(),
        )?;
        Ok(SealedOutcome {
            result: sealed.result,
            logs: Some(sealed.logs),
            stop_chain: false,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
            compile_failed: ran.compile_failed,
        })
    }

    /// One request of a session: symmetric keys only. The session fixes the
    /// client and the version; the session refuses a counter it accepted
    /// before, and the broker (or, for up to a second, this enclave's
    /// lease of its last admission) a version that is no longer current.
    async fn run_session(
        &self,
        run: SealedRun<'_>,
        request: SessionInvocation,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let session = lock(&self.sessions)
            .get(&request.session_id)
            .cloned()
            .ok_or(EnclaveError::UnknownSession)?;
        let mut init_time = None;
        let provisioned = match self.provisioned_for(&run, session.version, &mut init_time) {
            Ok(provisioned) => provisioned,
            Err(error) => {
                // The action moved on: this session is over.
                lock(&self.sessions).remove(&request.session_id);
                return Err(error);
            }
        };
        let descriptor = &provisioned.grant.action;
        // As for the opening invocation: a delegate is admitted (or, once
        // revoked, refused) by the broker, request by request.
        let delegate = (!descriptor.allows_client(&session.client)).then_some(session.client);
        let binding = SessionBinding {
            namespace: run.namespace,
            action: run.action,
            version: session.version,
            code_digest: descriptor.code_digest,
        };
        // Opened first: only an authentic counter may move the window.
        let params = request.open(&session.keys, &binding)?;
        lock(&session.counters)
            .accept(request.counter)
            .map_err(|replay| EnclaveError::Refused {
                refusal: Refusal::from(replay),
                reason: replay.to_string(),
            })?;
        self.admit_for(
            &run,
            &provisioned,
            session.version,
            Admission::SessionRequest {
                session_id: request.session_id,
                counter: request.counter,
            },
            request.timestamp_ms,
            delegate,
        )?;
        let ran = self
            .execute(&run, &provisioned, &params, load_code, &mut init_time)
            .await?;
        let receipt = SessionReceipt {
            activation_id: run.activation_id.to_owned(),
            session_id: request.session_id,
            counter: request.counter,
            version: session.version,
            code_digest: descriptor.code_digest,
            entry: descriptor.policy.entry.clone(),
            input_hash: request.input_hash(),
            output_hash: Digest::of(&ran.output),
            mac: [0; clemmys_proto::session::SESSION_MAC_BYTES],
        }
        .seal(&session.keys)?;
        let result =
            seal_session_answer(ran.status, &ran.output, &receipt, &ran.logs, &session.keys)?;
        Ok(SealedOutcome {
            result,
            // Sealed inside the result.
            logs: None,
            stop_chain: false,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
            compile_failed: ran.compile_failed,
        })
    }

    /// Keeps a session, dropping the oldest past [`MAX_SESSIONS`].
    fn keep_session(&self, session: Session) {
        let id = session.keys.id;
        keep_bounded(&mut lock(&self.sessions), id, Arc::new(session), |s| {
            s.opened
        });
    }

    /// The grant of the action to run, refreshed when the input names a
    /// newer version; refuses any other version than the grant's, and an
    /// entry export other than the policy's.
    fn provisioned_for(
        &self,
        run: &SealedRun<'_>,
        version: u64,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<Provisioned>, EnclaveError> {
        // A version above the grant's: the owner updated the action since
        // this enclave got its key, so ask again (once).
        let provisioned = self.grant(run.namespace, run.action, Some(version), init_time)?;
        let descriptor = &provisioned.grant.action;
        if version != descriptor.version || version < descriptor.policy.min_version {
            return Err(EnclaveError::VersionMismatch {
                requested: version,
                current: descriptor.version,
            });
        }
        // `exec.main` travels in the clear: another export of the same
        // module is other code, so only the owner's choice runs.
        let requested = run.entry.as_deref().unwrap_or(DEFAULT_ENTRY);
        if requested != descriptor.policy.entry {
            return Err(EnclaveError::EntryMismatch {
                requested: requested.to_owned(),
            });
        }
        Ok(provisioned)
    }

    /// Opens and compiles the code if needed and runs it on `input`, on the
    /// async runtime polling it (see `Sandbox::run_async`).
    async fn execute(
        &self,
        run: &SealedRun<'_>,
        provisioned: &Provisioned,
        input: &[u8],
        load_code: impl FnOnce() -> Option<Vec<u8>>,
        init_time: &mut Option<Duration>,
    ) -> Result<Ran, EnclaveError> {
        let runnable = match self.module(provisioned, load_code, init_time) {
            Ok(runnable) => runnable,
            Err(EnclaveError::Compile(failure)) => return Ok(Ran::compile_failed(&failure)),
            Err(other) => return Err(other),
        };
        let merged;
        let input = match &runnable.defaults {
            None => input,
            Some(defaults) => match with_defaults(defaults, input) {
                Ok(bytes) => {
                    merged = bytes;
                    merged.as_slice()
                }
                Err(refused) => return Ok(refused),
            },
        };
        let policy = &provisioned.grant.action.policy;
        let entry = &policy.entry;
        // The owner's limits where the policy binds them: the host's
        // record of the action is the provider's to write.
        let limits = policy.run_limits(run.limits);
        let env = confidential_context(run, &provisioned.grant.action, limits.timeout).env();
        let request = match &runnable.javascript {
            // The engine reads the source (or the bytecode this enclave
            // compiled from it), the function's name and the parameters
            // from its stdin; `entry` names the function.
            Some(javascript) => {
                let params = serde_json::from_slice(input)
                    .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
                let started = Instant::now();
                let (input, compiled) = javascript
                    .bytecode
                    .input(&JsRun {
                        sandbox: &self.sandbox,
                        engine: &runnable.module,
                        key: BytecodeKey {
                            code_digest: provisioned.grant.action.code_digest,
                            entry: entry.clone(),
                        },
                        source: &javascript.source,
                        params: &params,
                        env: &env,
                        limits: (&limits).into(),
                    })
                    .await;
                if compiled {
                    add_time(init_time, started.elapsed());
                }
                RunRequest {
                    input,
                    limits: (&limits).into(),
                    entry: None,
                    env,
                }
            }
            None => RunRequest {
                input: input.to_vec(),
                limits: (&limits).into(),
                entry: Some(entry.clone()),
                env,
            },
        };
        let outcome = self.sandbox.run_async(&runnable.module, request).await;
        let timed_out = matches!(outcome.failure, Some(Failure::Timeout { .. }));
        let response = if runnable.javascript.is_some() {
            engine_response(outcome.response)
        } else {
            outcome.response
        };
        let status = response.status;
        let result = response.result.unwrap_or_else(|| serde_json::json!({}));
        let output = serde_json::to_vec(&result).unwrap_or_default();
        Ok(Ran {
            status,
            result,
            output,
            logs: outcome.logs,
            timed_out,
            compile_failed: false,
        })
    }

    fn receipt(
        &self,
        run: &SealedRun<'_>,
        descriptor: &ActionDescriptor,
        input_hash: Digest,
        output: &[u8],
        nonce: [u8; 16],
        chain: Option<ChainPosition>,
    ) -> SignedReceipt {
        let receipt = self.report(run, descriptor, input_hash, output, nonce, chain);
        SignedReceipt::sign(receipt, &self.keys, self.evidence.clone())
    }

    /// What this enclave reports about a run, to sign or MAC.
    fn report(
        &self,
        run: &SealedRun<'_>,
        descriptor: &ActionDescriptor,
        input_hash: Digest,
        output: &[u8],
        nonce: [u8; 16],
        chain: Option<ChainPosition>,
    ) -> Receipt {
        Receipt {
            activation_id: run.activation_id.to_owned(),
            namespace: run.namespace.to_owned(),
            action: run.action.to_owned(),
            version: descriptor.version,
            code_digest: descriptor.code_digest,
            entry: descriptor.policy.entry.clone(),
            measurement: self.measurement,
            input_hash,
            output_hash: Digest::of(output),
            nonce,
            chain,
        }
    }

    /// Binds this enclave to `namespace/name` if it is not bound yet;
    /// refuses any other action afterwards, whatever the host asks.
    fn bind(&self, namespace: &str, name: &str) -> Result<(), EnclaveError> {
        let (bound_namespace, bound_name) = self
            .action
            .get_or_init(|| (namespace.to_owned(), name.to_owned()));
        if bound_namespace != namespace || bound_name != name {
            return Err(EnclaveError::BoundToAnotherAction {
                bound: format!("{bound_namespace}/{bound_name}"),
                requested: format!("{namespace}/{name}"),
            });
        }
        Ok(())
    }

    fn current(&self) -> Option<Arc<Provisioned>> {
        lock(&self.provisioned).clone()
    }

    /// The action's grant, asking the broker when there is none or when it
    /// is older than `at_least`. Time spent asking, or waiting for another
    /// thread asking, is added to `init_time`.
    /// Asks the broker to admit one request, over a link the provider
    /// controls: the request and the answer are MACed with the grant's
    /// admission key. A broker that no longer knows the grant (it restarted)
    /// gets asked for a new one, once. `delegate`: the request's client,
    /// when the policy does not name it (see `AdmitRequest::delegate`).
    fn admit_for(
        &self,
        run: &SealedRun<'_>,
        provisioned: &Provisioned,
        version: u64,
        admission: Admission,
        timestamp_ms: u64,
        delegate: Option<clemmys_proto::ClientId>,
    ) -> Result<(), EnclaveError> {
        let scope = |grant: &KeyGrant| LeaseScope {
            grant_id: grant.grant_id,
            version,
            delegate,
        };
        if matches!(admission, Admission::SessionRequest { .. })
            && lock(&self.session_lease).admit(
                &scope(&provisioned.grant),
                timestamp_ms,
                Instant::now(),
            )
        {
            return Ok(());
        }
        let ask = |grant: &KeyGrant| -> Result<Result<(), EnclaveError>, EnclaveError> {
            let request = AdmitRequest::new(
                &grant.admission_key,
                grant.grant_id,
                run.namespace,
                run.action,
                version,
                admission,
                timestamp_ms,
                &mut os_rng(),
            )?
            .for_delegate(&grant.admission_key, delegate)?;
            // Numbered and timed before it leaves: the host may hold the
            // answer back past a revocation or an update.
            let asked = lock(&self.session_lease).asking(Instant::now());
            let reply = self
                .broker
                .admit(&request)
                .map_err(EnclaveError::KeyRefused)?;
            Ok(
                match (
                    reply.verify(&grant.admission_key, &request)?,
                    reply.not_before_ms,
                ) {
                    (Ok(()), _) => {
                        lock(&self.session_lease).granted(asked, scope(grant), timestamp_ms);
                        Ok(())
                    }
                    (Err(_), Some(floor_ms)) => Err(EnclaveError::StampedBeforeFloor { floor_ms }),
                    (Err((refusal, reason)), None) => {
                        Err(EnclaveError::Refused { refusal, reason })
                    }
                },
            )
        };
        match ask(&provisioned.grant) {
            Err(EnclaveError::KeyRefused(LinkError::UnknownGrant)) => {
                // "Unknown grant" is the host's word, not the broker's.
                let fresh = {
                    let _provisioning = lock(&self.provisioning);
                    let fresh = self.request_grant(run.namespace, run.action)?;
                    // The request was opened, and will run, under the grant
                    // it came with: only that same registration may admit
                    // it (admitting under another owner's, whose policy the
                    // provider writes, would run this one's code for whoever
                    // that policy allows).
                    let (held, fetched) = (&provisioned.grant.action, &fresh.grant.action);
                    if !same_registration(held, fetched) {
                        return Err(if fetched.version == held.version {
                            EnclaveError::GrantChanged
                        } else {
                            EnclaveError::VersionMismatch {
                                requested: version,
                                current: fetched.version,
                            }
                        });
                    }
                    // The same code: the new grant keeps the compiled module.
                    if let Some(module) = provisioned.module.get() {
                        let _ = fresh.module.set(module.clone());
                    }
                    *lock(&self.provisioned) = Some(fresh.clone());
                    fresh
                };
                ask(&fresh.grant)?
            }
            other => other?,
        }
    }

    fn grant(
        &self,
        namespace: &str,
        name: &str,
        at_least: Option<u64>,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<Provisioned>, EnclaveError> {
        self.bind(namespace, name)?;
        let fresh_enough =
            |provisioned: &Provisioned| at_least.is_none_or(|v| provisioned.version() >= v);
        if let Some(current) = self.current()
            && fresh_enough(&current)
        {
            return Ok(current);
        }
        let started = Instant::now();
        let result = {
            let _provisioning = lock(&self.provisioning);
            // Whoever held the lock before may have got what we need.
            match self.current() {
                Some(current) if fresh_enough(&current) => Ok(current),
                current => self.request_grant(namespace, name).map(|fresh| {
                    // The version asked for comes from a header nobody
                    // has authenticated yet: when the broker's grant is
                    // the one held, keep it and its compiled module, or
                    // anyone could make every client wait for a recompile.
                    match current {
                        Some(current)
                            if same_registration(&current.grant.action, &fresh.grant.action)
                                // An older one than held is an answer the
                                // provider kept: the held grant stays.
                                || current.version() > fresh.version() =>
                        {
                            current
                        }
                        _ => {
                            *lock(&self.provisioned) = Some(fresh.clone());
                            fresh
                        }
                    }
                }),
            }
        };
        add_time(init_time, started.elapsed());
        result
    }

    /// Asks the broker for the action's key and opens the grant.
    fn request_grant(&self, namespace: &str, name: &str) -> Result<Arc<Provisioned>, EnclaveError> {
        let owner = *self.owner.get().ok_or(EnclaveError::CodeMissing)?;
        let request = KeyRequest {
            evidence: self.evidence.clone(),
            enclave: self.keys.public(),
            owner,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let sealed = self
            .broker
            .request_key(&request)
            .map_err(EnclaveError::KeyRefused)?;
        let grant = open_grant(&sealed, &request, &self.keys, &self.broker_signing)?;
        Ok(Arc::new(Provisioned {
            grant,
            module: OnceLock::new(),
            compiling: Mutex::new(()),
        }))
    }

    /// The compiled module of a provisioned action, opening and compiling
    /// its sealed code on first use (or waiting for the run doing so).
    fn module(
        &self,
        provisioned: &Provisioned,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<Runnable>, EnclaveError> {
        if let Some(module) = provisioned.module.get() {
            return Ok(module.clone());
        }
        let started = Instant::now();
        let result = {
            let _compiling = lock(&provisioned.compiling);
            match provisioned.module.get() {
                Some(module) => Ok(module.clone()),
                None => self
                    .compile(provisioned, load_code)
                    .map(|module| provisioned.module.get_or_init(|| module).clone()),
            }
        };
        add_time(init_time, started.elapsed());
        result
    }

    fn compile(
        &self,
        provisioned: &Provisioned,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<Arc<Runnable>, EnclaveError> {
        let descriptor = &provisioned.grant.action;
        let sealed = SealedCode::from_bytes(&load_code().ok_or(EnclaveError::CodeMissing)?)
            .map_err(EnclaveError::CodeRejected)?;
        let binding = CodeBinding {
            namespace: &descriptor.namespace,
            action: &descriptor.name,
            version: descriptor.version,
            code_digest: descriptor.code_digest,
            entry: &descriptor.policy.entry,
        };
        let opened = sealed
            .open(&provisioned.grant.action_keys, &binding)
            .map_err(EnclaveError::CodeRejected)?;
        // The policy's digest covered the defaults with the code: whatever
        // is here is what the owner sealed for this version.
        let OpenedCode { code, defaults } =
            OpenedCode::parse(&opened).map_err(EnclaveError::CodeRejected)?;
        if let Some(javascript) = JavaScriptCode::parse(code).map_err(EnclaveError::CodeRejected)? {
            return self.javascript_runnable(&javascript, defaults);
        }
        // Compiled outside the sandbox's shared cache: a plain action with the
        // same bytes must not reveal, by a cache hit, that it equals this code.
        let module = self.sandbox.compile_private(code).map_err(|error| {
            EnclaveError::Compile(crate::CompileFailure::new(error.to_string()))
        })?;
        Ok(Arc::new(Runnable {
            module,
            javascript: None,
            defaults,
        }))
    }

    /// The node's engine with `javascript`'s source, if the engine is the
    /// one its owner sealed with it. A mismatch is the owner's business
    /// (which engine they pinned): it is sealed to the client like a
    /// compile error, and the provider sees a generic one.
    fn javascript_runnable(
        &self,
        javascript: &JavaScriptCode<'_>,
        defaults: Option<DefaultParameters>,
    ) -> Result<Arc<Runnable>, EnclaveError> {
        let pinned = javascript.engine;
        let engine = self.javascript.as_ref().ok_or_else(|| {
            EnclaveError::Compile(crate::CompileFailure::new(format!(
                "the action is JavaScript for engine {pinned}, and this node runs no \
                 JavaScript engine"
            )))
        })?;
        if engine.digest().as_bytes() != pinned.as_bytes() {
            return Err(EnclaveError::Compile(crate::CompileFailure::new(format!(
                "the action's owner pinned JavaScript engine {pinned}, and this node's engine is {}",
                engine.digest()
            ))));
        }
        // The engine is public: the shared cache reveals nothing.
        let module = match self.sandbox.cached(&engine.digest()) {
            Some(module) => module,
            None => {
                self.sandbox
                    .prepare(engine.digest(), engine.code())
                    .map_err(|error| {
                        EnclaveError::Compile(crate::CompileFailure::new(error.to_string()))
                    })?
                    .module
            }
        };
        Ok(Arc::new(Runnable {
            module,
            javascript: Some(OpenedJavaScript {
                source: Zeroizing::new(javascript.source.to_owned()),
                bytecode: KeptBytecode::new(),
            }),
            defaults,
        }))
    }
}

impl std::fmt::Debug for Enclave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enclave")
            .field("keys", &self.keys)
            .field("measurement", &self.measurement)
            .field("action", &self.action.get())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// `input` (the invoke's parameters, or the previous step's result in a
/// chain, as OpenWhisk feeds a sequence's components) over the action's
/// default parameters; an answer for the client when it is not a JSON
/// object, or overrides final defaults.
fn with_defaults(defaults: &DefaultParameters, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, Ran> {
    let invoke = if input.is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(input)
            .map_err(|_| Ran::refused_parameters("the parameters are not a JSON object"))?
    };
    let merged = defaults
        .merge(invoke)
        .map_err(|error| Ran::refused_parameters(&error.to_string()))?;
    serde_json::to_vec(&merged)
        .map(Zeroizing::new)
        .map_err(|_| Ran::refused_parameters("the parameters are not JSON"))
}

/// Locks `mutex`; nothing panics while holding these locks, so a poisoned
/// one holds intact data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Inserts `value` under `key`, first dropping the entry `opened` says is
/// oldest when `map` holds [`MAX_SESSIONS`] already.
fn keep_bounded<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    opened: impl Fn(&V) -> Instant,
) {
    if map.len() >= MAX_SESSIONS
        && let Some(oldest) = map.iter().min_by_key(|(_, v)| opened(v)).map(|(k, _)| *k)
    {
        map.remove(&oldest);
    }
    map.insert(key, value);
}

/// Whether two grants' descriptors are of the same registration at the
/// same version: same owner, action key, code, entry and version.
fn same_registration(held: &ActionDescriptor, fetched: &ActionDescriptor) -> bool {
    fetched.owner == held.owner
        && fetched.action_key == held.action_key
        && fetched.code_digest == held.code_digest
        && fetched.policy.entry == held.policy.entry
        && fetched.version == held.version
}

fn add_time(total: &mut Option<Duration>, spent: Duration) {
    *total = Some(total.unwrap_or_default() + spent);
}

/// The `__OW_*` context of a confidential run: the action's name and
/// policy version as the broker granted them, the activation id the
/// receipt binds, and a deadline by this machine's clock and the run's
/// timeout. Never an API key nor the node's URL: the host does not hand the
/// enclave credentials.
fn confidential_context(
    run: &SealedRun<'_>,
    action: &ActionDescriptor,
    timeout_ms: u64,
) -> ActivationContext {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    ActivationContext {
        action_name: format!("/{}/{}", action.namespace, action.name),
        action_version: action.version.to_string(),
        activation_id: run.activation_id.to_owned(),
        namespace: run.namespace.to_owned(),
        deadline_ms: now_ms.saturating_add(timeout_ms),
        api_host: None,
        api_key: None,
    }
}
