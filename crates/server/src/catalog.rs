//! The built-in catalog: `/whisk.system/utils`, OpenWhisk's building
//! blocks (echo, cat, split, sort, head, date, smash, namespace,
//! hosturl), as plain JavaScript actions installed when the node has the
//! JavaScript engine.
//!
//! Namespace `whisk.system` holds the packages but has no stored record
//! and so no API key: nobody can act as it (or list it). The packages are
//! published, so every namespace can read and invoke their actions
//! (charged to and recorded in the caller's namespace) and use them as
//! sequence components.

use std::sync::Arc;

use anyhow::Context;
use clemmys_controller::Controller;
use clemmys_controller::catalog::{BuiltinAction, BuiltinPackage};
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
        BuiltinAction {
            name: "smash",
            source: include_str!("catalog/utils/smash.js"),
            description: "Nests all properties under given property",
        },
        BuiltinAction {
            name: "namespace",
            source: include_str!("catalog/utils/namespace.js"),
            description: "Returns namespace for the authorization key used to invoke this action",
        },
        BuiltinAction {
            name: "hosturl",
            source: include_str!("catalog/utils/hosturl.js"),
            description: "Returns the URL to activate an action or trigger",
        },
    ],
};

/// The owner of the built-in packages: never stored, so no API key can
/// act as it; its random key exists only for the install.
fn system_owner() -> anyhow::Result<NamespaceRecord> {
    Ok(NamespaceRecord {
        name: EntityName::new(SYSTEM_NAMESPACE).context("the system namespace name")?,
        auth: crate::bootstrap::random_auth_key()?,
        limits: NamespaceLimits::default(),
    })
}

/// Installs the catalog's packages (only what changed since last start).
pub async fn install(controller: &Controller) -> anyhow::Result<()> {
    let owner = Arc::new(system_owner()?);
    controller
        .install_package(owner, &UTILS)
        .await
        .map_err(|error| anyhow::anyhow!("{}", error.message))
        .context("installing /whisk.system/utils")
}
