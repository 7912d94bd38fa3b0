//! `clemmys property …`: show, set and unset the `wskprops` settings
//! (`APIHOST`, `AUTH`, `NAMESPACE`, `CERT`, `KEY`, `CACERT`), as `wsk
//! property` does.

use anyhow::{Context as _, bail};
use clemmys_client::transport::parse_api_host;
use clemmys_client::wskprops::{self, WskProps};
use clemmys_whisk::{AuthKey, EntityName};
use serde_json::{Map, Value};

use super::{Context, Setting, Source};
use crate::output::outln;

/// `clemmys property …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PropertyCommand {
    /// Show properties: all of them, or those picked with --apihost, --auth
    /// and --namespace.
    Get(GetArgs),
    /// Save properties in the wskprops file: --apihost HOST, --auth KEY,
    /// --namespace NAME, --cert FILE, --key FILE, --cacert FILE.
    Set(SetArgs),
    /// Remove properties from the wskprops file: --apihost, --auth,
    /// --namespace, --cert, --key, --cacert, each without a value.
    Unset(UnsetArgs),
}

/// Arguments of `property get` (`--apihost` and `--auth` are the global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// Show the namespace.
    #[arg(long)]
    pub namespace: bool,
    /// Show every property.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `property set` (`--apihost HOST` and `--auth KEY` are the
/// global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// The default namespace.
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
}

/// Arguments of `property unset` (`--apihost`, `--auth`, `--cert`, `--key`
/// and `--cacert`, given without values, are the global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct UnsetArgs {
    /// Remove the default namespace.
    #[arg(long)]
    pub namespace: bool,
}

/// Runs a property command.
pub async fn run(command: PropertyCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        PropertyCommand::Get(args) => get(&args, ctx),
        PropertyCommand::Set(args) => set(&args, ctx),
        PropertyCommand::Unset(args) => unset(&args, ctx),
    }
}

fn given_on_command_line(flag_alone: bool, setting: &Option<Setting>) -> bool {
    flag_alone
        || matches!(
            setting,
            Some(Setting {
                source: Source::Flag,
                ..
            })
        )
}

fn get(args: &GetArgs, ctx: &Context) -> anyhow::Result<()> {
    let want_apihost = given_on_command_line(ctx.apihost_flag_alone, &ctx.api_host);
    let want_auth = given_on_command_line(ctx.auth_flag_alone, &ctx.auth);
    let all = args.all || !(want_apihost || want_auth || args.namespace);
    let value = |setting: &Option<Setting>| {
        setting
            .as_ref()
            .map_or_else(String::new, |s| s.value.clone())
    };
    let mut rows: Vec<(&str, &str, String)> = Vec::new();
    if all || want_apihost {
        rows.push(("apihost", "whisk API host", value(&ctx.api_host)));
    }
    if all || want_auth {
        rows.push(("auth", "whisk auth", value(&ctx.auth)));
    }
    if all || args.namespace {
        rows.push(("namespace", "whisk namespace", ctx.namespace().to_owned()));
    }
    if all {
        // As `wsk` shows the client certificate; and the authorities this
        // client trusts besides the system's.
        let path = |path: Option<&std::path::Path>| {
            path.map_or_else(String::new, |path| path.display().to_string())
        };
        let identity = ctx.tls.identity.as_ref();
        rows.push((
            "cert",
            "client cert",
            path(identity.map(|(cert, _)| cert.as_path())),
        ));
        rows.push((
            "key",
            "Client key",
            path(identity.map(|(_, key)| key.as_path())),
        ));
        rows.push((
            "cacert",
            "CA certificates",
            path(ctx.tls.ca_file.as_deref()),
        ));
        rows.push(("apiversion", "whisk API version", "v1".to_owned()));
        rows.push((
            "cliversion",
            "clemmys CLI version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        rows.push((
            "propsFile",
            "properties file",
            ctx.props_path.display().to_string(),
        ));
    }
    if ctx.output.is_json() {
        let object: Map<String, Value> = rows
            .into_iter()
            .map(|(key, _, value)| (key.to_owned(), Value::String(value)))
            .collect();
        return ctx.output.print_json(&object);
    }
    for (_, label, value) in rows {
        // wsk separates labels and values with tabs: two for short labels.
        let tabs = if label.len() < 16 { "\t\t" } else { "\t" };
        outln!("{label}{tabs}{value}");
    }
    Ok(())
}

