//! The key broker: the paper's configuration and attestation service (CAS).
//!
//! It runs inside its own enclave and is trusted. It holds every
//! confidential action's key pair and policy, persisted sealed under its
//! enclave's sealing key; it answers clients over HPKE channels to its
//! attested key ([`Broker::handle_client`]); it releases an action key only
//! to an enclave whose evidence verifies and matches the action's policy,
//! sealed to the key that evidence binds ([`Broker::grant`]); and it is the
//! one replay authority that refuses any invocation nonce seen twice
//! ([`Broker::consume_nonce`]).
//!
//! [`BrokerLink`] is how enclaves reach it: in-process here, over HTTP when
//! the broker runs as its own process.

mod error;
mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use clemmys_proto::broker::{
    ActionDescriptor, BrokerIdentity, BrokerOp, BrokerReply, BrokerRequest, KeyGrant, KeyRequest,
    open_broker_request, seal_broker_reply, seal_grant,
};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::replay::{ReplayError, ReplayWindow};
use clemmys_proto::suite::KemKeyPair;
use clemmys_tee::{Tee, Verifier, os_rng};

pub use error::BrokerError;
use state::{ActionRecord, BrokerState};

/// How long a nonce is remembered, and how old a request may be: 5 minutes.
pub const REPLAY_WINDOW_MS: u64 = 5 * 60 * 1000;
/// How far ahead of the broker's clock a request may be stamped.
pub const MAX_CLOCK_SKEW_MS: u64 = 30 * 1000;

/// How an enclave reaches the broker.
pub trait BrokerLink: Send + Sync + 'static {
    /// The broker's identity (keys and evidence).
    fn identity(&self) -> BrokerIdentity;
    /// Asks for an action key; answers the sealed grant.
    fn request_key(&self, request: &KeyRequest) -> Result<Vec<u8>, BrokerError>;
    /// Admits one invocation of `namespace/name`: refuses a `version` that
    /// is not the action's current one (a stale enclave or client), then
    /// records the nonce, refusing it if seen before.
    fn admit(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
        nonce: [u8; 16],
        timestamp_ms: u64,
    ) -> Result<(), BrokerError>;
    /// Admits step `index` of chain `chain_id`, once: refuses a second
    /// delivery of the same step (or a replayed chain), a stale ticket, and
    /// a version that is not the action's current one.
    fn admit_chain_step(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
        chain_id: [u8; 16],
        index: u64,
        timestamp_ms: u64,
    ) -> Result<(), BrokerError>;
}

/// The key broker.
pub struct Broker {
    keys: EnclaveKeys,
    identity: BrokerIdentity,
    verifier: Verifier,
    state: BrokerState,
    replay: Mutex<ReplayWindow>,
    /// `namespace/name` → current version; the broker is the only writer of
    /// its state, so this cache stays exact.
    versions: Mutex<HashMap<String, u64>>,
}

impl Broker {
    /// Opens the broker whose sealed state lives at `path`, inside the
    /// enclave `tee`, trusting enclave evidence that `verifier` accepts.
    pub fn open(path: &Path, tee: Arc<dyn Tee>, verifier: Verifier) -> Result<Self, BrokerError> {
        let state = BrokerState::open(path, tee.sealing_key())?;
        let keys = match state.identity()? {
            Some(keys) => keys,
            None => {
                let keys = EnclaveKeys::generate(&mut os_rng());
                state.put_identity(&keys)?;
                keys
            }
        };
        let evidence = tee
            .attest(&keys.public().report_data())
            .map_err(BrokerError::Attestation)?;
        let identity = BrokerIdentity {
            evidence,
            keys: keys.public(),
        };
        let now = now_ms();
        Ok(Self {
            keys,
            identity,
            verifier,
            state,
            replay: Mutex::new(ReplayWindow::new(now, REPLAY_WINDOW_MS, MAX_CLOCK_SKEW_MS)),
            versions: Mutex::new(HashMap::new()),
        })
    }

