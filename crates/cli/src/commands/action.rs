//! `clemmys action …`: create, update, invoke, get, delete and list actions.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clemmys_client::{ActionDoc, Client, InvokeOptions, Invoked};
use clemmys_proto::chain_plan::CHAIN_PLAN_ANNOTATION;
use clemmys_whisk::action::{ActionPut, ExecPut};
use clemmys_whisk::limits::ActionLimitsPut;
use clemmys_whisk::{Activation, EntityName, FullyQualifiedName, KeyValues};
use serde_json::{Value, json};

use clemmys_client::confidential::{
    ConfidentialError, ConfidentialInvoked, DeployOptions, JavaScriptSource,
};

use super::{AnnotationArgs, Context, ParamArgs, confidential};
use crate::output::Table;
use crate::output::{out, outln};

/// `clemmys action …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ActionCommand {
    /// Create an action from a WebAssembly module or a JavaScript file, or a
    /// sequence.
    Create(PutArgs),
    /// Update an action (only what is given changes).
    Update(PutArgs),
    /// Invoke an action.
    Invoke(InvokeArgs),
    /// Get an action.
    Get(GetArgs),
    /// Delete an action.
    Delete {
        /// The action (`name`, `pkg/name` or `/ns/name`).
        name: String,
    },
    /// List actions.
    List(ListArgs),
}

/// Arguments of `action create` and `action update`.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The action (`name`, `pkg/name` or `/ns/name`).
    pub name: String,
    /// The code: a WebAssembly module (FILE.wasm) or JavaScript (FILE.js).
    pub file: Option<PathBuf>,
    /// The runtime kind: `wasm` (inferred from a .wasm FILE) or
    /// `nodejs:20`, `nodejs:18`, `nodejs:default` (inferred from a .js
    /// FILE).
    #[arg(long, value_name = "KIND", conflicts_with = "sequence")]
    pub kind: Option<String>,
    /// The export to run instead of `_start`.
    #[arg(long, value_name = "EXPORT", conflicts_with = "sequence")]
    pub main: Option<String>,
    /// Make the action a sequence of these actions, comma-separated.
    #[arg(
        long,
        value_name = "A,B,…",
        value_delimiter = ',',
        conflicts_with = "file"
    )]
    pub sequence: Option<Vec<String>>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub params: ParamArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub annotations: AnnotationArgs,
    /// Timeout LIMIT in milliseconds after which the action is terminated.
    #[arg(short = 't', long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Maximum memory LIMIT in MB.
    #[arg(short = 'm', long, value_name = "MB")]
    pub memory: Option<u32>,
    /// Maximum log size LIMIT in MB.
    #[arg(short = 'l', long = "logsize", value_name = "MB")]
    pub logsize: Option<u32>,
    /// Maximum activations one instance runs at once.
    #[arg(short = 'c', long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// An ordinary, unprotected OpenWhisk action: the provider can read and
    /// change its code, parameters and results. (Actions created from a
    /// FILE are confidential by default.)
    #[arg(long)]
    pub plain: bool,
    /// Confidential: release the action key only to hardware TEEs, never to
    /// the `sim` TEE.
    #[arg(long, conflicts_with = "plain")]
    pub require_hardware: bool,
    /// Confidential: also allow the client with this identity (64 hex
    /// digits, see `clemmys broker show`) to invoke the action.
    #[arg(long = "allow-client", value_name = "HEX", conflicts_with = "plain")]
    pub allow_clients: Vec<clemmys_proto::ClientId>,
    /// Serve the action at APIHOST/api/v1/web/NS/PKG/NAME without
    /// credentials: `true`/`yes` (its parameters become final), `raw` (it
    /// gets the raw query and body), `false`/`no` to stop. Plain actions
    /// only.
    #[arg(long, value_name = "true|false|raw")]
    pub web: Option<WebMode>,
    /// Protect a web action: a SECRET that callers send as header
    /// X-Require-Whisk-Auth, `true` for a random numeric secret, `false`
    /// to remove it.
    #[arg(long = "web-secure", value_name = "SECRET|true|false")]
    pub web_secure: Option<String>,
    /// Confidential JavaScript: the engine module the action may run under
    /// (scripts/build-runtimes.sh builds it); its SHA-256 is sealed with
    /// the source, and enclaves refuse to run the source under any other.
    /// Default: the one a build of this repository puts beside this
    /// program.
    #[arg(
        long,
        value_name = "FILE",
        env = "CLEMMYS_JS_ENGINE",
        conflicts_with = "plain"
    )]
    pub js_engine: Option<PathBuf>,
}

/// The values of `--web`, as `wsk` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebMode {
    /// `true`/`yes`: exported, parameters final.
    On,
    /// `raw`: exported, raw query and body, parameters final.
    Raw,
    /// `false`/`no`: not exported.
    Off,
}

impl std::str::FromStr for WebMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(Self::On),
            "raw" => Ok(Self::Raw),
            "false" | "no" => Ok(Self::Off),
            _ => Err(format!(
                "Invalid argument '{text}' for --web flag. Valid input consist of 'yes', 'true', \
                 'raw', 'false', or 'no'."
            )),
        }
    }
}

impl WebMode {
    /// Sets `web-export`, `raw-http` and `final` as `wsk` does.
    pub fn apply(self, annotations: &mut KeyValues) {
        let (export, raw) = match self {
            Self::On => (true, false),
            Self::Raw => (true, true),
            Self::Off => (false, false),
        };
        annotations.set(WEB_EXPORT, Value::Bool(export));
        annotations.set("raw-http", Value::Bool(raw));
        annotations.set("final", Value::Bool(export));
    }
}

/// The annotation that exports an action to the web.
const WEB_EXPORT: &str = "web-export";
/// The annotation holding a web action's secret.
const REQUIRE_WHISK_AUTH: &str = "require-whisk-auth";
/// The largest integer JavaScript holds exactly: `wsk` keeps generated
/// secrets below it, for API gateways that parse them as numbers.
const MAX_JS_INT: u64 = (1 << 53) - 1;

/// Applies `--web-secure VALUE` as `wsk` does: `false` removes the
/// secret, `true` sets a random number (keeping an earlier random one),
/// anything else is the secret itself.
pub fn apply_web_secure(annotations: &mut KeyValues, value: &str, random: u64) {
    match value.to_ascii_lowercase().as_str() {
        "false" => annotations.0.retain(|kv| kv.key != REQUIRE_WHISK_AUTH),
        "true" => {
            let kept = annotations
                .get(REQUIRE_WHISK_AUTH)
                .is_some_and(|secret| secret.is_u64() || secret.is_i64());
            if !kept {
                annotations.set(REQUIRE_WHISK_AUTH, json!(random & MAX_JS_INT));
            }
        }
        _ => annotations.set(REQUIRE_WHISK_AUTH, Value::String(value.to_owned())),
    }
}

