//! Confidential chains inside the enclave: a step of a chain's first run
//! (HPKE hops, signed ticket and receipts, see `clemmys_proto::chain`), and
//! a step of a later run of a chain session (symmetric hops and MAC
//! receipts, see `clemmys_proto::chain_session`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clemmys_proto::broker::Admission;
use clemmys_proto::chain::{
    ChainAnswer, ChainKey, ChainStep, HopBody, HopLink, SealedHop, seal_chain_answer,
    seal_chain_logs, seal_hop,
};
use clemmys_proto::chain_session::{SessionAnswer, SessionHop, SessionHopBody, StepTrace, hop_key};
use clemmys_proto::invoke::ChainPosition;
use clemmys_proto::refusal::Refusal;
use clemmys_proto::replay::CounterWindow;
use clemmys_proto::suite::{ChannelKey, ExportedKey, KemKeyPair};
use clemmys_proto::{ClientId, Digest, ProtoError};
use clemmys_tee::os_rng;
use clemmys_whisk::ActivationStatus;
use zeroize::Zeroizing;

use super::{Enclave, SealedOutcome, SealedRun, keep_bounded, lock};
use crate::EnclaveError;

/// How long an enclave seals hops to a next step over one link before it
/// sets up a new one (HPKE), and uses a link it opened. Each hop's key is
/// derived from the link with the chain id and index, so this bounds what
/// one link's secret would expose, not how often a key seals.
pub(super) const LINK_LIFETIME: Duration = Duration::from_secs(60);

/// A chain hop link this enclave set up or opened, and when.
pub(super) struct KeptLink {
    link: HopLink,
    made: Instant,
}

impl KeptLink {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.made) < LINK_LIFETIME
    }
}

/// Drops the links past their lifetime, so that their secrets do not stay
/// in memory until the bound pushes them out. Run when a link is made
/// (about once a lifetime per next step), not per hop.
fn forget_stale<K>(links: &mut HashMap<K, Arc<KeptLink>>, now: Instant) {
    links.retain(|_, kept| kept.fresh(now));
}

/// A chain session and a step index: where a session hop is going.
pub(super) type ChainSessionStep = ([u8; 16], u64);

/// This enclave's part in a chain session: what the first run's hops into
/// and out of its step established.
pub(super) struct ChainSession {
    /// The client that signed the first run's ticket.
    client: ClientId,
    /// The version and code the ticket named for this step; an update ends
    /// the session.
    version: u64,
    code_digest: Digest,
    /// How many steps the chain has.
    steps: u64,
    chain_key: ChainKey,
    /// The key of the hops into this step.
    receive: ChannelKey,
    /// The key of the hops into the next step (`None` for the last step).
    send: Option<ChannelKey>,
    /// The runs this step ran. The broker admits each (run, step) once,
    /// but a provider can fork the broker; this window is what keeps the
    /// step from sealing a run's hop or answer twice under `send`'s key
    /// and the run counter as nonce.
    runs: Mutex<CounterWindow>,
    opened: Instant,
}

