//! What the API subcommands share for confidential actions: the client's
//! state directory, a connected [`Confidential`] client, and turning sealed
//! records back into what a plain action's record would show.

use anyhow::Context as _;
use clemmys_client::Client;
use clemmys_client::confidential::{
    ClientHome, Confidential, ConfidentialError, OpenedActivation, sim_warning,
};
use clemmys_whisk::{Activation, ActivationId, ActivationStatus, FullyQualifiedName, KeyValues};
use serde_json::Value;

use super::Context;

/// The client's state directory (`$CLEMMYS_HOME` or `~/.config/clemmys`),
/// keeping at most `$CLEMMYS_LOG_LIMIT_MIB` of each log (default 16 MiB).
pub fn home() -> anyhow::Result<ClientHome> {
    let dir = ClientHome::default_dir();
    let home = ClientHome::open(&dir)
        .with_context(|| format!("opening the client state in {}", dir.display()))?;
    Ok(match ClientHome::log_limit_from_env()? {
        Some(limit) => home.with_log_limit(limit),
        None => home,
    })
}

/// A confidential client of the configured API host, sealing for
/// `namespace` (see [`sealing_namespace`]; `None`: the one pinned with the
/// broker).
pub async fn connect(client: Client, namespace: Option<String>) -> anyhow::Result<Confidential> {
    Confidential::connect_in(client, home()?, namespace)
        .await
        .context("connecting to the key broker")
}

/// The namespace confidential commands seal for, from the user's own
/// configuration only (a controller's answer could name a namespace the
/// provider owns): the one a fully qualified `name` names, else `NAMESPACE`
/// of the key in effect, else (`None`) the one pinned with the broker. A
/// relative name with a key given on the command line, whose namespace
/// nothing local says, is refused.
pub fn sealing_namespace(ctx: &Context, name: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(name) = name {
        let qualified = clemmys_client::resolve_name(name)?;
        if qualified.namespace.as_str() != clemmys_client::DEFAULT_NAMESPACE {
            return Ok(Some(qualified.namespace.to_string()));
        }
    }
    let configured = ctx.namespace();
    if configured != clemmys_client::DEFAULT_NAMESPACE {
        return Ok(Some(configured.to_owned()));
    }
    let key_from_flag = ctx
        .auth
        .as_ref()
        .is_some_and(|auth| matches!(auth.source, super::Source::Flag));
    if let Some(name) = name
        && key_from_flag
    {
        anyhow::bail!(
            "the namespace of the API key given on the command line is not configured: name it in full, /NAMESPACE/{name}"
        );
    }
    Ok(None)
}

/// Whether a stored record carries a sealed answer.
pub fn is_sealed(activation: &Activation) -> bool {
    activation
        .response
        .result
        .as_ref()
        .and_then(|result| result.get("sealed"))
        .is_some_and(Value::is_string)
}

/// Refuses a record the node gave for activation `requested` that is the
/// record of another.
fn answered_for(requested: ActivationId, activation: &Activation) -> Result<(), ConfidentialError> {
    if activation.activation_id != requested {
        return Err(ConfidentialError::RecordOfAnother {
            requested,
            given: activation.activation_id,
        });
    }
    Ok(())
}

/// Opens `activation`, the node's record of activation `requested`, in
/// place when this client invoked it (its keyring decides, not the
/// record's shape: a record stripped of its sealed answer is tampering,
/// not a plain answer); says on stderr what was verified. A sealed record
/// of an activation this client did not invoke, or cannot verify (no
/// pinned broker), is left sealed, with a note on stderr.
pub async fn open_if_sealed(
    ctx: &Context,
    client: &Client,
    requested: ActivationId,
    activation: &mut Activation,
) -> anyhow::Result<bool> {
    answered_for(requested, activation)?;
    let home = home()?;
    let invoked_here = home.recall(&requested.to_string())?.is_some();
    if invoked_here && !is_sealed(activation) {
        node_report(requested, activation)?;
        return Ok(false);
    }
    let pinned = home.broker_pin(client.api_host())?.is_some();
    if !invoked_here && pinned {
        refuse_made_up(ctx, client, requested, activation).await?;
    }
    if !invoked_here || !pinned {
        if is_sealed(activation) {
            ctx.output.hint(format_args!(
                "activation {requested} is confidential and sealed; this client holds no key to open it"
            ));
        }
        return Ok(false);
    }
    open_invoked(ctx, client, requested, activation).await?;
    Ok(true)
}

