//! `clemmys admin`: namespaces and their keys.
//!
//! When no server runs on the data directory, the store is opened directly.
//! When one does (the store is then locked), the same operations go to its
//! admin routes, authenticated with the token it wrote to
//! `DATA_DIR/admin.key`, at the address in `DATA_DIR/wskprops`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clemmys_client::{Client, Method, WskProps};
use clemmys_store::{EntityStore, RedbStore, StoreError};
use clemmys_whisk::{AuthKey, EntityName, NamespaceLimits, NamespaceRecord};
use serde_json::{Value, json};

use crate::output::outln;

/// The default data directory: `$XDG_DATA_HOME/clemmys` or `~/.local/share/clemmys`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("clemmys");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/clemmys"),
        None => PathBuf::from(".clemmys"),
    }
}

/// `clemmys admin …`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The node's data directory.
    #[arg(long, global = true, env = "CLEMMYS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Work with namespaces.
    Namespace {
        /// What to do.
        #[command(subcommand)]
        command: NamespaceAdmin,
    },
}

/// `clemmys admin namespace …`.
#[derive(Debug, clap::Subcommand)]
pub enum NamespaceAdmin {
    /// Create a namespace with a fresh key; prints `UUID:KEY`.
    Create {
        /// The namespace.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        limits: LimitArgs,
    },
    /// List namespaces with their keys.
    List,
    /// Print a namespace's `UUID:KEY`.
    Get {
        /// The namespace.
        name: String,
    },
    /// Replace a namespace's key (the old one stops working).
    Rekey {
        /// The namespace.
        name: String,
    },
    /// Change a namespace's limits.
    SetLimits {
        /// The namespace.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        limits: LimitArgs,
    },
}

/// Namespace limits on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Activations that may run at once.
    #[arg(long, value_name = "N")]
    pub concurrent_invocations: Option<u32>,
    /// Invocations accepted per minute.
    #[arg(long, value_name = "N")]
    pub invocations_per_minute: Option<u32>,
    /// Refuse plain (unprotected) actions in this namespace.
    #[arg(long)]
    pub confidential_only: Option<bool>,
}

impl LimitArgs {
    fn apply(&self, mut limits: NamespaceLimits) -> NamespaceLimits {
        if let Some(n) = self.concurrent_invocations {
            limits.concurrent_invocations = n;
        }
        if let Some(n) = self.invocations_per_minute {
            limits.invocations_per_minute = n;
        }
        if let Some(only) = self.confidential_only {
            limits.confidential_only = only;
        }
        limits
    }
}

/// Where admin operations go.
enum Backend {
    /// The store itself (no server running).
    Store(RedbStore),
    /// The running server's admin routes.
    Server(Client),
}

