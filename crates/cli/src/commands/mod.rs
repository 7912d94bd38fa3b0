//! The API subcommands (`action`, `activation`, `namespace`, `package`,
//! `property`, `rule`, `trigger`) and
//! the [`Context`] they share: settings from flags and `wskprops`, the
//! output mode, and a way to get a [`Client`].
//!
//! A new subcommand is a module here with a clap `Subcommand` enum and an
//! `async fn run(command, &Context) -> anyhow::Result<()>`, plus one variant
//! in `main.rs`.

pub mod action;
pub mod activation;
pub mod broker;
pub mod confidential;
pub mod gateway;
pub mod list;
pub mod namespace;
pub mod package;
pub mod property;
pub mod rule;
pub mod trigger;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clemmys_client::{Client, ClientTlsOptions, Exchange, WskProps};
use clemmys_whisk::{AuthKey, FullyQualifiedName};
use serde_json::{Map, Value};

use crate::output::Output;

/// Options every subcommand accepts, as in `wsk`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Whisk API host, http://HOST:PORT (overrides APIHOST; alone, in
    /// `property get`, shows it).
    #[arg(long, global = true, value_name = "HOST")]
    pub apihost: Option<Option<String>>,
    /// Authorization KEY, UUID:KEY (overrides AUTH; alone, in `property
    /// get`, shows it).
    #[arg(short = 'u', long, global = true, value_name = "KEY")]
    pub auth: Option<Option<String>>,
    /// Print machine-readable JSON only.
    #[arg(long, global = true)]
    pub json: bool,
    /// Say where settings come from and show every HTTP request.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// Do not check the API host's TLS certificate (as `wsk -i`).
    /// Confidential actions stay sealed end to end; the API key and plain
    /// actions' data are then open to anyone on the network path.
    #[arg(short = 'i', long, global = true)]
    pub insecure: bool,
    /// Client certificate chain (PEM) for servers that ask for one
    /// (overrides CERT; `property set` saves it; alone, in `property
    /// unset`, removes it).
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<Option<PathBuf>>,
    /// The client certificate's private key (PEM) (overrides KEY).
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<Option<PathBuf>>,
    /// Certificate authorities (PEM) to trust for an https:// API host
    /// besides the system's (overrides CACERT; `clemmys serve --tls` makes
    /// one).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<Option<PathBuf>>,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The user's properties file.
    Props(PathBuf),
    /// The `wskprops` that `clemmys serve` writes into its data directory.
    ServerProps(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("the command line"),
            Self::Props(path) => write!(f, "{}", path.display()),
            Self::ServerProps(path) => {
                write!(f, "{} (written by `clemmys serve`)", path.display())
            }
        }
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// Its origin.
    pub source: Source,
}

/// The TLS files given as flags.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--cacert`.
    pub cacert: Option<PathBuf>,
    /// The flags given without a file (`property unset` takes them so).
    pub alone: Vec<&'static str>,
}

impl TlsFlags {
    /// The TLS flags of `global`.
    pub fn new(global: &GlobalArgs) -> Self {
        let alone = [
            ("--cert", &global.cert),
            ("--key", &global.key),
            ("--cacert", &global.cacert),
        ]
        .into_iter()
        .filter(|(_, value)| matches!(value, Some(None)))
        .map(|(flag, _)| flag)
        .collect();
        Self {
            cert: global.cert.clone().flatten(),
            key: global.key.clone().flatten(),
            cacert: global.cacert.clone().flatten(),
            alone,
        }
    }

    /// An error for a flag given without its file.
    pub fn check_values(&self) -> anyhow::Result<()> {
        match self.alone.first() {
            Some(flag) => bail!("{flag} needs a value: {flag} FILE"),
            None => Ok(()),
        }
    }
}

/// What every subcommand gets: resolved settings, the output mode, and the
/// means to build a [`Client`].
#[derive(Debug)]
pub struct Context {
    /// Human or JSON output.
    pub output: Output,
    /// `--verbose`.
    pub verbose: bool,
    /// The user's properties file, as loaded (for `property set`).
    pub props: WskProps,
    /// Its path.
    pub props_path: PathBuf,
    /// The API host in effect.
    pub api_host: Option<Setting>,
    /// The API key in effect.
    pub auth: Option<Setting>,
    /// The namespace in effect (`NAMESPACE`), if one is configured.
    pub namespace: Option<Setting>,
    /// `--apihost` was given without a value.
    pub apihost_flag_alone: bool,
    /// `--auth` was given without a value.
    pub auth_flag_alone: bool,
    /// How an `https://` API host is checked: flags, then the properties
    /// file, then the local server's `wskprops` when its API host is used.
    pub tls: ClientTlsOptions,
    /// The TLS files given on the command line (for `property set`).
    pub tls_flags: TlsFlags,
    /// The key's own namespace, once asked for (see [`Context::own_namespace`]).
    resolved_namespace: std::sync::OnceLock<String>,
}

