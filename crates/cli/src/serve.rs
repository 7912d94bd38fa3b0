//! `clemmys serve`: runs a whole node in this process, or one role of a
//! scaled-out node (`--role`, `--bus nats://…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clemmys_server::{RunningServer, ServerConfig};

/// Arguments of `clemmys serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3233", env = "CLEMMYS_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for the store, keys and the generated `wskprops`.
    #[arg(long, env = "CLEMMYS_DATA_DIR", default_value_os_t = crate::admin::default_data_dir())]
    pub data_dir: PathBuf,
    /// Wasm instances that may exist at once (the sandbox's pooling
    /// allocator slots; each reserves address space, not memory).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub instance_slots: u32,
    /// MB that the memory limits of running activations may add up to
    /// (default: half of this machine's memory).
    #[arg(long, value_name = "MB")]
    pub memory_budget: Option<u32>,
    /// Pre-started, pre-attested enclaves kept idle (0: start on demand).
    #[arg(long, value_name = "N")]
    pub idle_enclaves: Option<usize>,
    /// Most enclaves bound to actions at once.
    #[arg(long, value_name = "N")]
    pub max_bound_enclaves: Option<usize>,
    /// Do not provision confidential actions ahead of their first invoke.
    #[arg(long)]
    pub no_prewarm: bool,
    /// Keep-alive of a bound enclave when an action's history says nothing
    /// better, in seconds; also the most that the 30 s floor of a
    /// history-based keep-alive can be.
    #[arg(long, value_name = "SECONDS")]
    pub keep_alive: Option<u64>,
    /// Use the key broker running as its own process at this URL
    /// (`clemmys broker serve`) instead of one in this process.
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// Certificate authorities (PEM) to trust for an https:// --broker
    /// besides the system's (the broker's `DATA_DIR/tls/ca.pem` when it
    /// made its own).
    #[arg(long, value_name = "FILE", requires = "broker")]
    pub broker_cacert: Option<PathBuf>,
    /// This host's simulated platform key file (default:
    /// DATA_DIR/sim-platform.key); a broker on this host must share it.
    #[arg(long, value_name = "FILE")]
    pub sim_platform_key: Option<PathBuf>,
    /// On ctrl-c or SIGTERM, wait at most this long for accepted
    /// activations to finish and be recorded (those still running are
    /// recorded as interrupted at the next start).
    #[arg(long, value_name = "SECONDS", default_value_t = clemmys_server::DEFAULT_SHUTDOWN_GRACE.as_secs())]
    pub shutdown_grace: u64,
    /// The JavaScript engine module (scripts/build-runtimes.sh builds it).
    /// Default: `../runtimes/wasm32-wasip1/release/clemmys-js.wasm` beside
    /// this program's directory, if it is there; without one, JavaScript
    /// actions are refused.
    #[arg(long, value_name = "FILE", env = "CLEMMYS_JS_ENGINE")]
    pub js_engine: Option<PathBuf>,
    /// Serve without a JavaScript engine, even if one is found: creating a
    /// JavaScript action is then refused.
    #[arg(long, conflicts_with = "js_engine")]
    pub no_js_engine: bool,
    /// How the store persists activation records.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The HTTP listener's limits.
    #[command(flatten)]
    pub http: HttpArgs,
    /// TLS on the listener.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Also run the attested gateway for unmodified OpenWhisk clients on
    /// this address (TLS, with its RA-TLS certificate), in front of this
    /// node; its state lives in DATA_DIR/gateway.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<SocketAddr>,
    /// The namespace owner the gateway beside this node acts for (their
    /// client identity, as `clemmys broker show` prints it), as `clemmys
    /// gateway serve --owner` does: it accepts only credentials it issues
    /// them, and reaches this node with namespace `guest`'s key. Without
    /// it the gateway runs in the owner-less TEST MODE, which protects
    /// nothing from the provider.
    #[arg(long, value_name = "HEX", requires = "gateway")]
    pub gateway_owner: Option<clemmys_proto::ClientId>,
    /// The bus between controller and invokers: NATS JetStream at
    /// `nats://HOST:PORT` (scripts/nats.sh starts one), for a controller
    /// and invokers in processes of their own. Default: in this process.
    #[arg(long = "bus", value_name = "URL", env = "CLEMMYS_BUS", value_parser = parse_bus_url)]
    pub bus_url: Option<String>,
    /// What this process does: `all` (controller and invoker), `controller`
    /// (the API; invokers elsewhere on --bus) or `invoker` (runs what --bus
    /// brings, serves no API). Roles of their own need --bus, a shared
    /// --store postgres:// and the shared key broker, --broker (the key
    /// broker's own role is `clemmys broker serve`).
    #[arg(long, value_enum, value_name = "ROLE", default_value_t = RoleArg::All)]
    pub role: RoleArg,
    /// This invoker's name on the bus (letters, digits, '-', '_'); a
    /// restarted invoker with the same name takes its queue back. Default:
    /// a random name.
    #[arg(long, value_name = "NAME", env = "CLEMMYS_INVOKER_ID")]
    pub invoker_id: Option<String>,
    /// The API URL given to actions as `__OW_API_HOST` by an invoker on its
    /// own (its controller's URL).
    #[arg(long, value_name = "URL")]
    pub api_host: Option<String>,
}

