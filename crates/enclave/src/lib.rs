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
use clemmys_proto::chain::{
    ChainAnswer, HopBody, is_hop, open_hop, seal_chain_answer, seal_chain_logs, seal_hop,
};
use clemmys_proto::code::{CodeBinding, SealedCode};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::invoke::{
    ChainPosition, Receipt, SealedInvocation, SealedResultBody, SignedReceipt, seal_answer,
};
use clemmys_proto::{Digest, Evidence, Measurement, SigningPublicKey};
use clemmys_sandbox::{Failure, PreparedModule, RunRequest, Sandbox};
use clemmys_tee::{Tee, Verifier, os_rng};
use clemmys_whisk::{ActionLimits, ActivationStatus};

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

/// What the host gets back: sealed bytes, one public flag and timings.
#[derive(Debug)]
pub struct SealedOutcome {
    /// What goes in the activation's result: the answer sealed to the
    /// client, or, for a chain step that is not the last, the next step's
    /// sealed input.
    pub result: Vec<u8>,
    /// The logs, sealed to the client.
    pub logs: Vec<u8>,
    /// A chain step that failed: the chain must stop here (its sealed final
    /// answer carries the error). The one bit the orchestrator must know.
    pub stop_chain: bool,
    /// Time spent opening, compiling and running.
    pub duration: Duration,
    /// Time spent obtaining the key and compiling, when this run did.
    pub init_time: Option<Duration>,
    /// Whether the run hit its time limit (the host sees this anyway).
    pub timed_out: bool,
}

/// What one run inside the enclave produced.
struct Ran {
    status: ActivationStatus,
    result: serde_json::Value,
    /// `result` as JSON bytes (what the receipt hashes).
    output: Vec<u8>,
    logs: Vec<String>,
    timed_out: bool,
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

