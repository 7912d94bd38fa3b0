//! Built-in packages (OpenWhisk's catalog, such as `/whisk.system/utils`):
//! published packages of plain JavaScript actions that the node installs
//! at start, readable and invocable from every namespace and usable as
//! sequence components.

use std::sync::Arc;

use clemmys_store::PutMode;
use clemmys_whisk::action::{ActionPut, ExecPut};
use clemmys_whisk::{EntityName, Exec, KeyValues, NamespaceRecord, Package};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::{ApiError, Controller, actions};

/// One action of a built-in package.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinAction {
    /// Its name in the package.
    pub name: &'static str,
    /// Its JavaScript source (kind `nodejs:default`).
    pub source: &'static str,
    /// What it does, as its `description` annotation.
    pub description: &'static str,
}

/// A built-in package: its name, description and actions.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinPackage {
    /// Its name in the owner's namespace.
    pub name: &'static str,
    /// What it holds, as its `description` annotation.
    pub description: &'static str,
    /// Its actions.
    pub actions: &'static [BuiltinAction],
}

fn described(description: &str) -> KeyValues {
    let mut annotations = KeyValues::default();
    annotations.set("description", Value::String(description.to_owned()));
    annotations
}

fn entity_name(text: &str) -> Result<EntityName, ApiError> {
    EntityName::new(text).map_err(|error| ApiError::internal(error.to_string()))
}

impl Controller {
    /// Makes `package` of namespace `owner` exist, published, with its
    /// actions as given. Only what differs is written, so a restart does
    /// not bump versions; actions the owner added are left alone.
    pub async fn install_package(
        &self,
        owner: Arc<NamespaceRecord>,
        package: &BuiltinPackage,
    ) -> Result<(), ApiError> {
        let namespace = owner.name.clone();
        let name = entity_name(package.name)?;
        let annotations = described(package.description);
        let existing = self.store.get_package(&namespace, &name).await?;
        let current = existing.as_ref().is_some_and(|found| {
            found.publish && found.binding.is_none() && found.annotations == annotations
        });
        let home = match existing {
            Some(found) if current => found,
            existing => {
                let version = existing.as_ref().map_or_else(
                    || semver::Version::new(0, 0, 1),
                    |found| {
                        let mut version = found.version.clone();
                        version.patch += 1;
                        version
                    },
                );
                let stored = Package {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    version,
                    publish: true,
                    binding: None,
                    parameters: existing.map(|found| found.parameters).unwrap_or_default(),
                    annotations,
                    updated: clemmys_whisk::now_ms(),
                };
                self.store
                    .put_package(stored.clone(), PutMode::Overwrite)
                    .await?;
                stored
            }
        };
        let caller = Caller(owner);
        for action in package.actions {
            let action_name = entity_name(action.name)?;
            let digest = hex::encode(Sha256::digest(action.source.as_bytes()));
            let annotations = described(action.description);
            let stored = self
                .store
                .get_package_action(&namespace, &name, &action_name)
                .await?;
            let unchanged = stored.is_some_and(|found| {
                matches!(&found.exec, Exec::JavaScript { code_digest, .. } if *code_digest == digest)
                    && found.annotations.get("description") == annotations.get("description")
            });
            if unchanged {
                continue;
            }
            let put = ActionPut {
                exec: Some(ExecPut {
                    kind: "nodejs:default".into(),
                    code: Some(action.source.to_owned()),
                    binary: Some(false),
                    main: None,
                    components: None,
                }),
                annotations: Some(annotations),
                ..ActionPut::default()
            };
            let address = (namespace.clone(), Some(&home), action_name);
            // Not prewarmed: compiling the engine at every start would
            // slow the node's first requests for actions nobody may use.
            actions::store_action(self, &caller, address, true, put).await?;
        }
        Ok(())
    }
}
