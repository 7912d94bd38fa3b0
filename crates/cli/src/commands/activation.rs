//! `clemmys activation …`: list, get, result, logs and poll activations.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clemmys_client::confidential::{ClientHome, Recalled};
use clemmys_client::{ActivationFilter, ActivationSummary, Client};
use clemmys_whisk::{ActivationId, ActivationStatus};
use serde_json::{Value, json};

use super::{Context, confidential};
use crate::output::{
    Table, format_datetime, format_duration_ms, strip_log_prefix, to_pretty_json, truncate_middle,
};
use crate::output::{out, outln};

/// How often `activation poll` asks for new activations.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How far before the newest activation seen `poll` keeps looking, so that
/// a long activation finishing after a short one is not missed (the longest
/// action timeout).
const POLL_LOOKBACK_MS: u64 = clemmys_whisk::limits::MAX_TIMEOUT_MS;

/// `clemmys activation …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ActivationCommand {
    /// List activations, newest first.
    List(ListArgs),
    /// Get an activation.
    Get(GetArgs),
    /// Get the result of an activation.
    Result(IdArgs),
    /// Get the logs of an activation.
    Logs(LogsArgs),
    /// Print the logs of new activations as they finish (Ctrl-C stops).
    Poll(PollArgs),
    /// Verify a confidential activation's receipt: which code ran, in which
    /// enclave, on exactly this request and result.
    Verify(IdArgs),
}

/// Arguments of `activation list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only activations of this action.
    pub name: Option<String>,
    /// Return at most LIMIT activations (the server caps it at 200).
    #[arg(short = 'l', long, default_value_t = 30)]
    pub limit: u32,
    /// Skip the SKIP newest activations.
    #[arg(short = 's', long, default_value_t = 0)]
    pub skip: u32,
    /// Only activations that started after SINCE (epoch milliseconds).
    #[arg(long, value_name = "MS")]
    pub since: Option<u64>,
    /// Only activations that started before UPTO (epoch milliseconds).
    #[arg(long, value_name = "MS")]
    pub upto: Option<u64>,
    /// Print whole activation records.
    #[arg(short = 'f', long)]
    pub full: bool,
}

/// An activation id, or `--last`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdArgs {
    /// The activation id.
    #[arg(required_unless_present = "last")]
    pub id: Option<String>,
    /// Use the most recent activation.
    #[arg(short = 'l', long)]
    pub last: bool,
}

/// Arguments of `activation get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The activation id (with --last: the FIELD).
    #[arg(required_unless_present = "last")]
    pub id: Option<String>,
    /// Show only this field of the activation (e.g. `response`).
    pub field: Option<String>,
    /// Use the most recent activation.
    #[arg(short = 'l', long)]
    pub last: bool,
    /// Print only the status and result.
    #[arg(short = 's', long)]
    pub summary: bool,
    /// Print only the logs, without time stamps and stream names.
    #[arg(short = 'g', long, conflicts_with = "summary")]
    pub logs: bool,
}

/// Arguments of `activation logs`.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub id: IdArgs,
    /// Drop the time stamp and stream name of each line.
    #[arg(short = 'r', long)]
    pub strip: bool,
}

/// Arguments of `activation poll`.
#[derive(Debug, Clone, clap::Args)]
pub struct PollArgs {
    /// Only activations of this action.
    pub name: Option<String>,
    /// Stop after SECONDS seconds.
    #[arg(short = 'e', long, value_name = "SECONDS")]
    pub exit: Option<u64>,
    /// Start with activations from N seconds ago.
    #[arg(long = "since-seconds", value_name = "N", default_value_t = 0)]
    pub since_seconds: u64,
    /// Start with activations from N minutes ago.
    #[arg(long = "since-minutes", value_name = "N", default_value_t = 0)]
    pub since_minutes: u64,
    /// Start with activations from N hours ago.
    #[arg(long = "since-hours", value_name = "N", default_value_t = 0)]
    pub since_hours: u64,
    /// Start with activations from N days ago.
    #[arg(long = "since-days", value_name = "N", default_value_t = 0)]
    pub since_days: u64,
}

