//! `clemmys namespace …`: the namespaces an API key may use, and their limits.

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::Context;
use crate::output::Table;
use crate::output::{out, outln};

/// `clemmys namespace …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NamespaceCommand {
    /// List the namespaces your API key may use.
    List,
    /// Show a namespace's limits (throttles and allowed action limits).
    Get {
        /// The namespace (default: yours).
        namespace: Option<String>,
    },
}

/// Runs a namespace command.
pub async fn run(command: NamespaceCommand, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match command {
        NamespaceCommand::List => {
            let namespaces = client
                .list_namespaces()
                .await
                .context("listing namespaces")?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&namespaces);
            }
            outln!("namespaces");
            for namespace in namespaces {
                outln!("{namespace}");
            }
            Ok(())
        }
        NamespaceCommand::Get { namespace } => {
            let requested = namespace.unwrap_or_else(|| "_".to_owned());
            let limits = client
                .namespace_limits(&requested)
                .await
                .with_context(|| format!("getting the limits of namespace {requested}"))?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&limits);
            }
            let shown = if requested == "_" {
                ctx.own_namespace(&client).await
            } else {
                requested
            };
            out!("{}", limits_table(&shown, &limits));
            Ok(())
        }
    }
}

/// `limits of namespace NS` and one aligned `key  value` line per limit.
pub fn limits_table(namespace: &str, limits: &Map<String, Value>) -> String {
    let mut table = Table::headless().gap(2);
    for (key, value) in limits {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        table.push([key.clone(), value]);
    }
    if table.is_empty() {
        return format!("limits of namespace {namespace}: all defaults\n");
    }
    format!("limits of namespace {namespace}\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_limits_as_aligned_pairs() {
        let limits = json!({"invocationsPerMinute": 120, "concurrentInvocations": 100, "confidentialOnly": false});
        let Value::Object(limits) = limits else {
            panic!("object");
        };
        assert_eq!(
            limits_table("guest", &limits),
            "limits of namespace guest\n\
             concurrentInvocations  100\n\
             confidentialOnly       false\n\
             invocationsPerMinute   120\n"
        );
        assert_eq!(
            limits_table("guest", &Map::new()),
            "limits of namespace guest: all defaults\n"
        );
    }
}