/// What a `clemmys serve` process does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Controller and invoker in this process.
    All,
    /// The API and scheduling; invokers run elsewhere, on the bus.
    Controller,
    /// Runs activations from the bus; serves no API.
    Invoker,
}

/// Accepts `nats://` URLs only.
fn parse_bus_url(url: &str) -> Result<String, String> {
    if url.starts_with("nats://") {
        Ok(url.to_owned())
    } else {
        Err("only nats:// URLs are supported (without --bus the bus is in this process)".into())
    }
}

/// TLS on a listener (`clemmys serve`, `clemmys broker serve`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS. Without --tls-cert, with a certificate from an
    /// authority this server makes on first start in DATA_DIR/tls: clients
    /// trust DATA_DIR/tls/ca.pem (`clemmys --cacert`, `curl --cacert`,
    /// `NODE_EXTRA_CA_CERTS`); the local `wskprops` names it.
    #[arg(long)]
    pub tls: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A name (DNS or IP address) the made certificate is also for, besides
    /// localhost, the loopback and listen addresses; repeatable.
    #[arg(long = "tls-name", value_name = "NAME", conflicts_with = "tls_cert")]
    pub tls_names: Vec<String>,
    /// Ask every client for a certificate issued by an authority in this
    /// PEM file, and refuse those without one.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The listener's TLS, or `None` for plain HTTP.
    pub fn listener_tls(&self) -> anyhow::Result<Option<clemmys_server::ListenerTls>> {
        let certificate = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => clemmys_server::CertificateSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None) if self.tls => clemmys_server::CertificateSource::Local {
                extra_names: self.tls_names.clone(),
            },
            (None, None) => {
                if !self.tls_names.is_empty() || self.tls_client_ca.is_some() {
                    anyhow::bail!("--tls-name and --tls-client-ca need --tls or --tls-cert");
                }
                return Ok(None);
            }
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        Ok(Some(clemmys_server::ListenerTls {
            certificate,
            client_ca: self.tls_client_ca.clone(),
        }))
    }
}

/// When an activation record is durable (`--record-durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordDurabilityArg {
    /// Answer once the record is readable; commit it with the others of
    /// its interval.
    Group,
    /// Answer only once the record is on disk.
    Sync,
}

/// What a start after a crash costs (`--crash-recovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashRecoveryArg {
    /// Every commit saves the store's allocation state (one more fsync), so
    /// a start after a crash serves at once, however large the store.
    Quick,
    /// Commits save nothing extra; a start after a crash first reads the
    /// whole store file, longer the larger it is.
    Full,
}

