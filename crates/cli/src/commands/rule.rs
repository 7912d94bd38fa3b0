//! `clemmys rule …`: rules linking a trigger to an action, as `wsk rule`
//! does them. Rules fire plain actions only: the node refuses a rule to a
//! confidential action, whose parameters only its owner's client can seal.

use anyhow::{Context as _, bail};
use clemmys_client::Client;
use clemmys_whisk::KeyValues;
use serde_json::{Map, Value, json};

use super::{AnnotationArgs, Context};
use crate::output::{Table, out, outln};

/// `clemmys rule …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Create a rule: firing TRIGGER starts ACTION (new rules are active).
    Create(PutArgs),
    /// Update a rule (or create it); its status stays.
    Update(PutArgs),
    /// Enable a rule.
    Enable {
        /// The rule.
        name: String,
    },
    /// Disable a rule.
    Disable {
        /// The rule.
        name: String,
    },
    /// Show whether a rule is active.
    Status {
        /// The rule.
        name: String,
    },
    /// Show a rule.
    Get {
        /// The rule.
        name: String,
    },
    /// Delete a rule.
    Delete {
        /// The rule.
        name: String,
        /// Disable it first (accepted for `wsk` scripts; a rule is deleted
        /// whatever its status).
        #[arg(long)]
        disable: bool,
    },
    /// List the rules of your namespace.
    List {
        /// The namespace (default: yours).
        namespace: Option<String>,
        /// Skip this many rules.
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u32,
        /// List at most this many rules.
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u32,
    },
}

/// `rule create|update` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The rule.
    pub name: String,
    /// The trigger (`name` or `/ns/name`).
    pub trigger: String,
    /// The action (`name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`).
    pub action: String,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
}

/// The `PUT` body of `rule create|update`.
fn put_body(trigger: &str, action: &str, annotations: Option<Map<String, Value>>) -> Value {
    let mut body = json!({ "trigger": trigger, "action": action });
    if let Some(annotations) = annotations {
        body["annotations"] = json!(KeyValues::from_object(&annotations));
    }
    body
}

/// Refuses a rule for `action` when the key broker holds it as
/// confidential, whatever the node shows (the provider can show it as
/// plain): a trigger's parameters travel in the clear, so no rule can fire
/// a confidential action.
async fn refuse_confidential(ctx: &Context, client: &Client, action: &str) -> anyhow::Result<()> {
    if super::action::broker_holds(ctx, client, action).await? {
        bail!(
            "{action} is a confidential action (the key broker holds it): a rule cannot fire it, since a trigger's parameters travel in the clear; nothing was sent"
        );
    }
    Ok(())
}

/// The action a rule, as the node shows it, fires: `/namespace/name` (its
/// `path` names a package too).
fn fired_action(rule: &Value) -> anyhow::Result<String> {
    let action = &rule["action"];
    let (Some(path), Some(name)) = (action["path"].as_str(), action["name"].as_str()) else {
        bail!("the node's rule names no action: {rule}");
    };
    let fired = format!("/{path}/{name}");
    // A name the broker cannot be asked about is not taken for plain.
    clemmys_client::resolve_name(&fired)
        .with_context(|| format!("the node's rule fires {fired}, which is not an action's name"))?;
    Ok(fired)
}