impl Context {
    /// Resolves settings: flags, then `$WSK_CONFIG_FILE` or `~/.wskprops`,
    /// then — when no API key was found — the `wskprops` of the local
    /// server's data directory.
    pub fn new(global: &GlobalArgs) -> anyhow::Result<Self> {
        let output = Output::new(global.json);
        let props_path = WskProps::default_path()?;
        let props = WskProps::load_from(&props_path)
            .with_context(|| format!("loading {}", props_path.display()))?;
        let from_props = |value: Option<&str>| {
            value.map(|value| Setting {
                value: value.to_owned(),
                source: Source::Props(props_path.clone()),
            })
        };
        let flag = |value: &Option<Option<String>>| {
            value.clone().flatten().map(|value| Setting {
                value,
                source: Source::Flag,
            })
        };
        let mut context = Self {
            output,
            verbose: global.verbose,
            api_host: flag(&global.apihost).or_else(|| from_props(props.api_host())),
            auth: flag(&global.auth).or_else(|| from_props(props.auth())),
            // NAMESPACE belongs to the key in the same file: a key given on
            // the command line may be of another namespace.
            namespace: if flag(&global.auth).is_some() {
                None
            } else {
                from_props(props.namespace())
            },
            apihost_flag_alone: matches!(global.apihost, Some(None)),
            auth_flag_alone: matches!(global.auth, Some(None)),
            tls: props
                .tls_options()
                .with_context(|| format!("reading the TLS settings of {}", props_path.display()))?,
            tls_flags: TlsFlags::new(global),
            resolved_namespace: std::sync::OnceLock::new(),
            props,
            props_path,
        };
        if context.auth.is_none() {
            context.fall_back_to_server_props()?;
        }
        context.tls.insecure = global.insecure;
        if let Some(cacert) = &context.tls_flags.cacert {
            context.tls.ca_file = Some(cacert.clone());
        }
        match (&context.tls_flags.cert, &context.tls_flags.key) {
            (Some(cert), Some(key)) => context.tls.identity = Some((cert.clone(), key.clone())),
            (None, None) => {}
            _ => bail!("--cert and --key go together: a client certificate and its key"),
        }
        if context.verbose {
            for (name, setting) in [
                ("API host", &context.api_host),
                ("API key", &context.auth),
                ("namespace", &context.namespace),
            ] {
                match setting {
                    Some(setting) => eprintln!("clemmys: {name} from {}", setting.source),
                    None => eprintln!("clemmys: no {name} configured"),
                }
            }
        }
        Ok(context)
    }

    /// Takes `AUTH` (and `APIHOST`, `NAMESPACE` where still unset) from the
    /// `wskprops` that `clemmys serve` writes.
    fn fall_back_to_server_props(&mut self) -> anyhow::Result<()> {
        let path = server_props_path();
        if !path.exists() {
            return Ok(());
        }
        let server = WskProps::load_from(&path)
            .with_context(|| format!("loading the local server's {}", path.display()))?;
        let Some(auth) = server.auth() else {
            return Ok(());
        };
        let setting = |value: &str| Setting {
            value: value.to_owned(),
            source: Source::ServerProps(path.clone()),
        };
        self.auth = Some(setting(auth));
        if self.api_host.is_none() {
            self.api_host = server.api_host().map(setting);
            // The authority the server made for its own certificate.
            if let Some(cacert) = server.get(clemmys_client::wskprops::CACERT) {
                self.tls.ca_file = Some(PathBuf::from(cacert));
            }
        }
        if self.namespace.is_none() {
            self.namespace = server.namespace().map(setting);
        }
        if self.verbose {
            eprintln!(
                "clemmys: no AUTH in {} or on the command line; using the local server's credentials from {}",
                self.props_path.display(),
                path.display()
            );
        }
        Ok(())
    }