impl Enclave {
    /// One step of a confidential chain: checks that this enclave's action is
    /// the step the client's ticket names at the hop's index and that the
    /// broker never admitted (chain id, index) before; runs; seals the output
    /// to the next step, or the final answer to the client.
    pub(super) async fn run_chain_step(
        &self,
        run: SealedRun<'_>,
        hop: SealedHop,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let mut init_time = None;
        let provisioned = self.grant(run.namespace, run.action, None, &mut init_time)?;
        let (mut hop, secret_in, new_link) =
            self.open_hop(&run, &hop, &provisioned.grant.action_keys)?;
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
        if step.code_digest != descriptor.code_digest
            || step.entry != descriptor.policy.entry
            || step.action_key != descriptor.action_key
        {
            return Err(EnclaveError::CodeNotTheTickets { index });
        }
        // As for a single invocation: a client the policy does not name
        // may be a gateway the owner delegated to, which the broker decides
        // at admission (and refuses once the delegation is revoked).
        let delegate = (!descriptor.allows_client(&ticket.client)).then_some(ticket.client);
        self.admit_for(
            &run,
            &provisioned,
            step.version,
            Admission::ChainStep {
                chain_id: ticket.chain_id,
                index,
            },
            ticket.timestamp_ms,
            delegate,
        )?;
        if let Some(link) = new_link {
            self.keep_link_in(link);
        }
        let input_hash = Digest::of(&hop.value);
        let ran = self
            .execute(&run, &provisioned, &hop.value, load_code, &mut init_time)
            .await?;
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
        let last = index.saturating_add(1) >= ticket.steps.len() as u64;
        let succeeded = ran.status == ActivationStatus::Success;
        let logs = seal_chain_logs(&ran.logs, &hop.chain_key, &chain_id, index, &mut os_rng())?;
        hop.receipts.push(
            serde_json::value::to_raw_value(&receipt)
                .map_err(|e| ProtoError::Crypto(e.to_string()))?,
        );
        let mut secret_out = None;
        // The chain key moves into the next hop and back out once that is
        // sealed, then into the kept session: secret keys are not cloned.
        let (result, stop_chain, chain_key) = if succeeded && !last {
            let next = HopBody {
                ticket: hop.ticket.clone(),
                chain_key: hop.chain_key,
                index: index.saturating_add(1),
                value: Zeroizing::new(ran.output.clone()),
                receipts: std::mem::take(&mut hop.receipts),
            };
            let link = self.link_to(&ticket.steps, next.index)?;
            let (sealed, secret) = seal_hop(&next, &link.link, &mut os_rng())?;
            secret_out = Some(secret);
            (sealed, false, next.chain_key)
        } else {
            let answer = ChainAnswer {
                status: ran.status,
                result: ran.result,
                last_index: index,
                receipts: std::mem::take(&mut hop.receipts),
            };
            (
                seal_chain_answer(&answer, &hop.chain_key, &chain_id, &mut os_rng())?,
                !last,
                hop.chain_key,
            )
        };
        // A step that stopped the chain keeps nothing: its client will not
        // run this chain again as a session.
        if ticket.open_session && (last || secret_out.is_some()) {
            self.keep_chain_session(
                (chain_id, index),
                ChainSession {
                    client: ticket.client,
                    version: step.version,
                    code_digest: step.code_digest,
                    steps: ticket.steps.len() as u64,
                    chain_key,
                    receive: hop_key(&secret_in)?,
                    send: secret_out.as_ref().map(hop_key).transpose()?,
                    runs: Mutex::new(CounterWindow::new()),
                    opened: Instant::now(),
                },
            );
        }
        Ok(SealedOutcome {
            result,
            logs: Some(logs),
            stop_chain,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
            compile_failed: ran.compile_failed,
        })
    }

