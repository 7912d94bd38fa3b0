//! `clemmys package …`: packages and bindings, as `wsk package` does them.

use anyhow::Context as _;
use clemmys_whisk::{CONFIDENTIAL_ANNOTATION, KeyValues};
use serde_json::{Map, Value, json};

use clemmys_client::confidential::Confidential;

use super::{AnnotationArgs, Context, ParamArgs, confidential};
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
    /// A package of confidential actions: its parameters stay with this
    /// client, which seals them (under each action's own) into the
    /// confidential actions it deploys in the package; the node stores
    /// none. Actions already deployed keep the set sealed into them until
    /// they are updated.
    #[arg(long)]
    pub confidential: bool,
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
            if args.confidential {
                let sealing = connect_for(ctx, &client, &args.name).await?;
                return put_confidential(args, false, (&client, &sealing), ctx).await;
            }
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
            if let Some(sealing) =
                sealing_for_update(ctx, &client, &args.name, args.confidential).await?
            {
                return put_confidential(args, true, (&client, &sealing), ctx).await;
            }
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
            // Refused here, before the binding's parameters are sent: a
            // node that stored them would hold them in the clear. This
            // client's own record says first (the node's annotation is
            // the provider's to strip).
            let home = confidential::home()?;
            if home.broker_pin(client.api_host())?.is_none() {
                super::action::refuse_if_confidential_elsewhere(
                    ctx,
                    &home,
                    client.api_host(),
                    &package,
                )?;
            }
            if kept_parameters_of(ctx, &client, &package)?.is_some()
                || client
                    .get_package(&package)
                    .await
                    .is_ok_and(|doc| is_confidential(&doc))
            {
                anyhow::bail!(
                    "package {package} is confidential and cannot be bound: its actions run only under their own names, with its parameters sealed into them (nothing was sent)"
                );
            }
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
            let mut package = client
                .get_package(&name)
                .await
                .with_context(|| format!("getting package {name}"))?;
            // A confidential package's parameters are sealed into its
            // actions and the node holds none: this client's copy is shown,
            // by its own record's say (the node's annotation, and any
            // parameters it shows, are the provider's to write).
            // Where the namespace is unknown (a relative name under a key
            // given with --auth), this client keeps no copy it can find.
            let kept = match confidential::sealing_namespace(ctx, Some(&name)) {
                Ok(namespace) => kept_parameters_in(&client, namespace.as_deref(), &name)?,
                // Only a client with a broker pinned here keeps any.
                Err(error)
                    if confidential::home()?
                        .broker_pin(client.api_host())?
                        .is_some() =>
                {
                    ctx.output.warn(format_args!(
                        "the parameters shown are the node's: this client's kept copy, if it is a confidential package, could not be looked up ({error:#})"
                    ));
                    None
                }
                Err(_) => None,
            };
            if let Some(kept) = kept {
                package["parameters"] = json!(KeyValues::from_object(&kept));
            } else if is_confidential(&package) {
                ctx.output.warn(
                    "its parameters are sealed into its actions, and this client keeps no copy of them to show: the parameters shown are the node's",
                );
            }
            if ctx.output.is_json() {
                return ctx.output.print_json(&package);
            }
            outln!("ok: got package {name}");
            outln!("{}", serde_json::to_string_pretty(&package)?);
            Ok(())
        }
        PackageCommand::Delete { name } => {
            // Whether this client keeps the package's parameters is its own
            // record's say, not the node's (whose annotation the provider
            // writes). Without a broker pin it keeps none.
            let short = short_package(&name)?;
            let sealing = match confidential::home()?.broker_pin(client.api_host())? {
                Some(_) => Some(connect_for(ctx, &client, &name).await?),
                None => None,
            };
            let kept = match &sealing {
                Some(sealing) => sealing.package_defaults(&short)?.is_some(),
                None => false,
            };
            let gone_already = match client.delete_package(&name).await {
                Ok(()) => false,
                // Already gone from the node: its parameters are forgotten
                // all the same, or a package made later under the name
                // would get them.
                Err(clemmys_client::ClientError::Api { status: 404, .. }) if kept => true,
                Err(error) => {
                    return Err(
                        anyhow::Error::new(error).context(format!("deleting package {name}"))
                    );
                }
            };
            if let (Some(sealing), true) = (&sealing, kept) {
                sealing.keep_package_defaults(&short, None)?;
            }
            if ctx.output.is_json() {
                return ctx.output.print_json(&json!({ "deleted": name }));
            }
            if gone_already {
                outln!(
                    "ok: package {name} was already gone from the node; its kept parameters are forgotten"
                );
            } else {
                outln!("ok: deleted package {name}");
            }
            Ok(())
        }
        PackageCommand::List {
            namespace,
            skip,
            limit,
        } => {
            // `/whisk.system` as `wsk` writes it, or `whisk.system`.
            let namespace = namespace
                .as_deref()
                .map(|namespace| namespace.trim_matches('/'))
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or("_")
                .to_owned();
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

/// `package create|update --confidential`: the parameters are kept by
/// this client (sealed into the package's confidential actions when they
/// are deployed), and the node stores the package marked confidential,
/// without them.
async fn put_confidential(
    args: PutArgs,
    overwrite: bool,
    (client, sealing): (&clemmys_client::Client, &Confidential),
    ctx: &Context,
) -> anyhow::Result<()> {
    let name = &args.name;
    let package = short_package(name)?;
    let parameters = args.params.to_object()?;
    let mut annotations = args.annotations.to_object()?.unwrap_or_default();
    annotations.insert(CONFIDENTIAL_ANNOTATION.into(), Value::Bool(true));
    // Explicitly none: an update clears any the provider wrote there.
    let body = put_body(Some(Map::new()), Some(annotations), args.shared, None);
    // Asked before the update makes it anew (an update of a package the
    // node does not have creates it).
    let existed = overwrite
        && parameters.is_none()
        && match client.get_package(name).await {
            Ok(_) => true,
            Err(clemmys_client::ClientError::Api { status: 404, .. }) => false,
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!("getting package {name}")));
            }
        };
    let stored = client
        .put_package(name, &body, overwrite)
        .await
        .with_context(|| format!("storing confidential package {name}"))?;
    // Kept once the node took the package: a refused create leaves the
    // copy of an existing package as it was. Kept even when empty: that
    // this client holds an entry is how it knows the package is
    // confidential, whatever the node shows later.
    let kept = match &parameters {
        Some(parameters) => Some(parameters.clone()),
        // Carried over only to the package they were kept for: one the
        // node no longer has was deleted (perhaps other than through this
        // client), and a package made anew starts without them.
        None if overwrite && existed => sealing.package_defaults(&package)?,
        None => None,
    };
    sealing
        .keep_package_defaults(&package, Some(&kept.unwrap_or_default()))
        .with_context(|| format!("keeping the parameters of {name}"))?;
    let verb = if overwrite { "updated" } else { "created" };
    // The `PUT` answer lists no actions; a `GET` does.
    let held = match (overwrite, &parameters) {
        (true, Some(_)) => client.get_package(name).await.map_or(0, |package| {
            package["actions"].as_array().map_or(0, Vec::len)
        }),
        _ => 0,
    };
    if held > 0 {
        eprintln!(
            "note: {name} holds {held} action(s); each keeps the parameters sealed into it \
             until it is updated (clemmys action update {name}/ACTION FILE)"
        );
    }
    done(
        ctx,
        &stored,
        &format!(
            "ok: {verb} confidential package {name} (its parameters stay with this client, \
             which seals them into the package's confidential actions)"
        ),
    )
}

