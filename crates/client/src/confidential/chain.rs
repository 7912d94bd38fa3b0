//! Confidential chains on the client side: signing a chain's ticket and
//! sealing its first hop, opening the final answer and checking every
//! step's receipt against the ticket. And chain sessions: once a first run
//! of a sequence opened one, later runs of the same sequence (same steps,
//! versions and code) seal their first hop with the key that run
//! established and get MAC receipts, so a run costs no public-key
//! operation (`clemmys_proto::chain_session`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use clemmys_proto::broker::ActionDescriptor;
use clemmys_proto::chain::{
    ChainAnswer, ChainKey, ChainStep, ChainTicket, HopBody, HopLink, open_chain_answer, seal_hop,
};
use clemmys_proto::chain_check::{ExpectedChain, verify_chain_answer, verify_session_answer};
use clemmys_proto::chain_plan::{ChainPlanError, VerifiedChainPlan};
use clemmys_proto::chain_session::{
    HopHeader, ReceiptMac, SessionAnswer, SessionHop, SessionHopBody, hop_key,
};
use clemmys_proto::invoke::{AnswerKeys, Receipt, SignedReceipt};
use clemmys_proto::suite::{ChannelKey, ExportedKey};
use clemmys_proto::{Digest, Measurement, TeeKind};
use clemmys_tee::os_rng;
use clemmys_whisk::{ActivationId, ActivationStatus};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{
    ChainEntry, Confidential, ConfidentialError, ConfidentialInvoked, KeyringEntry,
    OpenedActivation, OpenedSession, SEALED_FIELD, attestation, decode, sealed_answer,
};
use crate::{InvokeOptions, Invoked};

/// A chain session this client holds with the enclaves of a sequence.
pub(super) struct ClientChainSession {
    /// The session id: the chain id of the run that opened it.
    id: [u8; 16],
    /// The steps it was opened for; any change (an update) ends it.
    steps: Vec<ChainStep>,
    chain_key: ChainKey,
    /// The key of the hops into the first step.
    first_hop: ChannelKey,
    /// The next run's counter.
    counter: AtomicU64,
    /// The last step's signed receipt of the opening run, and its TEE.
    opening: SignedReceipt,
    tee: TeeKind,
}

/// A chain's first run, sealed: the invoke body, the keyring entry (its
/// activation id is filled in once the invoke answers) and what keeping a
/// session after it needs.
struct FirstRun {
    body: Value,
    entry: KeyringEntry,
    chain_key: ChainKey,
    first_hop_secret: ExportedKey,
}