/// Runs an activation command.
pub async fn run(command: ActivationCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        ActivationCommand::List(args) => list(args, ctx).await,
        ActivationCommand::Get(args) => get(args, ctx).await,
        ActivationCommand::Result(args) => result(args, ctx).await,
        ActivationCommand::Logs(args) => logs(args, ctx).await,
        ActivationCommand::Poll(args) => poll(args, ctx).await,
        ActivationCommand::Verify(args) => verify(args, ctx).await,
    }
}

async fn verify(args: IdArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = activation_id(args.id.as_deref(), args.last, &client).await?;
    let sealing =
        confidential::connect(client, confidential::sealing_namespace(ctx, None)?).await?;
    let opened = match sealing.open_activation(id).await {
        Ok(opened) => opened,
        Err(clemmys_client::confidential::ConfidentialError::NoKey(_))
            if client_record_is_plain(&sealing, id).await =>
        {
            anyhow::bail!(
                "activation {id} is a plain one: nothing of it is sealed or attested, so there is nothing to verify"
            );
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!("verifying activation {id}")));
        }
    };
    // For a chain, the last step's (verified) receipt; else the signed one.
    let receipt = opened
        .chain
        .as_ref()
        .and_then(|steps| steps.last())
        .unwrap_or(&opened.receipt.receipt);
    if ctx.output.is_json() {
        return ctx.output.print_json(&json!({
            "verified": true,
            "tee": opened.tee,
            "hardware": opened.tee.is_hardware(),
            "receipt": receipt,
            "chain": opened.chain,
            "enclave": opened.receipt.enclave,
            "warning": clemmys_client::confidential::sim_warning(opened.tee),
        }));
    }
    ctx.output.ok(format_args!("activation {id} verified"));
    if let Some(steps) = &opened.chain {
        outln!(
            "  chain of {} step(s), in order, each on the previous step's output:",
            steps.len()
        );
        for (index, r) in steps.iter().enumerate() {
            outln!(
                "    {index}: /{}/{} v{} code {} (activation {})",
                r.namespace,
                r.action,
                r.version,
                r.code_digest,
                r.activation_id
            );
        }
    }
    outln!(
        "  action:       /{}/{} version {}",
        receipt.namespace,
        receipt.action,
        receipt.version
    );
    outln!("  code sha256:  {}", receipt.code_digest);
    outln!(
        "  enclave:      {} measurement {}",
        opened.tee.name(),
        receipt.measurement
    );
    outln!(
        "  input sha256: {} (the request this client sealed)",
        receipt.input_hash
    );
    outln!(
        "  output sha256: {} (the result it decrypted)",
        receipt.output_hash
    );
    outln!("  status:       {}", opened.status.as_str());
    if let Some(warning) = clemmys_client::confidential::sim_warning(opened.tee) {
        outln!("WARNING: {warning}");
    }
    Ok(())
}

async fn list(args: ListArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let filter = ActivationFilter {
        name: args.name.clone(),
        skip: args.skip,
        limit: Some(args.limit),
        since: args.since,
        upto: args.upto,
        docs: args.full,
    };
    let activations = client
        .list_activations(&filter)
        .await
        .context("listing activations")?;
    if args.full {
        // Full records are not opened or checked one by one here
        // (`activation get ID` does that).
        eprintln!(
            "note: these records are the node's, as it stores them: nothing verifies them (`clemmys activation get ID` opens and checks one)"
        );
    }
    if ctx.output.is_json() {
        return ctx.output.print_json(&activations);
    }
    if args.full {
        outln!("activations");
        for activation in &activations {
            outln!("{}", to_pretty_json(activation)?);
        }
        return Ok(());
    }
    let ids: Vec<String> = activations
        .iter()
        .map(|activation| activation.activation_id.to_string())
        .collect();
    let invoked = invoked_here(&client, &ids, ctx);
    out!("{}", activation_table(&activations, &invoked));
    if !invoked.is_empty() {
        ctx.output.hint(
            "sealed: a confidential activation of this client's, named as it invoked it; its status is in its sealed answer (clemmys activation get ID opens it). reused: an id the node answered two of its invocations under",
        );
    }
    Ok(())
}

