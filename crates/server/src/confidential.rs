//! The trusted parts of a node: the simulated TEE platform, the key broker
//! (in this process, or reached over HTTP when it runs as its own process)
//! and the invoker's pool of enclaves.
//!
//! With `sim`, "trusted" is a role in the protocol, not a protection: this
//! process, its memory and its data directory belong to the provider. The
//! broker's identity document says so on every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clemmys_broker::Broker;
use clemmys_proto::TeeKind;
use clemmys_proto::broker::{BrokerIdentity, BrokerLink};

use crate::broker_link::RemoteBroker;
use clemmys_controller::BrokerGateway;
use clemmys_enclave::Enclave;
use clemmys_invoker::JsEngine;
use clemmys_invoker::StoredCode;
use clemmys_invoker::pool::{EnclavePool, EnclavePoolConfig};
use clemmys_sandbox::Sandbox;
use clemmys_store::EntityStore;
use clemmys_tee::sim::{SimPlatform, SimTee};
use clemmys_tee::{Role, SIM_WARNING, Verifier, measurement};
use serde_json::Value;

/// Where the node's key broker runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BrokerLocation {
    /// In this process, its sealed state in `DATA_DIR/broker.redb`.
    #[default]
    InProcess,
    /// Its own process (`clemmys broker serve`).
    Remote {
        /// Its `http://` or `https://` URL.
        url: String,
        /// How an `https://` broker's certificate is checked.
        tls: clemmys_tls::ClientTlsOptions,
    },
}

/// The simulated platform key of this host: `path`, or
/// `data_dir/sim-platform.key`. Processes of one host share it.
pub fn load_platform(data_dir: &Path, path: Option<&PathBuf>) -> anyhow::Result<Arc<SimPlatform>> {
    let path = path
        .cloned()
        .unwrap_or_else(|| data_dir.join(SIM_PLATFORM_KEY_FILE));
    let platform = SimPlatform::load_or_create(&path)
        .with_context(|| format!("loading the sim platform key {}", path.display()))?;
    tracing::warn!("{SIM_WARNING}");
    Ok(Arc::new(platform))
}

/// The simulated platform key's file in a data directory, unless
/// `--sim-platform-key` names another.
const SIM_PLATFORM_KEY_FILE: &str = "sim-platform.key";

/// Refuses, at start, a remote broker whose `sim` evidence this host's
/// platform key does not verify (a broker started with another key file):
/// every enclave would refuse it, and every confidential invoke would fail
/// with an attestation error instead of this hint. Hardware evidence is
/// left to the enclaves, which verify it on every start.
fn check_broker_platform(
    verifier: &Verifier,
    broker: &BrokerIdentity,
    url: &str,
    key_file: &Path,
) -> anyhow::Result<()> {
    if broker.evidence.tee != TeeKind::Sim || verifier.verify(&broker.evidence).is_ok() {
        return Ok(());
    }
    anyhow::bail!(
        "the key broker at {url} runs on another simulated platform than this process: \
         its evidence does not verify under {}. Give every process on this host the \
         broker's key file with --sim-platform-key FILE (the broker's \
         DATA_DIR/{SIM_PLATFORM_KEY_FILE}, or the file it was given)",
        key_file.display()
    )
}

/// Opens the key broker in this process, inside its (simulated) enclave.
pub fn open_broker(
    data_dir: &Path,
    platform: &Arc<SimPlatform>,
    verifier: Verifier,
) -> anyhow::Result<Arc<Broker>> {
    // The sim counter lives beside the state, where the provider can
    // restore it too: it catches a restore of the state alone, nothing more
    // (`docs/SGX.md` for the hardware design).
    let counter = data_dir.join("broker.counter");
    let tee = Arc::new(
        SimTee::with_counter_file(
            platform.clone(),
            &measurement::expected_digest(Role::KeyBroker),
            &counter,
        )
        .with_context(|| format!("opening the broker's counter {}", counter.display()))?,
    );
    let path = data_dir.join("broker.redb");
    let broker = Broker::open(&path, tee, verifier)
        .with_context(|| format!("opening the key broker state {}", path.display()))?;
    Ok(Arc::new(broker))
}

/// What the node's enclaves run actions with.
pub struct Runtimes {
    /// The wasm sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The JavaScript engine module, if the node has one (each enclave
    /// checks it against the digest its action's owner sealed).
    pub javascript: Option<JsEngine>,
}