/// A random number for `--web-secure true`.
fn random_secret() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("reading the OS RNG: {error}"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Arguments of `action invoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// The action (`name`, `pkg/name` or `/ns/name`).
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub params: ParamArgs,
    /// Wait for the result (up to the server's limit, 60 s).
    #[arg(short = 'b', long)]
    pub blocking: bool,
    /// Wait and print only the result (implies --blocking).
    #[arg(short = 'r', long)]
    pub result: bool,
    /// With --blocking, wait at most MS milliseconds before answering with the id.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
}

/// Arguments of `action get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The action (`name`, `pkg/name` or `/ns/name`).
    pub name: String,
    /// Show only this field of the action (e.g. `limits`).
    pub field: Option<String>,
    /// Summarize the action: its name, description and parameters.
    #[arg(short = 's', long, conflicts_with = "field")]
    pub summary: bool,
    /// Save the action's code to FILE.
    #[arg(long = "save-as", value_name = "FILE")]
    pub save_as: Option<PathBuf>,
    /// Save the action's code to NAME.wasm.
    #[arg(long, conflicts_with = "save_as")]
    pub save: bool,
    /// Print the action's URL: its web URL for a web action.
    #[arg(long, conflicts_with_all = ["field", "summary", "save", "save_as"])]
    pub url: bool,
}

/// Arguments of `action list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Return at most LIMIT actions (the server caps it at 200).
    #[arg(short = 'l', long, default_value_t = 30)]
    pub limit: u32,
    /// Skip the first SKIP actions.
    #[arg(short = 's', long, default_value_t = 0)]
    pub skip: u32,
    /// Print only how many actions there are.
    #[arg(long)]
    pub count: bool,
    /// Sort the page by name.
    #[arg(short = 'n', long = "name-sort")]
    pub name_sort: bool,
}

/// Runs an action command.
pub async fn run(command: ActionCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        ActionCommand::Create(args) => put(args, false, ctx).await,
        ActionCommand::Update(args) => put(args, true, ctx).await,
        ActionCommand::Invoke(args) => invoke(args, ctx).await,
        ActionCommand::Get(args) => get(args, ctx).await,
        ActionCommand::Delete { name } => delete(&name, ctx).await,
        ActionCommand::List(args) => list(args, ctx).await,
    }
}

async fn put(args: PutArgs, update: bool, ctx: &Context) -> anyhow::Result<()> {
    let verb = if update { "updating" } else { "creating" };
    let client = ctx.client()?;
    let mut body = action_put(&args, update, ctx, &client)
        .await
        .with_context(|| format!("{verb} action {}", args.name))?;
    // A sequence of confidential actions is a confidential chain: its
    // owner signs its plan, which the controller stores with it.
    let chain = match body.exec.as_ref().and_then(|exec| exec.components.clone()) {
        Some(components) if all_confidential(ctx, &client, &components).await? => Some(components),
        _ => None,
    };
    if chain.is_some()
        && body
            .parameters
            .as_ref()
            .is_some_and(|parameters| !parameters.is_empty())
    {
        // The node would hold them in the clear, and hand them to the
        // chain's first step unsealed.
        anyhow::bail!(
            "a confidential sequence keeps no default parameters of its own (the node would \
             hold them in the clear): give them to its actions (clemmys action update ACTION \
             FILE -p KEY VALUE); nothing was sent"
        );
    }
    if update && body.exec.is_none() {
        keep_chain_plan(&client, &args.name, &mut body).await?;
    }
    if update
        && args.file.is_none()
        && body
            .parameters
            .as_ref()
            .is_some_and(|parameters| !parameters.is_empty())
    {
        refuse_clear_defaults(ctx, &client, &args.name).await?;
    }
    // Concurrency is the host's to schedule, not bound into the policy.
    let bound_limits_given = body.limits.is_some_and(|limits| {
        limits.timeout.is_some() || limits.memory.is_some() || limits.logs.is_some()
    });
    if update && args.file.is_none() && bound_limits_given {
        refuse_unbound_limits(&client, &args.name).await?;
    }
    let javascript = body
        .exec
        .as_ref()
        .and_then(|exec| clemmys_whisk::JsKind::parse(&exec.kind));
    let confidential = match (&args.file, args.plain) {
        (Some(_), false) if update => {
            is_confidential(&client, &args.name).await.unwrap_or(true)
                || broker_holds(ctx, &client, &args.name).await?
        }
        (Some(_), false) => true,
        _ => false,
    };
    let web = body
        .annotations
        .as_ref()
        .is_some_and(|annotations| annotations.is_true(WEB_EXPORT));
    let sealed = confidential
        || chain.is_some()
        || body
            .annotations
            .as_ref()
            .is_some_and(|annotations| annotations.is_true(clemmys_whisk::CONFIDENTIAL_ANNOTATION));
    if web && sealed {
        bail!(
            "a confidential action is not exported through the node: its web route would \
             show the provider requests and answers in the clear. Create it through an \
             attested gateway with the web-export annotation (it serves confidential web \
             actions; see the README), or export a plain action (add --plain)"
        );
    }
    let doc = if let (true, Some(file)) = (confidential, &args.file) {
        let options = DeployOptions {
            require_hardware: args.require_hardware,
            allowed_clients: args.allow_clients.clone(),
            ..DeployOptions::default()
        };
        let namespace = confidential::sealing_namespace(ctx, Some(&args.name))?;
        let sealing = confidential::connect(client.clone(), namespace).await?;
        let deployed = match javascript {
            Some(kind) => {
                let source = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {} as UTF-8 text", file.display()))?;
                let engine = pinned_js_engine(args.js_engine.as_deref())?;
                let javascript = JavaScriptSource {
                    source: &source,
                    engine,
                    kind: kind.as_str(),
                };
                sealing
                    .deploy_javascript(&args.name, javascript, body, update, &options)
                    .await
            }
            None => {
                let code = read_wasm(file)?;
                sealing
                    .deploy(&args.name, &code, body, update, &options)
                    .await
            }
        };
        deployed.with_context(|| format!("{verb} confidential action {}", args.name))?
    } else if let Some(components) = &chain {
        let namespace = confidential::sealing_namespace(ctx, Some(&args.name))?;
        let signing = confidential::connect(client.clone(), namespace).await?;
        signing
            .put_sequence(&args.name, components, body, update)
            .await
            .with_context(|| format!("{verb} confidential sequence {}", args.name))?
    } else {
        client
            .put_action(&args.name, &body, update)
            .await
            .with_context(|| format!("{verb} action {}", args.name))?
    };
    if ctx.output.is_json() {
        return ctx.output.print_json(&doc);
    }
    let done = if update { "updated" } else { "created" };
    if confidential {
        ctx.output.ok(format_args!(
            "{done} confidential action {} (its code is sealed: only attested enclaves can run it)",
            args.name
        ));
    } else {
        let chain = doc.exec.kind.as_deref() == Some(clemmys_whisk::SEQUENCE_KIND)
            && doc
                .annotations
                .is_true(clemmys_whisk::CONFIDENTIAL_ANNOTATION);
        if chain {
            ctx.output.ok(format_args!(
                "{done} action {} (a confidential chain: all its steps are confidential)",
                args.name
            ));
        } else {
            ctx.output.ok(format_args!("{done} action {}", args.name));
        }
    }
    Ok(())
}

