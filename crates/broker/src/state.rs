//! The broker's durable state: its identity keys and every action record,
//! each sealed under the enclave's sealing key before it touches the disk.

use std::path::Path;

use clemmys_proto::ClientId;
use clemmys_proto::broker::ActionDescriptor;
use clemmys_proto::identity::EnclaveKeys;
use clemmys_proto::suite::{KemKeyPair, StorageKey};
use clemmys_proto::wire::{Reader, Writer};
use clemmys_tee::os_rng;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use zeroize::Zeroizing;

use crate::BrokerError;

/// name → sealed record.
const SEALED: TableDefinition<&str, &[u8]> = TableDefinition::new("sealed");
const IDENTITY_KEY: &str = "identity";

/// An action's descriptor and secret key.
pub struct ActionRecord {
    pub descriptor: ActionDescriptor,
    secret: Zeroizing<[u8; 32]>,
}

impl ActionRecord {
    pub fn new(descriptor: ActionDescriptor, keys: &KemKeyPair) -> Self {
        Self {
            descriptor,
            secret: keys.secret_bytes(),
        }
    }

    pub fn keys(&self) -> Result<KemKeyPair, BrokerError> {
        Ok(KemKeyPair::from_secret(&self.secret)?)
    }
}

pub struct BrokerState {
    db: Database,
    key: StorageKey,
}

fn storage(error: impl std::fmt::Display) -> BrokerError {
    BrokerError::Storage(error.to_string())
}

/// The key of an action record: its owner first, so that one identity's
/// registration can never block or shadow another's of the same name.
fn action_name(owner: &ClientId, namespace: &str, name: &str) -> String {
    format!("action:{owner}:{namespace}/{name}")
}

impl BrokerState {
    pub fn open(path: &Path, key: StorageKey) -> Result<Self, BrokerError> {
        let db = Database::create(path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(SEALED).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(Self { db, key })
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

    pub fn action(
        &self,
        owner: &ClientId,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ActionRecord>, BrokerError> {
        let Some(bytes) = self.get(&action_name(owner, namespace, name))? else {
            return Ok(None);
        };
        let mut reader = Reader::new(&bytes, "clemmys/broker-action/v1")?;
        let descriptor = serde_json::from_slice(reader.bytes()?).map_err(storage)?;
        let secret = Zeroizing::new(reader.array()?);
        reader.finish()?;
        Ok(Some(ActionRecord { descriptor, secret }))
    }

    /// How many actions `owner` has registered (read only when it
    /// registers a new one, to bound what one identity can store).
    pub fn count_actions(&self, owner: &ClientId) -> Result<usize, BrokerError> {
        let prefix = format!("action:{owner}:");
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(SEALED).map_err(storage)?;
        let mut count = 0;
        for entry in table.range(prefix.as_str()..).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            if !key.value().starts_with(&prefix) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    pub fn put_action(&self, record: &ActionRecord) -> Result<(), BrokerError> {
        let json = serde_json::to_vec(&record.descriptor).map_err(storage)?;
        let bytes = Zeroizing::new(
            Writer::new("clemmys/broker-action/v1")
                .bytes(&json)
                .bytes(record.secret.as_slice())
                .finish(),
        );
        let descriptor = &record.descriptor;
        let name = action_name(&descriptor.owner, &descriptor.namespace, &descriptor.name);
        self.put(&name, &bytes)
    }
}
