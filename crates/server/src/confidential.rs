//! The trusted parts of a node: the simulated TEE platform, the key broker
//! and the invoker's pool of enclaves, all in this process.
//!
//! With `sim`, "trusted" is a role in the protocol, not a protection: this
//! process, its memory and its data directory belong to the provider. The
//! broker's identity document says so on every request.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clemmys_broker::Broker;
use clemmys_controller::BrokerGateway;
use clemmys_enclave::{Enclave, EnclavePool, EnclavePoolConfig};
use clemmys_invoker::StoredCode;
use clemmys_sandbox::Sandbox;
use clemmys_store::EntityStore;
use clemmys_tee::sim::{SimPlatform, SimTee};
use clemmys_tee::{Role, SIM_WARNING, Verifier, measurement};
use serde_json::{Value, json};

/// The broker and enclaves of this node.
pub struct TrustedParts {
    /// The key broker.
    pub broker: Arc<Broker>,
    /// The enclaves the invoker hands confidential runs to.
    pub enclaves: Arc<EnclavePool>,
    platform: Arc<SimPlatform>,
}

impl TrustedParts {
    /// Starts the simulated platform (its key in `data_dir`), the broker
    /// (its sealed state in `data_dir/broker.redb`) and the pool of action
    /// enclaves, which fetch sealed code from `store`.
    pub fn start(
        data_dir: &Path,
        sandbox: Arc<Sandbox>,
        store: Arc<dyn EntityStore>,
        pool: EnclavePoolConfig,
    ) -> anyhow::Result<Self> {
        let platform_path = data_dir.join("sim-platform.key");
        let platform = Arc::new(SimPlatform::load_or_create(&platform_path).with_context(
            || format!("loading the sim platform key {}", platform_path.display()),
        )?);
        tracing::warn!("{SIM_WARNING}");
        // Enclaves and broker on this host attest with this host's platform.
        let verifier = Verifier::new().trust_sim_platform(platform.public_key());
        let broker_tee = Arc::new(SimTee::new(
            platform.clone(),
            measurement::expected(Role::KeyBroker),
        ));
        let broker_path = data_dir.join("broker.redb");
        let broker = Arc::new(
            Broker::open(&broker_path, broker_tee, verifier.clone()).with_context(|| {
                format!("opening the key broker state {}", broker_path.display())
            })?,
        );
        let runtime_tee = SimTee::new(platform.clone(), measurement::expected(Role::ActionRuntime));
        let link = broker.clone();
        let launch = Box::new(move || {
            Enclave::start(
                &runtime_tee,
                sandbox.clone(),
                link.clone(),
                &verifier,
                measurement::expected(Role::KeyBroker),
            )
        });
        let enclaves = EnclavePool::start(launch, Arc::new(StoredCode(store)), pool)
            .context("starting the enclave pool")?;
        Ok(Self {
            broker,
            enclaves,
            platform,
        })
    }

    /// The controller's view of the broker.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            broker: self.broker.clone(),
            platform_key: self.platform.public_key().to_string(),
        }
    }
}

/// Forwards the controller's broker routes to the in-process broker.
pub struct Gateway {
    broker: Arc<Broker>,
    platform_key: String,
}

impl BrokerGateway for Gateway {
    fn identity(&self) -> Value {
        let identity = self.broker.identity();
        json!({
            "tee": identity.evidence.tee,
            "hardware": identity.evidence.tee.is_hardware(),
            "warning": SIM_WARNING,
            "identity": identity,
            "simPlatformKey": self.platform_key,
            "measurements": {
                "keyBroker": measurement::expected(Role::KeyBroker),
                "actionRuntime": measurement::expected(Role::ActionRuntime),
            },
        })
    }

    fn handle(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.broker
            .handle_client(sealed)
            .map_err(|error| error.to_string())
    }
}
