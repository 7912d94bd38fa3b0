//! `clemmys package …`: packages and bindings, as `wsk package` does them.

use anyhow::Context as _;
use clemmys_whisk::KeyValues;
use serde_json::{Map, Value, json};

use super::{AnnotationArgs, Context, ParamArgs};
use crate::output::{Table, out, outln};

/// `--shared yes|no`, as `wsk` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shared {
    /// Readable, bindable and invocable from other namespaces.
    Yes,
    /// Private to its namespace.
    No,
}

/// `clemmys package …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PackageCommand {
    /// Create a package.
    Create(PutArgs),
    /// Update a package (or create it).
    Update(PutArgs),
    /// Bind a package: a package of your own that refers to PACKAGE (yours
    /// or a shared one), with parameters of its own.
    Bind {
        /// The package to bind to (`/ns/name` for another namespace's).
        package: String,
        /// The binding's name.
        binding: String,
        #[command(flatten)]
        params: ParamArgs,
        #[command(flatten)]
        annotations: AnnotationArgs,
    },
    /// Show a package.
    Get {
        /// The package.
        name: String,
    },
    /// Delete a package.
    Delete {
        /// The package.
        name: String,
    },
    /// List the packages of a namespace (another's: its shared ones).
    List {
        /// The namespace (default: yours).
        namespace: Option<String>,
        /// Skip this many packages.
        #[arg(short = 's', long, default_value_t = 0)]
        skip: u32,
        /// List at most this many packages.
        #[arg(short = 'l', long, default_value_t = 30)]
        limit: u32,
    },
}

/// `package create|update` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The package.
    pub name: String,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub annotations: AnnotationArgs,
    /// Share the package with other namespaces.
    #[arg(long, value_enum)]
    pub shared: Option<Shared>,
}

/// The `PUT` body of `package create|update|bind`: only what was given,
/// so that an update keeps the rest.
fn put_body(
    params: Option<Map<String, Value>>,
    annotations: Option<Map<String, Value>>,
    shared: Option<Shared>,
    binding: Option<(String, String)>,
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
    if let Some((namespace, name)) = binding {
        body.insert(
            "binding".into(),
            json!({ "namespace": namespace, "name": name }),
        );
    }
    Value::Object(body)
}

/// Runs a package command.
pub async fn run(command: PackageCommand, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    match command {
        PackageCommand::Create(args) => {
            let body = put_body(
                args.params.to_object()?,
                args.annotations.to_object()?,
                args.shared,
                None,
            );
            let created = client
                .put_package(&args.name, &body, false)
                .await
                .with_context(|| format!("creating package {}", args.name))?;
            done(ctx, &created, &format!("ok: created package {}", args.name))
        }
        PackageCommand::Update(args) => {
            let body = put_body(
                args.params.to_object()?,
                args.annotations.to_object()?,
                args.shared,
                None,
            );
            let updated = client
                .put_package(&args.name, &body, true)
                .await
                .with_context(|| format!("updating package {}", args.name))?;
            done(ctx, &updated, &format!("ok: updated package {}", args.name))
        }
        PackageCommand::Bind {
            package,
            binding,
            params,
            annotations,
        } => {
            let target = clemmys_client::resolve_name(&package)
                .with_context(|| format!("reading the package name {package}"))?;
            let body = put_body(
                params.to_object()?,
                annotations.to_object()?,
                None,
                Some((target.namespace.to_string(), target.name.to_string())),
            );
            let created = client
                .put_package(&binding, &body, false)
                .await
                .with_context(|| format!("binding {binding} to {package}"))?;
            done(ctx, &created, &format!("ok: created binding {binding}"))
        }
        PackageCommand::Get { name } => {
            let package = client
                .get_package(&name)
                .await
                .with_context(|| format!("getting package {name}"))?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&package);
            }
            outln!("ok: got package {name}");
            outln!("{}", serde_json::to_string_pretty(&package)?);
            Ok(())
        }
        PackageCommand::Delete { name } => {
            client
                .delete_package(&name)
                .await
                .with_context(|| format!("deleting package {name}"))?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&json!({ "deleted": name }));
            }
            outln!("ok: deleted package {name}");
            Ok(())
        }
        PackageCommand::List {
            namespace,
            skip,
            limit,
        } => {
            let namespace = namespace.unwrap_or_else(|| "_".to_owned());
            let packages = client
                .list_packages(&namespace, skip, Some(limit))
                .await
                .context("listing packages")?;
            if ctx.output.is_json() {
                return ctx.output.print_json(&packages);
            }
            out!("{}", package_table(&packages));
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

/// `wsk package list`: a `packages` header, then `/ns/name  private`.
pub fn package_table(packages: &[Value]) -> String {
    let mut table = Table::headless().gap(2);
    for package in packages {
        let text = |field: &str| package[field].as_str().unwrap_or_default().to_owned();
        let shared = package["publish"].as_bool().unwrap_or(false);
        table.push([
            format!("/{}/{}", text("namespace"), text("name")),
            if shared { "shared" } else { "private" }.to_owned(),
        ]);
    }
    format!("packages\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_bodies_carry_only_what_was_given() {
        assert_eq!(put_body(None, None, None, None), json!({}));
        let params = json!({"a": 1}).as_object().cloned();
        assert_eq!(
            put_body(
                params,
                None,
                Some(Shared::Yes),
                Some(("other".into(), "tools".into()))
            ),
            json!({
                "parameters": [{"key": "a", "value": 1}],
                "publish": true,
                "binding": {"namespace": "other", "name": "tools"}
            })
        );
        assert_eq!(
            put_body(None, None, Some(Shared::No), None),
            json!({"publish": false})
        );
    }

    #[test]
    fn the_list_shows_qualified_names_and_sharing() {
        let table = package_table(&[
            json!({"namespace": "guest", "name": "tools", "publish": false}),
            json!({"namespace": "guest", "name": "shared-tools", "publish": true}),
        ]);
        assert!(table.starts_with("packages\n"), "{table}");
        assert!(table.contains("/guest/tools"), "{table}");
        assert!(table.contains("private"), "{table}");
        assert!(table.contains("/guest/shared-tools  shared"), "{table}");
    }
}