    /// The broker's identity, which clients verify and pin.
    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }

    /// Handles one sealed client request and answers the sealed reply.
    /// Refusals are sealed too, so only the client reads why.
    pub fn handle_client(&self, sealed: &[u8]) -> Result<Vec<u8>, BrokerError> {
        let (request, reply_key) = open_broker_request(self.keys.kem(), sealed)?;
        let reply = match self.apply(&request) {
            Ok(descriptor) => BrokerReply::Action(descriptor),
            Err(error) => {
                tracing::debug!(client = %request.client, %error, "broker refused a client request");
                BrokerReply::Refused {
                    reason: error.to_string(),
                }
            }
        };
        Ok(seal_broker_reply(&reply, &reply_key)?)
    }

    fn apply(&self, request: &BrokerRequest) -> Result<ActionDescriptor, BrokerError> {
        let now = now_ms();
        if request.timestamp_ms + REPLAY_WINDOW_MS < now
            || request.timestamp_ms > now + MAX_CLOCK_SKEW_MS
        {
            return Err(BrokerError::StaleRequest);
        }
        match &request.op {
            BrokerOp::Describe { namespace, name } => {
                let record = self
                    .state
                    .action(namespace, name)?
                    .ok_or(BrokerError::UnknownAction)?;
                if !record.descriptor.allows_client(&request.client) {
                    return Err(BrokerError::ClientNotAllowed);
                }
                Ok(record.descriptor)
            }
            BrokerOp::Register {
                namespace,
                name,
                version,
                code_digest,
                policy,
            } => {
                if policy.allowed_measurements.is_empty() {
                    return Err(BrokerError::EmptyPolicy);
                }
                let record = match self.state.action(namespace, name)? {
                    Some(mut record) => {
                        if record.descriptor.owner != request.client {
                            return Err(BrokerError::NotOwner);
                        }
                        if *version <= record.descriptor.version {
                            return Err(BrokerError::VersionNotNewer {
                                requested: *version,
                                current: record.descriptor.version,
                            });
                        }
                        record.descriptor.version = *version;
                        record.descriptor.code_digest = *code_digest;
                        record.descriptor.policy = policy.clone();
                        record
                    }
                    None => {
                        let keys = KemKeyPair::generate(&mut os_rng());
                        ActionRecord::new(
                            ActionDescriptor {
                                namespace: namespace.clone(),
                                name: name.clone(),
                                version: *version,
                                code_digest: *code_digest,
                                action_key: keys.public(),
                                owner: request.client,
                                policy: policy.clone(),
                            },
                            &keys,
                        )
                    }
                };
                self.state.put_action(&record)?;
                self.lock_versions()
                    .insert(format!("{namespace}/{name}"), *version);
                tracing::info!(action = %format!("{namespace}/{name}"), version, "registered confidential action");
                Ok(record.descriptor)
            }
        }
    }

    /// Releases an action key to the enclave that sent `request`, if its
    /// evidence verifies, binds its keys and matches the action's policy.
    pub fn grant(&self, request: &KeyRequest) -> Result<Vec<u8>, BrokerError> {
        let verified = self
            .verifier
            .verify(&request.evidence)
            .map_err(BrokerError::Attestation)?;
        verified
            .check_binds(&request.enclave)
            .map_err(BrokerError::Attestation)?;
        let record = self
            .state
            .action(&request.namespace, &request.name)?
            .ok_or(BrokerError::UnknownAction)?;
        let policy = &record.descriptor.policy;
        if !policy
            .allowed_measurements
            .contains(&verified.measurement())
        {
            return Err(BrokerError::MeasurementNotAllowed(verified.measurement()));
        }
        if policy.require_hardware && !verified.is_hardware() {
            return Err(BrokerError::HardwareRequired(verified.tee().name()));
        }
        let grant = KeyGrant {
            action_keys: record.keys()?,
            action: record.descriptor,
            issued_at_ms: now_ms(),
        };
        Ok(seal_grant(&grant, request, &self.keys, &mut os_rng())?)
    }

    /// The current version of `namespace/name`.
    fn current_version(&self, namespace: &str, name: &str) -> Result<u64, BrokerError> {
        let key = format!("{namespace}/{name}");
        if let Some(version) = self.lock_versions().get(&key) {
            return Ok(*version);
        }
        let record = self
            .state
            .action(namespace, name)?
            .ok_or(BrokerError::UnknownAction)?;
        let version = record.descriptor.version;
        self.lock_versions().insert(key, version);
        Ok(version)
    }

    fn lock_versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an invocation nonce for `scope` (an action or chain).
    pub fn consume_nonce(
        &self,
        scope: &str,
        nonce: [u8; 16],
        timestamp_ms: u64,
    ) -> Result<(), ReplayError> {
        let mut window = self.replay.lock().unwrap_or_else(PoisonError::into_inner);
        window.check(scope, nonce, timestamp_ms, now_ms())
    }
}

impl BrokerLink for Broker {
    fn identity(&self) -> BrokerIdentity {
        self.identity.clone()
    }

    fn request_key(&self, request: &KeyRequest) -> Result<Vec<u8>, BrokerError> {
        self.grant(request)
    }

    fn admit(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
        nonce: [u8; 16],
        timestamp_ms: u64,
    ) -> Result<(), BrokerError> {
        let current = self.current_version(namespace, name)?;
        if version != current {
            return Err(BrokerError::StaleVersion {
                requested: version,
                current,
            });
        }
        self.consume_nonce(&format!("{namespace}/{name}"), nonce, timestamp_ms)
            .map_err(BrokerError::Replay)
    }

    fn admit_chain_step(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
        chain_id: [u8; 16],
        index: u64,
        timestamp_ms: u64,
    ) -> Result<(), BrokerError> {
        let current = self.current_version(namespace, name)?;
        if version != current {
            return Err(BrokerError::StaleVersion {
                requested: version,
                current,
            });
        }
        // The scope is the chain; the nonce is the step index.
        let mut step = [0u8; 16];
        step[8..].copy_from_slice(&index.to_be_bytes());
        let scope = format!("chain:{}", hex_id(&chain_id));
        self.consume_nonce(&scope, step, timestamp_ms)
            .map_err(BrokerError::Replay)
    }
}

fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
