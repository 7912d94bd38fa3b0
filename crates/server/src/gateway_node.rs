//! The attested gateway as a process (`clemmys gateway serve`, or beside a
//! node with `clemmys serve --gateway ADDR`): its simulated enclave, and
//! the host's listener serving it. The gateway itself (its keys, its
//! certificate, everything it seals and opens) is `clemmys-gateway`; this
//! is the host side that gives it a socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clemmys_client::LocalApi;
use clemmys_gateway::{Gateway, GatewayConfig};
use clemmys_tee::sim::SimTee;
use clemmys_tee::{Role, measurement};
use clemmys_tls::ClientTlsOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::confidential::load_platform;
use crate::listener::{self, HttpLimits};

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayNodeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The node's API host.
    pub node: String,
    /// How the node's certificate is checked.
    pub node_tls: ClientTlsOptions,
    /// The node, when it runs in this process: called without a socket
    /// ([`crate::in_process`]); `node` still names it in the gateway's
    /// state.
    pub node_in_process: Option<Arc<dyn LocalApi>>,
    /// The gateway's state directory (sealed secrets, certificate, client
    /// state).
    pub state_dir: PathBuf,
    /// The host's simulated platform key (default
    /// `STATE_DIR/sim-platform.key`): the node's, so that the gateway's
    /// evidence and the broker's come from the same (simulated) platform.
    pub sim_platform_key: Option<PathBuf>,
    /// The namespace it serves.
    pub namespace: String,
    /// Names for its certificate besides `localhost`, the loopback
    /// addresses and the listen address.
    pub extra_names: Vec<String>,
    /// The listener's limits.
    pub http: HttpLimits,
    /// The namespace owner it acts for (under the owner's delegation) and
    /// issues credentials to; `None`: test mode.
    pub owner: Option<clemmys_proto::ClientId>,
    /// The namespace key it uses towards the node when it has an owner.
    pub node_auth: Option<clemmys_whisk::AuthKey>,
    /// The most bytes each of its client logs keeps
    /// ([`clemmys_gateway::GatewayConfig::client_log_limit`]).
    pub client_log_limit: u64,
}

/// A gateway that is serving.
pub struct RunningGateway {
    /// The bound address.
    pub addr: SocketAddr,
    /// The gateway.
    pub gateway: Arc<Gateway>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    /// Starts a gateway in a `sim` enclave of the gateway's measurement.
    pub async fn start(config: GatewayNodeConfig) -> anyhow::Result<Self> {
        crate::bootstrap::create_private_dir(&config.state_dir)?;
        let platform = load_platform(&config.state_dir, config.sim_platform_key.as_ref())?;
        // The sim counter keeps the revocation list from being rolled back
        // alone; the provider can restore both (`docs/THREAT-MODEL.md`).
        let counter = config.state_dir.join("gateway.counter");
        let tee = Arc::new(
            SimTee::with_counter_file(
                platform.clone(),
                &measurement::expected_digest(Role::Gateway),
                &counter,
            )
            .with_context(|| format!("opening the gateway's counter {}", counter.display()))?,
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let listen_ip = addr.ip().to_string();
        if !addr.ip().is_unspecified() && !names.contains(&listen_ip) {
            names.push(listen_ip);
        }
        names.extend(config.extra_names.iter().cloned());
        let gateway_config = GatewayConfig {
            node: config.node.clone(),
            node_tls: config.node_tls.clone(),
            node_in_process: config.node_in_process.clone(),
            state_dir: config.state_dir.clone(),
            namespace: config.namespace.clone(),
            names,
            broker_platform: Some(platform.public_key()),
            owner: config.owner,
            node_auth: config.node_auth.clone(),
            client_log_limit: config.client_log_limit,
        };
        let gateway =
            Arc::new(Gateway::start(gateway_config, tee).context("starting the attested gateway")?);
        let app = clemmys_gateway::api::router(gateway.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(listener::serve(
            listener,
            Some(gateway.tls().acceptor()),
            app,
            config.http,
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%addr, node = %config.node, "attested gateway serving");
        Ok(Self {
            addr,
            gateway,
            stop,
            serving,
        })
    }

    /// `https://ADDR`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Serves until ctrl-c or SIGTERM.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::bootstrap::shutdown_signal().await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }
}