/// What a process that runs actions needs for its enclaves.
pub struct EnclaveSetup {
    /// What the enclaves run actions with.
    pub runtimes: Runtimes,
    /// Where the enclaves fetch sealed code.
    pub store: Arc<dyn EntityStore>,
    /// Sizing and keep-alive of the pool.
    pub pool: EnclavePoolConfig,
}

/// The broker and enclaves of this node.
pub struct TrustedParts {
    /// The key broker, when it runs in this process.
    pub broker: Option<Arc<Broker>>,
    /// The enclaves the invoker hands confidential runs to; `None` in a
    /// process that runs no actions (a controller on its own).
    pub enclaves: Option<Arc<EnclavePool>>,
    gateway: Arc<Gateway>,
}

impl TrustedParts {
    /// Starts the simulated platform, the broker (or the link to it) and,
    /// with `enclaves`, the pool of action enclaves, which fetch sealed
    /// code from its store.
    pub fn start(
        data_dir: &Path,
        platform_key: Option<&PathBuf>,
        location: &BrokerLocation,
        enclaves: Option<EnclaveSetup>,
    ) -> anyhow::Result<Self> {
        let platform = load_platform(data_dir, platform_key)?;
        // Enclaves and broker of this host attest with this host's platform.
        // Enclaves may be real SGX ones (up-to-date TCB) or of this host's sim platform.
        let verifier = Verifier::new()
            .trust_sgx_dcap(clemmys_tee::SgxPolicy::new())
            .trust_sim_platform(platform.public_key());
        let (broker, link, gateway): (Option<Arc<Broker>>, Arc<dyn BrokerLink>, Gateway) =
            match location {
                BrokerLocation::InProcess => {
                    let broker = open_broker(data_dir, &platform, verifier.clone())?;
                    let gateway = Gateway::Local {
                        broker: broker.clone(),
                        platform: platform.public_key(),
                    };
                    (Some(broker.clone()), broker, gateway)
                }
                BrokerLocation::Remote { url, tls } => {
                    let remote = Arc::new(
                        RemoteBroker::connect(url, tls)
                            .with_context(|| format!("connecting to the key broker at {url}"))?,
                    );
                    if enclaves.is_some() {
                        let key_file = platform_key
                            .cloned()
                            .unwrap_or_else(|| data_dir.join(SIM_PLATFORM_KEY_FILE));
                        check_broker_platform(&verifier, &remote.identity(), url, &key_file)?;
                    }
                    (None, remote.clone(), Gateway::Remote(remote))
                }
            };
        let Some(EnclaveSetup {
            runtimes: Runtimes {
                sandbox,
                javascript,
            },
            store,
            pool,
        }) = enclaves
        else {
            return Ok(Self {
                broker,
                enclaves: None,
                gateway: Arc::new(gateway),
            });
        };
        let runtime_tee = SimTee::new(
            platform.clone(),
            &measurement::expected_digest(Role::ActionRuntime),
        );
        let launch = Box::new(move || {
            let enclave = Enclave::start(
                &runtime_tee,
                sandbox.clone(),
                link.clone(),
                &verifier,
                measurement::expected(Role::KeyBroker),
            )?;
            Ok(match &javascript {
                Some(engine) => enclave.with_javascript_engine(engine.clone()),
                None => enclave,
            })
        });
        let code =
            StoredCode::new(store).context("the enclave pool reads code on the node's runtime")?;
        let enclaves = EnclavePool::start(launch, Arc::new(code), pool)
            .context("starting the enclave pool")?;
        Ok(Self {
            broker,
            enclaves: Some(enclaves),
            gateway: Arc::new(gateway),
        })
    }

    /// The controller's view of the broker.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }
}

/// Forwards the controller's broker routes to the broker.
pub enum Gateway {
    /// The broker in this process.
    Local {
        /// The broker.
        broker: Arc<Broker>,
        /// The platform key its evidence verifies with.
        platform: clemmys_proto::SigningPublicKey,
    },
    /// A broker in its own process.
    Remote(Arc<RemoteBroker>),
}

impl BrokerGateway for Gateway {
    fn identity(&self) -> Result<Value, String> {
        match self {
            Gateway::Local { broker, platform } => Ok(broker.identity_document(Some(*platform))),
            Gateway::Remote(remote) => remote
                .fetch_identity_document()
                .map_err(|error| error.to_string()),
        }
    }

    fn handle(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Gateway::Local { broker, .. } => broker
                .handle_client(sealed)
                .map_err(|error| error.to_string()),
            Gateway::Remote(remote) => remote
                .handle_client(sealed)
                .map_err(|error| error.to_string()),
        }
    }
}