/// How the node's store persists activation records.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Keep entities and activation records in this PostgreSQL database
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`) instead of the
    /// embedded store in the data directory. The schema is created or
    /// migrated on start; the database sees what the store file would:
    /// sealed code and sealed results of confidential actions.
    #[arg(long = "store", value_name = "URL", env = "CLEMMYS_STORE", value_parser = parse_store_url)]
    pub store_url: Option<String>,
    /// When a blocking invoke may be answered: `group` once its record is
    /// readable (a crash loses the records of the last commit interval,
    /// whose callers already hold their results); `sync` once the record
    /// is on disk. Stand-ins of 202-acknowledged activations, actions and
    /// namespaces are on disk before they are acknowledged either way.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = RecordDurabilityArg::Group)]
    pub record_durability: RecordDurabilityArg,
    /// Under `group`, the longest an activation record waits for the
    /// commit that puts it on disk.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = u64::try_from(clemmys_store::DEFAULT_COMMIT_INTERVAL.as_millis()).unwrap_or(100),
        value_parser = clap::value_parser!(u64).range(1..=10_000)
    )]
    pub record_commit_interval: u64,
    /// Delete activation records that started more than this many days
    /// ago, in the background (0: keep them forever).
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=36_500)
    )]
    pub activation_retention: u64,
    /// What a start after a crash or a kill costs: `full` commits faster
    /// and then reads the whole store file before serving (seconds per GB);
    /// `quick` makes every durable commit about 2 ms slower (one more fsync
    /// and the allocation state) so that such a start serves at once.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = CrashRecoveryArg::Full)]
    pub crash_recovery: CrashRecoveryArg,
}

/// Accepts `postgres://` and `postgresql://` URLs only.
fn parse_store_url(url: &str) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err("only postgres:// URLs are supported (without --store the node keeps its store in the data directory)".into())
    }
}

impl StoreArgs {
    /// Where these arguments put the store.
    pub fn location(&self) -> clemmys_server::StoreLocation {
        match &self.store_url {
            Some(url) => {
                clemmys_server::StoreLocation::Postgres(clemmys_store::PostgresConfig::new(url))
            }
            None => clemmys_server::StoreLocation::DataDir,
        }
    }

    /// The store configuration these arguments describe.
    pub fn config(&self) -> clemmys_store::StoreConfig {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        clemmys_store::StoreConfig {
            record_durability: match self.record_durability {
                RecordDurabilityArg::Group => clemmys_store::RecordDurability::Group,
                RecordDurabilityArg::Sync => clemmys_store::RecordDurability::Sync,
            },
            commit_interval: Duration::from_millis(self.record_commit_interval),
            activation_retention: (self.activation_retention > 0).then(|| {
                DAY.saturating_mul(u32::try_from(self.activation_retention).unwrap_or(u32::MAX))
            }),
            crash_recovery: match self.crash_recovery {
                CrashRecoveryArg::Quick => clemmys_store::CrashRecovery::Quick,
                CrashRecoveryArg::Full => clemmys_store::CrashRecovery::Full,
            },
            ..clemmys_store::StoreConfig::default()
        }
    }
}

/// The HTTP listener's limits against clients that hold connections (of
/// `clemmys serve` and `clemmys broker serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Close a connection whose request head (request line and headers)
    /// has not arrived in full this long after the connection was ready
    /// for it, or whose request body stalls this long.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = clemmys_server::listener::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub header_read_timeout: u64,
    /// Close a connection that has had no request in progress this long.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = clemmys_server::listener::DEFAULT_IDLE_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub idle_timeout: u64,
    /// Connections open at once; past it new connections wait in the
    /// listen backlog until one closes. Keep it below the process's
    /// file-descriptor limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = clemmys_server::listener::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_connections: usize,
}

impl HttpArgs {
    /// The listener limits these arguments describe.
    pub fn limits(&self) -> clemmys_server::HttpLimits {
        clemmys_server::HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: self.max_connections,
        }
    }
}

impl ServeArgs {
    /// The node configuration these arguments describe.
    pub fn config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::new(self.listen, self.data_dir.clone());
        config.sandbox = clemmys_sandbox::SandboxConfig::with_slots(self.instance_slots.max(1));
        if let Some(budget) = self.memory_budget {
            config.invoker.memory_budget_mb = budget;
        }
        if let Some(idle) = self.idle_enclaves {
            config.enclave_pool.idle_target = idle;
        }
        if let Some(max) = self.max_bound_enclaves {
            config.enclave_pool.max_bound = max.max(1);
        }
        config.enclave_pool.prewarm = !self.no_prewarm;
        if let Some(seconds) = self.keep_alive {
            config.enclave_pool.keep_alive.fixed_keep_alive = Duration::from_secs(seconds);
        }
        if let Some(url) = &self.broker {
            config.broker = clemmys_server::BrokerLocation::Remote {
                url: url.clone(),
                tls: clemmys_client::ClientTlsOptions {
                    ca_file: self.broker_cacert.clone(),
                    ..clemmys_client::ClientTlsOptions::default()
                },
            };
        }
        config.sim_platform_key = self.sim_platform_key.clone();
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        config.http = self.http.limits();
        config.store = self.store.config();
        config.store_location = self.store.location();
        config.js_engine = if self.no_js_engine {
            None
        } else {
            self.js_engine.clone().or_else(default_js_engine)
        };
        config.tls = self.tls.listener_tls()?;
        if let Some(url) = &self.bus_url {
            config.bus =
                clemmys_server::BusLocation::Nats(clemmys_bus::nats::NatsConfig::new(url.clone()));
        }
        config.role = match self.role {
            RoleArg::All => clemmys_server::NodeRole::All,
            RoleArg::Controller => clemmys_server::NodeRole::Controller,
            RoleArg::Invoker => clemmys_server::NodeRole::Invoker,
        };
        if let Some(id) = &self.invoker_id {
            anyhow::ensure!(
                clemmys_bus::nats::valid_invoker_id(id),
                "--invoker-id {id:?}: use letters, digits, '-' and '_' only (at most 64 characters)"
            );
        }
        config.invoker_id = self.invoker_id.clone();
        config.invoker.api_host = self.api_host.clone();
        Ok(config)
    }
}