impl Backend {
    fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("store.redb");
        if !path.exists() {
            // A node on PostgreSQL (`--store`) keeps no store file: its
            // admin routes are the way in, when it has written its props.
            if data_dir.join("admin.key").exists() {
                return Self::server(data_dir);
            }
            bail!(
                "{} holds no Clemmys store: start `clemmys serve --data-dir {}` once",
                data_dir.display(),
                data_dir.display()
            );
        }
        match RedbStore::open(&path) {
            Ok(store) => Ok(Self::Store(store)),
            Err(StoreError::Locked) => Self::server(data_dir),
            Err(other) => Err(other).with_context(|| format!("opening {}", path.display())),
        }
    }

    /// The admin routes of the node serving from `data_dir`.
    fn server(data_dir: &Path) -> anyhow::Result<Self> {
        let props = WskProps::load_from(&data_dir.join("wskprops"))
            .context("reading the server's wskprops")?;
        let host = props
            .api_host()
            .context("the server's wskprops has no APIHOST")?
            .to_owned();
        let token = std::fs::read_to_string(data_dir.join("admin.key"))
            .with_context(|| format!("reading {}", data_dir.join("admin.key").display()))?;
        let key = AuthKey {
            uuid: "admin".into(),
            key: token.trim().to_owned(),
        };
        // The server's own wskprops names the authority of its
        // certificate, when it made one.
        let tls = props.tls_options()?;
        Ok(Self::Server(Client::with_tls(&host, key, &tls)?))
    }

    async fn list(&self) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Store(store) => Ok(store
                .list_namespaces()
                .await?
                .iter()
                .map(record_json)
                .collect()),
            Self::Server(client) => Ok(client
                .request(Method::GET, "/admin/namespaces", None)
                .await?
                .json("namespaces")?),
        }
    }

    async fn get(&self, name: &EntityName) -> anyhow::Result<Option<Value>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|record| record["name"] == name.as_str()))
    }

    /// Creates or updates `name`; `rekey` replaces its key.
    async fn put(
        &self,
        name: &EntityName,
        limits: &LimitArgs,
        rekey: bool,
    ) -> anyhow::Result<Value> {
        match self {
            Self::Store(store) => {
                let existing = store.get_namespace(name).await?;
                let auth = match &existing {
                    Some(record) if !rekey => record.auth.clone(),
                    _ => clemmys_server::bootstrap::random_auth_key()?,
                };
                let base = existing.map_or_else(NamespaceLimits::default, |record| record.limits);
                let record = NamespaceRecord {
                    name: name.clone(),
                    auth,
                    limits: limits.apply(base),
                };
                store.put_namespace(record.clone()).await?;
                Ok(record_json(&record))
            }
            Self::Server(client) => {
                let current = self.get(name).await?;
                let base = current
                    .and_then(|record| serde_json::from_value(record["limits"].clone()).ok())
                    .unwrap_or_default();
                let body = json!({ "limits": limits.apply(base), "rekey": rekey });
                let path = format!(
                    "/admin/namespaces/{}",
                    clemmys_client::encode_component(name.as_str())
                );
                let response = client
                    .request(Method::PUT, &path, Some(body.to_string().into()))
                    .await?;
                Ok(response.json("namespace")?)
            }
        }
    }
}

fn record_json(record: &NamespaceRecord) -> Value {
    json!({ "name": record.name, "auth": record.auth.to_string(), "limits": record.limits })
}

/// Runs an admin command.
pub async fn run(args: AdminArgs, json_output: bool) -> anyhow::Result<()> {
    let backend = Backend::open(&args.data_dir)?;
    let AdminCommand::Namespace { command } = args.command;
    let print = |record: &Value| -> anyhow::Result<()> {
        if json_output {
            outln!("{}", crate::output::to_pretty_json(record)?);
        } else {
            outln!("{}", record["auth"].as_str().unwrap_or_default());
        }
        Ok(())
    };
    match command {
        NamespaceAdmin::Create { name, limits } => {
            let name = EntityName::new(name)?;
            if backend.get(&name).await?.is_some() {
                bail!("namespace {name} already exists (use `rekey` or `set-limits`)");
            }
            print(&backend.put(&name, &limits, true).await?)
        }
        NamespaceAdmin::List => {
            let records = backend.list().await?;
            if json_output {
                outln!("{}", crate::output::to_pretty_json(&records)?);
            } else {
                for record in records {
                    outln!(
                        "{:<24} {}",
                        record["name"].as_str().unwrap_or_default(),
                        record["auth"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        NamespaceAdmin::Get { name } => {
            let name = EntityName::new(name)?;
            let record = backend
                .get(&name)
                .await?
                .with_context(|| format!("no namespace {name}"))?;
            print(&record)
        }
        NamespaceAdmin::Rekey { name } => {
            let name = EntityName::new(name)?;
            backend
                .get(&name)
                .await?
                .with_context(|| format!("no namespace {name}"))?;
            print(&backend.put(&name, &LimitArgs::default(), true).await?)
        }
        NamespaceAdmin::SetLimits { name, limits } => {
            let name = EntityName::new(name)?;
            backend
                .get(&name)
                .await?
                .with_context(|| format!("no namespace {name}"))?;
            let record = backend.put(&name, &limits, false).await?;
            if json_output {
                print(&record)
            } else {
                outln!("{}", crate::output::to_pretty_json(&record["limits"])?);
                Ok(())
            }
        }
    }
}