/// The digest of the JavaScript engine a confidential JavaScript action is
/// sealed for: of `file`, else of the engine beside this program.
fn pinned_js_engine(file: Option<&std::path::Path>) -> anyhow::Result<clemmys_proto::Digest> {
    let path = match file {
        Some(path) => path.to_path_buf(),
        None => crate::serve::default_js_engine().ok_or_else(|| {
            anyhow::anyhow!(
                "a confidential JavaScript action is sealed for the engine it will run under: \
                 pass --js-engine FILE (scripts/build-runtimes.sh builds it) or set \
                 CLEMMYS_JS_ENGINE, or create a plain action with --plain"
            )
        })?,
    };
    let engine = std::fs::read(&path)
        .with_context(|| format!("reading the JavaScript engine {}", path.display()))?;
    Ok(clemmys_proto::Digest::of(&engine))
}

/// Refuses to send parameters without code for action `name` when it is
/// confidential: they would reach the node in the clear, and only sealing
/// them with the code makes them the action's defaults. Asks the node, and
/// the key broker, whose answers the node can neither forge nor (for the
/// owner's own actions) hide: an unanswered broker is a refusal too.
async fn refuse_clear_defaults(ctx: &Context, client: &Client, name: &str) -> anyhow::Result<()> {
    let refuse = || {
        anyhow::anyhow!(
            "the default parameters of a confidential action are sealed with its code: give \
             the code again (clemmys action update {name} FILE -p KEY VALUE); they were not sent"
        )
    };
    if is_confidential(client, name).await.unwrap_or(false)
        || broker_holds(ctx, client, name).await?
    {
        return Err(refuse());
    }
    Ok(())
}

/// Refuses to change the limits of confidential action `name` without its
/// code: its enclaves run under the limits its owner bound into its policy
/// with the code, so the node's record alone would change nothing but what
/// the node shows. The node's word is enough here: limits are not secret,
/// and a node that hides the action's kind only makes this update useless.
async fn refuse_unbound_limits(client: &Client, name: &str) -> anyhow::Result<()> {
    let doc = match client.get_action(name, false).await {
        Ok(doc) => doc,
        // The update itself says what is wrong.
        Err(_) => return Ok(()),
    };
    let sequence = doc.exec.kind.as_deref() == Some(clemmys_whisk::SEQUENCE_KIND);
    if doc
        .annotations
        .is_true(clemmys_whisk::CONFIDENTIAL_ANNOTATION)
        && !sequence
    {
        bail!(
            "the limits of a confidential action are bound into its policy with its code (its \
             enclaves run under those, whatever the node records): give the code again \
             (clemmys action update {name} FILE --memory MB --timeout MS); nothing was sent"
        );
    }
    Ok(())
}

/// Whether the key broker holds `name` as a confidential action of a
/// trusted owner, or this client signed or ran a confidential chain plan
/// of it ([`Confidential::is_confidential`]), whatever the node shows:
/// asked before anything of `name` is sent in the clear, since the
/// provider can show a confidential action as plain. Without a broker
/// pinned for this API host, this client never sealed anything there:
/// false, unless it knows the name for a confidential one at another
/// address (the same deployment may be reached by several), which is
/// refused. Any other failure (the broker unreachable, its identity
/// changed) is an error, never a reason to send in the clear.
///
/// [`Confidential::is_confidential`]: clemmys_client::confidential::Confidential::is_confidential
pub(super) async fn broker_holds(
    ctx: &Context,
    client: &Client,
    name: &str,
) -> anyhow::Result<bool> {
    let home = confidential::home()?;
    if home.broker_pin(client.api_host())?.is_none() {
        refuse_if_confidential_elsewhere(ctx, &home, client.api_host(), name)?;
        return Ok(false);
    }
    // A relative name under a key given on the command line, with no
    // namespace configured, names an action of an unknown namespace: not
    // checked against the pinned one (whose answer would be about another
    // action), but refused, before anything of it is sent.
    let namespace = confidential::sealing_namespace(ctx, Some(name))?;
    let checking = || {
        format!(
            "checking with the key broker whether {name} is confidential before sending \
             anything of it in the clear"
        )
    };
    let sealing = confidential::connect(client.clone(), namespace)
        .await
        .with_context(checking)?;
    sealing.is_confidential(name).await.with_context(checking)
}

/// A name this client knows for a confidential entity at another address,
/// asked of an address where no broker is pinned.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} is confidential at {elsewhere}, and no key broker is pinned for {api_host}: if this \
     is the same deployment under another address, the node may show it as plain to have it sent \
     in the clear; use --apihost {elsewhere}, or pin this address's broker (clemmys --apihost \
     {api_host} broker trust: the same broker is recognised, another one is refused unless you \
     say it is another deployment); nothing was sent"
)]
pub(super) struct ConfidentialElsewhere {
    name: String,
    elsewhere: String,
    api_host: String,
}