/// Lets an unsealed record of an activation this client invoked
/// confidentially be shown only as what it can be: the node's report that
/// the run failed (a crash cut it off, the host refused or timed it out),
/// which the provider can always make and nothing verifies. Such a report
/// is a failure status and a result of only an `error` text (with a
/// refusal's code and floor), as the node writes it, and no log lines (a
/// confidential run's are sealed). A successful answer, any other result
/// or log lines are the provider's words in the enclave's place: refused.
fn node_report(requested: ActivationId, activation: &Activation) -> anyhow::Result<()> {
    report_only(
        requested,
        activation,
        "which this client invoked confidentially",
    )
}

/// As [`node_report`], for a record of activation `requested`, `whose`
/// (for example "which this client invoked confidentially").
fn report_only(
    requested: ActivationId,
    activation: &Activation,
    whose: &str,
) -> anyhow::Result<()> {
    let refuse = |what: &str| {
        anyhow::anyhow!(
            "the node's record of activation {requested}, {whose}, carries no sealed answer but {what}: the provider replaced it, and it is not shown"
        )
    };
    if activation.response.status == ActivationStatus::Success {
        return Err(refuse("a successful result"));
    }
    let report_shaped = match &activation.response.result {
        Some(serde_json::Value::Object(fields)) => {
            fields
                .get("error")
                .is_some_and(serde_json::Value::is_string)
                && fields
                    .keys()
                    .all(|key| ["error", "refusal", "notBeforeMs"].contains(&key.as_str()))
        }
        None => true,
        Some(_) => false,
    };
    if !report_shaped {
        return Err(refuse("a result other than the node's error report"));
    }
    // A sequence's step ids are what the node logs for one.
    if !activation
        .logs
        .iter()
        .all(|line| line.parse::<ActivationId>().is_ok())
    {
        return Err(refuse("log lines"));
    }
    // On stderr in every mode: stdout may be read by a script.
    eprintln!(
        "activation {requested} carries no sealed answer: its {} is the node's own report, which nothing verifies",
        activation.response.status.as_str()
    );
    Ok(())
}

/// Opens `activation`, the node's record of activation `requested`, in
/// place when this client invoked it, failing when it is sealed and this
/// client cannot open it (for `activation result|logs`, which have nothing
/// else to show).
pub async fn open_sealed(
    ctx: &Context,
    client: &Client,
    requested: ActivationId,
    activation: &mut Activation,
) -> anyhow::Result<()> {
    answered_for(requested, activation)?;
    let home = home()?;
    if home.recall(&requested.to_string())?.is_none() {
        if is_sealed(activation) {
            return Err(ConfidentialError::NoKey(requested.to_string()).into());
        }
        if home.broker_pin(client.api_host())?.is_some() {
            refuse_made_up(ctx, client, requested, activation).await?;
        }
        return Ok(());
    }
    if !is_sealed(activation) {
        return node_report(requested, activation);
    }
    open_invoked(ctx, client, requested, activation).await
}

/// Lets an unsealed record that this client did not invoke, of an action
/// the key broker holds as confidential, be shown only as the node's
/// report of a failed run ([`node_report`]'s shape): only an enclave
/// answers such an action's runs, and sealed, so a result or log lines in
/// the clear are the provider's (a record made up under a fresh id, say,
/// as the newest for `--last`). Every name the record could stand for is
/// asked ([`claimed_names`]).
async fn refuse_made_up(
    ctx: &Context,
    client: &Client,
    requested: ActivationId,
    activation: &Activation,
) -> anyhow::Result<()> {
    if only_sealed(activation) {
        return Ok(());
    }
    let names = claimed_names(&activation.name, &activation.annotations);
    let sealing = match connect(client.clone(), sealing_namespace(ctx, None)?).await {
        Ok(sealing) => sealing,
        Err(error) => {
            unverified(requested, &names.join(" or "), &error);
            return Ok(());
        }
    };
    match first_confidential(&sealing, &names).await {
        Ok(Some(name)) => {
            return report_only(
                requested,
                activation,
                &format!(
                    "a run of {name}, which the key broker holds as confidential and this client did not invoke"
                ),
            );
        }
        Ok(None) => {}
        Err(error) => {
            unverified(requested, &names.join(" or "), &error.into());
            return Ok(());
        }
    }
    // The path names a package's or another namespace's action whose bare
    // name may be a confidential one's (not asked yet): shown, but not as
    // that one's (the path is the provider's to write too).
    let own = format!("/{}/{}", sealing.namespace(), activation.name);
    if !names
        .iter()
        .any(|name| *name == activation.name || *name == own)
    {
        match sealing.is_confidential(&activation.name).await {
            Ok(true) => eprintln!(
                "note: activation {requested} is the node's record of {}, not of your confidential action {}; nothing verifies it",
                names.join(" or "),
                activation.name
            ),
            Ok(false) => {}
            Err(error) => unverified(requested, &activation.name, &error.into()),
        }
    }
    Ok(())
}

