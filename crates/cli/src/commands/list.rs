//! `clemmys list`: the entities of your namespace, as `wsk list` shows
//! them (packages, then actions; Clemmys has no triggers or rules yet).

use anyhow::Context as _;
use serde_json::json;

use super::Context;
use super::action::action_table;
use super::package::package_table;
use crate::output::{out, outln};

/// At most this many entities of each kind, OpenWhisk's largest page.
const LIMIT: u32 = 200;

/// Lists packages and actions.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let packages = client
        .list_packages("_", 0, Some(LIMIT))
        .await
        .context("listing packages")?;
    let actions = client
        .list_actions(0, Some(LIMIT))
        .await
        .context("listing actions")?;
    if ctx.output.is_json() {
        return ctx
            .output
            .print_json(&json!({ "packages": packages, "actions": actions }));
    }
    let namespace = ctx.own_namespace(&client).await;
    outln!("Entities in namespace: {namespace}");
    out!("{}", package_table(&packages));
    out!("{}", action_table(&actions));
    Ok(())
}