/// The engine a cargo build of this repository puts beside `target/<profile>`.
pub(crate) fn default_js_engine() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .join("../runtimes/wasm32-wasip1/release/clemmys-js.wasm");
    path.is_file().then_some(path)
}

/// Runs the server until ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.role == RoleArg::Invoker {
        let invoker = clemmys_server::invoker_node::RunningInvoker::start(args.config()?)
            .await
            .context("starting the invoker")?;
        eprintln!(
            "clemmys: invoker {} taking activations off the bus",
            invoker.id
        );
        return invoker.run_until_signal().await;
    }
    let server = RunningServer::start(args.config()?)
        .await
        .with_context(|| {
            format!(
                "starting the server on {} with data dir {}",
                args.listen,
                args.data_dir.display()
            )
        })?;
    eprintln!(
        "clemmys: serving the OpenWhisk API on {}/api/v1",
        server.api_host()
    );
    eprintln!(
        "clemmys: credentials for namespace 'guest' are in {}",
        args.data_dir.join("wskprops").display()
    );
    if let Some(ca_file) = &server.ca_file {
        eprintln!(
            "clemmys: TLS certificate from this server's own authority; clients trust {} (clemmys --cacert, curl --cacert, NODE_EXTRA_CA_CERTS)",
            ca_file.display()
        );
    }
    let Some(listen) = args.gateway else {
        return server.run_until_signal().await;
    };
    let gateway = clemmys_server::gateway_node::RunningGateway::start(
        clemmys_server::gateway_node::GatewayNodeConfig {
            listen,
            node: server.api_host(),
            node_tls: clemmys_client::ClientTlsOptions {
                ca_file: server.ca_file.clone(),
                ..clemmys_client::ClientTlsOptions::default()
            },
            // Beside the node: requests go to it without a socket.
            node_in_process: Some(server.in_process()),
            state_dir: args.data_dir.join("gateway"),
            // The node's platform: the gateway's evidence and the
            // broker's come from the same (simulated) host.
            sim_platform_key: Some(
                args.sim_platform_key
                    .clone()
                    .unwrap_or_else(|| args.data_dir.join("sim-platform.key")),
            ),
            namespace: "guest".to_owned(),
            extra_names: Vec::new(),
            http: args.http.limits(),
            // Without an owner: the test mode, which uses each caller's key.
            owner: args.gateway_owner,
            node_auth: args.gateway_owner.map(|_| server.guest_auth.clone()),
            client_log_limit: clemmys_gateway::DEFAULT_CLIENT_LOG_LIMIT,
        },
    )
    .await
    .with_context(|| format!("starting the attested gateway on {listen}"))?;
    crate::commands::gateway::announce(&gateway);
    clemmys_server::bootstrap::shutdown_signal().await;
    eprintln!("clemmys: shutting down");
    gateway.shutdown().await;
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    /// `HttpArgs` on their own.
    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        http: super::HttpArgs,
    }

    /// `StoreArgs` on their own.
    #[derive(Debug, clap::Parser)]
    struct StoreFlags {
        #[command(flatten)]
        store: super::StoreArgs,
    }

    #[test]
    fn store_flags_default_to_group_commit_and_keeping_records() {
        let flags = StoreFlags::try_parse_from(["clemmys"]).expect("parses");
        assert_eq!(flags.store.config(), clemmys_store::StoreConfig::default());
    }

    #[test]
    fn store_flags_set_durability_interval_and_retention() {
        let flags = StoreFlags::try_parse_from([
            "clemmys",
            "--record-durability",
            "sync",
            "--record-commit-interval",
            "25",
            "--activation-retention",
            "7",
        ])
        .expect("parses");
        let config = flags.store.config();
        assert_eq!(
            config.record_durability,
            clemmys_store::RecordDurability::Sync
        );
        assert_eq!(config.commit_interval, Duration::from_millis(25));
        assert_eq!(
            config.activation_retention,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        for (flag, value) in [
            ("--record-durability", "eventually"),
            ("--record-commit-interval", "0"),
            ("--activation-retention", "-1"),
        ] {
            assert!(
                StoreFlags::try_parse_from(["clemmys", flag, value]).is_err(),
                "{flag} {value}"
            );
        }
    }

    #[test]
    fn the_store_is_the_data_dir_unless_a_postgres_url_is_given() {
        let flags = StoreFlags::try_parse_from(["clemmys"]).expect("parses");
        assert!(matches!(
            flags.store.location(),
            clemmys_server::StoreLocation::DataDir
        ));
        let url = "postgres://clemmys@db.example:5433/clemmys";
        let flags = StoreFlags::try_parse_from(["clemmys", "--store", url]).expect("parses");
        match flags.store.location() {
            clemmys_server::StoreLocation::Postgres(postgres) => assert_eq!(postgres.url, url),
            other => panic!("not on PostgreSQL: {other:?}"),
        }
        for refused in ["mysql://db/clemmys", "/var/lib/clemmys/store.redb", ""] {
            assert!(
                StoreFlags::try_parse_from(["clemmys", "--store", refused]).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_role_of_its_own_runs_on_a_nats_bus() {
        let flags = crate::Cli::try_parse_from(["clemmys", "serve"]).expect("parses");
        let crate::Command::Serve(serve) = flags.command else {
            panic!("not serve");
        };
        let config = serve.config().expect("a config");
        assert!(matches!(config.bus, clemmys_server::BusLocation::InProcess));
        assert_eq!(config.role, clemmys_server::NodeRole::All);

        let flags = crate::Cli::try_parse_from([
            "clemmys",
            "serve",
            "--role",
            "invoker",
            "--bus",
            "nats://127.0.0.1:4222",
            "--invoker-id",
            "invoker0",
        ])
        .expect("parses");
        let crate::Command::Serve(serve) = flags.command else {
            panic!("not serve");
        };
        let config = serve.config().expect("a config");
        match &config.bus {
            clemmys_server::BusLocation::Nats(nats) => {
                assert_eq!(nats.url, "nats://127.0.0.1:4222");
            }
            other => panic!("not on NATS: {other:?}"),
        }
        assert_eq!(config.role, clemmys_server::NodeRole::Invoker);
        assert_eq!(config.invoker_id.as_deref(), Some("invoker0"));

        assert!(
            crate::Cli::try_parse_from(["clemmys", "serve", "--bus", "amqp://broker"]).is_err()
        );
        let flags = crate::Cli::try_parse_from(["clemmys", "serve", "--invoker-id", "a.b"])
            .expect("parses");
        let crate::Command::Serve(serve) = flags.command else {
            panic!("not serve");
        };
        assert!(
            serve.config().is_err(),
            "a dotted id would split the subject"
        );
    }

    #[test]
    fn listener_flags_default_to_the_servers_limits() {
        let flags = Flags::try_parse_from(["clemmys"]).expect("parses");
        assert_eq!(flags.http.limits(), clemmys_server::HttpLimits::default());
    }

    #[test]
    fn listener_flags_set_the_limits() {
        let flags = Flags::try_parse_from([
            "clemmys",
            "--header-read-timeout",
            "3",
            "--idle-timeout",
            "7",
            "--max-connections",
            "5",
        ])
        .expect("parses");
        let limits = flags.http.limits();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(3));
        assert_eq!(limits.idle_timeout, Duration::from_secs(7));
        assert_eq!(limits.max_connections, 5);
    }

    #[test]
    fn zero_listener_limits_are_refused() {
        for flag in [
            "--header-read-timeout",
            "--idle-timeout",
            "--max-connections",
        ] {
            assert!(
                Flags::try_parse_from(["clemmys", flag, "0"]).is_err(),
                "{flag} 0"
            );
        }
    }
}