/// Refuses to send anything of `name` (an action, sequence or package) in
/// the clear to `api_host`, where no broker is pinned (the caller checked),
/// when this client knows a confidential entity of that name at another
/// address: the provider may offer the same deployment under a new
/// address (another controller, a moved endpoint), or the user typed
/// another spelling of it, and show the entity there as plain.
pub(super) fn refuse_if_confidential_elsewhere(
    ctx: &Context,
    home: &clemmys_client::confidential::ClientHome,
    api_host: &str,
    name: &str,
) -> anyhow::Result<()> {
    let qualified = clemmys_client::resolve_name(name)?;
    let short = match &qualified.package {
        Some(package) => format!("{package}/{}", qualified.name),
        None => qualified.name.to_string(),
    };
    // Of any namespace when none is known: a false alarm is an error the
    // user can read, a miss the secret.
    let namespace = match qualified.namespace.as_str() {
        clemmys_client::DEFAULT_NAMESPACE => {
            let configured = ctx.namespace();
            (configured != clemmys_client::DEFAULT_NAMESPACE).then(|| configured.to_owned())
        }
        given => Some(given.to_owned()),
    };
    let elsewhere = home.confidential_elsewhere(api_host, namespace.as_deref(), &short)?;
    if let Some(first) = elsewhere.into_iter().next() {
        return Err(ConfidentialElsewhere {
            name: name.to_owned(),
            elsewhere: first,
            api_host: api_host.to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Whether the stored action `name` is confidential.
async fn is_confidential(client: &Client, name: &str) -> anyhow::Result<bool> {
    let doc = client.get_action(name, false).await?;
    Ok(doc
        .annotations
        .is_true(clemmys_whisk::CONFIDENTIAL_ANNOTATION))
}

/// Whether all of `components` are confidential actions, by the node or
/// the key broker (one the node cannot show and the broker does not hold
/// counts as not). A mix is refused here, not only by the node: a node
/// that accepted it as a plain sequence would run the confidential
/// actions on parameters sent in the clear.
async fn all_confidential(
    ctx: &Context,
    client: &Client,
    components: &[String],
) -> anyhow::Result<bool> {
    let mut confidential = 0usize;
    for component in components {
        if is_confidential(client, component).await.unwrap_or(false)
            || broker_holds(ctx, client, component).await?
        {
            confidential += 1;
        }
    }
    if confidential > 0 && confidential < components.len() {
        bail!(
            "A sequence cannot mix confidential and plain actions: {confidential} of its {} \
             components are confidential",
            components.len()
        );
    }
    Ok(confidential > 0)
}

/// An update that replaces a sequence's annotations without changing its
/// components keeps the signed plan stored with it.
async fn keep_chain_plan(client: &Client, name: &str, body: &mut ActionPut) -> anyhow::Result<()> {
    let Some(annotations) = body.annotations.as_mut() else {
        return Ok(());
    };
    let doc = client.get_action(name, false).await?;
    if let Some(plan) = doc.annotations.get(CHAIN_PLAN_ANNOTATION) {
        annotations.set(CHAIN_PLAN_ANNOTATION, plan.clone());
    }
    Ok(())
}

/// The `PUT` body for `action create`/`update`.
pub async fn action_put(
    args: &PutArgs,
    update: bool,
    ctx: &Context,
    client: &Client,
) -> anyhow::Result<ActionPut> {
    let exec = match (&args.sequence, &args.file) {
        (Some(components), _) => Some(ExecPut::sequence(
            resolve_components(components, ctx, client).await?,
        )),
        (None, Some(file)) => match check_kind(args.kind.as_deref(), file)? {
            FileKind::Wasm => {
                let code = read_wasm(file)?;
                Some(ExecPut::wasm(&code, args.main.clone()))
            }
            FileKind::JavaScript(kind) => {
                let source = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {} as UTF-8 text", file.display()))?;
                Some(ExecPut {
                    kind: kind.as_str().into(),
                    code: Some(source),
                    binary: Some(false),
                    main: args.main.clone(),
                    components: None,
                })
            }
        },
        (None, None) if !update => {
            bail!("an action needs code: give FILE.wasm, or --sequence A,B,… for a sequence")
        }
        (None, None) => {
            if args.kind.is_some() || args.main.is_some() {
                bail!("--kind and --main need FILE (.wasm or .js)");
            }
            None
        }
    };
    let mut annotations = args
        .annotations
        .to_object()?
        .map(|object| KeyValues::from_object(&object));
    if args.web.is_some() || args.web_secure.is_some() {
        annotations = Some(web_annotations(args, update, annotations, client).await?);
    }
    let limits = ActionLimitsPut {
        timeout: args.timeout,
        memory: args.memory,
        logs: args.logsize,
        concurrency: args.concurrency,
    };
    let any_limit = limits != ActionLimitsPut::default();
    Ok(ActionPut {
        exec,
        limits: any_limit.then_some(limits),
        parameters: args
            .params
            .to_object()?
            .map(|object| KeyValues::from_object(&object)),
        annotations,
        ..ActionPut::default()
    })
}

/// The annotations after `--web` and `--web-secure`: the given ones, then
/// (on update, since annotations are replaced whole) the stored ones, with
/// the web ones set as `wsk` sets them.
async fn web_annotations(
    args: &PutArgs,
    update: bool,
    given: Option<KeyValues>,
    client: &Client,
) -> anyhow::Result<KeyValues> {
    let mut annotations = given.unwrap_or_default();
    if update {
        let stored = client.get_action(&args.name, false).await?;
        for kv in stored.annotations.0 {
            if annotations.get(&kv.key).is_none() {
                annotations.0.push(kv);
            }
        }
    }
    if let Some(mode) = args.web {
        mode.apply(&mut annotations);
    }
    if let Some(secure) = &args.web_secure {
        if !annotations.is_true(WEB_EXPORT) {
            bail!("The --web-secure option is only valid when the --web option is enabled.");
        }
        apply_web_secure(&mut annotations, secure, random_secret()?);
    }
    Ok(annotations)
}

/// What a FILE holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A WebAssembly module.
    Wasm,
    /// JavaScript source of this kind.
    JavaScript(clemmys_whisk::JsKind),
}

/// The kind of FILE: `--kind`, else its extension (`.wasm`, or `.js` for
/// `nodejs:default`).
fn check_kind(kind: Option<&str>, file: &Path) -> anyhow::Result<FileKind> {
    let has_extension = |wanted: &str| {
        file.extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case(wanted))
    };
    match kind {
        Some(kind) if kind == clemmys_whisk::WASM_KIND => Ok(FileKind::Wasm),
        Some(kind) => match clemmys_whisk::JsKind::parse(kind) {
            Some(js) => Ok(FileKind::JavaScript(js)),
            None => bail!(
                "kind '{kind}' is not supported: Clemmys runs WebAssembly modules (--kind wasm) \
                 and JavaScript (--kind nodejs:20, nodejs:18 or nodejs:default)"
            ),
        },
        None if has_extension("wasm") => Ok(FileKind::Wasm),
        None if has_extension("js") => {
            Ok(FileKind::JavaScript(clemmys_whisk::JsKind::NodejsDefault))
        }
        None => bail!(
            "cannot tell the kind of {}: name the file *.wasm or *.js, or pass --kind",
            file.display()
        ),
    }
}

/// Reads a module and checks its magic number, to fail early on a `.wat`
/// or a wrong file.
fn read_wasm(file: &Path) -> anyhow::Result<Vec<u8>> {
    let code = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if !code.starts_with(b"\0asm") {
        bail!(
            "{} is not a binary WebAssembly module (it does not start with \\0asm)",
            file.display()
        );
    }
    Ok(code)
}

/// Sequence components, fully qualified as OpenWhisk requires: relative
/// names (and `/_/…`) go into `NAMESPACE` or, when that is unset or `_`,
/// the first namespace the API key may use.
pub async fn resolve_components(
    components: &[String],
    ctx: &Context,
    client: &Client,
) -> anyhow::Result<Vec<String>> {
    let mut own_namespace: Option<EntityName> = None;
    let mut resolved = Vec::with_capacity(components.len());
    for component in components {
        let component = component.trim();
        if component.is_empty() {
            bail!("a sequence component is empty (check the commas in --sequence)");
        }
        let mut name = FullyQualifiedName::parse(component, Some("_"))
            .with_context(|| format!("sequence component '{component}'"))?;
        if name.namespace.as_str() == "_" {
            if own_namespace.is_none() {
                own_namespace = Some(own_namespace_name(ctx, client).await?);
            }
            if let Some(namespace) = &own_namespace {
                name.namespace = namespace.clone();
            }
        }
        resolved.push(name.to_string());
    }
    Ok(resolved)
}

async fn own_namespace_name(ctx: &Context, client: &Client) -> anyhow::Result<EntityName> {
    let configured = ctx.namespace();
    let name = if configured != "_" {
        configured.to_owned()
    } else {
        client
            .list_namespaces()
            .await
            .context("finding your namespace to qualify the sequence's components")?
            .into_iter()
            .next()
            .context("the API key has no namespace to qualify the sequence's components")?
    };
    EntityName::new(name.clone()).with_context(|| format!("namespace '{name}'"))
}

async fn invoke(args: InvokeArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let own = ctx.own_namespace(&client).await;
    let shown = clemmys_client::resolve_name_in(&args.name, &own)?;
    let params = args.params.to_object()?.map_or(Value::Null, Value::Object);
    let blocking = args.blocking || args.result;
    let options = InvokeOptions {
        blocking,
        result: args.result,
        timeout_ms: args.timeout,
    };
    if is_confidential(&client, &args.name)
        .await
        .with_context(|| format!("invoking action {}", args.name))?
        || broker_holds(ctx, &client, &args.name).await?
    {
        return invoke_confidential(&args, params, options, &shown, client, ctx).await;
    }
    let invoked = client
        .invoke(&args.name, params, options)
        .await
        .with_context(|| format!("invoking action {}", args.name))?;
    print_invoked(&invoked, &shown, blocking, args.result, ctx)
}

/// Seals the parameters, invokes, and prints the opened answer exactly as
/// a plain action's would print.
async fn invoke_confidential(
    args: &InvokeArgs,
    params: Value,
    options: InvokeOptions,
    shown: &FullyQualifiedName,
    client: Client,
    ctx: &Context,
) -> anyhow::Result<()> {
    let namespace = confidential::sealing_namespace(ctx, Some(&args.name))?;
    let sealing = confidential::connect(client.clone(), namespace).await?;
    let params = if params.is_null() { json!({}) } else { params };
    // The whole record is needed to open the logs too; `-r` prints the result only.
    let full = InvokeOptions {
        result: false,
        ..options
    };
    let invoked = sealing
        .invoke(&args.name, &params, full)
        .await
        .with_context(|| format!("invoking confidential action {}", args.name))?;
    let opened = match invoked {
        ConfidentialInvoked::Accepted { activation_id } => {
            let accepted = Invoked::Accepted { activation_id };
            return print_invoked(&accepted, shown, options.blocking, options.result, ctx);
        }
        ConfidentialInvoked::Completed(opened) => opened,
    };
    confidential::note_verified(ctx, &opened);
    let mut activation = client
        .get_activation(opened.activation_id)
        .await
        .with_context(|| format!("getting activation {}", opened.activation_id))?;
    opened.reveal(&mut activation, sealing.namespace())?;
    let status = if opened.status == clemmys_whisk::ActivationStatus::Success {
        200
    } else {
        502
    };
    let body = if options.result {
        opened.result.clone()
    } else {
        serde_json::to_value(&activation)?
    };
    let completed = Invoked::Completed {
        status,
        activation_id: opened.activation_id,
        body,
    };
    print_invoked(&completed, shown, options.blocking, options.result, ctx)
}

/// Prints an invoke's outcome as `wsk` does, and fails (after printing the
/// activation or result) when the action failed.
pub fn print_invoked(
    invoked: &Invoked,
    shown: &FullyQualifiedName,
    blocking: bool,
    result_only: bool,
    ctx: &Context,
) -> anyhow::Result<()> {
    let output = &ctx.output;
    match invoked {
        Invoked::Accepted { activation_id } => {
            if output.is_json() {
                output.print_json(&json!({ "activationId": activation_id }))?;
            } else {
                output.ok(format_args!("invoked {shown} with id {activation_id}"));
                if blocking {
                    output.hint(format_args!(
                        "the activation has not finished yet; get it later with `clemmys activation get {activation_id}`"
                    ));
                }
            }
            Ok(())
        }
        Invoked::Completed {
            status,
            activation_id,
            body,
        } => {
            if result_only {
                output.print_json(body)?;
            } else {
                output.ok(format_args!("invoked {shown} with id {activation_id}"));
                // The record in OpenWhisk's field order when it is one.
                match serde_json::from_value::<Activation>(body.clone()) {
                    Ok(activation) => output.print_json(&activation)?,
                    Err(_) => output.print_json(body)?,
                }
            }
            if *status == 200 {
                return Ok(());
            }
            match body.pointer("/response/status").and_then(Value::as_str) {
                Some(outcome) => {
                    bail!("action {shown} failed: {outcome} (activation {activation_id})")
                }
                None => bail!(
                    "action {shown} failed (activation {activation_id}; see `clemmys activation get {activation_id}`)"
                ),
            }
        }
    }
}

async fn get(args: GetArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let saving = args.save || args.save_as.is_some();
    let mut doc = client
        .get_action(&args.name, saving)
        .await
        .with_context(|| format!("getting action {}", args.name))?;
    let output = &ctx.output;
    // The broker's word too, not only the node's annotation (which the
    // provider can drop).
    let confidential = doc
        .annotations
        .is_true(clemmys_whisk::CONFIDENTIAL_ANNOTATION)
        || match broker_holds(ctx, &client, &args.name).await {
            Ok(holds) => holds,
            // Confidential elsewhere: nothing here can be checked.
            Err(error) if error.downcast_ref::<ConfidentialElsewhere>().is_some() => {
                return Err(error);
            }
            Err(error) => {
                ctx.output.warn(format_args!(
                    "shown as the node has it: whether it is confidential could not be checked ({error:#})"
                ));
                false
            }
        };
    if !saving && confidential {
        show_what_is_bound(&mut doc, &args.name, ctx).await?;
    }
    if args.url {
        if confidential && doc.annotations.is_true(WEB_EXPORT) {
            // The node's web route would take its callers' requests in the
            // clear (an honest node refuses them).
            bail!(
                "{} is a confidential web action: the owner's attested gateway serves it, at https://GATEWAY/api/v1/web/{}/default/{} (or its package's name for `default`); the node's web URL is not one to give out",
                args.name,
                doc.namespace,
                doc.name
            );
        }
        let url = action_url(client.api_host(), &doc);
        if output.is_json() {
            return output.print_json(&json!({ "url": url }));
        }
        output.ok(format_args!("got action {}", args.name));
        outln!("{url}");
        return Ok(());
    }
    if saving {
        let path = args
            .save_as
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", doc.name)));
        save_code(&doc, &path)?;
        if output.is_json() {
            return output.print_json(&json!({ "saved": path }));
        }
        if confidential {
            output.ok(format_args!(
                "saved the SEALED code of confidential action {} to {}",
                doc.name,
                path.display()
            ));
            output.hint(
                "it is ciphertext, not a runnable module: only attested enclaves can open it",
            );
        } else {
            output.ok(format_args!("saved action code to {}", path.display()));
        }
        return Ok(());
    }
    if args.summary {
        if output.is_json() {
            return output.print_json(&doc);
        }
        out!("{}", action_summary(&doc));
        return Ok(());
    }
    if let Some(field) = &args.field {
        let value = serde_json::to_value(&doc)?;
        let Some(selected) = value.get(field) else {
            bail!("invalid field filter '{field}'");
        };
        output.ok(format_args!(
            "got action {}, displaying field {field}",
            args.name
        ));
        return output.print_json(selected);
    }
    output.ok(format_args!("got action {}", args.name));
    output.print_json(&doc)
}

/// Shows what a confidential action is bound to rather than the node's
/// word: its default parameters (which the node shows as none: they are
/// sealed with the code) from the copy this client kept when it sealed the
/// current version, its policy's limits, and for a sequence, refuses a
/// listing that is not its owner's signed plan. The node's parameters are
/// never shown: a client that kept no copy shows none.
async fn show_what_is_bound(doc: &mut ActionDoc, name: &str, ctx: &Context) -> anyhow::Result<()> {
    let connected = async {
        let namespace = confidential::sealing_namespace(ctx, Some(name))?;
        anyhow::Ok(confidential::connect(ctx.client()?.clone(), namespace).await?)
    };
    // Whatever parameters the node shows are not the action's: its
    // enclaves run with the sealed ones only.
    let node_written = doc.parameters.replace(KeyValues::default());
    let sealing = match connected.await {
        Ok(sealing) => sealing,
        Err(error) => {
            ctx.output.warn(format_args!(
                "its default parameters are sealed and its limits bound in its policy, and the key broker could not be asked: {error:#}"
            ));
            return Ok(());
        }
    };
    if doc.exec.kind.as_deref() == Some(clemmys_whisk::SEQUENCE_KIND) {
        // Its components are the ones its owner signed, whatever the node
        // lists: an invoke refuses any other, and so does this view.
        sealing
            .sequence_plan(name)
            .await
            .with_context(|| format!("checking confidential sequence {name}"))?
            .with_context(|| format!("the node no longer shows {name} as a sequence: ask again"))?;
        return Ok(());
    }
    let described = sealing.describe(name, true).await;
    if let Err(ConfidentialError::RegisteredSequence(_)) = described {
        bail!(
            "the key broker registers {name} as a confidential sequence, but the node shows it as an action: changed by the provider (an invoke refuses it too)"
        );
    }
    match sealing.current_defaults(name).await {
        Ok(Some(defaults)) => {
            doc.parameters = Some(KeyValues::from_object(defaults.parameters()));
        }
        Ok(None) if node_written.is_some_and(|written| !written.0.is_empty()) => {
            ctx.output.warn(
                "its default parameters are sealed with its code, and this client did not seal its current version, so it has no copy to show; the parameters the node shows are not the action's",
            );
        }
        Ok(None) => {}
        Err(error) => ctx.output.hint(format_args!(
            "its default parameters are sealed, and this client has no copy to show: {error:#}"
        )),
    }
    // The limits its enclaves run under are the policy's, whatever the
    // node records (the provider writes that).
    match described {
        Ok(descriptor) => {
            if let Some(bound) = descriptor.policy.limits {
                doc.limits = Some(bound.over(doc.limits.unwrap_or_default()));
            }
        }
        Err(error) => ctx.output.warn(format_args!(
            "its limits are bound in its policy, which the key broker did not describe: the node's are shown ({error:#})"
        )),
    }
    Ok(())
}

/// `wsk action get --url`: the web URL of a web action
/// (`APIHOST/api/v1/web/NS/PKG|default/NAME`), else its REST URL.
pub fn action_url(api_host: &str, doc: &ActionDoc) -> String {
    let host = api_host.trim().trim_end_matches('/');
    let (namespace, package) = match doc.namespace.split_once('/') {
        Some((namespace, package)) => (namespace, Some(package)),
        None => (doc.namespace.as_str(), None),
    };
    if doc.annotations.is_true(WEB_EXPORT) {
        let package = package.unwrap_or("default");
        format!("{host}/api/v1/web/{namespace}/{package}/{}", doc.name)
    } else {
        let name = match package {
            Some(package) => format!("{package}/{}", doc.name),
            None => doc.name.clone(),
        };
        format!("{host}/api/v1/namespaces/{namespace}/actions/{name}")
    }
}

fn save_code(doc: &ActionDoc, path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        bail!("the file '{}' already exists", path.display());
    }
    let Some(code) = doc.code_bytes()? else {
        bail!(
            "action {} has no code to save (is it a sequence?)",
            doc.qualified_name()
        );
    };
    std::fs::write(path, code).with_context(|| format!("writing {}", path.display()))
}

/// `wsk action get --summary`: name, description and parameters, bound
/// ones marked `*` (`**` when final).
pub fn action_summary(doc: &ActionDoc) -> String {
    let tag = if doc.annotations.is_true("final") {
        "**"
    } else {
        "*"
    };
    let bound: Vec<&str> = doc
        .parameters
        .iter()
        .flat_map(|p| p.0.iter().map(|kv| kv.key.as_str()))
        .collect();
    let mut names: Vec<&str> = bound.clone();
    if let Some(Value::Array(described)) = doc.annotations.get("parameters") {
        names.extend(
            described
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str)),
        );
    }
    names.sort_unstable();
    names.dedup();
    let params: Vec<String> = names
        .iter()
        .map(|name| {
            if bound.contains(name) {
                format!("{tag}{name}")
            } else {
                (*name).to_owned()
            }
        })
        .collect();
    let description = doc
        .annotations
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| match names.as_slice() {
            [] => None,
            [one] => Some(format!("Returns a result based on parameter {one}")),
            [init @ .., last] => Some(format!(
                "Returns a result based on parameters {} and {last}",
                init.join(", ")
            )),
        });
    let mut out = format!("action {}", doc.qualified_name());
    if let Some(description) = description {
        out.push_str(&format!(": {description}"));
    }
    out.push('\n');
    let params = if params.is_empty() {
        "none defined".to_owned()
    } else {
        params.join(", ")
    };
    out.push_str(&format!("   (parameters: {params})\n"));
    out
}

