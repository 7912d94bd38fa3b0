//! The enclave runtime: the only server-side code that sees plaintext.
//!
//! Its interface to the untrusted host ([`EnclaveRuntime::run`]) takes and
//! returns sealed bytes only. Inside, it attests to the key broker, obtains
//! action keys bound to its evidence, opens sealed code and parameters,
//! checks versions, clients and replay, runs the function in the wasm
//! [`Sandbox`], and seals the result, the logs and a signed receipt to the
//! invoking client. Key material lives in zeroizing types.
//!
//! With the `sim` TEE this runs in the provider's process and protects
//! nothing from the provider; with a hardware TEE the same code runs inside
//! the enclave boundary.

mod error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clemmys_broker::BrokerLink;
use clemmys_proto::broker::{KeyGrant, KeyRequest, open_grant};
use clemmys_proto::code::{CodeBinding, SealedCode};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::invoke::{
    Receipt, SealedAnswer, SealedInvocation, SealedResultBody, SignedReceipt, seal_answer,
};
use clemmys_proto::{Digest, Evidence, Measurement, SigningPublicKey};
use clemmys_sandbox::{Failure, PreparedModule, RunRequest, Sandbox};
use clemmys_tee::{Tee, Verifier, os_rng};
use clemmys_whisk::ActionLimits;

pub use error::EnclaveError;

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
    /// The action's limits.
    pub limits: ActionLimits,
    /// Export to call instead of `_start`.
    pub entry: Option<String>,
}

/// What the host gets back: the sealed answer and timings.
#[derive(Debug)]
pub struct SealedOutcome {
    /// The answer (result and logs) sealed to the invoking client.
    pub sealed_answer: SealedAnswer,
    /// Time spent opening, compiling and running.
    pub duration: Duration,
    /// Time spent obtaining the key and compiling, when this run did.
    pub init_time: Option<Duration>,
    /// Whether the run hit its time limit (the host sees this anyway).
    pub timed_out: bool,
}

/// An action provisioned into this enclave.
struct Provisioned {
    grant: KeyGrant,
    /// The compiled module, once the sealed code was opened.
    module: Mutex<Option<Arc<PreparedModule>>>,
}

/// One enclave: its keys, its evidence and the actions provisioned to it.
pub struct EnclaveRuntime {
    keys: EnclaveKeys,
    evidence: Evidence,
    measurement: Measurement,
    broker: Arc<dyn BrokerLink>,
    broker_signing: SigningPublicKey,
    sandbox: Arc<Sandbox>,
    actions: Mutex<HashMap<String, Arc<Provisioned>>>,
}

