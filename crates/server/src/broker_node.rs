//! The key broker as its own process (`clemmys broker serve`): its
//! simulated enclave, its sealed state, and its HTTP service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clemmys_broker::Broker;
use clemmys_proto::SigningPublicKey;
use clemmys_tee::Verifier;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::confidential::{load_platform, open_broker};
use crate::listener::{self, HttpLimits};

/// How to run a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of its sealed state.
    pub data_dir: PathBuf,
    /// The host's simulated platform key (default
    /// `DATA_DIR/sim-platform.key`); nodes on this host use the same file.
    pub sim_platform_key: Option<PathBuf>,
    /// Other hosts' platform keys whose enclaves may ask for keys.
    pub trust_sim_platforms: Vec<SigningPublicKey>,
    /// The HTTP listener's limits against clients that hold connections.
    pub http: HttpLimits,
    /// TLS on the listener; `None` serves plain HTTP.
    pub tls: Option<crate::ListenerTls>,
}

/// A broker that is serving.
pub struct RunningBroker {
    /// The bound address.
    pub addr: SocketAddr,
    /// The broker.
    pub broker: Arc<Broker>,
    /// The certificate authority nodes trust, when the broker made its own.
    pub ca_file: Option<PathBuf>,
    scheme: &'static str,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl RunningBroker {
    /// Starts a broker.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Self> {
        crate::bootstrap::create_private_dir(&config.data_dir)?;
        let platform = load_platform(&config.data_dir, config.sim_platform_key.as_ref())?;
        let verifier = config.trust_sim_platforms.iter().fold(
            Verifier::new()
                .trust_sgx_dcap(clemmys_tee::SgxPolicy::new())
                .trust_sim_platform(platform.public_key()),
            |verifier, key| verifier.trust_sim_platform(*key),
        );
        let broker = open_broker(&config.data_dir, &platform, verifier)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = config
            .tls
            .as_ref()
            .map(|tls| tls.resolve(&config.data_dir, addr))
            .transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ca_file = tls.as_ref().and_then(|tls| tls.ca_file.clone());
        let app = crate::broker_service::router(broker.clone(), Some(platform.public_key()));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(listener::serve(
            listener,
            tls.map(|tls| tls.acceptor),
            app,
            config.http,
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%addr, "key broker serving");
        Ok(Self {
            addr,
            broker,
            ca_file,
            scheme,
            stop,
            serving,
        })
    }

    /// `http://ADDR` (`https://` with TLS), what nodes pass as `--broker`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
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
