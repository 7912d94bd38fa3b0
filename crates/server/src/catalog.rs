//! The built-in catalog: `/whisk.system/utils`, OpenWhisk's building
//! blocks (echo, cat, split, sort, head, date), as plain JavaScript
//! actions installed when the node has the JavaScript engine.
//!
//! Namespace `whisk.system` is created with a random key that is never
//! written out: nobody logs in as it, and the package is published, so
//! every namespace can read and invoke its actions (charged to the
//! caller) and use them as sequence components.

use std::sync::Arc;

use anyhow::Context;
use clemmys_controller::Controller;
use clemmys_controller::catalog::{BuiltinAction, BuiltinPackage};
use clemmys_store::EntityStore;
use clemmys_whisk::{EntityName, NamespaceLimits, NamespaceRecord};

/// The namespace that owns the built-in packages, as in OpenWhisk.
pub const SYSTEM_NAMESPACE: &str = "whisk.system";

/// `/whisk.system/utils`.
pub const UTILS: BuiltinPackage = BuiltinPackage {
    name: "utils",
    description: "Building blocks that format and assemble data",
    actions: &[
        BuiltinAction {
            name: "echo",
            source: include_str!("catalog/utils/echo.js"),
            description: "Returns the input",
        },
        BuiltinAction {
            name: "cat",
            source: include_str!("catalog/utils/cat.js"),
            description: "Concatenates input into a string",
        },
        BuiltinAction {
            name: "split",
            source: include_str!("catalog/utils/split.js"),
            description: "Split a string into an array",
        },
        BuiltinAction {
            name: "sort",
            source: include_str!("catalog/utils/sort.js"),
            description: "Sorts an array",
        },
        BuiltinAction {
            name: "head",
            source: include_str!("catalog/utils/head.js"),
            description: "Extract prefix of an array",
        },
        BuiltinAction {
            name: "date",
            source: include_str!("catalog/utils/date.js"),
            description: "Current date and time",
        },
    ],
};

/// Namespace `whisk.system`, created on first need with a key nobody
/// is given.
async fn system_namespace(store: &dyn EntityStore) -> anyhow::Result<NamespaceRecord> {
    let name = EntityName::new(SYSTEM_NAMESPACE).context("the system namespace name")?;
    if let Some(record) = store.get_namespace(&name)? {
        return Ok(record);
    }
    let record = NamespaceRecord {
        name,
        auth: crate::bootstrap::random_auth_key()?,
        limits: NamespaceLimits::default(),
    };
    store
        .put_namespace(record.clone())
        .await
        .context("creating namespace whisk.system")?;
    tracing::info!("created namespace whisk.system");
    Ok(record)
}

/// Installs the catalog's packages (only what changed since last start).
pub async fn install(controller: &Controller, store: &dyn EntityStore) -> anyhow::Result<()> {
    let owner = Arc::new(system_namespace(store).await?);
    controller
        .install_package(owner, &UTILS)
        .await
        .map_err(|error| anyhow::anyhow!("{}", error.message))
        .context("installing /whisk.system/utils")
}