/// What this client's keyring says of the listed activations (none
/// without a broker pinned for this API host, when it never invoked a
/// confidential action there).
fn invoked_here(client: &Client, ids: &[String], ctx: &Context) -> BTreeMap<String, Recalled> {
    if ids.is_empty() || !ClientHome::default_dir().exists() {
        return BTreeMap::new();
    }
    match recall_listed(client, ids) {
        Ok(recalled) => recalled,
        Err(error) => {
            ctx.output.warn(format_args!(
                "every record is shown as the node has it: this client's keyring could not be read ({error:#})"
            ));
            BTreeMap::new()
        }
    }
}

fn recall_listed(client: &Client, ids: &[String]) -> anyhow::Result<BTreeMap<String, Recalled>> {
    let home = confidential::home()?;
    if home.broker_pin(client.api_host())?.is_none() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    Ok(home.recall_each(&ids)?)
}

/// `wsk`'s short status names for the activation list.
fn short_status(status: Option<ActivationStatus>) -> &'static str {
    match status {
        Some(ActivationStatus::Success) | None => "success",
        Some(ActivationStatus::ApplicationError) => "application error",
        Some(ActivationStatus::DeveloperError) => "developer error",
        Some(ActivationStatus::InternalError) => "internal error",
    }
}

/// `wsk activation list`: `Datetime  Activation ID  Kind  Start  Duration
/// Status  Entity`, times in UTC, Start `cold` when the activation has an
/// `initTime` annotation, Entity `ns/name:version`. An activation this
/// client invoked confidentially (in `invoked`, by id) is named as it
/// invoked it, whatever the node's record says, and its status is
/// `sealed`: the node records every such run as a success.
pub fn activation_table(
    activations: &[ActivationSummary],
    invoked: &BTreeMap<String, Recalled>,
) -> String {
    let mut table = Table::new([
        "Datetime",
        "Activation ID",
        "Kind",
        "Start",
        "Duration",
        "Status",
        "Entity",
    ]);
    for activation in activations {
        let id = activation.activation_id.to_string();
        let (namespace, name, status) = match invoked.get(&id) {
            Some(Recalled::Invoked(entry)) => {
                (entry.namespace.as_str(), entry.action.as_str(), "sealed")
            }
            // Neither of the two invocations answered under it can be
            // named.
            Some(Recalled::Reused) => ("?", "?", "reused"),
            None => (
                activation.namespace.as_str(),
                activation.name.as_str(),
                short_status(activation.status()),
            ),
        };
        let entity = format!(
            "{}/{}:{}",
            truncate_middle(namespace, 20),
            truncate_middle(name, 30),
            truncate_middle(&activation.version, 20)
        );
        table.push([
            format_datetime(activation.start),
            id,
            activation.kind().unwrap_or("unknown").to_owned(),
            if activation.is_cold() { "cold" } else { "warm" }.to_owned(),
            format_duration_ms(activation.duration),
            status.to_owned(),
            entity,
        ]);
    }
    table.render()
}

/// The id given, or the most recent activation's with `--last`.
async fn activation_id(
    id: Option<&str>,
    last: bool,
    client: &Client,
) -> anyhow::Result<ActivationId> {
    if last {
        let newest = client
            .list_activations(&ActivationFilter {
                limit: Some(1),
                ..ActivationFilter::default()
            })
            .await
            .context("finding the most recent activation")?;
        return match newest.first() {
            Some(activation) => Ok(activation.activation_id),
            None => bail!("there are no activations yet"),
        };
    }
    let Some(id) = id else {
        bail!("an activation id is required (or --last)");
    };
    parse_activation_id(id)
}

/// Parses an id as `wsk` prints them (32 hexadecimal characters).
pub fn parse_activation_id(text: &str) -> anyhow::Result<ActivationId> {
    text.trim().parse::<ActivationId>().map_err(|_| {
        anyhow::anyhow!("'{text}' is not an activation id (32 hexadecimal characters)")
    })
}

