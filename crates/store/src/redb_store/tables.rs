//! The tables of the store file, and the helpers that keep an activation
//! record and its indexes together.

use clemmys_whisk::EntityName;
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

use crate::StoreError;
pub(super) use crate::record::{EncodedRecord, decode, encode};

/// namespace name → JSON `NamespaceRecord`.
pub(super) const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");
/// API key UUID → namespace name.
pub(super) const AUTH_UUIDS: TableDefinition<&str, &str> = TableDefinition::new("auth_uuids");
/// `namespace/name` (or `namespace/package/name`) → JSON `Action`.
pub(super) const ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("actions");
/// `namespace/name` → JSON `Package` (a package or a binding).
pub(super) const PACKAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("packages");
/// `namespace/name` → JSON `Trigger` (with its rules' links).
pub(super) const TRIGGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("triggers");
/// `namespace/name` → JSON `Rule`.
pub(super) const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules");
/// `namespace/name` → code bytes (sealed for confidential actions).
pub(super) const CODE: TableDefinition<&str, &[u8]> = TableDefinition::new("code");
/// (namespace, start ms, id) → JSON `Activation`. Keyed by time so that
/// new records append at the end instead of touching pages all over.
pub(super) const ACTIVATIONS: TableDefinition<(&str, u64, &[u8]), &[u8]> =
    TableDefinition::new("activations");
/// (namespace, start ms, id) → action name: the same keys without the
/// records, so that counting, paging and retention read only small pages.
pub(super) const ACTIVATION_KEYS: TableDefinition<(&str, u64, &[u8]), &str> =
    TableDefinition::new("activation_keys");
/// (namespace, action name, start ms, id) → (), to filter by name quickly.
pub(super) const ACTIVATIONS_BY_NAME: TableDefinition<(&str, &str, u64, &[u8]), ()> =
    TableDefinition::new("activations_by_name");
/// id → (namespace, start ms), to get one activation by id.
pub(super) const ACTIVATION_IDS: TableDefinition<&[u8], (&str, u64)> =
    TableDefinition::new("activation_ids");
/// id → JSON `Activation`: the stand-in record of an acknowledged activation
/// whose own record is not stored yet (see `EntityStore::put_stand_in`).
pub(super) const STAND_INS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stand_ins");

/// The tables of plain JSON documents keyed `namespace/name`, written
/// through the same two write operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DocumentTable {
    /// [`TRIGGERS`].
    Triggers,
    /// [`RULES`].
    Rules,
}

impl DocumentTable {
    /// Its definition, for reads.
    pub fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Self::Triggers => TRIGGERS,
            Self::Rules => RULES,
        }
    }
}

/// Larger than any 16-byte activation id, as an inclusive upper bound.
pub(super) const ID_MAX: [u8; 17] = [0xff; 17];