    /// The namespace that relative names are shown in: `NAMESPACE`, or `_`.
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_ref()
            .map_or(clemmys_client::DEFAULT_NAMESPACE, |s| s.value.as_str())
    }

    /// The namespace to show: `NAMESPACE` when set, else the first
    /// namespace the key may use (asked once), else `_`.
    pub async fn own_namespace(&self, client: &Client) -> String {
        let configured = self.namespace();
        if configured != clemmys_client::DEFAULT_NAMESPACE {
            return configured.to_owned();
        }
        if let Some(known) = self.resolved_namespace.get() {
            return known.clone();
        }
        let found = client
            .list_namespaces()
            .await
            .ok()
            .and_then(|names| names.into_iter().next())
            .unwrap_or_else(|| clemmys_client::DEFAULT_NAMESPACE.to_owned());
        self.resolved_namespace.get_or_init(|| found).clone()
    }

    /// A name as `wsk` shows it: `/ns/[pkg/]name`, relative names in
    /// [`namespace`](Self::namespace).
    pub fn display_name(&self, name: &str) -> anyhow::Result<FullyQualifiedName> {
        Ok(clemmys_client::resolve_name_in(name, self.namespace())?)
    }

    /// A client for the API host and key in effect.
    pub fn client(&self) -> anyhow::Result<Client> {
        if self.apihost_flag_alone {
            bail!("--apihost needs a value: --apihost http://HOST:PORT");
        }
        if self.auth_flag_alone {
            bail!("--auth needs a value: --auth UUID:KEY");
        }
        self.tls_flags.check_values()?;
        let Some(api_host) = &self.api_host else {
            // A properties file named (WSK_CONFIG_FILE) but missing is the
            // likely cause: say so.
            let missing = if self.props_path.exists() {
                String::new()
            } else {
                format!(
                    " (the properties file {} does not exist)",
                    self.props_path.display()
                )
            };
            bail!(
                "no API host is configured{missing}: pass --apihost http://HOST:PORT, or run `clemmys property set --apihost http://HOST:PORT`, or start a local server with `clemmys serve`"
            );
        };
        let Some(auth) = &self.auth else {
            bail!(
                "no API key is configured: pass --auth UUID:KEY, or run `clemmys property set --auth UUID:KEY`, or start a local server with `clemmys serve` (it writes {})",
                server_props_path().display()
            );
        };
        let key: AuthKey = auth.value.parse().with_context(|| {
            format!(
                "the API key from {} is not of the form UUID:KEY",
                auth.source
            )
        })?;
        if self.tls.insecure && self.verbose {
            eprintln!("clemmys: --insecure: the API host's certificate is not checked");
        }
        let client = Client::with_tls(&api_host.value, key, &self.tls)
            .with_context(|| format!("using the API host from {}", api_host.source))?;
        Ok(if self.verbose {
            client.with_observer(Arc::new(|exchange: &Exchange<'_>| {
                let status = exchange
                    .status
                    .map_or_else(|| "no response".to_owned(), |s| s.to_string());
                eprintln!(
                    "clemmys: {} {} -> {status} ({} ms)",
                    exchange.method,
                    exchange.uri,
                    exchange.elapsed.as_millis()
                );
            }))
        } else {
            client
        })
    }
}

/// The `wskprops` that `clemmys serve` writes: in `$CLEMMYS_DATA_DIR` (the
/// same variable `serve --data-dir` reads) or the default data directory.
pub fn server_props_path() -> PathBuf {
    std::env::var_os("CLEMMYS_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(crate::admin::default_data_dir, PathBuf::from)
        .join("wskprops")
}

/// `-p/--param KEY VALUE` and `-P/--param-file FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ParamArgs {
    /// Parameter KEY VALUE; VALUE is taken as JSON when it is valid JSON,
    /// else as a string (repeatable).
    #[arg(
        short = 'p',
        long = "param",
        num_args = 2,
        value_names = ["KEY", "VALUE"],
        action = clap::ArgAction::Append,
        allow_hyphen_values = true
    )]
    pub param: Vec<String>,
    /// FILE holding a JSON object of parameters (-p wins over it).
    #[arg(short = 'P', long = "param-file", value_name = "FILE")]
    pub param_file: Option<PathBuf>,
}

impl ParamArgs {
    /// The parameters, or `None` when none were given.
    pub fn to_object(&self) -> anyhow::Result<Option<Map<String, Value>>> {
        key_values("parameter", &self.param, self.param_file.as_deref())
    }
}

/// `-a/--annotation KEY VALUE` and `-A/--annotation-file FILE`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AnnotationArgs {
    /// Annotation KEY VALUE; VALUE is taken as JSON when it is valid JSON,
    /// else as a string (repeatable).
    #[arg(
        short = 'a',
        long = "annotation",
        num_args = 2,
        value_names = ["KEY", "VALUE"],
        action = clap::ArgAction::Append,
        allow_hyphen_values = true
    )]
    pub annotation: Vec<String>,
    /// FILE holding a JSON object of annotations (-a wins over it).
    #[arg(short = 'A', long = "annotation-file", value_name = "FILE")]
    pub annotation_file: Option<PathBuf>,
}

impl AnnotationArgs {
    /// The annotations, or `None` when none were given.
    pub fn to_object(&self) -> anyhow::Result<Option<Map<String, Value>>> {
        key_values(
            "annotation",
            &self.annotation,
            self.annotation_file.as_deref(),
        )
    }
}