fn set(args: &SetArgs, ctx: &Context) -> anyhow::Result<()> {
    ctx.tls_flags.check_values()?;
    if ctx.apihost_flag_alone {
        bail!("--apihost needs a value: --apihost http://HOST:PORT");
    }
    if ctx.auth_flag_alone {
        bail!("--auth needs a value: --auth UUID:KEY");
    }
    let mut props = ctx.props.clone();
    let mut done = Vec::new();
    if let Some(Setting {
        value,
        source: Source::Flag,
    }) = &ctx.api_host
    {
        parse_api_host(value).context("setting the API host")?;
        props.set(wskprops::APIHOST, value);
        done.push(format!("whisk API host set to {value}"));
    }
    if let Some(Setting {
        value,
        source: Source::Flag,
    }) = &ctx.auth
    {
        value
            .parse::<AuthKey>()
            .context("setting the API key: it must have the form UUID:KEY")?;
        props.set(wskprops::AUTH, value);
        done.push(
            "whisk auth set. Run 'clemmys property get --auth' to see the new value.".to_owned(),
        );
    }
    for (key, flag, file) in [
        (wskprops::CERT, "--cert", &ctx.tls_flags.cert),
        (wskprops::KEY, "--key", &ctx.tls_flags.key),
        (wskprops::CACERT, "--cacert", &ctx.tls_flags.cacert),
    ] {
        if let Some(file) = file {
            if !file.is_file() {
                bail!("{flag} {}: no such file", file.display());
            }
            // Saved absolute, so that the setting works from any directory.
            let file = std::path::absolute(file)
                .with_context(|| format!("resolving {}", file.display()))?;
            props.set(key, &file.display().to_string());
            done.push(format!("{key} set to {}", file.display()));
        }
    }
    if let Some(namespace) = &args.namespace {
        if namespace != "_" {
            EntityName::new(namespace.clone())
                .with_context(|| format!("setting the namespace '{namespace}'"))?;
        }
        props.set(wskprops::NAMESPACE, namespace);
        done.push(format!("whisk namespace set to {namespace}"));
    }
    if done.is_empty() {
        bail!(
            "nothing to set: give --apihost HOST, --auth KEY, --namespace NAME, --cert FILE, --key FILE and/or --cacert FILE"
        );
    }
    save(&props, done, ctx)
}

/// Saves `props` and says what changed (or, with `--json`, prints the
/// properties now saved).
fn save(props: &WskProps, done: Vec<String>, ctx: &Context) -> anyhow::Result<()> {
    props
        .save_to(&ctx.props_path)
        .with_context(|| format!("saving {}", ctx.props_path.display()))?;
    if ctx.output.is_json() {
        let object: Map<String, Value> = props
            .entries()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
            .collect();
        return ctx.output.print_json(&object);
    }
    for message in done {
        ctx.output.ok(message);
    }
    Ok(())
}

fn unset(args: &UnsetArgs, ctx: &Context) -> anyhow::Result<()> {
    // Each flag is given alone: a value means the user meant `set`.
    for (flag, given_with_value) in [
        ("--apihost", given_on_command_line(false, &ctx.api_host)),
        ("--auth", given_on_command_line(false, &ctx.auth)),
        ("--cert", ctx.tls_flags.cert.is_some()),
        ("--key", ctx.tls_flags.key.is_some()),
        ("--cacert", ctx.tls_flags.cacert.is_some()),
    ] {
        if given_with_value {
            bail!(
                "{flag} takes no value in `property unset`: to change it, use `property set {flag} VALUE`"
            );
        }
    }
    let tls_alone = |flag: &str| ctx.tls_flags.alone.contains(&flag);
    // CERT without KEY (or KEY without CERT) would make every later command
    // refuse the file, `property unset` included.
    let keeps = |key: &str, flag: &str| ctx.props.get(key).is_some() && !tls_alone(flag);
    if (tls_alone("--cert") && keeps(wskprops::KEY, "--key"))
        || (tls_alone("--key") && keeps(wskprops::CERT, "--cert"))
    {
        bail!("--cert and --key go together: unset both, `property unset --cert --key`");
    }
    let mut props = ctx.props.clone();
    let mut done = Vec::new();
    for (wanted, key, what) in [
        (ctx.apihost_flag_alone, wskprops::APIHOST, "whisk API host"),
        (ctx.auth_flag_alone, wskprops::AUTH, "whisk auth"),
        (args.namespace, wskprops::NAMESPACE, "whisk namespace"),
        (tls_alone("--cert"), wskprops::CERT, "client cert"),
        (tls_alone("--key"), wskprops::KEY, "client key"),
        (tls_alone("--cacert"), wskprops::CACERT, "CA certificates"),
    ] {
        if wanted {
            props.remove(key);
            done.push(format!("{what} unset."));
        }
    }
    if done.is_empty() {
        bail!(
            "nothing to unset: give --apihost, --auth, --namespace, --cert, --key and/or --cacert (without values)"
        );
    }
    save(&props, done, ctx)
}
