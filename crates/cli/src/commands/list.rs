//! `clemmys list`: the entities of your namespace, as `wsk list` shows
//! them: packages, actions, triggers, then rules.

use anyhow::Context as _;
use serde_json::json;

use super::Context;
use super::action::action_table;
use super::package::package_table;
use super::rule::rule_table;
use super::trigger::trigger_table;
use crate::output::{out, outln};

/// At most this many entities of each kind, OpenWhisk's largest page.
const LIMIT: u32 = 200;

/// Lists packages, actions, triggers and rules.
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
    let triggers = client
        .list_triggers("_", 0, Some(LIMIT))
        .await
        .context("listing triggers")?;
    let rules = client
        .list_rules("_", 0, Some(LIMIT))
        .await
        .context("listing rules")?;
    if ctx.output.is_json() {
        return ctx.output.print_json(&json!({
            "packages": packages,
            "actions": actions,
            "triggers": triggers,
            "rules": rules,
        }));
    }
    let namespace = ctx.own_namespace(&client).await;
    outln!("Entities in namespace: {namespace}");
    out!("{}", package_table(&packages));
    out!("{}", action_table(&actions));
    out!("{}", trigger_table(&triggers));
    out!("{}", rule_table(&rules));
    Ok(())
}