async fn get(args: GetArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let (id_text, field) = match (args.last, &args.id, &args.field) {
        (true, Some(_), Some(_)) => bail!("with --last, give at most a FIELD"),
        (true, field, None) => (None, field.clone()),
        (_, id, field) => (id.as_deref(), field.clone()),
    };
    let id = activation_id(id_text, args.last, &client).await?;
    let mut activation = client
        .get_activation(id)
        .await
        .with_context(|| format!("getting activation {id}"))?;
    confidential::open_if_sealed(ctx, &client, id, &mut activation).await?;
    let output = &ctx.output;
    if args.logs {
        let lines: Vec<&str> = activation
            .logs
            .iter()
            .map(|l| strip_log_prefix(l))
            .collect();
        if output.is_json() {
            return output.print_json(&lines);
        }
        for line in lines {
            outln!("{line}");
        }
        return Ok(());
    }
    if args.summary {
        let result = activation.response.result.clone().unwrap_or(json!({}));
        if output.is_json() {
            return output.print_json(&activation.to_result_json());
        }
        outln!(
            "activation result for '/{}/{}' ({} at {} +0000 UTC)",
            activation.namespace,
            activation.name,
            activation.response.status.as_str(),
            format_datetime(activation.end)
        );
        return output.print_json(&result);
    }
    if let Some(field) = field {
        let value = serde_json::to_value(&activation)?;
        let Some(selected) = value.get(&field) else {
            bail!("invalid field filter '{field}'");
        };
        output.ok(format_args!(
            "got activation {id}, displaying field {field}"
        ));
        return output.print_json(selected);
    }
    output.ok(format_args!("got activation {id}"));
    output.print_json(&activation)
}

async fn result(args: IdArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = activation_id(args.id.as_deref(), args.last, &client).await?;
    let mut activation = client
        .get_activation(id)
        .await
        .with_context(|| format!("getting the result of activation {id}"))?;
    confidential::open_sealed(ctx, &client, id, &mut activation).await?;
    ctx.output
        .print_json(&activation.response.result.unwrap_or_else(|| json!({})))
}

async fn logs(args: LogsArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let id = activation_id(args.id.id.as_deref(), args.id.last, &client).await?;
    let mut activation = client
        .get_activation(id)
        .await
        .with_context(|| format!("getting the logs of activation {id}"))?;
    confidential::open_sealed(ctx, &client, id, &mut activation).await?;
    let lines = activation.logs;
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| {
            if args.strip {
                strip_log_prefix(l)
            } else {
                l.as_str()
            }
        })
        .collect();
    if ctx.output.is_json() {
        return ctx.output.print_json(&lines);
    }
    for line in lines {
        outln!("{line}");
    }
    Ok(())
}

async fn poll(args: PollArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let output = &ctx.output;
    output.line("Enter Ctrl-c to exit.");
    let lookback_ms = ((args.since_days * 24 + args.since_hours) * 60 + args.since_minutes)
        .saturating_mul(60)
        .saturating_add(args.since_seconds)
        .saturating_mul(1000);
    // As wsk: without --since-*, start after the newest activation so far.
    let start_since = if lookback_ms > 0 {
        clemmys_whisk::now_ms().saturating_sub(lookback_ms)
    } else {
        match client
            .list_activations(&ActivationFilter {
                limit: Some(1),
                ..ActivationFilter::default()
            })
            .await
        {
            Ok(newest) => newest.first().map_or(0, |a| a.start + 1),
            Err(error) => {
                if ctx.verbose {
                    eprintln!("clemmys: listing activations failed ({error}); polling from now");
                }
                clemmys_whisk::now_ms()
            }
        }
    };
    output.line("Polling for activation logs");
    if ctx.verbose {
        eprintln!(
            "clemmys: polling starts from {} UTC",
            format_datetime(start_since)
        );
    }
    let polling = poll_loop(&args, start_since, &client, ctx);
    tokio::select! {
        result = polling => result,
        _ = tokio::signal::ctrl_c() => {
            output.line("Poll terminated");
            Ok(())
        }
    }
}

/// Whether activation `id`'s record, as the node shows it, carries no
/// sealed answer: only for wording an error (nothing is decided by it).
async fn client_record_is_plain(
    sealing: &clemmys_client::confidential::Confidential,
    id: ActivationId,
) -> bool {
    sealing
        .client()
        .get_activation(id)
        .await
        .is_ok_and(|activation| !confidential::is_sealed(&activation))
}

