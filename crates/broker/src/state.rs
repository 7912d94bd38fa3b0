//! The broker's durable state: its identity keys, and every action record
//! in one sealed snapshot carrying a monotonic state version, bound to the
//! enclave's monotonic counter.
//!
//! Sealing (under the enclave's sealing key) hides and authenticates the
//! state at rest, but a provider holding an older copy of the data
//! directory could put it back: every record in it would still open. So the
//! records are not sealed one by one but together, with the state version,
//! and each write goes: seal the next version, write it durably, advance
//! the TEE's monotonic counter to it, and only then act on it (answer the
//! client). At open, a snapshot older than the counter is a rollback and
//! the broker refuses to start ([`BrokerError::RolledBack`]); a snapshot
//! newer than the counter is a write whose counter step was lost in a
//! crash, and the counter catches up. Records cannot be mixed across
//! copies: there is one sealed object.
//!
//! The snapshot is read once, at open, and kept in memory (the broker is
//! its only writer): every grant and describe is a map lookup.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clemmys_proto::broker::{ActionDescriptor, Delegation, Policy};
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::suite::{KemKeyPair, StorageKey};
use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{ClientId, TeeKind};
use clemmys_tee::{Tee, os_rng};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use zeroize::Zeroizing;

use crate::BrokerError;

/// name → sealed record.
const SEALED: TableDefinition<&str, &[u8]> = TableDefinition::new("sealed");
const IDENTITY_KEY: &str = "identity";
const SNAPSHOT_KEY: &str = "snapshot";
const SNAPSHOT_FRAME: &str = "clemmys/broker-snapshot/v1";
/// A snapshot that also holds owners' delegations to gateways.
const SNAPSHOT_FRAME_V2: &str = "clemmys/broker-snapshot/v2";
/// A snapshot that also names the version it was written over.
const SNAPSHOT_FRAME_V3: &str = "clemmys/broker-snapshot/v3";
/// A snapshot that also marks the action keys made since a new key comes
/// with every policy that releases it to other enclaves.
const SNAPSHOT_FRAME_V4: &str = "clemmys/broker-snapshot/v4";
/// Each write steps the state version by a random amount in
/// `1..=MAX_STEP`, so that two brokers forked from one version write
/// different versions, and the one whose counter step lost cannot pass for
/// the current state at its next start (one chance in `MAX_STEP` that both
/// drew the same step). 2^64 / 2^24 leaves room for 2^40 writes.
const MAX_STEP: u64 = 1 << 24;
/// How long the broker serves from its state before it reads the
/// monotonic counter again to see whether another broker on a copy of its
/// state wrote since (a hardware counter read is slow; a write always
/// checks).
pub(crate) const COUNTER_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Records of the layout before snapshots, one per action, read once to
/// migrate them into the first snapshot.
const LEGACY_ACTION_PREFIX: &str = "action:";
const ACTION_FRAME: &str = "clemmys/broker-action/v1";

/// An action's descriptor and secret key.
pub struct ActionRecord {
    pub descriptor: ActionDescriptor,
    secret: Zeroizing<[u8; 32]>,
    /// Whether the key was made since a new key comes with every policy
    /// that releases it to other enclaves: only then has it gone to no
    /// enclave the current policy leaves out.
    follows_policy: bool,
}

impl ActionRecord {
    pub fn new(descriptor: ActionDescriptor, keys: &KemKeyPair) -> Self {
        Self {
            descriptor,
            secret: keys.secret_bytes(),
            follows_policy: true,
        }
    }

    pub fn keys(&self) -> Result<KemKeyPair, BrokerError> {
        Ok(KemKeyPair::from_secret(&self.secret)?)
    }

    /// Whether a version registered under `next` may keep this key: only
    /// if it goes to the same enclaves, and has gone to no other (a key
    /// made before the rule may have: one released to `sim`, or to a
    /// build the owner dropped since).
    pub fn key_serves(&self, next: &Policy) -> bool {
        self.follows_policy && self.descriptor.policy.releases_key_alike(next)
    }