    /// One step of a later run of a chain session: finds this step's part
    /// in the session, opens the hop with the kept key, has the broker
    /// admit (run, index) once, runs, and seals the output to the next step
    /// (or the answer to the client) under keys only the chain's enclaves
    /// and the client hold.
    pub(super) async fn run_chain_session_step(
        &self,
        run: SealedRun<'_>,
        hop: SessionHop,
        load_code: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Result<SealedOutcome, EnclaveError> {
        let started = Instant::now();
        let header = hop.header;
        let key = (header.session_id, header.index);
        let session = lock(&self.chain_sessions)
            .get(&key)
            .cloned()
            .ok_or(EnclaveError::UnknownSession)?;
        let mut init_time = None;
        let provisioned = self
            .provisioned_for(&run, session.version, &mut init_time)
            .inspect_err(|_| {
                // The action moved on: this session is over.
                lock(&self.chain_sessions).remove(&key);
            })?;
        let descriptor = &provisioned.grant.action;
        if descriptor.code_digest != session.code_digest {
            lock(&self.chain_sessions).remove(&key);
            return Err(EnclaveError::CodeNotTheTickets {
                index: header.index,
            });
        }
        // A delegate, step by step, as for the first run.
        let delegate = (!descriptor.allows_client(&session.client)).then_some(session.client);
        // Opened first: only an authentic hop may use up the admission of
        // (run, index), so a forged one cannot refuse the genuine one.
        let mut body = hop.open(&session.receive)?;
        lock(&session.runs)
            .accept(header.counter)
            .map_err(|replay| EnclaveError::Refused {
                refusal: Refusal::from(replay),
                reason: replay.to_string(),
            })?;
        let run_id = header.run_id();
        self.admit_for(
            &run,
            &provisioned,
            session.version,
            Admission::ChainStep {
                chain_id: run_id,
                index: header.index,
            },
            header.timestamp_ms,
            delegate,
        )?;
        let input_hash = Digest::of(&body.value);
        let ran = self
            .execute(&run, &provisioned, &body.value, load_code, &mut init_time)
            .await?;
        let run_key = session.chain_key.for_run(&run_id)?;
        let position = ChainPosition {
            chain_id: run_id,
            index: header.index,
        };
        let report = self.report(
            &run,
            descriptor,
            input_hash,
            &ran.output,
            run_id,
            Some(position),
        );
        body.receipts = body.receipts.extend(&report, &run_key)?;
        body.traces.push(StepTrace {
            measurement: report.measurement,
            output_hash: report.output_hash,
        });
        let logs = seal_chain_logs(&ran.logs, &run_key, &run_id, header.index, &mut os_rng())?;
        let last = header.index.saturating_add(1) >= session.steps;
        let succeeded = ran.status == ActivationStatus::Success;
        let (result, stop_chain) = match &session.send {
            Some(send) if succeeded && !last => {
                let next = SessionHopBody {
                    value: Zeroizing::new(ran.output),
                    traces: body.traces,
                    receipts: body.receipts,
                };
                let sealed = SessionHop::seal(send, header.next(), &next)?;
                (sealed.to_bytes(), false)
            }
            _ => {
                let answer = SessionAnswer {
                    status: ran.status,
                    result: ran.output,
                    last_index: header.index,
                    traces: body.traces,
                    receipts: body.receipts,
                };
                (answer.seal(&run_key, &run_id, &mut os_rng())?, !last)
            }
        };
        Ok(SealedOutcome {
            result,
            logs: Some(logs),
            stop_chain,
            duration: started.elapsed(),
            init_time,
            timed_out: ran.timed_out,
            compile_failed: ran.compile_failed,
        })
    }

    /// Opens `hop` over the link it came by: a link this enclave opened
    /// before is used again (no HPKE); a new one is opened with the action
    /// keys and handed back, for the caller to keep once the broker admitted
    /// the hop ([`Enclave::keep_link_in`]). A hop verifies under any ticket
    /// signed by any key, so keeping links before admission would let hops
    /// the provider makes push real links out.
    fn open_hop(
        &self,
        run: &SealedRun<'_>,
        hop: &SealedHop,
        keys: &KemKeyPair,
    ) -> Result<(HopBody, ExportedKey, Option<KeptLink>), EnclaveError> {
        let now = Instant::now();
        let kept = lock(&self.links_in)
            .get(hop.link_enc())
            .filter(|kept| kept.fresh(now))
            .cloned();
        if let Some(kept) = kept {
            let (body, secret) = hop.open_over(&kept.link)?;
            return Ok((body, secret, None));
        }
        let link = hop.open_link(run.namespace, run.action, keys)?;
        let (body, secret) = hop.open_over(&link)?;
        Ok((body, secret, Some(KeptLink { link, made: now })))
    }

    /// Keeps a link a hop of an admitted chain step came over.
    fn keep_link_in(&self, link: KeptLink) {
        let mut links = lock(&self.links_in);
        forget_stale(&mut links, link.made);
        keep_bounded(&mut links, *link.link.enc(), Arc::new(link), |kept| {
            kept.made
        });
    }

    /// The link this enclave seals hops into step `index` of `steps` over:
    /// the one it keeps for that step's action key while it is fresh, else
    /// a new one.
    fn link_to(&self, steps: &[ChainStep], index: u64) -> Result<Arc<KeptLink>, EnclaveError> {
        let step = usize::try_from(index)
            .ok()
            .and_then(|i| steps.get(i))
            .ok_or(EnclaveError::NotTheTicketsStep { index })?;
        let now = Instant::now();
        let mut links = lock(&self.links_out);
        if let Some(kept) = links.get(&step.action_key)
            && kept.fresh(now)
            && kept.link.leads_to(step)
        {
            return Ok(Arc::clone(kept));
        }
        let kept = Arc::new(KeptLink {
            link: HopLink::new(step, &mut os_rng())?,
            made: now,
        });
        forget_stale(&mut links, now);
        keep_bounded(&mut links, step.action_key, Arc::clone(&kept), |kept| {
            kept.made
        });
        Ok(kept)
    }

    /// Keeps this step's part in a chain session, dropping the oldest past
    /// the bound. A part it already keeps stays as it is: only a first-run
    /// hop delivered again (admitted twice by a forked broker) opens the
    /// same chain session again, and replacing the part would start its run
    /// window afresh, letting the runs it ran run again.
    fn keep_chain_session(&self, key: ChainSessionStep, session: ChainSession) {
        let mut sessions = lock(&self.chain_sessions);
        if !sessions.contains_key(&key) {
            keep_bounded(&mut sessions, key, Arc::new(session), |s| s.opened);
        }
    }
}