/// Says that whether `names` is confidential could not be asked, so the
/// record of activation `requested` is shown as the node's: the provider
/// can cut the broker off.
fn unverified(requested: ActivationId, names: &str, error: &anyhow::Error) {
    eprintln!(
        "activation {requested}: could not ask the key broker whether {names} is confidential ({error:#}); its record is the node's, and nothing verifies it"
    );
}

/// The names of actions a record could be taken for, all the provider's
/// to write: its `path` annotation as a fully qualified name (`/ns/name`,
/// `/ns/pkg/name`; the broker holds none in another namespace), and its
/// `name` too unless the path parses and ends in it (a record of a plain
/// `pkg/hello` is not one of a confidential top-level `hello`).
pub fn claimed_names(name: &str, annotations: &KeyValues) -> Vec<String> {
    let Some(path) = annotations.get("path").and_then(Value::as_str) else {
        return vec![name.to_owned()];
    };
    let qualified = format!("/{}", path.trim_start_matches('/'));
    let consistent = FullyQualifiedName::parse(&qualified, None)
        .is_ok_and(|parsed| parsed.name.as_str() == name);
    if consistent {
        vec![qualified]
    } else {
        vec![qualified, name.to_owned()]
    }
}

/// A record's `path` annotation as `(namespace, name within it)`.
pub fn path_parts(annotations: &KeyValues) -> Option<(&str, &str)> {
    annotations
        .get("path")
        .and_then(Value::as_str)
        .and_then(|path| path.trim_start_matches('/').split_once('/'))
}

/// Whether a record shows nothing in the clear that an enclave would have
/// sealed: a result of only a sealed answer (and the host's compile-failure
/// text), and log lines that are sealed or a sequence's step ids.
pub fn only_sealed(activation: &Activation) -> bool {
    let sealed_result = match &activation.response.result {
        Some(Value::Object(fields)) => {
            fields.get("sealed").is_some_and(Value::is_string)
                && fields
                    .iter()
                    .all(|(key, value)| key == "sealed" || (key == "error" && value.is_string()))
        }
        _ => false,
    };
    sealed_result && activation.logs.iter().all(|line| sealed_or_step_id(line))
}

/// A log line an enclave sealed, or a sequence's step id (what OpenWhisk
/// logs for a sequence, in the clear for confidential ones too).
pub fn sealed_or_step_id(line: &str) -> bool {
    use base64::Engine as _;
    line.strip_prefix(clemmys_client::confidential::SEALED_LOGS_PREFIX)
        .is_some_and(|sealed| {
            base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .is_ok()
        })
        || line.parse::<ActivationId>().is_ok()
}

/// The first of `names` that the key broker (asked through `sealing`)
/// holds as confidential in this client's namespace, if any.
pub async fn first_confidential(
    sealing: &Confidential,
    names: &[String],
) -> Result<Option<String>, ConfidentialError> {
    for name in names {
        if sealing.is_confidential(name).await? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// Opens and verifies the answer of activation `requested`, which this
/// client invoked, and shows it in `activation` (its record).
async fn open_invoked(
    ctx: &Context,
    client: &Client,
    requested: ActivationId,
    activation: &mut Activation,
) -> anyhow::Result<()> {
    let confidential = connect(client.clone(), sealing_namespace(ctx, None)?).await?;
    let opened = confidential
        .open_activation(requested)
        .await
        .with_context(|| format!("opening confidential activation {requested}"))?;
    opened.reveal(activation, confidential.namespace())?;
    note_verified(ctx, &opened);
    Ok(())
}

/// Tells the user (on stderr) that the answer was decrypted and its receipt
/// verified, and what the TEE does not protect.
pub fn note_verified(ctx: &Context, opened: &OpenedActivation) {
    if ctx.output.is_json() {
        return;
    }
    let receipt = &opened.receipt.receipt;
    // Which activation was opened, as its receipt binds it: a caller that
    // asked for "the last" one (the node's choice) sees which it got.
    let what = match &opened.chain {
        Some(steps) => format!("a chain of {} step(s) ending in", steps.len()),
        None => "of".to_owned(),
    };
    ctx.output.hint(format_args!(
        "decrypted; receipt verified: activation {} {what} /{}/{} v{}: code {} ran in a {} enclave of measurement {}",
        opened.activation_id,
        receipt.namespace,
        receipt.action,
        receipt.version,
        receipt.code_digest,
        opened.tee.name(),
        receipt.measurement
    ));
    if let Some(warning) = sim_warning(opened.tee) {
        ctx.output.hint(format_args!("WARNING: {warning}"));
    }
}