    /// A copy for a caller to read or change before writing it back (the
    /// snapshot keeps its own).
    fn copy(&self) -> Self {
        Self {
            descriptor: self.descriptor.clone(),
            secret: Zeroizing::new(*self.secret),
            follows_policy: self.follows_policy,
        }
    }
}

/// The one place an action's record key is made: its owner first, so that
/// one identity's registration can never block or shadow another's of the
/// same name.
fn record_key(owner: &ClientId, namespace: &str, name: &str) -> String {
    format!("{owner}:{namespace}/{name}")
}

/// Refuses a change of `last` by a request stamped `stamped_ms` unless it
/// was stamped after the change that made `last` (a replay, or a request
/// older than the owner's last word).
fn stamped_after(last: &Delegation, stamped_ms: u64) -> Result<(), BrokerError> {
    if stamped_ms <= last.changed_ms {
        return Err(BrokerError::DelegationChangedSince {
            changed_ms: last.changed_ms,
        });
    }
    Ok(())
}

/// The one place a delegation's key is made.
fn delegation_key(owner: &ClientId, gateway: &ClientId) -> String {
    format!("{owner}>{gateway}")
}

/// Every action record and delegation at one state version: delegations
/// are in the same sealed, counter-bound snapshot, so a revocation cannot
/// be undone by restoring an older copy of them.
struct Snapshot {
    version: u64,
    /// The version it was written over (`None`: written before versions
    /// were stepped at random, when each write added one).
    previous: Option<u64>,
    actions: BTreeMap<String, ActionRecord>,
    delegations: BTreeMap<String, Delegation>,
}

/// What one commit changes.
struct Records<'a> {
    actions: &'a mut BTreeMap<String, ActionRecord>,
    delegations: &'a mut BTreeMap<String, Delegation>,
}

impl Snapshot {
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
        let count = u64::try_from(self.actions.len()).map_err(storage)?;
        let mut writer = Writer::new(SNAPSHOT_FRAME_V4)
            .u64(self.version)
            .u64(self.previous.unwrap_or(0))
            .u64(count);
        for (key, record) in &self.actions {
            let descriptor = serde_json::to_vec(&record.descriptor).map_err(storage)?;
            writer = writer
                .str(key)
                .bytes(&descriptor)
                .bytes(record.secret.as_slice())
                .u64(u64::from(record.follows_policy));
        }
        let delegations = u64::try_from(self.delegations.len()).map_err(storage)?;
        writer = writer.u64(delegations);
        for delegation in self.delegations.values() {
            writer = writer.bytes(&serde_json::to_vec(delegation).map_err(storage)?);
        }
        Ok(Zeroizing::new(writer.finish()))
    }

    fn decode(bytes: &[u8]) -> Result<Self, BrokerError> {
        // A snapshot written before delegations existed has none, one
        // written before random steps names no previous version, and one
        // written before keys followed policies marks no key as following.
        let domain = Reader::domain(bytes)?;
        let (frame, with_delegations, with_previous, with_marks) =
            if domain == SNAPSHOT_FRAME_V4.as_bytes() {
                (SNAPSHOT_FRAME_V4, true, true, true)
            } else if domain == SNAPSHOT_FRAME_V3.as_bytes() {
                (SNAPSHOT_FRAME_V3, true, true, false)
            } else if domain == SNAPSHOT_FRAME_V2.as_bytes() {
                (SNAPSHOT_FRAME_V2, true, false, false)
            } else {
                (SNAPSHOT_FRAME, false, false, false)
            };
        let mut reader = Reader::new(bytes, frame)?;
        let version = reader.u64()?;
        let previous = if with_previous {
            Some(reader.u64()?)
        } else {
            None
        };
        let count = reader.u64()?;
        let mut actions = BTreeMap::new();
        for _ in 0..count {
            let key = reader.str()?.to_owned();
            let descriptor = decode_descriptor(reader.bytes()?)?;
            let secret = Zeroizing::new(reader.array()?);
            let follows_policy = with_marks && reader.u64()? == 1;
            if key != record_key(&descriptor.owner, &descriptor.namespace, &descriptor.name) {
                return Err(BrokerError::Storage(format!(
                    "snapshot record {key} holds another action"
                )));
            }
            actions.insert(
                key,
                ActionRecord {
                    descriptor,
                    secret,
                    follows_policy,
                },
            );
        }
        let mut delegations = BTreeMap::new();
        if with_delegations {
            for _ in 0..reader.u64()? {
                let delegation: Delegation =
                    serde_json::from_slice(reader.bytes()?).map_err(storage)?;
                delegations.insert(
                    delegation_key(&delegation.owner, &delegation.gateway),
                    delegation,
                );
            }
        }
        reader.finish()?;
        Ok(Self {
            version,
            previous,
            actions,
            delegations,
        })
    }
}

