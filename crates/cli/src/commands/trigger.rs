//! `clemmys trigger …`: triggers, as `wsk trigger` does them.

use anyhow::Context as _;
use clemmys_whisk::KeyValues;
use serde_json::{Map, Value, json};

use super::package::Shared;
use super::{AnnotationArgs, Context, ParamArgs};
use crate::output::{Table, out, outln};

/// `clemmys trigger …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger.
    Create(PutArgs),
    /// Update a trigger (or create it).
    Update(PutArgs),
    /// Fire a trigger: its active rules start their actions with these
    /// parameters over the trigger's.
    Fire {
        /// The trigger.
        name: String,
        #[command(flatten)]
        params: ParamArgs,
    },
    /// Show a trigger, with its rules.
    Get {
        /// The trigger.
        name: String,
    },
    /// Delete a trigger (its rules stay, inactive).
    Delete {
        /// The trigger.
        name: String,
    },
    /// List the triggers of your namespace.
    List {
        /// The namespace (default: yours).
        namespace: Option<String>,
        /// Skip this many triggers.
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u32,
        /// List at most this many triggers.
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u32,
    },
}

/// `trigger create|update` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The trigger.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    /// Share the trigger with other namespaces.
    #[arg(long, value_enum)]
    pub shared: Option<Shared>,
    /// The node's alarms feed to fire it: /whisk.system/alarms/alarm (-p
    /// cron '*/10 * * * * *'), …/once (-p date EPOCH_MS|RFC3339) or
    /// …/interval (-p minutes N); -p trigger_payload '{…}' is each fire's
    /// event.
    #[arg(short = 'f', long, value_name = "FEED")]
    pub feed: Option<String>,
}

impl PutArgs {
    /// The annotations to send: `-a`/`-A`, and `feed` when `--feed` is
    /// given.
    fn annotations(&self) -> anyhow::Result<Option<Map<String, Value>>> {
        let mut annotations = self.annotations.to_object()?;
        if let Some(feed) = &self.feed {
            annotations
                .get_or_insert_with(Map::new)
                .insert("feed".into(), Value::String(feed.clone()));
        }
        Ok(annotations)
    }
}

/// The `PUT` body of `trigger create|update`: only what was given, so that
/// an update keeps the rest.
fn put_body(
    params: Option<Map<String, Value>>,
    annotations: Option<Map<String, Value>>,
    shared: Option<Shared>,
) -> Value {
    let mut body = Map::new();
    if let Some(params) = params {
        body.insert("parameters".into(), json!(KeyValues::from_object(&params)));
    }
    if let Some(annotations) = annotations {
        body.insert(
            "annotations".into(),
            json!(KeyValues::from_object(&annotations)),
        );
    }
    if let Some(shared) = shared {
        body.insert("publish".into(), Value::Bool(shared == Shared::Yes));
    }
    Value::Object(body)
}

/// Runs a trigger command.
pub async fn run(command: TriggerCommand, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match command {
        TriggerCommand::Create(args) => {
            let body = put_body(args.params.to_object()?, args.annotations()?, args.shared);
            let created = client
                .put_trigger(&args.name, &body, false)
                .await
                .with_context(|| format!("creating trigger {}", args.name))?;
            done(ctx, &created, &format!("ok: created trigger {}", args.name))
        }
        TriggerCommand::Update(args) => {
            let body = put_body(args.params.to_object()?, args.annotations()?, args.shared);
            let updated = client
                .put_trigger(&args.name, &body, true)
                .await
                .with_context(|| format!("updating trigger {}", args.name))?;
            done(ctx, &updated, &format!("ok: updated trigger {}", args.name))
        }
        TriggerCommand::Fire { name, params } => {
            let params = params.to_object()?.unwrap_or_default();
            let fired = client
                .fire_trigger(&name, &params)
                .await
                .with_context(|| format!("firing trigger {name}"))?;
            let shown = qualified(&name);
            if ctx.output.is_json() {
                return ctx.output.print_json(&json!({ "activationId": fired }));
            }
            match fired {
                Some(id) => outln!("ok: triggered {shown} with id {id}"),
                None => outln!("ok: triggered {shown}; no rule is active, nothing ran"),
            }
            Ok(())
        }
        TriggerCommand::Get { name } => {
            let trigger = client
                .get_trigger(&name)
                .await
                .with_context(|| format!("getting trigger {name}"))?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&trigger);
            }
            outln!("ok: got trigger {name}");
            outln!("{}", serde_json::to_string_pretty(&trigger)?);
            Ok(())
        }
        TriggerCommand::Delete { name } => {
            let deleted = client
                .delete_trigger(&name)
                .await
                .with_context(|| format!("deleting trigger {name}"))?;
            done(ctx, &deleted, &format!("ok: deleted trigger {name}"))
        }
        TriggerCommand::List {
            namespace,
            skip,
            limit,
        } => {
            let namespace = namespace.unwrap_or_else(|| "_".to_owned());
            let triggers = client
                .list_triggers(&namespace, skip, Some(limit))
                .await
                .context("listing triggers")?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&triggers);
            }
            out!("{}", trigger_table(&triggers));
            Ok(())
        }
    }
}

/// `/_/name` for a relative name, as `wsk trigger fire` shows it.
fn qualified(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/_/{name}")
    }
}

fn done(ctx: &Context, answer: &Value, message: &str) -> anyhow::Result<()> {
    if ctx.output.is_json() {
        return ctx.output.print_json(answer);
    }
    outln!("{message}");
    Ok(())
}

/// `wsk trigger list`: a `triggers` header, then `/ns/name  private`.
pub fn trigger_table(triggers: &[Value]) -> String {
    let mut table = Table::headless().gap(2);
    for trigger in triggers {
        let text = |field: &str| trigger[field].as_str().unwrap_or_default().to_owned();
        let shared = trigger["publish"].as_bool().unwrap_or(false);
        table.push([
            format!("/{}/{}", text("namespace"), text("name")),
            if shared { "shared" } else { "private" }.to_owned(),
        ]);
    }
    format!("triggers\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_bodies_carry_only_what_was_given() {
        assert_eq!(put_body(None, None, None), json!({}));
        let params = json!({"a": 1}).as_object().cloned();
        assert_eq!(
            put_body(params, None, Some(Shared::No)),
            json!({"parameters": [{"key": "a", "value": 1}], "publish": false})
        );
    }

    #[test]
    fn a_feed_becomes_the_feed_annotation() {
        let args = PutArgs {
            name: "tick".into(),
            params: ParamArgs::default(),
            annotations: AnnotationArgs::default(),
            shared: None,
            feed: Some("/whisk.system/alarms/alarm".into()),
        };
        let annotations = args.annotations().expect("annotations");
        assert_eq!(
            put_body(None, annotations, None),
            json!({"annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]})
        );
    }

    #[test]
    fn the_list_shows_qualified_names() {
        let table = trigger_table(&[json!({"namespace": "guest", "name": "t", "publish": false})]);
        assert_eq!(table, "triggers\n/guest/t  private\n");
        assert_eq!(qualified("t"), "/_/t");
        assert_eq!(qualified("/guest/t"), "/guest/t");
    }
}