/// Lists new activations every [`POLL_INTERVAL`] and prints each once,
/// until `--exit` seconds have passed.
async fn poll_loop(
    args: &PollArgs,
    start_since: u64,
    client: &Client,
    ctx: &Context,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut since = start_since;
    // Activations already shown, with their start, to forget them once
    // they fall out of the window.
    let mut reported: HashMap<ActivationId, u64> = HashMap::new();
    // Connected on the first sealed record this client holds a key for.
    let mut sealing: Option<clemmys_client::confidential::Confidential> = None;
    // What the key broker said of the names records of other clients give.
    let mut checked = HashMap::new();
    loop {
        let timed_out = args
            .exit
            .is_some_and(|exit| started.elapsed() >= Duration::from_secs(exit));
        if timed_out || crate::output::stdout_closed() {
            return Ok(());
        }
        let filter = ActivationFilter {
            name: args.name.clone(),
            since: Some(since),
            docs: true,
            limit: Some(200),
            ..ActivationFilter::default()
        };
        match client.list_activations(&filter).await {
            Ok(activations) => {
                // Oldest first, so logs read in order.
                let fresh: Vec<&ActivationSummary> = activations
                    .iter()
                    .rev()
                    .filter(|activation| !reported.contains_key(&activation.activation_id))
                    .collect();
                let ids: Vec<String> = fresh
                    .iter()
                    .map(|activation| activation.activation_id.to_string())
                    .collect();
                // One read of the keyring per round.
                let recalled = invoked_here(client, &ids, ctx);
                for (activation, id) in fresh.into_iter().zip(&ids) {
                    reported.insert(activation.activation_id, activation.start);
                    let logs = open_logs(
                        activation,
                        recalled.get(id),
                        client,
                        &mut sealing,
                        &mut checked,
                    )
                    .await;
                    print_polled(activation, logs, ctx)?;
                }
                if let Some(newest) = activations.iter().map(|a| a.start).max() {
                    since = since.max(newest.saturating_sub(POLL_LOOKBACK_MS));
                    reported.retain(|_, start| *start >= since);
                }
            }
            Err(error) => {
                if ctx.verbose {
                    eprintln!("clemmys: polling failed ({error}); trying again");
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The logs of a polled activation, decrypted when this client invoked it
/// confidentially (otherwise as stored), with the name to show it under:
/// for this client's own activations, the action it invoked, never the
/// record's (the provider's to write). Its keyring decides, not the
/// record: an activation in a session keeps its logs inside the sealed
/// answer and stores none beside it. `recalled`: what its keyring says
/// of the activation.
async fn open_logs(
    activation: &ActivationSummary,
    recalled: Option<&Recalled>,
    client: &Client,
    sealing: &mut Option<clemmys_client::confidential::Confidential>,
    checked: &mut HashMap<Vec<String>, bool>,
) -> (String, Vec<String>) {
    let id = activation.activation_id;
    let invoked = match recalled {
        Some(Recalled::Invoked(entry)) => Some(entry),
        // Two of this client's invocations were answered under this id:
        // neither can be named, nor its lines shown as the other's.
        Some(Recalled::Reused) => {
            return (
                "?".to_owned(),
                vec![
                    "(the node answered two of this client's invocations under this id: not shown)"
                        .to_owned(),
                ],
            );
        }
        None => None,
    };
    let Some(invoked) = invoked else {
        let logs = activation.logs.clone().unwrap_or_default();
        let logs = if made_up_lines(activation, &logs, client, sealing, checked).await {
            vec![
                "(log lines in the clear of an action the key broker holds as confidential, whose runs log only sealed: the provider wrote them, and they are not shown)"
                    .to_owned(),
            ]
        } else {
            logs
        };
        // Under its path's name: `pkg/hello` is not a top-level `hello`,
        // nor is another namespace's `hello` (named in full).
        let name = match confidential::path_parts(&activation.annotations) {
            Some((namespace, within)) => match connected(sealing, client).await {
                Some(ours) if ours.namespace() != namespace => format!("/{namespace}/{within}"),
                _ => within.to_owned(),
            },
            None => activation.name.clone(),
        };
        return (name, logs);
    };
    // As the node names a record: the action's own name, a package's
    // left out.
    let name = invoked
        .action
        .rsplit_once('/')
        .map_or(invoked.action.as_str(), |(_, name)| name)
        .to_owned();
    // This client's activation: its logs are the opened ones, never the
    // record's lines (the provider's to write).
    let logs = match connected(sealing, client).await {
        Some(sealing) => match sealing.open_activation(id).await {
            Ok(opened) => opened.shown_logs(),
            Err(error) => vec![format!("(its sealed logs did not open: {error})")],
        },
        None => vec!["(its sealed logs were not opened: no key broker is pinned)".to_owned()],
    };
    (name, logs)
}

/// `poll`'s confidential client, connected on first need (for the
/// pinned namespace: opening needs only the keyring); `None` when it
/// cannot be (no key broker pinned, say).
async fn connected<'a>(
    sealing: &'a mut Option<clemmys_client::confidential::Confidential>,
    client: &Client,
) -> Option<&'a clemmys_client::confidential::Confidential> {
    if sealing.is_none() {
        *sealing = confidential::connect(client.clone(), None).await.ok();
    }
    sealing.as_ref()
}

/// Whether `logs`, the lines of a record another client made, are lines
/// in the clear under a name the key broker holds as confidential (whose
/// runs keep their lines sealed, or inside a session's answer): then the
/// provider wrote them. What the broker says of a record's names is kept
/// in `checked`; when it cannot be asked, the lines are shown as stored.
async fn made_up_lines(
    activation: &ActivationSummary,
    logs: &[String],
    client: &Client,
    sealing: &mut Option<clemmys_client::confidential::Confidential>,
    checked: &mut HashMap<Vec<String>, bool>,
) -> bool {
    if logs
        .iter()
        .all(|line| confidential::sealed_or_step_id(line))
    {
        return false;
    }
    let names = confidential::claimed_names(&activation.name, &activation.annotations);
    if let Some(&confidential) = checked.get(&names) {
        return confidential;
    }
    let found = match connected(sealing, client).await {
        Some(sealing) => confidential::first_confidential(sealing, &names)
            .await
            .map_err(anyhow::Error::from),
        None => Err(anyhow::anyhow!("no key broker could be reached")),
    };
    match found {
        Ok(found) => {
            checked.insert(names, found.is_some());
            found.is_some()
        }
        Err(error) => {
            // Said for each record, and asked again for the next: the
            // provider can cut the broker off for a while.
            eprintln!(
                "could not ask the key broker whether {} is confidential ({error:#}); its log lines are the node's, and nothing verifies them",
                names.join(" or ")
            );
            false
        }
    }
}

fn print_polled(
    activation: &ActivationSummary,
    (name, logs): (String, Vec<String>),
    ctx: &Context,
) -> anyhow::Result<()> {
    if ctx.output.is_json() {
        // One compact JSON object per line.
        let line = json!({
            "activationId": activation.activation_id,
            "name": name,
            "logs": logs,
        });
        outln!("{line}");
        return Ok(());
    }
    outln!("\nActivation: '{}' ({})", name, activation.activation_id);
    outln!("{}", to_pretty_json(&Value::from(logs))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(value: Value) -> ActivationSummary {
        serde_json::from_value(value).expect("summary")
    }

    #[test]
    fn lists_activations_like_wsk() {
        let activations = [
            summary(json!({
                "namespace": "guest", "name": "hello", "version": "0.0.1",
                "activationId": "0ac0".repeat(8), "start": 1_700_000_000_123u64,
                "end": 1_700_000_000_135u64, "duration": 12, "statusCode": 0,
                "annotations": [{"key": "kind", "value": "wasm"}, {"key": "initTime", "value": 5}]
            })),
            summary(json!({
                "namespace": "guest", "name": "a-very-long-action-name-that-goes-on-and-on",
                "version": "0.0.2", "activationId": "ff".repeat(16),
                "start": 1_700_000_001_000u64, "duration": 1500, "statusCode": 2,
                "annotations": []
            })),
        ];
        let expected = "\
Datetime            Activation ID                    Kind    Start Duration Status          Entity
2023-11-14 22:13:20 0ac00ac00ac00ac00ac00ac00ac00ac0 wasm    cold  12ms     success         guest/hello:0.0.1
2023-11-14 22:13:21 ffffffffffffffffffffffffffffffff unknown warm  1.5s     developer error guest/a-very-long-act...es-on-and-on:0.0.2
";
        assert_eq!(activation_table(&activations, &BTreeMap::new()), expected);
    }

    #[test]
    fn parses_activation_ids() {
        assert!(parse_activation_id(&"ab".repeat(16)).is_ok());
        let err = parse_activation_id("nope").expect_err("invalid");
        assert!(err.to_string().contains("32 hexadecimal"), "{err}");
    }
}