/// A confidential client sealing for package `name`'s namespace.
async fn connect_for(
    ctx: &Context,
    client: &clemmys_client::Client,
    name: &str,
) -> anyhow::Result<Confidential> {
    confidential::connect(
        client.clone(),
        confidential::sealing_namespace(ctx, Some(name))?,
    )
    .await
}

/// The confidential client for an update of package `name`, if the update
/// is a confidential one: asked for (`--confidential`), or `name` is a
/// confidential package this client keeps. That is decided from what it
/// keeps, never from the node's annotations, before any parameter is sent
/// (a provider that stripped the annotation would otherwise get them in
/// the clear). Without a broker pinned for this API host, this client
/// never made a confidential package there.
async fn sealing_for_update(
    ctx: &Context,
    client: &clemmys_client::Client,
    name: &str,
    asked: bool,
) -> anyhow::Result<Option<Confidential>> {
    if asked {
        return Ok(Some(connect_for(ctx, client, name).await?));
    }
    let home = confidential::home()?;
    if home.broker_pin(client.api_host())?.is_none() {
        super::action::refuse_if_confidential_elsewhere(ctx, &home, client.api_host(), name)?;
        return Ok(None);
    }
    // A relative name under a key given with --auth and no namespace
    // configured is of an unknown namespace, whose kept packages cannot be
    // looked up: refused before anything is sent.
    let namespace = confidential::sealing_namespace(ctx, Some(name))?;
    let sealing = confidential::connect(client.clone(), namespace).await?;
    if sealing.package_defaults(&short_package(name)?)?.is_none() {
        return Ok(None);
    }
    Ok(Some(sealing))
}

/// Whether a package as the node shows it is marked confidential.
fn is_confidential(package: &Value) -> bool {
    package["annotations"]
        .as_array()
        .is_some_and(|annotations| {
            annotations.iter().any(|annotation| {
                annotation["key"] == CONFIDENTIAL_ANNOTATION && annotation["value"] == true
            })
        })
}

/// The parameters of confidential package `name` this client keeps, if it
/// keeps them: its own record, read without asking the node or the broker
/// (without a broker pin it keeps none).
/// The namespace it seals for is the name's, the one configured, or the
/// one pinned with the broker; a name that leaves it unknown (a relative
/// name under a key given with `--auth`) is an error.
fn kept_parameters_of(
    ctx: &Context,
    client: &clemmys_client::Client,
    name: &str,
) -> anyhow::Result<Option<serde_json::Map<String, Value>>> {
    let namespace = confidential::sealing_namespace(ctx, Some(name))?;
    kept_parameters_in(client, namespace.as_deref(), name)
}

/// [`kept_parameters_of`] in `namespace` (`None`: the one pinned with
/// the broker).
fn kept_parameters_in(
    client: &clemmys_client::Client,
    namespace: Option<&str>,
    name: &str,
) -> anyhow::Result<Option<serde_json::Map<String, Value>>> {
    Ok(clemmys_client::confidential::kept_package_defaults(
        &confidential::home()?,
        client.api_host(),
        namespace,
        &short_package(name)?,
    )?)
}

/// The package's name within its namespace.
fn short_package(name: &str) -> anyhow::Result<String> {
    let qualified = clemmys_client::resolve_name(name)
        .with_context(|| format!("reading the package name {name}"))?;
    Ok(qualified.name.to_string())
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