    /// Runs one sealed input: a client's invocation, or one step of a
    /// confidential chain. `load_code` fetches the action's sealed code from
    /// the untrusted store when this enclave has not compiled it yet.
    pub fn run(
        &self,
        run: SealedRun<'_>,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        if is_hop(run.invocation) {
            self.run_chain_step(run, load_code)
        } else {
            self.run_invocation(run, load_code)
        }
    }

    fn run_invocation(
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
        let provisioned = self.provisioned_for(&run, header.version, &mut init_time)?;
        let descriptor = &provisioned.grant.action;
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
        let ran = self.execute(
            &run,
            &provisioned,
            &opened.params,
            load_code,
            &mut init_time,
        )?;
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
        };
        let sealed = seal_answer(
            &body,
            &ran.logs,
            &opened.answer_keys,
            run.activation_id,
            &header.nonce,
        )?;
        Ok(SealedOutcome {
            result: sealed.result,
            logs: sealed.logs,
            stop_chain: false,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
        })
    }

    /// One step of a confidential chain: checks that this enclave's action is
    /// the step the client's ticket names at the hop's index and that the
    /// broker never admitted (chain id, index) before; runs; seals the output
    /// to the next step, or the final answer to the client.
    fn run_chain_step(
        &self,
        run: SealedRun<'_>,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let mut init_time = None;
        let provisioned = self.provisioned(run.namespace, run.action, false, &mut init_time)?;
        let mut hop = open_hop(
            run.invocation,
            run.namespace,
            run.action,
            &provisioned.grant.action_keys,
        )?;
        let ticket = &hop.ticket.ticket;
        let index = hop.index;
        let step = usize::try_from(index)
            .ok()
            .and_then(|i| ticket.steps.get(i))
            .ok_or(EnclaveError::NotTheTicketsStep { index })?;
        if step.namespace != run.namespace || step.action != run.action {
            return Err(EnclaveError::NotTheTicketsStep { index });
        }
        let provisioned = self.provisioned_for(&run, step.version, &mut init_time)?;
        let descriptor = &provisioned.grant.action;
        if step.code_digest != descriptor.code_digest || step.action_key != descriptor.action_key {
            return Err(EnclaveError::CodeNotTheTickets { index });
        }
        if !descriptor.allows_client(&ticket.client) {
            return Err(EnclaveError::ClientNotAllowed);
        }
        self.broker
            .admit_chain_step(
                run.namespace,
                run.action,
                step.version,
                ticket.chain_id,
                index,
                ticket.timestamp_ms,
            )
            .map_err(EnclaveError::Replay)?;
        let input_hash = Digest::of(&hop.value);
        let ran = self.execute(&run, &provisioned, &hop.value, load_code, &mut init_time)?;
        let position = ChainPosition {
            chain_id: ticket.chain_id,
            index,
        };
        let receipt = self.receipt(
            &run,
            descriptor,
            input_hash,
            &ran.output,
            ticket.chain_id,
            Some(position),
        );
        let chain_id = ticket.chain_id;
        let last = index + 1 >= ticket.steps.len() as u64;
        let succeeded = ran.status == ActivationStatus::Success;
        let logs = seal_chain_logs(&ran.logs, &hop.chain_key, &chain_id, index)?;
        hop.receipts.push(receipt);
        let (result, stop_chain) = if succeeded && !last {
            let next = HopBody {
                ticket: hop.ticket.clone(),
                chain_key: hop.chain_key.clone(),
                index: index + 1,
                value: zeroize::Zeroizing::new(ran.output.clone()),
                receipts: std::mem::take(&mut hop.receipts),
            };
            (seal_hop(&next, &mut os_rng())?, false)
        } else {
            let answer = ChainAnswer {
                status: ran.status,
                result: ran.result,
                last_index: index,
                receipts: std::mem::take(&mut hop.receipts),
            };
            (
                seal_chain_answer(&answer, &hop.chain_key, &chain_id)?,
                !last,
            )
        };
        Ok(SealedOutcome {
            result,
            logs,
            stop_chain,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
        })
    }

    /// The grant of the action to run, refreshed when the input names a
    /// newer version; refuses any other version than the grant's.
    fn provisioned_for(
        &self,
        run: &SealedRun<'_>,
        version: u64,
        init_time: &mut Option<Duration>,
    ) -> Result<Arc<Provisioned>, EnclaveError> {
        let mut provisioned = self.provisioned(run.namespace, run.action, false, init_time)?;
        if version > provisioned.grant.action.version {
            // The owner updated the action since this enclave got its key.
            provisioned = self.provisioned(run.namespace, run.action, true, init_time)?;
        }
        let descriptor = &provisioned.grant.action;
        if version != descriptor.version || version < descriptor.policy.min_version {
            return Err(EnclaveError::VersionMismatch {
                requested: version,
                current: descriptor.version,
            });
        }
        Ok(provisioned)
    }

    /// Opens and compiles the code if needed and runs it on `input`.
    fn execute(
        &self,
        run: &SealedRun<'_>,
        provisioned: &Provisioned,
        input: &[u8],
        load_code: impl FnOnce() -> Option<Vec<u8>>,
        init_time: &mut Option<Duration>,
    ) -> Result<Ran, EnclaveError> {
        let module = self.module(provisioned, load_code, init_time)?;
        let outcome = self.sandbox.run(
            &module,
            RunRequest {
                input: input.to_vec(),
                limits: (&run.limits).into(),
                entry: run.entry.clone(),
            },
        );
        let result = outcome
            .response
            .result
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        let output = serde_json::to_vec(&result).unwrap_or_default();
        Ok(Ran {
            status: outcome.response.status,
            result,
            output,
            logs: outcome.logs,
            timed_out: matches!(outcome.failure, Some(Failure::Timeout { .. })),
        })
    }

    fn receipt(
        &self,
        run: &SealedRun<'_>,
        descriptor: &clemmys_proto::broker::ActionDescriptor,
        input_hash: Digest,
        output: &[u8],
        nonce: [u8; 16],
        chain: Option<ChainPosition>,
    ) -> SignedReceipt {
        let receipt = Receipt {
            activation_id: run.activation_id.to_owned(),
            namespace: run.namespace.to_owned(),
            action: run.action.to_owned(),
            version: descriptor.version,
            code_digest: descriptor.code_digest,
            measurement: self.measurement,
            input_hash,
            output_hash: Digest::of(output),
            nonce,
            chain,
        };
        SignedReceipt::sign(receipt, &self.keys, self.evidence.clone())
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