pub struct BrokerState {
    db: Database,
    key: StorageKey,
    tee: Arc<dyn Tee>,
    snapshot: Mutex<Snapshot>,
    /// Whether the counter still covers the snapshot in memory.
    counter_check: Mutex<CounterCheck>,
}

/// What the broker last learnt of its monotonic counter. Taken after the
/// snapshot's lock by a write, alone by a check (never the other way
/// round): so it keeps the version the counter must hold itself.
struct CounterCheck {
    /// The version of the snapshot in memory (set by the write that
    /// made it, under this lock).
    version: u64,
    /// When it last found the counter at that version.
    checked: Instant,
    /// The counter's value once it found another broker wrote (from then
    /// on this one serves nothing).
    forked: Option<u64>,
}

/// A stored descriptor. Policies stored before measurements were typed by
/// TEE kind hold bare digests; each is read as the one kind the policy
/// could be met by without accepting more than before: `sgx-dcap` under a
/// hardware-only policy, else `sim` (the only kind any enclave of this
/// release produces). An owner who meant SGX without requiring hardware
/// registers again; until then no SGX enclave gets the key (fail closed).
fn decode_descriptor(bytes: &[u8]) -> Result<ActionDescriptor, BrokerError> {
    let mut json: serde_json::Value = serde_json::from_slice(bytes).map_err(storage)?;
    if let Some(policy) = json.get_mut("policy") {
        let kind = if policy.get("require_hardware") == Some(&serde_json::Value::Bool(true)) {
            TeeKind::SgxDcap
        } else {
            TeeKind::Sim
        };
        if let Some(serde_json::Value::Array(measurements)) = policy.get_mut("allowed_measurements")
        {
            for measurement in measurements {
                if let serde_json::Value::String(text) = measurement
                    && !text.contains(':')
                {
                    *text = format!("{}:{text}", kind.name());
                }
            }
        }
    }
    serde_json::from_value(json).map_err(storage)
}

fn storage(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Storage(error.to_string())
}