impl EnclaveRuntime {
    /// Starts an enclave: generates its keys inside, attests them, and
    /// verifies the broker's evidence against `expected_broker` before
    /// trusting anything it sends.
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
            actions: Mutex::new(HashMap::new()),
        })
    }

    /// This enclave's evidence.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Runs one sealed invocation. `load_code` fetches the action's sealed
    /// code from the untrusted store when this enclave has not compiled it.
    pub fn run(
        &self,
        run: SealedRun<'_>,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let invocation = SealedInvocation::from_bytes(run.invocation)?;
        let header = &invocation.header;
        if header.namespace != run.namespace || header.action != run.action {
            return Err(EnclaveError::WrongAction {
                claimed: format!("{}/{}", header.namespace, header.action),
                running: format!("{}/{}", run.namespace, run.action),
            });
        }
        let mut init_time = None;
        let mut provisioned = self.provisioned(run.namespace, run.action, false, &mut init_time)?;
        if header.version > provisioned.grant.action.version {
            // The owner updated the action since this enclave got its key.
            provisioned = self.provisioned(run.namespace, run.action, true, &mut init_time)?;
        }
        let descriptor = &provisioned.grant.action;
        if header.version != descriptor.version || header.version < descriptor.policy.min_version {
            return Err(EnclaveError::VersionMismatch {
                requested: header.version,
                current: descriptor.version,
            });
        }
        if !descriptor.allows_client(&header.client) {
            return Err(EnclaveError::ClientNotAllowed);
        }
        invocation.verify_signature()?;
        // One call to the broker both refuses replays and stale versions
        // (this enclave's grant may predate an update).
        self.broker
            .admit(
                run.namespace,
                run.action,
                header.version,
                header.nonce,
                header.timestamp_ms,
            )
            .map_err(EnclaveError::Replay)?;
        let opened = invocation.open(&provisioned.grant.action_keys, &descriptor.code_digest)?;
        let module = self.module(&provisioned, load_code, &mut init_time)?;

        let outcome = self.sandbox.run(
            &module,
            RunRequest {
                input: opened.params.to_vec(),
                limits: (&run.limits).into(),
                entry: run.entry,
            },
        );
        let result = outcome
            .response
            .result
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        let output = serde_json::to_vec(&result).unwrap_or_default();
        let receipt = Receipt {
            activation_id: run.activation_id.to_owned(),
            namespace: run.namespace.to_owned(),
            action: run.action.to_owned(),
            version: descriptor.version,
            code_digest: descriptor.code_digest,
            measurement: self.measurement,
            input_hash: invocation.input_hash(),
            output_hash: Digest::of(&output),
            nonce: header.nonce,
        };
        let body = SealedResultBody {
            status: outcome.response.status,
            result,
            receipt: SignedReceipt::sign(receipt, &self.keys, self.evidence.clone()),
        };
        let sealed_answer = seal_answer(
            &body,
            &outcome.logs,
            &opened.answer_keys,
            run.activation_id,
            &header.nonce,
        )?;
        Ok(SealedOutcome {
            sealed_answer,
            duration: started.elapsed(),
            init_time,
            timed_out: matches!(outcome.failure, Some(Failure::Timeout { .. })),
        })
    }

    /// The action's grant, asking the broker when absent or when `refresh`.
    fn provisioned(
        &self,
        namespace: &str,
        action: &str,
        refresh: bool,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<Provisioned>, EnclaveError> {
        let key = format!("{namespace}/{action}");
        if !refresh && let Some(found) = self.lock_actions().get(&key) {
            return Ok(found.clone());
        }
        let started = Instant::now();
        let request = KeyRequest {
            evidence: self.evidence.clone(),
            enclave: self.keys.public(),
            namespace: namespace.to_owned(),
            name: action.to_owned(),
        };
        let sealed = self
            .broker
            .request_key(&request)
            .map_err(EnclaveError::KeyRefused)?;
        let grant = open_grant(&sealed, &request, &self.keys, &self.broker_signing)?;
        let provisioned = Arc::new(Provisioned {
            grant,
            module: Mutex::new(None),
        });
        self.lock_actions().insert(key, provisioned.clone());
        *init_time = Some(init_time.unwrap_or_default() + started.elapsed());
        Ok(provisioned)
    }

    /// The compiled module of a provisioned action, opening and compiling
    /// its sealed code on first use.
    fn module(
        &self,
        provisioned: &Provisioned,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<PreparedModule>, EnclaveError> {
        let mut slot = provisioned
            .module
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(module) = slot.as_ref() {
            return Ok(module.clone());
        }
        let started = Instant::now();
        let descriptor = &provisioned.grant.action;
        let sealed = SealedCode::from_bytes(&load_code().ok_or(EnclaveError::CodeMissing)?)
            .map_err(EnclaveError::CodeRejected)?;
        let binding = CodeBinding {
            namespace: &descriptor.namespace,
            action: &descriptor.name,
            version: descriptor.version,
            code_digest: descriptor.code_digest,
        };
        let code = sealed
            .open(&provisioned.grant.action_keys, &binding)
            .map_err(EnclaveError::CodeRejected)?;
        // Compiled outside the sandbox's shared cache: a plain action with the
        // same bytes must not reveal, by a cache hit, that it equals this code.
        let module = self
            .sandbox
            .compile_private(&code)
            .map_err(|error| EnclaveError::Compile(error.to_string()))?;
        *slot = Some(module.clone());
        *init_time = Some(init_time.unwrap_or_default() + started.elapsed());
        Ok(module)
    }

    fn lock_actions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Provisioned>>> {
        self.actions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