/// The invoke body carrying sealed `bytes`.
fn sealed_body(bytes: &[u8]) -> Value {
    json!({ SEALED_FIELD: base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// The keyring entry of a chain run whose answer opens under `key` and
/// binds `chain_id` (for a session run: the run key and run id).
fn chain_entry(
    namespace: &str,
    chain_id: [u8; 16],
    input_hash: Digest,
    key: &ChainKey,
    steps: Vec<ChainStep>,
    session: Option<&[u8; 16]>,
) -> Result<KeyringEntry, ConfidentialError> {
    let keys = AnswerKeys {
        result: key.answer_key()?,
        logs: key.logs_key(0)?,
    };
    let mut entry = KeyringEntry::new(
        String::new(),
        namespace.to_owned(),
        String::new(),
        0,
        input_hash,
        chain_id,
        input_hash,
        Some(&keys),
    );
    entry.chain = Some(ChainEntry::new(steps, key, session));
    Ok(entry)
}

/// The next run of `session`: its first hop, sealed under the session's
/// key into step 0, and its keyring entry.
fn seal_session_run(
    session: &ClientChainSession,
    namespace: &str,
    params: &Value,
    timestamp_ms: u64,
) -> Result<(Value, KeyringEntry), ConfidentialError> {
    let header = HopHeader {
        session_id: session.id,
        counter: session.counter.fetch_add(1, Ordering::Relaxed),
        index: 0,
        timestamp_ms,
    };
    let value = serde_json::to_vec(params).map_err(|e| ConfidentialError::State(e.to_string()))?;
    let input_hash = Digest::of(&value);
    let hop = SessionHop::seal(
        &session.first_hop,
        header,
        &SessionHopBody {
            value: Zeroizing::new(value),
            traces: Vec::new(),
            receipts: ReceiptMac::start(),
        },
    )?;
    let run_id = header.run_id();
    let entry = chain_entry(
        namespace,
        run_id,
        input_hash,
        &session.chain_key.for_run(&run_id)?,
        session.steps.clone(),
        Some(&session.id),
    )?;
    Ok((sealed_body(&hop.to_bytes()), entry))
}

impl Confidential {
    /// The input of sequence `short` when it is in a package whose
    /// parameters this client keeps: the package's parameters under the
    /// invoke's, as OpenWhisk passes a packaged sequence's parameters to
    /// its first step (sealed into that step's input, never sent in the
    /// clear). `None`: `params` as they are.
    fn with_package_parameters(
        &self,
        short: &str,
        params: &Value,
    ) -> Result<Option<Value>, ConfidentialError> {
        let Some((package, _)) = short.split_once('/') else {
            return Ok(None);
        };
        let Some(mut merged) = self.package_defaults(package)? else {
            return Ok(None);
        };
        if merged.is_empty() {
            return Ok(None);
        }
        match params {
            Value::Object(given) => merged.extend(given.clone()),
            Value::Null => {}
            // Not an object: the first step gets it as it is, as plain.
            _ => return Ok(None),
        }
        Ok(Some(Value::Object(merged)))
    }

    /// Invokes a confidential sequence as a chain: in this client's chain
    /// session with it if it holds one for these steps, else as a first run
    /// (which opens a session when sessions are on); opens and verifies the
    /// final answer and every step's receipt.
    pub(super) async fn invoke_chain_once(
        &self,
        name: &str,
        plan: &VerifiedChainPlan,
        params: &Value,
        options: InvokeOptions,
    ) -> Result<ConfidentialInvoked, ConfidentialError> {
        let short = self.short_name(name)?.to_owned();
        let with_package = self.with_package_parameters(&short, params)?;
        let params = with_package.as_ref().unwrap_or(params);
        let steps = self.planned_steps(plan).await?;
        let session = self.chain_session_for(&short, &steps);
        let (body, mut entry, first_run) = match &session {
            Some(session) => {
                let (body, entry) =
                    seal_session_run(session, &self.namespace, params, self.stamp())?;
                (body, entry, None)
            }
            None => {
                let run = self.seal_first_run(steps, params, self.use_sessions)?;
                let keep = (run.chain_key, run.first_hop_secret);
                (run.body, run.entry, Some(keep))
            }
        };
        let invoked = self
            .client
            .invoke(
                &short,
                body,
                InvokeOptions {
                    result: false,
                    ..options
                },
            )
            .await?;
        let activation_id = invoked.activation_id();
        entry.activation_id = activation_id.to_string();
        entry.action = short.clone();
        self.home.remember(&entry)?;
        let record = match invoked {
            Invoked::Accepted { activation_id } => {
                return Ok(ConfidentialInvoked::Accepted { activation_id });
            }
            Invoked::Completed { body, .. } => body,
        };
        let known = session.as_deref().map(|s| (&s.opening, s.tee));
        let opened = self
            .open_chain(&entry, activation_id, &record, known)
            .await?;
        if let Some((chain_key, first_hop_secret)) = first_run
            && self.use_sessions
        {
            self.keep_chain_session(short, &entry, chain_key, &first_hop_secret, &opened)?;
        }
        Ok(ConfidentialInvoked::Completed(Box::new(opened)))
    }

    /// The ticket's steps for a verified plan, in its order, as the broker
    /// describes them; each descriptor must name the owner the plan names.
    async fn planned_steps(
        &self,
        plan: &VerifiedChainPlan,
    ) -> Result<Vec<ChainStep>, ConfidentialError> {
        let mut steps = Vec::with_capacity(plan.components().len());
        for (index, component) in plan.components().iter().enumerate() {
            // A plan vouches for its components' owners only if this client
            // trusts them too.
            if !self.trusted_owners().any(|owner| owner == component.owner) {
                return Err(ConfidentialError::UntrustedOwner {
                    action: component.qualified(),
                    owner: component.owner,
                });
            }
            let cached = self.describe(&component.qualified(), false).await?;
            let descriptor = if cached.owner == component.owner {
                cached
            } else {
                // Another trusted owner's action of the same name answered
                // first: ask for the planned owner's.
                Arc::new(self.describe_of(component.owner, &component.name).await?)
            };
            if !descriptor.policy.kind.is_action() {
                return Err(ConfidentialError::RegisteredSequence(component.qualified()));
            }
            super::check_hardware_policy(self.pin.tee, &descriptor)?;
            plan.check_owner(index, &descriptor.owner)?;
            if descriptor.namespace != component.namespace || descriptor.name != component.name {
                return Err(ChainPlanError::ComponentOwner { index }.into());
            }
            steps.push(step_of(&descriptor));
        }
        Ok(steps)
    }

    /// The ticket's steps for `components`, as the broker describes them.
    async fn chain_steps(
        &self,
        components: &[String],
    ) -> Result<Vec<ChainStep>, ConfidentialError> {
        let mut steps = Vec::with_capacity(components.len());
        for component in components {
            let descriptor = self.describe(component, false).await?;
            super::check_hardware_policy(self.pin.tee, &descriptor)?;
            steps.push(step_of(&descriptor));
        }
        Ok(steps)
    }

    /// Signs a ticket for `components` and seals `params` as the first hop
    /// of a chain run that opens no session: the invoke body, and the
    /// keyring entry to open the answer (its activation id is filled in once
    /// the invoke answers).
    pub async fn seal_chain(
        &self,
        components: &[String],
        params: &Value,
    ) -> Result<(Value, KeyringEntry), ConfidentialError> {
        let steps = self.chain_steps(components).await?;
        let run = self.seal_first_run(steps, params, false)?;
        Ok((run.body, run.entry))
    }

    /// Seals `params` as the next run of this client's chain session with
    /// sequence `name`, without sending it; `None` without a session. For
    /// tests that play the orchestrator.
    pub fn seal_in_chain_session(
        &self,
        name: &str,
        params: &Value,
    ) -> Option<Result<(Value, KeyringEntry), ConfidentialError>> {
        let short = self.short_name(name).ok()?;
        let session = self.lock_chain_sessions().get(short).cloned()?;
        Some(seal_session_run(
            &session,
            &self.namespace,
            params,
            self.stamp(),
        ))
    }

    fn seal_first_run(
        &self,
        steps: Vec<ChainStep>,
        params: &Value,
        open_session: bool,
    ) -> Result<FirstRun, ConfidentialError> {
        let mut chain_id = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut chain_id);
        let chain_key = ChainKey::generate(&mut os_rng());
        let ticket = ChainTicket {
            chain_id,
            steps: steps.clone(),
            client: self.identity.id(),
            timestamp_ms: self.stamp(),
            open_session,
        }
        .sign(&self.identity);
        let value =
            serde_json::to_vec(params).map_err(|e| ConfidentialError::State(e.to_string()))?;
        let input_hash = Digest::of(&value);
        let hop = HopBody {
            ticket,
            chain_key,
            index: 0,
            value: Zeroizing::new(value),
            receipts: Vec::new(),
        };
        // A link of its own for each run: a client seals one hop per run
        // (a process such as the CLI runs once), so keeping links would
        // save nothing a chain session does not.
        let first_step = hop
            .ticket
            .ticket
            .steps
            .first()
            .ok_or(ConfidentialError::State("a chain has no steps".into()))?;
        let link = HopLink::new(first_step, &mut os_rng())?;
        let (sealed, first_hop_secret) = seal_hop(&hop, &link, &mut os_rng())?;
        // Back out of the sealed hop: the key is moved, never cloned.
        let chain_key = hop.chain_key;
        let entry = chain_entry(
            &self.namespace,
            chain_id,
            input_hash,
            &chain_key,
            steps,
            None,
        )?;
        Ok(FirstRun {
            body: sealed_body(&sealed),
            entry,
            chain_key,
            first_hop_secret,
        })
    }

    /// Keeps the chain session a first run opened, if every step ran and
    /// succeeded (each step's enclave then holds its part).
    fn keep_chain_session(
        &self,
        name: String,
        entry: &KeyringEntry,
        chain_key: ChainKey,
        first_hop_secret: &ExportedKey,
        opened: &OpenedActivation,
    ) -> Result<(), ConfidentialError> {
        let Some(chain) = &entry.chain else {
            return Ok(());
        };
        let ran = opened.chain.as_ref().map_or(0, Vec::len);
        if opened.status != ActivationStatus::Success || ran != chain.steps.len() {
            return Ok(());
        }
        let session = ClientChainSession {
            id: entry.nonce,
            steps: chain.steps.clone(),
            chain_key,
            first_hop: hop_key(first_hop_secret)?,
            counter: AtomicU64::new(1),
            opening: SignedReceipt::clone(&opened.receipt),
            tee: opened.tee,
        };
        self.home.remember_session(
            &session.id,
            &OpenedSession {
                receipt: session.opening.clone(),
                tee: session.tee,
                secret: None,
            },
        )?;
        self.lock_chain_sessions().insert(name, Arc::new(session));
        Ok(())
    }

    /// This client's chain session with sequence `name`, if it was opened
    /// for exactly `steps`.
    fn chain_session_for(
        &self,
        name: &str,
        steps: &[ChainStep],
    ) -> Option<Arc<ClientChainSession>> {
        if !self.use_sessions {
            return None;
        }
        self.lock_chain_sessions()
            .get(name)
            .filter(|session| session.steps == steps)
            .cloned()
    }

    /// Ends the client's chain session with sequence `name` (a step's
    /// enclave forgot it, or a step moved on); the next run opens a new one.
    pub(super) fn end_chain_session(&self, name: &str) {
        if let Ok(short) = self.short_name(name) {
            self.lock_chain_sessions().remove(short);
        }
    }

    fn lock_chain_sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<ClientChainSession>>> {
        self.chain_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a chain's final answer from its sequence record and verifies
    /// every step's receipt against the ticket. `known` is the opening run
    /// of the run's chain session when the caller holds it (else it is
    /// recalled from the client's state).
    pub(super) async fn open_chain(
        &self,
        entry: &KeyringEntry,
        activation_id: ActivationId,
        record: &Value,
        known: Option<(&SignedReceipt, TeeKind)>,
    ) -> Result<OpenedActivation, ConfidentialError> {
        let chain = entry
            .chain
            .as_ref()
            .ok_or_else(|| ConfidentialError::State("not a chain entry".into()))?;
        let result = &record["response"]["result"];
        let sealed = decode(sealed_answer(result)?)?;
        let chain_key = chain.key()?;
        let component_ids: Vec<String> = record["logs"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let descriptors = self.step_descriptors(&chain.steps).await?;
        let allowed: Vec<&[Measurement]> = descriptors
            .iter()
            .map(|d| d.policy.allowed_measurements.as_slice())
            .collect();
        let expected = ExpectedChain {
            chain_id: entry.nonce,
            input_hash: entry.input_hash,
            steps: &chain.steps,
            allowed_measurements: &allowed,
            component_ids: &component_ids,
        };
        let (answer, signed, tee) = match chain.session()? {
            None => {
                let answer: ChainAnswer = open_chain_answer(&sealed, &chain_key, &entry.nonce)?;
                let tee = self.verify_signed_steps(&answer.receipts)?;
                let signed = answer.receipts.last().cloned();
                let receipts = answer.receipts.into_iter().map(|s| s.receipt).collect();
                let answer =
                    with_receipts(answer.status, answer.result, answer.last_index, receipts);
                verify_chain_answer(&answer, &expected)?;
                (answer, signed, tee)
            }
            Some(session_id) => {
                let opened = SessionAnswer::open(&sealed, &chain_key, &entry.nonce)?;
                let answer = verify_session_answer(opened, &chain_key, &expected)?;
                let (opening, tee) = match known {
                    Some((opening, tee)) => (opening.clone(), tee),
                    None => {
                        let opened = self
                            .home
                            .recall_session(&session_id)?
                            .ok_or_else(|| ConfidentialError::NoKey(activation_id.to_string()))?;
                        (opened.receipt, opened.tee)
                    }
                };
                (answer, Some(opening), tee)
            }
        };
        let receipt = signed.ok_or(ConfidentialError::ReceiptMismatch(
            "the chain answer carries no receipt",
        ))?;
        Ok(OpenedActivation {
            activation_id,
            action: entry.action.clone(),
            status: answer.status,
            result: answer.result,
            logs: None,
            receipt: Arc::new(receipt),
            chain: Some(answer.receipts),
            session: None,
            tee,
        })
    }

    /// Checks each signed step receipt's signature and evidence, and that
    /// the measurement it names is the evidence's; the TEE they ran in.
    fn verify_signed_steps(
        &self,
        receipts: &[SignedReceipt],
    ) -> Result<TeeKind, ConfidentialError> {
        let mut tee = TeeKind::Sim;
        for signed in receipts {
            signed.verify_signature()?;
            let verified = self.verify_evidence(&signed.evidence)?;
            verified.check_binds(&signed.enclave).map_err(attestation)?;
            if signed.receipt.measurement != verified.measurement() {
                return Err(ConfidentialError::ReceiptMismatch(
                    "a step's measurement differs from its evidence",
                ));
            }
            tee = verified.tee();
        }
        Ok(tee)
    }

    /// The broker's descriptors of `steps` (cached), whose policies say
    /// which enclaves may run them.
    async fn step_descriptors(
        &self,
        steps: &[ChainStep],
    ) -> Result<Vec<Arc<ActionDescriptor>>, ConfidentialError> {
        let mut descriptors = Vec::with_capacity(steps.len());
        for step in steps {
            descriptors.push(self.describe(&step.action, false).await?);
        }
        Ok(descriptors)
    }
}

/// The ticket's step for `descriptor`'s action as it now stands.
fn step_of(descriptor: &ActionDescriptor) -> ChainStep {
    ChainStep {
        namespace: descriptor.namespace.clone(),
        action: descriptor.name.clone(),
        version: descriptor.version,
        code_digest: descriptor.code_digest,
        entry: descriptor.policy.entry.clone(),
        action_key: descriptor.action_key,
    }
}

/// `answer`'s fields with its receipts' authenticity already checked.
fn with_receipts(
    status: ActivationStatus,
    result: Value,
    last_index: u64,
    receipts: Vec<Receipt>,
) -> ChainAnswer<Receipt> {
    ChainAnswer {
        status,
        result,
        last_index,
        receipts,
    }
}