/// Every table, opened once per write transaction.
pub(super) struct Tables<'txn> {
    pub namespaces: Table<'txn, &'static str, &'static [u8]>,
    pub auth_uuids: Table<'txn, &'static str, &'static str>,
    pub actions: Table<'txn, &'static str, &'static [u8]>,
    pub code: Table<'txn, &'static str, &'static [u8]>,
    pub packages: Table<'txn, &'static str, &'static [u8]>,
    pub triggers: Table<'txn, &'static str, &'static [u8]>,
    pub rules: Table<'txn, &'static str, &'static [u8]>,
    pub records: Table<'txn, (&'static str, u64, &'static [u8]), &'static [u8]>,
    pub keys: Table<'txn, (&'static str, u64, &'static [u8]), &'static str>,
    pub by_name: Table<'txn, (&'static str, &'static str, u64, &'static [u8]), ()>,
    pub ids: Table<'txn, &'static [u8], (&'static str, u64)>,
    pub stand_ins: Table<'txn, &'static [u8], &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    /// Opens every table, creating the missing ones.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            namespaces: txn.open_table(NAMESPACES).map_err(StoreError::backend)?,
            auth_uuids: txn.open_table(AUTH_UUIDS).map_err(StoreError::backend)?,
            actions: txn.open_table(ACTIONS).map_err(StoreError::backend)?,
            code: txn.open_table(CODE).map_err(StoreError::backend)?,
            packages: txn.open_table(PACKAGES).map_err(StoreError::backend)?,
            triggers: txn.open_table(TRIGGERS).map_err(StoreError::backend)?,
            rules: txn.open_table(RULES).map_err(StoreError::backend)?,
            records: txn.open_table(ACTIVATIONS).map_err(StoreError::backend)?,
            keys: txn
                .open_table(ACTIVATION_KEYS)
                .map_err(StoreError::backend)?,
            by_name: txn
                .open_table(ACTIVATIONS_BY_NAME)
                .map_err(StoreError::backend)?,
            ids: txn
                .open_table(ACTIVATION_IDS)
                .map_err(StoreError::backend)?,
            stand_ins: txn.open_table(STAND_INS).map_err(StoreError::backend)?,
        })
    }

    /// The table of documents of `kind`.
    pub fn documents(
        &mut self,
        kind: DocumentTable,
    ) -> &mut Table<'txn, &'static str, &'static [u8]> {
        match kind {
            DocumentTable::Triggers => &mut self.triggers,
            DocumentTable::Rules => &mut self.rules,
        }
    }

    /// Whether the activation `id` has a stored record.
    pub fn is_stored(&self, id: &[u8]) -> Result<bool, StoreError> {
        Ok(self.ids.get(id).map_err(StoreError::backend)?.is_some())
    }

    /// Writes `record` and its three indexes.
    pub fn insert_record(&mut self, record: &EncodedRecord) -> Result<(), StoreError> {
        let id = record.id.as_bytes().as_slice();
        let ns = record.namespace.as_str();
        self.records
            .insert((ns, record.start, id), record.json.as_slice())
            .map_err(StoreError::backend)?;
        self.keys
            .insert((ns, record.start, id), record.name.as_str())
            .map_err(StoreError::backend)?;
        self.by_name
            .insert((ns, record.name.as_str(), record.start, id), ())
            .map_err(StoreError::backend)?;
        self.ids
            .insert(id, (ns, record.start))
            .map_err(StoreError::backend)?;
        Ok(())
    }

    /// Deletes the record at `key` (of action `name`) and its indexes.
    pub fn remove_record(&mut self, key: &StoredKey, name: &str) -> Result<(), StoreError> {
        let (ns, start, id) = (key.namespace.as_str(), key.start, key.id.as_slice());
        self.records
            .remove((ns, start, id))
            .map_err(StoreError::backend)?;
        self.keys
            .remove((ns, start, id))
            .map_err(StoreError::backend)?;
        self.by_name
            .remove((ns, name, start, id))
            .map_err(StoreError::backend)?;
        // The id index names the newest record of this id: leave it alone
        // if that is another one.
        let points_here = self
            .ids
            .get(id)
            .map_err(StoreError::backend)?
            .is_some_and(|location| location.value() == (ns, start));
        if points_here {
            self.ids.remove(id).map_err(StoreError::backend)?;
        }
        Ok(())
    }

    /// Fills the keys-only index from the records when it does not match
    /// them: a store written before the index existed gets it once.
    pub fn rebuild_key_index_if_needed(&mut self) -> Result<(), StoreError> {
        let records = self.records.len().map_err(StoreError::backend)?;
        let keys = self.keys.len().map_err(StoreError::backend)?;
        if records == keys {
            return Ok(());
        }
        tracing::info!(records, "indexing the activation records by time");
        self.keys
            .retain(|_, _| false)
            .map_err(StoreError::backend)?;
        for entry in self.records.iter().map_err(StoreError::backend)? {
            let (key, value) = entry.map_err(StoreError::backend)?;
            let (ns, start, id) = key.value();
            let named: NamedRecord = decode(value.value())?;
            self.keys
                .insert((ns, start, id), named.name.as_str())
                .map_err(StoreError::backend)?;
        }
        Ok(())
    }
}

/// The one field of a stored record that rebuilding the index needs.
#[derive(serde::Deserialize)]
struct NamedRecord {
    name: String,
}

/// The key of a stored record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredKey {
    pub namespace: String,
    pub start: u64,
    pub id: Vec<u8>,
}

pub(super) fn action_key(namespace: &EntityName, name: &EntityName) -> String {
    format!("{namespace}/{name}")
}

/// `namespace/package/name`: a package's actions sort after the package's
/// prefix and never collide with a namespace's own (names have no `/`).
pub(super) fn package_action_key(
    namespace: &EntityName,
    package: &EntityName,
    name: &EntityName,
) -> String {
    format!("{namespace}/{package}/{name}")
}

/// The key of `action`, in its package if it has one.
pub(super) fn key_of(action: &clemmys_whisk::Action) -> String {
    match &action.package {
        Some(package) => package_action_key(&action.namespace, package, &action.name),
        None => action_key(&action.namespace, &action.name),
    }
}