impl BrokerState {
    /// Opens the state at `path`, sealed under `tee`'s sealing key, and
    /// refuses it if it is older than `tee`'s monotonic counter.
    pub fn open(path: &Path, tee: Arc<dyn Tee>) -> Result<Self, BrokerError> {
        let db = Database::create(path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(SEALED).map_err(storage)?;
        txn.commit().map_err(storage)?;
        let key = tee.sealing_key();
        let mut state = Self {
            db,
            key,
            tee,
            snapshot: Mutex::new(Snapshot {
                version: 0,
                previous: None,
                actions: BTreeMap::new(),
                delegations: BTreeMap::new(),
            }),
            counter_check: Mutex::new(CounterCheck {
                version: 0,
                checked: Instant::now(),
                forked: None,
            }),
        };
        let snapshot = match state.get(SNAPSHOT_KEY)? {
            Some(bytes) => Snapshot::decode(&bytes)?,
            None => state.legacy_snapshot()?,
        };
        let counter = state.tee.read_counter()?;
        let version = snapshot.version;
        match snapshot.previous {
            _ if version == counter => {}
            _ if version < counter => {
                return Err(BrokerError::RolledBack {
                    state_version: version,
                    counter,
                });
            }
            // A write whose counter step a crash lost, made over the
            // version the counter holds: the counter catches up, unless
            // another broker stepped it first.
            Some(previous) if previous == counter => {
                if let Err(held) = state.tee.compare_and_advance_counter(counter, version)? {
                    return Err(BrokerError::Forked {
                        state_version: version,
                        counter: held,
                    });
                }
            }
            // Written over a version the counter never reached: the
            // counter was reset or replaced, not stepped by another broker.
            Some(previous) if counter < previous => {
                return Err(BrokerError::CounterBehind {
                    state_version: version,
                    previous,
                    counter,
                });
            }
            // Written over another version than the counter holds: by a
            // broker whose counter step lost to another's.
            Some(_) => {
                return Err(BrokerError::Forked {
                    state_version: version,
                    counter,
                });
            }
            // Written before random steps: as then, the counter catches up.
            None => {
                state.tee.advance_counter(version)?;
            }
        }
        let migrate = snapshot.version == 0 && !snapshot.actions.is_empty();
        state
            .counter_check
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .version = version;
        state.snapshot = Mutex::new(snapshot);
        if migrate {
            state.commit(|_| Ok(()))?;
        }
        Ok(state)
    }

    /// The action records of the layout before snapshots, at version 0.
    fn legacy_snapshot(&self) -> Result<Snapshot, BrokerError> {
        let names: Vec<String> = {
            let txn = self.db.begin_read().map_err(storage)?;
            let table = txn.open_table(SEALED).map_err(storage)?;
            let mut names = Vec::new();
            for entry in table.iter().map_err(storage)? {
                let (name, _) = entry.map_err(storage)?;
                if name.value().starts_with(LEGACY_ACTION_PREFIX) {
                    names.push(name.value().to_owned());
                }
            }
            names
        };
        let mut actions = BTreeMap::new();
        for name in names {
            let Some(bytes) = self.get(&name)? else {
                continue;
            };
            let mut reader = Reader::new(&bytes, ACTION_FRAME)?;
            let descriptor = decode_descriptor(reader.bytes()?)?;
            let secret = Zeroizing::new(reader.array()?);
            reader.finish()?;
            actions.insert(
                record_key(&descriptor.owner, &descriptor.namespace, &descriptor.name),
                ActionRecord {
                    descriptor,
                    secret,
                    follows_policy: false,
                },
            );
        }
        Ok(Snapshot {
            version: 0,
            previous: None,
            actions,
            delegations: BTreeMap::new(),
        })
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, BrokerError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(SEALED).map_err(storage)?;
        let Some(sealed) = table.get(name).map_err(storage)? else {
            return Ok(None);
        };
        // The record's name is its associated data: a record moved under
        // another name does not open.
        Ok(Some(self.key.open(
            sealed.value(),
            name.as_bytes(),
            "broker state",
        )?))
    }

    fn put(&self, name: &str, plaintext: &[u8]) -> Result<(), BrokerError> {
        let sealed = self.key.seal(plaintext, name.as_bytes(), &mut os_rng())?;
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        {
            let mut table = txn.open_table(SEALED).map_err(storage)?;
            table.insert(name, sealed.as_slice()).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    pub fn identity(&self) -> Result<Option<EnclaveKeys>, BrokerError> {
        let Some(bytes) = self.get(IDENTITY_KEY)? else {
            return Ok(None);
        };
        let mut reader = Reader::new(&bytes, "clemmys/broker-identity/v1")?;
        let kem: Zeroizing<[u8; 32]> = Zeroizing::new(reader.array()?);
        let signing: Zeroizing<[u8; 32]> = Zeroizing::new(reader.array()?);
        reader.finish()?;
        Ok(Some(EnclaveKeys::from_secrets(&kem, &signing)?))
    }

    pub fn put_identity(&self, keys: &EnclaveKeys) -> Result<(), BrokerError> {
        let (kem, signing) = keys.secrets();
        let bytes = Zeroizing::new(
            Writer::new("clemmys/broker-identity/v1")
                .bytes(kem.as_slice())
                .bytes(signing.as_slice())
                .finish(),
        );
        self.put(IDENTITY_KEY, &bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state version: raised by every write, never lowered.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn action(
        &self,
        owner: &ClientId,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ActionRecord>, BrokerError> {
        Ok(self
            .lock()
            .actions
            .get(&record_key(owner, namespace, name))
            .map(ActionRecord::copy))
    }

    /// How many actions `owner` has registered (to bound what one identity
    /// can store).
    pub fn count_actions(&self, owner: &ClientId) -> usize {
        let prefix = format!("{owner}:");
        self.lock()
            .actions
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .count()
    }

    /// Writes `record` as the next state version; answers that version once
    /// the monotonic counter covers it.
    pub fn put_action(&self, record: &ActionRecord) -> Result<u64, BrokerError> {
        let descriptor = &record.descriptor;
        let key = record_key(&descriptor.owner, &descriptor.namespace, &descriptor.name);
        self.commit(|records| {
            records.actions.insert(key, record.copy());
            Ok(())
        })
    }

    /// `owner`'s delegation to `gateway`, if any (live or not).
    pub fn delegation(&self, owner: &ClientId, gateway: &ClientId) -> Option<Delegation> {
        self.lock()
            .delegations
            .get(&delegation_key(owner, gateway))
            .cloned()
    }

    /// Writes `delegation` (replacing the owner's earlier one to the same
    /// gateway) as the next state version, if the request that made it was
    /// stamped after the last change to that delegation.
    pub fn put_delegation(&self, delegation: &Delegation) -> Result<u64, BrokerError> {
        let key = delegation_key(&delegation.owner, &delegation.gateway);
        self.commit(|records| {
            if let Some(last) = records.delegations.get(&key) {
                stamped_after(last, delegation.changed_ms)?;
            }
            records.delegations.insert(key, delegation.clone());
            Ok(())
        })
    }

    /// Revokes `owner`'s delegation to `gateway`, by a request stamped
    /// `stamped_ms`, as the next state version. The revoked delegation is
    /// kept with that stamp: a replay of an earlier delegation is refused.
    pub fn revoke_delegation(
        &self,
        owner: &ClientId,
        gateway: &ClientId,
        stamped_ms: u64,
    ) -> Result<u64, BrokerError> {
        let key = delegation_key(owner, gateway);
        self.commit(|records| {
            let delegation = records
                .delegations
                .get_mut(&key)
                .filter(|delegation| !delegation.revoked)
                .ok_or(BrokerError::UnknownDelegation)?;
            stamped_after(delegation, stamped_ms)?;
            delegation.revoked = true;
            delegation.changed_ms = stamped_ms;
            Ok(())
        })
    }

    /// Refuses to serve once another broker on a copy of this one's state
    /// wrote (the counter moved past this one's version): its revocations
    /// and updates would otherwise go unseen here. Reads the counter at
    /// most once per [`COUNTER_CHECK_INTERVAL`].
    pub fn check_current(&self) -> Result<(), BrokerError> {
        let mut check = self
            .counter_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if check.forked.is_none() && check.checked.elapsed() < COUNTER_CHECK_INTERVAL {
            return Ok(());
        }
        self.check_counter(&mut check)
    }

    /// `Forked` if the counter is not at the version in memory (or was
    /// not before).
    fn check_counter(&self, check: &mut CounterCheck) -> Result<(), BrokerError> {
        let version = check.version;
        let counter = match check.forked {
            Some(counter) => counter,
            None => {
                let counter = self.tee.read_counter()?;
                if counter == version {
                    check.checked = Instant::now();
                    return Ok(());
                }
                tracing::error!(
                    counter,
                    version,
                    "another broker on a copy of this one's state wrote: this one serves nothing more"
                );
                check.forked = Some(counter);
                counter
            }
        };
        Err(BrokerError::Forked {
            state_version: version,
            counter,
        })
    }

    /// Applies `change` to the records as the next version: sealed and
    /// written durably, then the counter advanced over the version it
    /// holds (refused, and nothing served from then on, when another
    /// broker stepped it), then kept in memory.
    fn commit(
        &self,
        change: impl FnOnce(Records<'_>) -> Result<(), BrokerError>,
    ) -> Result<u64, BrokerError> {
        let mut snapshot = self.lock();
        let mut check = self
            .counter_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.check_counter(&mut check)?;
        let mut step = [0u8; 8];
        rand_core::Rng::fill_bytes(&mut os_rng(), &mut step);
        let step = u64::from_be_bytes(step) % MAX_STEP + 1;
        let previous = snapshot.version;
        let version = previous
            .checked_add(step)
            .ok_or_else(|| storage("the state version is exhausted"))?;
        let mut actions: BTreeMap<String, ActionRecord> = snapshot
            .actions
            .iter()
            .map(|(key, record)| (key.clone(), record.copy()))
            .collect();
        let mut delegations = snapshot.delegations.clone();
        change(Records {
            actions: &mut actions,
            delegations: &mut delegations,
        })?;
        let next = Snapshot {
            version,
            previous: Some(previous),
            actions,
            delegations,
        };
        self.put(SNAPSHOT_KEY, &next.encode()?)?;
        // A crash before this leaves a snapshot written over the counter's
        // value: caught up at the next start.
        if let Err(held) = self.tee.compare_and_advance_counter(previous, version)? {
            tracing::error!(
                counter = held,
                "another broker on a copy of this one's state wrote: this one serves nothing more"
            );
            check.forked = Some(held);
            return Err(BrokerError::Forked {
                state_version: previous,
                counter: held,
            });
        }
        check.version = version;
        check.checked = Instant::now();
        *snapshot = next;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clemmys_proto::Measurement;

    /// A descriptor as stored before measurements were typed.
    fn legacy_descriptor(require_hardware: bool) -> Vec<u8> {
        let digest = "07".repeat(32);
        serde_json::to_vec(&serde_json::json!({
            "namespace": "guest",
            "name": "a",
            "version": 1,
            "code_digest": "00".repeat(32),
            "action_key": "01".repeat(32),
            "owner": "02".repeat(32),
            "policy": {
                "allowed_measurements": [digest],
                "require_hardware": require_hardware,
            },
        }))
        .expect("json")
    }

    #[test]
    fn untyped_stored_measurements_read_as_the_kind_the_policy_allowed() {
        let hardware = decode_descriptor(&legacy_descriptor(true)).expect("decodes");
        assert_eq!(
            hardware.policy.allowed_measurements,
            [Measurement::sgx_dcap([7; 32])]
        );
        let sim = decode_descriptor(&legacy_descriptor(false)).expect("decodes");
        assert_eq!(sim.policy.allowed_measurements, [Measurement::sim([7; 32])]);
        // Typed ones are read as they are.
        let typed = serde_json::to_vec(&sim).expect("json");
        assert_eq!(decode_descriptor(&typed).expect("decodes"), sim);
    }

    #[test]
    fn a_key_made_before_keys_followed_policies_serves_no_next_version() {
        let descriptor = decode_descriptor(&legacy_descriptor(false)).expect("decodes");
        let key = record_key(&descriptor.owner, &descriptor.namespace, &descriptor.name);
        let policy = descriptor.policy.clone();
        let v3 = Writer::new(SNAPSHOT_FRAME_V3)
            .u64(9)
            .u64(8)
            .u64(1)
            .str(&key)
            .bytes(&serde_json::to_vec(&descriptor).expect("json"))
            .bytes(&[3; 32])
            .u64(0)
            .finish();
        let old = Snapshot::decode(&v3).expect("decodes");
        assert!(
            !old.actions[&key].key_serves(&policy),
            "may have gone to `sim`"
        );
        // Written again, it stays marked as it was; a fresh key follows.
        let again = Snapshot::decode(&old.encode().expect("encodes")).expect("decodes");
        assert!(!again.actions[&key].key_serves(&policy));
        let fresh = ActionRecord::new(descriptor, &KemKeyPair::generate(&mut os_rng()));
        assert!(fresh.key_serves(&policy));
        let mut snapshot = again;
        snapshot.actions.insert(key.clone(), fresh);
        let read = Snapshot::decode(&snapshot.encode().expect("encodes")).expect("decodes");
        assert!(read.actions[&key].key_serves(&policy));
    }
}
