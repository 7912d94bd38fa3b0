//! The key broker: the paper's configuration and attestation service (CAS).
//!
//! It runs inside its own enclave and is trusted. It holds every
//! confidential action's key pair and policy, persisted sealed under its
//! enclave's sealing key; it answers clients over HPKE channels to its
//! attested key ([`Broker::handle_client`]); it releases an action key only
//! to an enclave whose evidence verifies and matches the action's policy,
//! sealed to the key that evidence binds ([`Broker::grant`]); and it is the
//! one replay authority that refuses any invocation nonce or chain step seen
//! twice ([`Broker::consume_nonce`]), and the one that knows each action's
//! current version ([`Broker::admit`]). (A session's requests can only be
//! opened by the one enclave holding the session, which refuses their
//! repeated counters itself; the broker still checks their version.)
//!
//! Enclaves reach it through a [`BrokerLink`] (defined in `clemmys-proto`):
//! this type in-process; the HTTP service and the remote link of a broker
//! running as its own process are host code and live in `clemmys-server`.

#[cfg(test)]
mod delegation_tests;
mod error;
#[cfg(test)]
mod owner_tests;
mod state;
mod throttle;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use clemmys_proto::ClientId;
use clemmys_proto::broker::{
    ActionDescriptor, Admission, AdmissionKey, AdmitReply, AdmitRequest, BrokerIdentity,
    BrokerLink, BrokerOp, BrokerReply, BrokerRequest, Delegation, KeyGrant, KeyRequest, LinkError,
    RegisteredKind, open_broker_request, seal_broker_reply, seal_grant,
};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::replay::{ReplayError, ReplayWindow};
use clemmys_proto::suite::KemKeyPair;
use clemmys_tee::{Tee, Verifier, os_rng};
use clemmys_whisk::now_ms;

pub use error::BrokerError;
use state::{ActionRecord, BrokerState};

/// How long a nonce is remembered, and how old a request may be: 5 minutes.
pub const REPLAY_WINDOW_MS: u64 = 5 * 60 * 1000;
/// How far ahead of the broker's clock a request may be stamped.
pub const MAX_CLOCK_SKEW_MS: u64 = 30 * 1000;

/// The key broker.
pub struct Broker {
    keys: EnclaveKeys,
    identity: BrokerIdentity,
    verifier: Verifier,
    state: BrokerState,
    replay: Mutex<ReplayWindow>,
    /// Client requests' nonces, per client: each is answered once.
    client_requests: Mutex<ReplayWindow>,
    /// `owner:namespace/name` → current version; the broker is the only writer of
    /// its state, so this cache stays exact. Each grant's [`Admitting`]
    /// shares its action's counter, so admissions read it without a lookup.
    versions: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// Grant id → what admits that grant's requests. In memory: after a
    /// restart enclaves ask for a new grant.
    admissions: Mutex<HashMap<[u8; 16], Admitting>>,
    /// Per-client rate limits on client requests.
    throttle: Mutex<throttle::Throttle>,
    /// Most actions one identity may register.
    max_actions_per_owner: usize,
}

/// What the broker keeps of one grant to admit its enclave's requests.
struct Admitting {
    /// The key shared with the grant's enclave; shared (not copied) with
    /// each admission in progress, which reads it outside the lock.
    key: Arc<AdmissionKey>,
    /// The action it is for, and its owner (whose delegations admit
    /// gateways).
    owner: ClientId,
    namespace: String,
    name: String,
    /// The action's current version (shared with `Broker::versions`).
    version: Arc<AtomicU64>,
}

/// Most confidential actions one identity may register: registrations are
/// stored for good, so one identity must not be able to fill the broker.
pub const MAX_ACTIONS_PER_OWNER: usize = 10_000;

/// Most grants whose admission keys are kept; past it the map is cleared
/// and enclaves re-request their grants.
const MAX_ADMISSIONS: usize = 100_000;