async fn delete(name: &str, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    // With a broker pinned, a name of an unknown namespace is refused, as
    // for any command that asks the broker: its deletion could not be
    // recorded.
    if confidential::home()?
        .broker_pin(client.api_host())?
        .is_some()
    {
        confidential::sealing_namespace(ctx, Some(name))?;
    }
    // A delete sends nothing secret: with the broker unreachable or
    // changed, it goes through plainly (and the node's 404 on the next
    // update still keeps the deleted action's parameters out).
    if broker_holds(ctx, &client, name).await.unwrap_or(false) {
        // Recorded as deleted in this client's state, so that an action
        // made anew under the name seals none of this one's parameters.
        let namespace = confidential::sealing_namespace(ctx, Some(name))?;
        confidential::connect(client.clone(), namespace)
            .await?
            .delete_action(name)
            .await
            .with_context(|| format!("deleting confidential action {name}"))?;
    } else {
        client
            .delete_action(name)
            .await
            .with_context(|| format!("deleting action {name}"))?;
    }
    if ctx.output.is_json() {
        return ctx
            .output
            .print_json(&json!({ "deleted": ctx.display_name(name)?.to_string() }));
    }
    ctx.output.ok(format_args!("deleted action {name}"));
    Ok(())
}

async fn list(args: ListArgs, ctx: &Context) -> anyhow::Result<()> {
    let client = ctx.client()?;
    if args.count {
        let count = client.count_actions().await.context("counting actions")?;
        if ctx.output.is_json() {
            return ctx.output.print_json(&json!({ "actions": count }));
        }
        outln!("{count}");
        return Ok(());
    }
    let mut actions = client
        .list_actions(args.skip, Some(args.limit))
        .await
        .context("listing actions")?;
    if args.name_sort {
        actions.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if ctx.output.is_json() {
        return ctx.output.print_json(&actions);
    }
    out!("{}", action_table(&actions));
    Ok(())
}

/// `wsk action list`: an `actions` header, then `/ns/name  private  kind`.
pub fn action_table(actions: &[ActionDoc]) -> String {
    let mut table = Table::headless().gap(2);
    for action in actions {
        table.push([
            action.qualified_name(),
            if action.publish { "shared" } else { "private" }.to_owned(),
            action.kind().unwrap_or_default().to_owned(),
        ]);
    }
    format!("actions\n{table}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn doc(value: Value) -> ActionDoc {
        serde_json::from_value(value).expect("action doc")
    }

    #[test]
    fn lists_actions_like_wsk() {
        let actions = [
            doc(
                json!({"namespace": "guest", "name": "hello", "publish": false,
                "annotations": [{"key": "exec", "value": "wasm"}]}),
            ),
            doc(
                json!({"namespace": "guest", "name": "my-sequence", "publish": true,
                "exec": {"kind": "sequence"}, "annotations": []}),
            ),
        ];
        assert_eq!(
            action_table(&actions),
            "actions\n\
             /guest/hello        private  wasm\n\
             /guest/my-sequence  shared   sequence\n"
        );
        assert_eq!(action_table(&[]), "actions\n");
    }

    #[test]
    fn summarizes_like_wsk() {
        let action = doc(json!({"namespace": "guest", "name": "hello",
            "parameters": [{"key": "b", "value": 1}, {"key": "a", "value": 2}],
            "annotations": [{"key": "parameters", "value": [{"name": "c"}]}]}));
        assert_eq!(
            action_summary(&action),
            "action /guest/hello: Returns a result based on parameters a, b and c\n   (parameters: *a, *b, c)\n"
        );
        let bare = doc(json!({"namespace": "guest", "name": "bare"}));
        assert_eq!(
            action_summary(&bare),
            "action /guest/bare\n   (parameters: none defined)\n"
        );
        let described = doc(json!({"namespace": "guest", "name": "d",
            "parameters": [{"key": "x", "value": 1}],
            "annotations": [{"key": "final", "value": true}, {"key": "description", "value": "Says hi"}]}));
        assert_eq!(
            action_summary(&described),
            "action /guest/d: Says hi\n   (parameters: **x)\n"
        );
    }

    #[test]
    fn infers_and_checks_the_kind() {
        use clemmys_whisk::JsKind;
        let kind = |kind: Option<&str>, file: &str| check_kind(kind, Path::new(file)).ok();
        assert_eq!(kind(None, "hello.wasm"), Some(FileKind::Wasm));
        assert_eq!(kind(None, "HELLO.WASM"), Some(FileKind::Wasm));
        assert_eq!(kind(Some("wasm"), "hello.bin"), Some(FileKind::Wasm));
        assert_eq!(
            kind(None, "hello.js"),
            Some(FileKind::JavaScript(JsKind::NodejsDefault))
        );
        assert_eq!(
            kind(Some("nodejs:20"), "hello.txt"),
            Some(FileKind::JavaScript(JsKind::Nodejs20))
        );
        let err = check_kind(Some("python:3"), Path::new("hello.py")).expect_err("python");
        assert!(err.to_string().contains("nodejs:20"), "{err}");
        let err = check_kind(None, Path::new("hello.txt")).expect_err("unknown");
        assert!(err.to_string().contains("--kind"), "{err}");
    }

    #[test]
    fn web_flags_set_annotations_like_wsk() {
        let parsed = Harness::try_parse_from([
            "action",
            "create",
            "hello",
            "hello.js",
            "--web",
            "YES",
            "--web-secure",
            "s",
        ])
        .expect("parse");
        let ActionCommand::Create(args) = parsed.command else {
            panic!("not create");
        };
        assert_eq!(args.web, Some(WebMode::On));
        assert_eq!(args.web_secure.as_deref(), Some("s"));
        let err = Harness::try_parse_from(["action", "create", "h", "h.js", "--web", "maybe"])
            .expect_err("invalid");
        assert!(err.to_string().contains("Valid input consist of"), "{err}");

        let mut annotations = KeyValues::default();
        WebMode::Raw.apply(&mut annotations);
        assert_eq!(
            Value::Object(annotations.to_object()),
            json!({"web-export": true, "raw-http": true, "final": true})
        );
        WebMode::Off.apply(&mut annotations);
        assert_eq!(
            Value::Object(annotations.to_object()),
            json!({"web-export": false, "raw-http": false, "final": false})
        );

        let mut annotations = KeyValues::default();
        apply_web_secure(&mut annotations, "true", u64::MAX);
        assert_eq!(
            annotations.get("require-whisk-auth"),
            Some(&json!(MAX_JS_INT))
        );
        // An earlier random secret is kept.
        apply_web_secure(&mut annotations, "true", 1);
        assert_eq!(
            annotations.get("require-whisk-auth"),
            Some(&json!(MAX_JS_INT))
        );
        apply_web_secure(&mut annotations, "s3cret", 1);
        assert_eq!(
            annotations.get("require-whisk-auth"),
            Some(&json!("s3cret"))
        );
        apply_web_secure(&mut annotations, "false", 1);
        assert_eq!(annotations.get("require-whisk-auth"), None);
    }

    #[test]
    fn urls_are_web_urls_for_web_actions() {
        let web = doc(json!({"namespace": "guest/demo", "name": "hello",
            "annotations": [{"key": "web-export", "value": true}]}));
        assert_eq!(
            action_url("http://127.0.0.1:3233/", &web),
            "http://127.0.0.1:3233/api/v1/web/guest/demo/hello"
        );
        let web = doc(json!({"namespace": "guest", "name": "hello",
            "annotations": [{"key": "web-export", "value": true}]}));
        assert_eq!(
            action_url("http://h", &web),
            "http://h/api/v1/web/guest/default/hello"
        );
        let plain = doc(json!({"namespace": "guest", "name": "hello"}));
        assert_eq!(
            action_url("http://h", &plain),
            "http://h/api/v1/namespaces/guest/actions/hello"
        );
    }

    #[test]
    fn wasm_exec_is_base64_binary() {
        let exec = ExecPut::wasm(b"\0asm\x01\0\0\0", Some("run".into()));
        assert_eq!(
            serde_json::to_value(&exec).expect("json"),
            json!({"kind": "wasm", "code": "AGFzbQEAAAA=", "binary": true, "main": "run"})
        );
    }

    #[tokio::test]
    async fn sequence_components_are_fully_qualified() {
        let ctx = crate::commands::tests::context_with_namespace(Some("guest"));
        // Never contacted: NAMESPACE is configured.
        let client =
            Client::new("http://127.0.0.1:1", "u:k".parse().expect("key")).expect("client");
        let components = ["a", "/other/b", "pkg/c", "/_/d"].map(String::from);
        assert_eq!(
            resolve_components(&components, &ctx, &client)
                .await
                .expect("resolved"),
            ["/guest/a", "/other/b", "/guest/pkg/c", "/guest/d"]
        );
        let err = resolve_components(&["a".into(), " ".into()], &ctx, &client)
            .await
            .expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let err = resolve_components(&["/x".into()], &ctx, &client)
            .await
            .expect_err("malformed");
        assert!(format!("{err:#}").contains("/x"), "{err:#}");
    }

    /// Parses `clemmys action …` arguments.
    #[derive(Debug, clap::Parser)]
    struct Harness {
        #[command(subcommand)]
        command: ActionCommand,
    }

    #[test]
    fn parses_wsk_style_flags() {
        let parsed = Harness::try_parse_from([
            "action",
            "create",
            "hello",
            "hello.wasm",
            "-p",
            "k",
            r#"{"a":1}"#,
            "-p",
            "n",
            "-5",
            "-a",
            "description",
            "hi",
            "-t",
            "1000",
            "-m",
            "128",
            "-l",
            "1",
            "-c",
            "2",
        ])
        .expect("parse");
        let ActionCommand::Create(args) = parsed.command else {
            panic!("not create");
        };
        let params = args.params.to_object().expect("params").expect("some");
        assert_eq!(Value::Object(params), json!({"k": {"a": 1}, "n": -5}));
        assert_eq!(
            (args.timeout, args.memory, args.logsize, args.concurrency),
            (Some(1000), Some(128), Some(1), Some(2))
        );

        let parsed =
            Harness::try_parse_from(["action", "create", "seq", "--sequence", "a,/guest/b"])
                .expect("parse");
        let ActionCommand::Create(args) = parsed.command else {
            panic!("not create");
        };
        assert_eq!(args.sequence, Some(vec!["a".into(), "/guest/b".into()]));
        assert!(
            Harness::try_parse_from(["action", "create", "s", "f.wasm", "--sequence", "a"])
                .is_err()
        );

        let parsed = Harness::try_parse_from([
            "action",
            "invoke",
            "hello",
            "-r",
            "-p",
            "name",
            "hello world",
        ])
        .expect("parse");
        let ActionCommand::Invoke(args) = parsed.command else {
            panic!("not invoke");
        };
        assert!(args.result && !args.blocking);
        let params = args.params.to_object().expect("params").expect("some");
        assert_eq!(Value::Object(params), json!({"name": "hello world"}));
    }
}