/// Runs a rule command.
pub async fn run(command: RuleCommand, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match command {
        RuleCommand::Create(args) => {
            refuse_confidential(ctx, &client, &args.action).await?;
            let body = put_body(&args.trigger, &args.action, args.annotations.to_object()?);
            let created = client
                .put_rule(&args.name, &body, false)
                .await
                .with_context(|| format!("creating rule {}", args.name))?;
            done(ctx, &created, &format!("ok: created rule {}", args.name))
        }
        RuleCommand::Update(args) => {
            refuse_confidential(ctx, &client, &args.action).await?;
            let body = put_body(&args.trigger, &args.action, args.annotations.to_object()?);
            let updated = client
                .put_rule(&args.name, &body, true)
                .await
                .with_context(|| format!("updating rule {}", args.name))?;
            done(ctx, &updated, &format!("ok: updated rule {}", args.name))
        }
        RuleCommand::Enable { name } => {
            // Whatever made the rule (the provider can, with the namespace
            // key), enabling it is this client's word that its action may
            // take a trigger's parameters in the clear.
            let rule = client
                .get_rule(&name)
                .await
                .with_context(|| format!("getting rule {name}"))?;
            refuse_confidential(ctx, &client, &fired_action(&rule)?).await?;
            client
                .set_rule_status(&name, true)
                .await
                .with_context(|| format!("enabling rule {name}"))?;
            done(
                ctx,
                &json!({ "name": name, "status": "active" }),
                &format!("ok: enabled rule {name}"),
            )
        }
        RuleCommand::Disable { name } => {
            client
                .set_rule_status(&name, false)
                .await
                .with_context(|| format!("disabling rule {name}"))?;
            done(
                ctx,
                &json!({ "name": name, "status": "inactive" }),
                &format!("ok: disabled rule {name}"),
            )
        }
        RuleCommand::Status { name } => {
            let rule = client
                .get_rule(&name)
                .await
                .with_context(|| format!("getting rule {name}"))?;
            let status = rule["status"].as_str().unwrap_or("inactive").to_owned();
            done(
                ctx,
                &json!({ "name": name, "status": status }),
                &format!("ok: rule {name} is {status}"),
            )
        }
        RuleCommand::Get { name } => {
            let rule = client
                .get_rule(&name)
                .await
                .with_context(|| format!("getting rule {name}"))?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&rule);
            }
            outln!("ok: got rule {name}");
            outln!("{}", serde_json::to_string_pretty(&rule)?);
            Ok(())
        }
        RuleCommand::Delete { name, disable } => {
            if disable {
                client
                    .set_rule_status(&name, false)
                    .await
                    .with_context(|| format!("disabling rule {name}"))?;
            }
            let deleted = client
                .delete_rule(&name)
                .await
                .with_context(|| format!("deleting rule {name}"))?;
            done(ctx, &deleted, &format!("ok: deleted rule {name}"))
        }
        RuleCommand::List {
            namespace,
            skip,
            limit,
        } => {
            let namespace = namespace.unwrap_or_else(|| "_".to_owned());
            let rules = client
                .list_rules(&namespace, skip, Some(limit))
                .await
                .context("listing rules")?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&rules);
            }
            out!("{}", rule_table(&rules));
            Ok(())
        }
    }
}

fn done(ctx: &Context, answer: &Value, message: &str) -> anyhow::Result<()> {
    if ctx.output.is_json() {
        return ctx.output.print_json(answer);
    }
    outln!("{message}");
    Ok(())
}

/// `wsk rule list`: a `rules` header, then `/ns/name  private  active`.
pub fn rule_table(rules: &[Value]) -> String {
    let mut table = Table::headless().gap(2);
    for rule in rules {
        let text = |field: &str| rule[field].as_str().unwrap_or_default().to_owned();
        let shared = rule["publish"].as_bool().unwrap_or(false);
        table.push([
            format!("/{}/{}", text("namespace"), text("name")),
            if shared { "shared" } else { "private" }.to_owned(),
            text("status"),
        ]);
    }
    format!("rules\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_fires_the_action_its_path_and_name_make_or_none() {
        let rule = |path: &str, name: &str| json!({"action": {"path": path, "name": name}});
        assert_eq!(
            fired_action(&rule("guest", "act")).expect("fires"),
            "/guest/act"
        );
        assert_eq!(
            fired_action(&rule("guest/pkg", "act")).expect("fires"),
            "/guest/pkg/act"
        );
        assert!(fired_action(&rule("guest/", "act")).is_err());
        assert!(fired_action(&rule("guest/a/b", "act")).is_err());
        assert!(fired_action(&json!({"action": {}})).is_err());
    }

    #[test]
    fn put_bodies_name_the_trigger_and_action() {
        assert_eq!(
            put_body("t", "tools/echo", None),
            json!({"trigger": "t", "action": "tools/echo"})
        );
        let annotations = json!({"note": "x"}).as_object().cloned();
        assert_eq!(
            put_body("t", "a", annotations)["annotations"],
            json!([{"key": "note", "value": "x"}])
        );
    }

    #[test]
    fn the_list_shows_each_rules_status() {
        let table = rule_table(&[
            json!({"namespace": "guest", "name": "r", "publish": false, "status": "active"}),
            json!({"namespace": "guest", "name": "off", "publish": false, "status": "inactive"}),
        ]);
        assert_eq!(
            table,
            "rules\n/guest/r    private  active\n/guest/off  private  inactive\n"
        );
    }
}