/// A `-p`/`-a` VALUE as `wsk` reads it: JSON when it parses as JSON (`1`,
/// `true`, `{"a":1}`, `"quoted"`), else the text itself as a string.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Merges a JSON-object file and `KEY VALUE` pairs (pairs win); `None` when
/// neither was given.
pub fn key_values(
    what: &str,
    pairs: &[String],
    file: Option<&Path>,
) -> anyhow::Result<Option<Map<String, Value>>> {
    if pairs.is_empty() && file.is_none() {
        return Ok(None);
    }
    let mut object = Map::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the {what} file {}", file.display()))?;
        match serde_json::from_str::<Value>(&text)
            .with_context(|| format!("the {what} file {} is not valid JSON", file.display()))?
        {
            Value::Object(from_file) => object.extend(from_file),
            _ => bail!(
                "the {what} file {} must hold a JSON object ({{\"key\": value, …}})",
                file.display()
            ),
        }
    }
    for pair in pairs.chunks(2) {
        match pair {
            [key, value] => {
                object.insert(key.clone(), parse_value(value));
            }
            _ => bail!("each {what} needs a KEY and a VALUE"),
        }
    }
    Ok(Some(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_json_when_valid_else_strings() {
        assert_eq!(parse_value(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_value("hello"), json!("hello"));
        assert_eq!(parse_value("hello world"), json!("hello world"));
        assert_eq!(parse_value("42"), json!(42));
        assert_eq!(parse_value("-1.5"), json!(-1.5));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("null"), json!(null));
        assert_eq!(parse_value(r#""quoted""#), json!("quoted"));
        assert_eq!(parse_value("[1, 2"), json!("[1, 2"));
        assert_eq!(parse_value(""), json!(""));
    }

    #[test]
    fn pairs_override_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("params.json");
        std::fs::write(&file, r#"{"a": 1, "b": "file"}"#).expect("write");
        let pairs = [
            "b".to_owned(),
            "cli".to_owned(),
            "c".to_owned(),
            "[1]".to_owned(),
        ];
        let object = key_values("parameter", &pairs, Some(&file))
            .expect("valid")
            .expect("some");
        assert_eq!(Value::Object(object), json!({"a": 1, "b": "cli", "c": [1]}));
        assert_eq!(key_values("parameter", &[], None).expect("valid"), None);
        std::fs::write(&file, "[1, 2]").expect("write");
        let err = key_values("parameter", &[], Some(&file)).expect_err("not an object");
        assert!(err.to_string().contains("JSON object"), "{err}");
    }

    /// A context with no API host or key, in `namespace`.
    pub(crate) fn context_with_namespace(namespace: Option<&str>) -> Context {
        Context {
            output: Output::new(false),
            verbose: false,
            props: WskProps::default(),
            props_path: PathBuf::from("/nonexistent/wskprops"),
            api_host: None,
            auth: None,
            namespace: namespace.map(|value| Setting {
                value: value.to_owned(),
                source: Source::Flag,
            }),
            apihost_flag_alone: false,
            auth_flag_alone: false,
            tls: ClientTlsOptions::default(),
            tls_flags: TlsFlags::default(),
            resolved_namespace: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn names_are_shown_in_the_configured_namespace() {
        let ctx = context_with_namespace(None);
        assert_eq!(
            ctx.display_name("hello").expect("ok").to_string(),
            "/_/hello"
        );
        let ctx = context_with_namespace(Some("guest"));
        assert_eq!(
            ctx.display_name("hello").expect("ok").to_string(),
            "/guest/hello"
        );
        assert_eq!(
            ctx.display_name("/other/pkg/x").expect("ok").to_string(),
            "/other/pkg/x"
        );
        assert!(ctx.display_name("a/b/c").is_err());
    }

    #[test]
    fn missing_settings_give_actionable_errors() {
        let ctx = context_with_namespace(None);
        let err = ctx.client().expect_err("no host");
        assert!(err.to_string().contains("--apihost"), "{err}");
        let mut ctx = context_with_namespace(None);
        ctx.api_host = Some(Setting {
            value: "http://127.0.0.1:1".into(),
            source: Source::Flag,
        });
        let err = ctx.client().expect_err("no key");
        assert!(err.to_string().contains("clemmys serve"), "{err}");
        ctx.auth = Some(Setting {
            value: "nocolon".into(),
            source: Source::Flag,
        });
        let err = ctx.client().expect_err("bad key");
        assert!(format!("{err:#}").contains("UUID:KEY"), "{err:#}");
        ctx.auth = Some(Setting {
            value: "u:k".into(),
            source: Source::Flag,
        });
        assert!(ctx.client().is_ok());
        ctx.api_host = Some(Setting {
            value: "https://example.test".into(),
            source: Source::Flag,
        });
        ctx.tls.insecure = true;
        assert!(ctx.client().is_ok(), "an https:// host is usable");
        ctx.tls.insecure = false;
        ctx.tls.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        let err = ctx.client().expect_err("missing CA file");
        assert!(
            format!("{err:#}").contains("/nonexistent/ca.pem"),
            "{err:#}"
        );
    }
}