impl Broker {
    /// Opens the broker whose sealed state lives at `path`, inside the
    /// enclave `tee`, trusting enclave evidence that `verifier` accepts.
    pub fn open(path: &Path, tee: Arc<dyn Tee>, verifier: Verifier) -> Result<Self, BrokerError> {
        let state = BrokerState::open(path, tee.clone())?;
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
            // A client request replayed across a restart is answered again,
            // under a fresh salt (no key or nonce reused), and can change
            // nothing (a registration must raise the durable version, a
            // delegation or revocation must be stamped after the last
            // change to it): no floor, so that clients need not re-stamp
            // after a restart.
            client_requests: Mutex::new(ReplayWindow::with_floor(
                0,
                now,
                REPLAY_WINDOW_MS,
                MAX_CLOCK_SKEW_MS,
            )),
            versions: Mutex::new(HashMap::new()),
            admissions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(throttle::Throttle::default()),
            max_actions_per_owner: MAX_ACTIONS_PER_OWNER,
        })
    }

    /// Rate-limits each identity's requests to `burst` at once and
    /// `per_second` sustained (default 200 and 100).
    pub fn with_request_rate(self, burst: u32, per_second: u32) -> Self {
        *self.throttle.lock().unwrap_or_else(PoisonError::into_inner) =
            throttle::Throttle::new(burst, per_second);
        self
    }

    /// Bounds the actions one identity may register (default
    /// [`MAX_ACTIONS_PER_OWNER`]).
    pub fn with_max_actions_per_owner(mut self, limit: usize) -> Self {
        self.max_actions_per_owner = limit;
        self
    }

    /// The broker's identity, which clients verify and pin.
    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }

    /// The identity document the API serves: evidence and keys, the TEE
    /// kind and, for `sim`, the warning and the platform key to trust; and
    /// the admission window's replay floor.
    pub fn identity_document(
        &self,
        sim_platform: Option<clemmys_proto::SigningPublicKey>,
    ) -> serde_json::Value {
        use clemmys_tee::{Role, SIM_WARNING, measurement};
        let identity = &self.identity;
        serde_json::json!({
            "tee": identity.evidence.tee,
            "hardware": identity.evidence.tee.is_hardware(),
            "warning": (!identity.evidence.tee.is_hardware()).then_some(SIM_WARNING),
            "identity": identity,
            "simPlatformKey": sim_platform,
            // Unauthenticated, like everything here but the evidence: a
            // hint so that clients stamp their first requests after a
            // restart at the floor instead of being refused once.
            "replayFloorMs": self.replay.lock().unwrap_or_else(PoisonError::into_inner).floor_ms(),
            "measurements": {
                "keyBroker": &measurement::expected_digest(Role::KeyBroker),
                "actionRuntime": measurement::expected(Role::ActionRuntime),
            },
        })
    }

    /// Handles one sealed client request and answers the sealed reply.
    /// Refusals are sealed too, so only the client reads why; except a
    /// replayed, stale or future request, which is refused before anything
    /// is sealed under its reply key.
    pub fn handle_client(&self, sealed: &[u8]) -> Result<Vec<u8>, BrokerError> {
        let (request, reply_key) = open_broker_request(self.keys.kem(), sealed)?;
        self.client_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(
                &format!("client:{}", request.client),
                request.nonce,
                request.timestamp_ms,
                now_ms(),
            )
            .map_err(BrokerError::Replay)?;
        let allowed = self
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(&request.client, now_ms());
        let outcome = if allowed {
            self.state
                .check_current()
                .and_then(|()| self.apply(&request))
        } else {
            Err(BrokerError::Throttled)
        };
        let reply = match outcome {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(client = %request.client, %error, "broker refused a client request");
                BrokerReply::Refused {
                    reason: error.to_string(),
                    refusal: Some(error.client_refusal()),
                }
            }
        };
        Ok(seal_broker_reply(
            &reply,
            self.state.version(),
            &reply_key,
            &mut os_rng(),
        )?)
    }

    /// Whether `gateway` holds a live delegation from `owner`.
    fn check_delegated(&self, owner: &ClientId, gateway: &ClientId) -> Result<(), BrokerError> {
        match self.state.delegation(owner, gateway) {
            Some(delegation) if delegation.is_live(now_ms()) => Ok(()),
            _ => Err(BrokerError::NotDelegated { owner: *owner }),
        }
    }

    /// Applies a request whose timestamp and nonce `handle_client` checked.
    fn apply(&self, request: &BrokerRequest) -> Result<BrokerReply, BrokerError> {
        // Who the request is for: its signer, or the owner who delegated
        // to it (checked here, before anything else).
        let acting = match request.on_behalf_of {
            None => request.client,
            Some(owner) => {
                if matches!(
                    request.op,
                    BrokerOp::Delegate { .. } | BrokerOp::Revoke { .. }
                ) {
                    return Err(BrokerError::DelegateCannotDelegate);
                }
                self.check_delegated(&owner, &request.client)?;
                owner
            }
        };
        match &request.op {
            BrokerOp::Delegate {
                gateway,
                measurement,
                expires_ms,
            } => {
                let delegation = Delegation {
                    owner: request.client,
                    gateway: *gateway,
                    measurement: *measurement,
                    expires_ms: *expires_ms,
                    changed_ms: request.timestamp_ms,
                    revoked: false,
                };
                self.state.put_delegation(&delegation)?;
                tracing::info!(owner = %delegation.owner, gateway = %delegation.gateway, "delegated to a gateway");
                Ok(BrokerReply::Delegated(delegation))
            }
            BrokerOp::Revoke { gateway } => {
                self.state
                    .revoke_delegation(&request.client, gateway, request.timestamp_ms)?;
                tracing::info!(owner = %request.client, %gateway, "revoked a gateway's delegation");
                Ok(BrokerReply::Revoked { gateway: *gateway })
            }
            op => self.apply_action(op, &acting).map(BrokerReply::Action),
        }
    }

    /// Applies an action operation for `acting` (the signer, or the owner
    /// it holds a delegation from).
    fn apply_action(
        &self,
        op: &BrokerOp,
        acting: &ClientId,
    ) -> Result<ActionDescriptor, BrokerError> {
        match op {
            BrokerOp::Delegate { .. } | BrokerOp::Revoke { .. } => {
                Err(BrokerError::DelegateCannotDelegate)
            }
            BrokerOp::Describe {
                owner,
                namespace,
                name,
            } => {
                let record = self
                    .state
                    .action(owner, namespace, name)?
                    .ok_or(BrokerError::UnknownAction)?;
                // A sequence's registration names no secret (its plan is on
                // the node): any client may learn the name is one, also one
                // allowed on a step later, or a step's other owner.
                if record.descriptor.policy.kind.is_action()
                    && !record.descriptor.allows_client(acting)
                {
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
                match policy.kind {
                    RegisteredKind::Action if policy.allowed_measurements.is_empty() => {
                        return Err(BrokerError::EmptyPolicy);
                    }
                    RegisteredKind::Sequence if !policy.allowed_measurements.is_empty() => {
                        return Err(BrokerError::SequenceWithMeasurements);
                    }
                    RegisteredKind::Action | RegisteredKind::Sequence => {}
                }
                if let Some(limits) = &policy.limits {
                    limits.validate()?;
                }
                // The requester's own registration (or its delegating
                // owner's): another identity's action of the same name is
                // another record.
                let owner = acting;
                let record = match self.state.action(owner, namespace, name)? {
                    Some(mut record) => {
                        if *version <= record.descriptor.version {
                            return Err(BrokerError::VersionNotNewer {
                                requested: *version,
                                current: record.descriptor.version,
                            });
                        }
                        record.descriptor.version = *version;
                        record.descriptor.code_digest = *code_digest;
                        if !record.key_serves(policy) {
                            // An enclave the old policy let have the key
                            // must not open what is sealed for this
                            // version, nor one it newly lets have it what
                            // was sealed before.
                            let keys = KemKeyPair::generate(&mut os_rng());
                            record.descriptor.action_key = keys.public();
                            record = ActionRecord::new(record.descriptor, &keys);
                        }
                        record.descriptor.policy = policy.clone();
                        record
                    }
                    None => {
                        let registered = self.state.count_actions(owner);
                        if registered >= self.max_actions_per_owner {
                            return Err(BrokerError::TooManyActions {
                                limit: self.max_actions_per_owner,
                            });
                        }
                        let keys = KemKeyPair::generate(&mut os_rng());
                        ActionRecord::new(
                            ActionDescriptor {
                                namespace: namespace.clone(),
                                name: name.clone(),
                                version: *version,
                                code_digest: *code_digest,
                                action_key: keys.public(),
                                owner: *owner,
                                policy: policy.clone(),
                            },
                            &keys,
                        )
                    }
                };
                self.state.put_action(&record)?;
                self.version_of(owner, namespace, name, *version)
                    .store(*version, Ordering::SeqCst);
                tracing::info!(action = %format!("{namespace}/{name}"), version, "registered confidential action");
                Ok(record.descriptor)
            }
        }
    }

    /// Releases an action key to the enclave that sent `request`, if its
    /// evidence verifies, binds its keys and matches the action's policy.
    pub fn grant(&self, request: &KeyRequest) -> Result<Vec<u8>, BrokerError> {
        self.state.check_current()?;
        let verified = self
            .verifier
            .verify(&request.evidence)
            .map_err(BrokerError::Attestation)?;
        verified
            .check_binds(&request.enclave)
            .map_err(BrokerError::Attestation)?;
        let record = self
            .state
            .action(&request.owner, &request.namespace, &request.name)?
            .ok_or(BrokerError::UnknownAction)?;
        let policy = &record.descriptor.policy;
        if !policy.kind.is_action() {
            return Err(BrokerError::NotAnAction(format!(
                "{}/{}",
                request.namespace, request.name
            )));
        }
        let presented = verified.measurement();
        if !policy.allowed_measurements.contains(&presented) {
            // Named apart because it is a downgrade attempt, not a stale
            // build: the digest is allowed, but measured by another TEE.
            if let Some(named) = policy
                .allowed_measurements
                .iter()
                .find(|allowed| allowed.digest() == presented.digest())
            {
                return Err(BrokerError::MeasurementOfAnotherTee {
                    presented,
                    named: *named,
                });
            }
            return Err(BrokerError::MeasurementNotAllowed(presented));
        }
        if policy.require_hardware && !verified.is_hardware() {
            return Err(BrokerError::HardwareRequired(verified.tee().name()));
        }
        let mut grant_id = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut grant_id);
        let version = self.version_of(
            &request.owner,
            &request.namespace,
            &request.name,
            record.descriptor.version,
        );
        let grant = KeyGrant {
            action_keys: record.keys()?,
            action: record.descriptor,
            issued_at_ms: now_ms(),
            grant_id,
            admission_key: AdmissionKey::generate(&mut os_rng()),
        };
        let sealed = seal_grant(&grant, request, &self.keys, &mut os_rng())?;
        // The one copy of the admission key the broker keeps moves out of
        // the grant once that is sealed: secret keys are not cloned.
        let admitting = Admitting {
            key: Arc::new(grant.admission_key),
            owner: request.owner,
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            version,
        };
        let mut admissions = self
            .admissions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if admissions.len() >= MAX_ADMISSIONS {
            admissions.clear();
        }
        admissions.insert(grant_id, admitting);
        Ok(sealed)
    }

    /// The shared current version of `owner`'s `namespace/name`, starting
    /// at `stored` (the version of the record just read or written) if the
    /// broker holds none yet.
    fn version_of(
        &self,
        owner: &ClientId,
        namespace: &str,
        name: &str,
        stored: u64,
    ) -> Arc<AtomicU64> {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{owner}:{namespace}/{name}"))
            .or_insert_with(|| Arc::new(AtomicU64::new(stored)))
            .clone()
    }

    /// Answers an enclave's admission request (see [`BrokerLink::admit`]).
    pub fn admit(&self, request: &AdmitRequest) -> Result<AdmitReply, BrokerError> {
        let (key, version, owner) = {
            let admissions = self
                .admissions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let admitting = admissions
                .get(&request.grant_id)
                .ok_or(BrokerError::UnknownGrant)?;
            if admitting.namespace != request.namespace || admitting.name != request.name {
                return Err(BrokerError::UnknownGrant);
            }
            (
                Arc::clone(&admitting.key),
                admitting.version.clone(),
                admitting.owner,
            )
        };
        request.verify(&key)?;
        let decided = self
            .state
            .check_current()
            .and_then(|()| match request.delegate {
                // A client the policy does not name: only as a gateway the
                // owner delegated to, and only while that delegation lives.
                Some(gateway) => self
                    .check_delegated(&owner, &gateway)
                    .and_then(|()| self.decide(request, &owner, version.load(Ordering::SeqCst))),
                None => self.decide(request, &owner, version.load(Ordering::SeqCst)),
            });
        Ok(match decided {
            Ok(()) => AdmitReply::new(&key, request, None)?,
            Err(error @ BrokerError::Replay(ReplayError::PredatesStart { floor_ms })) => {
                AdmitReply::stamped_before_floor(&key, request, error.to_string(), floor_ms)?
            }
            Err(error) => {
                AdmitReply::new(&key, request, Some((error.refusal(), error.to_string())))?
            }
        })
    }

    /// Admits `request` for an action of `owner` at version `current`.
    /// Nonces and chain steps are scoped by the owner too, so that another
    /// identity's registration of the same name, or a ticket of its own
    /// naming the same chain id, can never spend them first.
    fn decide(
        &self,
        request: &AdmitRequest,
        owner: &ClientId,
        current: u64,
    ) -> Result<(), BrokerError> {
        if request.version != current {
            return Err(BrokerError::StaleVersion {
                requested: request.version,
                current,
            });
        }
        let (scope, nonce) = match request.admission {
            // Only the session's enclave can open it, and it refuses a
            // counter it accepted before; here, only its age is checked.
            Admission::SessionRequest { .. } => {
                let now = now_ms();
                return if request.timestamp_ms.saturating_add(REPLAY_WINDOW_MS) < now {
                    Err(BrokerError::Replay(ReplayError::Stale))
                } else if request.timestamp_ms > now.saturating_add(MAX_CLOCK_SKEW_MS) {
                    Err(BrokerError::Replay(ReplayError::Future))
                } else {
                    Ok(())
                };
            }
            Admission::Invocation { nonce } => (
                format!("{owner}:{}/{}", request.namespace, request.name),
                nonce,
            ),
            Admission::ChainStep { chain_id, index } => {
                // The scope is the chain; the nonce is the step index.
                let mut step = [0u8; 16];
                step[8..].copy_from_slice(&index.to_be_bytes());
                (format!("chain:{owner}:{}", hex_id(&chain_id)), step)
            }
        };
        self.consume_nonce(&scope, nonce, request.timestamp_ms)
            .map_err(BrokerError::Replay)
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

    fn request_key(&self, request: &KeyRequest) -> Result<Vec<u8>, LinkError> {
        self.grant(request).map_err(BrokerError::into_link)
    }

    fn admit(&self, request: &AdmitRequest) -> Result<AdmitReply, LinkError> {
        Broker::admit(self, request).map_err(BrokerError::into_link)
    }
}

fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_proto::broker::{Policy, RegisteredKind, open_broker_reply, seal_broker_request};
    use clemmys_proto::identity::ClientIdentity;
    use clemmys_proto::{Digest, Measurement};
    use clemmys_tee::sim::{SimPlatform, SimTee};
    use clemmys_tee::{Role, measurement};
    use std::time::Duration;

    struct Fixture {
        dir: tempfile::TempDir,
        platform: Arc<SimPlatform>,
        client: ClientIdentity,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("tempdir"),
                platform: Arc::new(SimPlatform::generate()),
                client: ClientIdentity::generate(&mut os_rng()),
            }
        }

        fn open(&self) -> Result<Broker, BrokerError> {
            self.open_at(&self.dir.path().join("broker.redb"), self.counter())
        }

        /// The broker's TEE, its counter kept in the fixture's file.
        fn counter(&self) -> Arc<SimTee> {
            Arc::new(
                SimTee::with_counter_file(
                    self.platform.clone(),
                    &measurement::expected_digest(Role::KeyBroker),
                    &self.dir.path().join("broker.counter"),
                )
                .expect("counter"),
            )
        }

        /// A broker on the state at `path`, in `tee`.
        fn open_at(&self, path: &Path, tee: Arc<SimTee>) -> Result<Broker, BrokerError> {
            let verifier = Verifier::new().trust_sim_platform(self.platform.public_key());
            Broker::open(path, tee, verifier)
        }

        /// `op` sealed, sent to `broker` and its reply opened.
        fn ask(&self, broker: &Broker, op: BrokerOp) -> BrokerReply {
            let (sealed, key) = self.request(broker, op, now_ms());
            let reply = broker.handle_client(&sealed).expect("answered");
            open_broker_reply(&reply, &key).expect("opens").reply
        }

        fn request(
            &self,
            broker: &Broker,
            op: BrokerOp,
            timestamp_ms: u64,
        ) -> (Vec<u8>, ExportedKey) {
            seal_broker_request(
                &self.client,
                &broker.identity().keys.kem,
                op,
                timestamp_ms,
                &mut os_rng(),
            )
            .expect("seal")
        }
    }

    use clemmys_proto::suite::ExportedKey;

    fn register(version: u64) -> BrokerOp {
        BrokerOp::Register {
            namespace: "guest".into(),
            name: "a".into(),
            version,
            code_digest: Digest::of(b"code"),
            policy: Policy {
                allowed_measurements: vec![Measurement::sim([1; 32])],
                require_hardware: false,
                allowed_clients: vec![],
                min_version: version,
                entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
                kind: RegisteredKind::Action,
                limits: None,
            },
        }
    }

    #[test]
    fn a_new_version_keeps_the_action_key_only_where_it_goes_to_the_same_enclaves() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let key_of = |op| match fixture.ask(&broker, op) {
            BrokerReply::Action(descriptor) => descriptor.action_key,
            other => panic!("refused: {other:?}"),
        };
        let first = key_of(register(1));
        assert_eq!(key_of(register(2)), first, "same enclaves, same key");
        let mut widened = register(3);
        let BrokerOp::Register { policy, .. } = &mut widened else {
            unreachable!("a registration")
        };
        policy.allowed_measurements.push(Measurement::sim([2; 32]));
        let third = key_of(widened);
        assert_ne!(third, first, "a newly allowed enclave gets a fresh key");
        let mut hardened = register(4);
        let BrokerOp::Register { policy, .. } = &mut hardened else {
            unreachable!("a registration")
        };
        policy.allowed_measurements.push(Measurement::sim([2; 32]));
        policy.require_hardware = true;
        let fourth = key_of(hardened);
        assert_ne!(fourth, third, "`sim` dropped: a fresh key");
        assert_ne!(fourth, first);
    }

    #[test]
    fn extreme_client_timestamps_are_refused_without_overflow() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        for timestamp in [u64::MAX, u64::MAX - REPLAY_WINDOW_MS + 1, 0] {
            let (sealed, _) = fixture.request(&broker, register(1), timestamp);
            assert!(
                matches!(broker.handle_client(&sealed), Err(BrokerError::Replay(_))),
                "stamped {timestamp}"
            );
        }
    }

    #[test]
    fn extreme_admission_timestamps_are_refused_without_overflow() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let request = AdmitRequest::new(
            &AdmissionKey::generate(&mut os_rng()),
            [0; 16],
            "guest",
            "a",
            1,
            Admission::SessionRequest {
                session_id: [0; 16],
                counter: 1,
            },
            u64::MAX,
            &mut os_rng(),
        )
        .expect("request");
        for admission in [
            Admission::SessionRequest {
                session_id: [0; 16],
                counter: 1,
            },
            Admission::Invocation { nonce: [1; 16] },
        ] {
            let request = AdmitRequest {
                admission,
                ..request.clone()
            };
            assert!(broker.decide(&request, &fixture.client.id(), 1).is_err());
        }
    }

    /// The provider registers the owner's `namespace/name` under its own
    /// identity, and has its own enclave admit the nonce (or chain step) of
    /// the owner's request first: the owner's must still be admitted.
    #[test]
    fn another_owners_admission_of_the_same_nonce_or_chain_step_spends_nothing() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let owner = fixture.client.id();
        let provider = ClientIdentity::generate(&mut os_rng()).id();
        for admission in [
            Admission::Invocation { nonce: [7; 16] },
            Admission::ChainStep {
                chain_id: [9; 16],
                index: 0,
            },
        ] {
            let request = AdmitRequest::new(
                &AdmissionKey::generate(&mut os_rng()),
                [0; 16],
                "guest",
                "a",
                1,
                admission,
                // At the floor of a broker that just started.
                now_ms() + MAX_CLOCK_SKEW_MS,
                &mut os_rng(),
            )
            .expect("request");
            broker
                .decide(&request, &provider, 1)
                .expect("the provider's own admission");
            broker
                .decide(&request, &owner, 1)
                .expect("the owner's admission, after the provider's");
            assert!(matches!(
                broker.decide(&request, &owner, 1),
                Err(BrokerError::Replay(ReplayError::Replayed))
            ));
        }
    }

    #[test]
    fn a_policy_binding_limits_out_of_range_is_refused() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let with_limits = |timeout_ms| {
            let mut op = register(1);
            if let BrokerOp::Register { policy, .. } = &mut op {
                policy.limits = Some(clemmys_proto::broker::BoundLimits {
                    timeout_ms,
                    memory_mb: 256,
                    logs_mb: 10,
                });
            }
            op
        };
        let (sealed, key) = fixture.request(&broker, with_limits(10), now_ms());
        let reply = broker.handle_client(&sealed).expect("answered");
        let BrokerReply::Refused { reason, .. } =
            open_broker_reply(&reply, &key).expect("opens").reply
        else {
            panic!("registered a timeout of 10 ms");
        };
        assert!(reason.contains("limits are out of range"), "{reason}");
        let (sealed, key) = fixture.request(&broker, with_limits(1_000), now_ms());
        let reply = broker.handle_client(&sealed).expect("answered");
        let BrokerReply::Action(registered) = open_broker_reply(&reply, &key).expect("opens").reply
        else {
            panic!("refused limits in range");
        };
        assert_eq!(
            registered.policy.limits.map(|limits| limits.timeout_ms),
            Some(1_000)
        );
    }

    #[test]
    fn a_replayed_client_request_is_refused_before_any_reply_is_sealed() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let (sealed, key) = fixture.request(&broker, register(1), now_ms());
        let first = broker.handle_client(&sealed).expect("answered");
        assert!(matches!(
            open_broker_reply(&first, &key).expect("opens").reply,
            BrokerReply::Action(_)
        ));
        assert!(matches!(
            broker.handle_client(&sealed),
            Err(BrokerError::Replay(ReplayError::Replayed))
        ));
    }

    #[test]
    fn replies_carry_the_state_version_and_each_write_raises_it() {
        let fixture = Fixture::new();
        let broker = fixture.open().expect("opens");
        let mut versions = Vec::new();
        for version in [1, 2] {
            let (sealed, key) = fixture.request(&broker, register(version), now_ms());
            let reply = broker.handle_client(&sealed).expect("answered");
            versions.push(
                open_broker_reply(&reply, &key)
                    .expect("opens")
                    .state_version,
            );
        }
        assert!(0 < versions[0] && versions[0] < versions[1], "{versions:?}");
    }

    /// Two brokers on copies of one state and one monotonic counter (a
    /// hardware counter: the provider cannot give each its own): the
    /// provider keeps the owner's clients on A and points its enclaves at
    /// B. Once A writes (a revocation, an update), B must not serve the
    /// state A's write replaced: not a write, not a key, not a describe,
    /// and not again after a restart.
    #[test]
    fn a_broker_on_a_copy_of_the_state_serves_nothing_once_the_other_wrote() {
        let fixture = Fixture::new();
        let counter = fixture.counter();
        let state_a = fixture.dir.path().join("a.redb");
        let state_b = fixture.dir.path().join("b.redb");
        let broker_a = fixture.open_at(&state_a, counter.clone()).expect("opens");
        assert!(matches!(
            fixture.ask(&broker_a, register(1)),
            BrokerReply::Action(_)
        ));
        std::fs::copy(&state_a, &state_b).expect("copy");
        let broker_b = fixture.open_at(&state_b, counter.clone()).expect("opens");
        let describe = || BrokerOp::Describe {
            owner: fixture.client.id(),
            namespace: "guest".into(),
            name: "a".into(),
        };
        assert!(matches!(
            fixture.ask(&broker_b, describe()),
            BrokerReply::Action(_)
        ));

        // The owner's update, at A.
        assert!(matches!(
            fixture.ask(&broker_a, register(2)),
            BrokerReply::Action(_)
        ));
        // B's next write is refused, and so is everything after it.
        let forked = |reply: BrokerReply| match reply {
            BrokerReply::Refused { reason, .. } => {
                assert!(reason.contains("another broker"), "{reason}");
            }
            other => panic!("served from a forked state: {other:?}"),
        };
        forked(fixture.ask(&broker_b, register(3)));
        forked(fixture.ask(&broker_b, describe()));
        // A goes on.
        assert!(matches!(
            fixture.ask(&broker_a, describe()),
            BrokerReply::Action(_)
        ));
        drop(broker_b);
        // Nor does B serve again after a restart (the state it wrote was
        // written over a version the counter no longer holds).
        assert!(
            matches!(
                fixture.open_at(&state_b, counter.clone()),
                Err(BrokerError::Forked { .. } | BrokerError::RolledBack { .. })
            ),
            "a forked state opened again"
        );

        // A broker that does not write finds out within the interval.
        std::fs::copy(&state_a, &state_b).expect("copy");
        let broker_b = fixture.open_at(&state_b, counter).expect("opens");
        assert!(matches!(
            fixture.ask(&broker_a, register(4)),
            BrokerReply::Action(_)
        ));
        std::thread::sleep(state::COUNTER_CHECK_INTERVAL + Duration::from_millis(100));
        forked(fixture.ask(&broker_b, describe()));
    }

    /// A state written over a version the counter never reached (the
    /// provider deleted or replaced the counter) is refused, and named as
    /// such, not as another broker's fork.
    #[test]
    fn a_state_ahead_of_a_reset_counter_is_refused_at_start() {
        let fixture = Fixture::new();
        {
            let broker = fixture.open().expect("opens");
            for version in [1, 2] {
                assert!(matches!(
                    fixture.ask(&broker, register(version)),
                    BrokerReply::Action(_)
                ));
            }
        }
        std::fs::remove_file(fixture.dir.path().join("broker.counter")).expect("reset");
        assert!(
            matches!(
                fixture.open(),
                Err(BrokerError::CounterBehind { counter: 0, .. })
            ),
            "a state opened over a reset counter"
        );
    }

    #[test]
    fn an_older_copy_of_the_state_is_refused_at_start() {
        let fixture = Fixture::new();
        let state = fixture.dir.path().join("broker.redb");
        let old = fixture.dir.path().join("old.redb");
        {
            let broker = fixture.open().expect("opens");
            let (sealed, _) = fixture.request(&broker, register(1), now_ms());
            broker.handle_client(&sealed).expect("registered");
            std::fs::copy(&state, &old).expect("copy");
            let (sealed, _) = fixture.request(&broker, register(2), now_ms());
            broker.handle_client(&sealed).expect("updated");
        }
        fixture.open().expect("the current state opens");
        std::fs::copy(&old, &state).expect("restore");
        assert!(
            matches!(
                fixture.open(),
                Err(BrokerError::RolledBack {
                    state_version,
                    counter
                }) if state_version < counter
            ),
            "an older state opened"
        );
    }
}
