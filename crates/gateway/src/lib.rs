//! The attested gateway: gives unmodified OpenWhisk clients (`wsk`, the
//! npm `openwhisk` client, `curl`, browsers) the confidentiality that the
//! Clemmys client gives its own users.
//!
//! It runs inside its own enclave (measured as
//! [`clemmys_tee::Role::Gateway`]), terminates TLS with an RA-TLS
//! certificate ([`ratls`]) whose evidence binds the TLS key, and speaks
//! the OpenWhisk REST API ([`api`]). Behind it, it is a Clemmys client
//! (`clemmys_client::confidential`, not a copy of it): an action created
//! through it is confidential (its code sealed to the action key, its
//! policy registered with the key broker under the namespace owner's
//! delegation, or under the gateway's own identity), an
//! invocation's parameters are sealed before they leave it, and results,
//! logs and errors are opened and their receipts verified inside it, then
//! returned over the attested TLS channel. The node behind it (controller,
//! invoker, store) sees only ciphertext.
//!
//! What it trusts: its own enclave; the key broker it verifies (its
//! release's broker measurement, on the platform it is given); the action
//! runtimes the policies it registers allow. What it holds in the clear:
//! every plaintext it seals or opens, in its memory only. Its identity and
//! TLS keys are sealed under its enclave's sealing key ([`sealed`]).
//!
//! Its client state (`STATE_DIR/client`: where, like any Clemmys client,
//! it keeps its broker pin, its high-water marks, the keys of the answers
//! it can still open and its sessions' secrets) is sealed under the same
//! key ([`sealed::SealedState`]); the pins and marks are bound to the
//! TEE's monotonic counter, so that an older copy is refused at start.
//!
//! Who may call it: with an owner (`--owner`), only holders of a
//! credential it issued to that owner ([`credentials`]); the namespace
//! API key, which the provider issues and holds, is refused, and the
//! gateway uses its own configured copy of it towards the node only.
//! Without an owner it is a **test mode** that accepts namespace keys,
//! and so opens every answer for the provider: it says so at start and
//! to `clemmys gateway verify`.
//!
//! With the `sim` TEE all of this is a simulation: the provider holds the
//! platform key and the process memory, and can read everything the
//! gateway handles ([`clemmys_tee::SIM_WARNING`]).

pub mod api;
pub mod credentials;
pub mod packages;
pub mod ratls;
pub mod sealed;
pub mod web;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use clemmys_client::confidential::{
    BrokerIdentityDoc, ClientHome, Confidential, ConfidentialError, expected_broker_measurement,
};
use clemmys_client::{Client, ClientTlsOptions, LocalApi};
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::{ClientId, Digest, Measurement, SigningPublicKey, TeeKind};
use clemmys_tee::Tee;
use clemmys_tls::ServerTls;
use clemmys_whisk::AuthKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::credentials::{
    Challenges, CredentialAction, CredentialError, CredentialKey, SignedCredentialRequest,
};
use crate::ratls::{RaTlsCertificate, RaTlsError};
use crate::sealed::{DirLock, GatewaySecrets, Revocations, SealedState, SealedStateError};

/// What the gateway's client state keeps its node's broker pin, version
/// marks, plan versions, sealed defaults and deletions under: one name,
/// not the `--apihost` the provider passes, so that the same node spelt
/// otherwise (or another node) finds the pin and marks already there
/// instead of none (a broker that is not the pinned one is refused).
const NODE_KEY: &str = "the gateway's node";

/// The file (in the state directory) holding the gateway's RA-TLS
/// certificate: public, kept so that a pinned copy stays valid across
/// restarts as long as the key and evidence are the same.
pub const CERTIFICATE_FILE: &str = "certificate.pem";
/// The names the certificate was made for, one per line.
const NAMES_FILE: &str = "certificate.names";
/// The client state files a gateway from before [`SealedState`] kept in
/// the clear in `STATE_DIR/client`: removed at start (what they held was
/// on the provider's disk already; the sealed state replaces them).
const PLAINTEXT_CLIENT_FILES: [&str; 6] = [
    "identity.key",
    "brokers.json",
    "freshness.json",
    "chain-plans.json",
    "keyring.jsonl",
    "sessions.jsonl",
];
/// What the gateway logs when it verifies and pins a node's broker (once:
/// the pin is kept in its sealed state across restarts).
pub const PINNED: &str = "verified and pinned the node's key broker";
/// The most API keys whose connections are kept, and the most verified
/// callers' headers.
const MAX_CONNECTIONS: usize = 1024;

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The node's API host (`https://host:port`).
    pub node: String,
    /// How the node's TLS certificate is checked.
    pub node_tls: ClientTlsOptions,
    /// The node itself when it runs in this process (`clemmys serve
    /// --gateway`): requests go to it without a socket, still as the
    /// node's clients send them (the provider sees the same bytes).
    pub node_in_process: Option<Arc<dyn LocalApi>>,
    /// Where the sealed secrets, the certificate and the client state live.
    pub state_dir: PathBuf,
    /// The namespace whose actions it serves (sealed into every object).
    pub namespace: String,
    /// DNS names and IP addresses the certificate is made for.
    pub names: Vec<String>,
    /// For a `sim` broker: the platform key whose evidence is accepted
    /// (the host's own, which the gateway shares).
    pub broker_platform: Option<SigningPublicKey>,
    /// The namespace owner it acts for, under the owner's delegation
    /// (`clemmys gateway authorize`), and the only one it issues
    /// credentials to; `None`: test mode, it owns the actions it creates
    /// itself and accepts the namespace key from anyone.
    pub owner: Option<ClientId>,
    /// The namespace API key it uses towards the node when it has an
    /// owner (its callers present gateway credentials instead).
    pub node_auth: Option<AuthKey>,
    /// The most bytes each of its client logs (the keys of the answers
    /// it can still open, its sessions) keeps on disk
    /// ([`DEFAULT_CLIENT_LOG_LIMIT`]): older answers can no longer be
    /// opened.
    pub client_log_limit: u64,
}

/// The gateway's default [`GatewayConfig::client_log_limit`]: 64 MiB, some
/// 70,000 answers' keys in the newer of its two generations.
pub const DEFAULT_CLIENT_LOG_LIMIT: u64 = 64 << 20;

/// What the test mode (no owner) warns at start and in `gateway verify`.
pub const TEST_MODE_WARNING: &str = "OWNER-LESS TEST MODE: this gateway has no --owner, so it \
accepts the namespace API key, which the provider issues and holds: the provider can call it and \
read every result in the clear. It protects nothing from the provider; start it with --owner.";

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// Its sealed secrets.
    #[error(transparent)]
    Secrets(#[from] SealedStateError),
    /// Its certificate.
    #[error(transparent)]
    Certificate(#[from] RaTlsError),
    /// Its TLS configuration.
    #[error(transparent)]
    Tls(#[from] clemmys_tls::TlsError),
    /// Its client state.
    #[error(transparent)]
    Client(#[from] ConfidentialError),
    /// A file of its state directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It has an owner but no namespace key to reach the node with.
    #[error(
        "a gateway with an owner needs the namespace's API key for the node (--auth UUID:KEY): its callers present gateway credentials instead"
    )]
    NoNodeKey,
}

/// A credential or a credential request was refused, or the revocation
/// could not be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialFailure {
    /// Refused.
    #[error(transparent)]
    Refused(#[from] CredentialError),
    /// The sealed revocation list could not be written.
    #[error(transparent)]
    State(#[from] SealedStateError),
}

/// What the gateway answers an owner's signed request.
#[derive(Debug)]
#[non_exhaustive]
pub enum CredentialAnswer {
    /// A new credential.
    Issued(AuthKey),
    /// The credential of this UUID is revoked (`true`: just now).
    Revoked(String, bool),
}

/// How long the gateway waits for the node's broker identity when it pins
/// it.
const PIN_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An owner's gateway: who it issues credentials to, and how it checks
/// them.
struct OwnerMode {
    owner: ClientId,
    key: CredentialKey,
    /// The namespace key towards the node.
    node_auth: AuthKey,
    challenges: Mutex<Challenges>,
    revocations: Mutex<Revocations>,
}

impl OwnerMode {
    /// Refuses the credential `uuid` once the owner revoked it: checked on
    /// every request, whether its MAC was verified now or before.
    fn refuse_revoked(&self, uuid: &str) -> Result<(), CredentialError> {
        if lock(&self.revocations).contains(uuid) {
            return Err(CredentialError::Revoked);
        }
        Ok(())
    }
}

/// A running gateway's state: what every request handler shares.
pub struct Gateway {
    config: GatewayConfig,
    identity: ClientIdentity,
    tee: TeeKind,
    measurement: Measurement,
    certificate_pem: String,
    tls: ServerTls,
    home: ClientHome,
    /// Its counter-bound state, checked on every request.
    state: Arc<SealedState>,
    /// Held while it runs.
    _lock: DirLock,
    /// `None`: test mode.
    owner_mode: Option<OwnerMode>,
    /// Digest of an API key → the confidential client acting with it.
    connections: Mutex<HashMap<Digest, Arc<Confidential>>>,
    /// Held from checking that no broker is pinned to saving the one
    /// fetched: a reply the provider held back must not replace a pin made
    /// (and checked by the owner) meanwhile.
    pinning: tokio::sync::Mutex<()>,
    /// `Authorization` headers whose credential verified → the caller, so
    /// that its next requests skip decoding and the credential's MAC.
    verified: Mutex<HashMap<Box<[u8]>, VerifiedCaller>>,
}

/// A caller whose credential verified (see [`Gateway::verified_caller`]).
#[derive(Clone)]
struct VerifiedCaller {
    /// The id of the credential it presented: checked against the
    /// revocations on every request.
    credential: String,
    connection: Arc<Confidential>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("node", &self.config.node)
            .field("identity", &self.identity.id())
            .field("measurement", &self.measurement)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Opens (or on first start makes) the gateway's sealed secrets inside
    /// `tee`, and its RA-TLS certificate.
    pub fn start(config: GatewayConfig, tee: Arc<dyn Tee>) -> Result<Self, GatewayError> {
        let lock = DirLock::acquire(&config.state_dir)?;
        let secrets = GatewaySecrets::load_or_create(
            &config.state_dir,
            &*tee,
            config.owner,
            &config.namespace,
        )?;
        let id = secrets.identity.id();
        let (der, pem) = certificate(&config.state_dir, &config.names, &*tee, &secrets)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(secrets.tls_key.serialize_der()));
        let tls = ServerTls::from_der(vec![der], key)?;
        let state = Arc::new(SealedState::load(&config.state_dir, tee.clone())?);
        let client_dir = config.state_dir.join("client");
        let home = ClientHome::open_sealed(&client_dir, state.clone())?
            .with_log_limit(config.client_log_limit);
        remove_plaintext_client_state(&client_dir)?;
        let owner_mode = match config.owner {
            Some(owner) => Some(OwnerMode {
                owner,
                key: secrets.credential_key,
                node_auth: config.node_auth.clone().ok_or(GatewayError::NoNodeKey)?,
                challenges: Mutex::new(Challenges::default()),
                revocations: Mutex::new(Revocations::load(state.clone())?),
            }),
            None => {
                tracing::warn!("{TEST_MODE_WARNING}");
                None
            }
        };
        if !tee.kind().is_hardware() {
            tracing::warn!("{}", clemmys_tee::SIM_WARNING);
        }
        tracing::info!(gateway = %id, measurement = %tee.measurement(), "attested gateway ready");
        Ok(Self {
            identity: secrets.identity,
            tee: tee.kind(),
            measurement: tee.measurement(),
            certificate_pem: pem,
            tls,
            home,
            state,
            _lock: lock,
            owner_mode,
            config,
            connections: Mutex::new(HashMap::new()),
            pinning: tokio::sync::Mutex::new(()),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The connection of a caller whose `authorization` header verified
    /// before ([`Self::remember_verified`]): refused as
    /// [`Self::authenticate`] refuses once its credential is revoked or
    /// another instance wrote the sealed state. `None` for a header not
    /// seen to verify, which must go through [`Self::authenticate`].
    pub(crate) fn verified_caller(
        &self,
        authorization: &[u8],
    ) -> Result<Option<Arc<Confidential>>, CredentialFailure> {
        self.state.check_current()?;
        let Some(caller) = lock(&self.verified).get(authorization).cloned() else {
            return Ok(None);
        };
        if let Some(mode) = &self.owner_mode {
            mode.refuse_revoked(&caller.credential)?;
        }
        Ok(Some(caller.connection))
    }

    /// Keeps that `authorization`, which carried `presented`, verified and
    /// reaches the node through `connection`.
    pub(crate) fn remember_verified(
        &self,
        authorization: &[u8],
        presented: &AuthKey,
        connection: &Arc<Confidential>,
    ) {
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_CONNECTIONS {
            verified.clear();
        }
        verified.insert(
            authorization.into(),
            VerifiedCaller {
                credential: presented.uuid.clone(),
                connection: connection.clone(),
            },
        );
    }

    /// The node key to act with for a caller presenting `presented`: with
    /// an owner, `presented` must be a live credential this gateway
    /// issued, and the answer is the gateway's own namespace key; in test
    /// mode, `presented` itself. Refused to everyone once another
    /// instance of the gateway wrote its sealed state (its revocations
    /// may not be this one's): see [`SealedState::check_current`].
    pub fn authenticate(&self, presented: AuthKey) -> Result<AuthKey, CredentialFailure> {
        self.state.check_current()?;
        let Some(mode) = &self.owner_mode else {
            return Ok(presented);
        };
        mode.key
            .verify(&self.identity.id(), &mode.owner, &presented)?;
        mode.refuse_revoked(&presented.uuid)?;
        Ok(mode.node_auth.clone())
    }

    /// With an owner: the key web annotations are tagged under, and the
    /// namespace key web actions are invoked with (their callers have no
    /// credentials towards the node).
    pub(crate) fn web_keys(&self) -> Option<(&CredentialKey, &AuthKey)> {
        self.owner_mode
            .as_ref()
            .map(|mode| (&mode.key, &mode.node_auth))
    }

    /// A fresh challenge for the owner to sign into a request.
    pub fn challenge(&self) -> Result<[u8; 32], CredentialError> {
        let mode = self.owner_mode.as_ref().ok_or(CredentialError::NoOwner)?;
        Ok(lock(&mode.challenges).make(&mut clemmys_tee::os_rng(), std::time::Instant::now()))
    }

    /// Answers the owner's signed request: a new credential, or a
    /// revocation (sealed before it is answered).
    pub fn answer(
        &self,
        signed: SignedCredentialRequest,
    ) -> Result<CredentialAnswer, CredentialFailure> {
        let mode = self.owner_mode.as_ref().ok_or(CredentialError::NoOwner)?;
        let (request, challenge) = signed.verify(&self.identity.id(), &mode.owner)?;
        // Used up only once the signature verified: a forger cannot burn
        // the owner's challenges.
        lock(&mode.challenges).take(&challenge, std::time::Instant::now())?;
        match request.action {
            CredentialAction::Issue => {
                let uuid = credentials::new_uuid(&mut clemmys_tee::os_rng());
                tracing::info!(%uuid, "issued a credential to the owner");
                Ok(CredentialAnswer::Issued(mode.key.issue(
                    &self.identity.id(),
                    &mode.owner,
                    uuid,
                )))
            }
            CredentialAction::Revoke { uuid } => {
                let new = lock(&mode.revocations).revoke(&uuid)?;
                tracing::info!(%uuid, "revoked a credential");
                Ok(CredentialAnswer::Revoked(uuid, new))
            }
        }
    }

    /// The PEM certificate clients pin (what `gateway verify` writes).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The listener's TLS configuration.
    pub fn tls(&self) -> &ServerTls {
        &self.tls
    }

    /// The gateway's client identity (owner of the actions it registers).
    pub fn identity(&self) -> ClientId {
        self.identity.id()
    }

    /// Its TEE kind.
    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    /// Its measurement.
    pub fn measurement(&self) -> Measurement {
        self.measurement
    }

    /// The node it fronts.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The owner it acts for, if any.
    pub fn owner(&self) -> Option<ClientId> {
        self.config.owner
    }

    /// The namespace it serves.
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The keys of the key broker it seals for: the one it pinned, which an
    /// owner's gateway pins now if it has not yet (its node, and so the
    /// broker, is the host's choice: the owner compares it with its own
    /// pin before it authorizes the gateway or asks it for a credential).
    /// `None`: a test-mode gateway that no caller has used yet.
    pub async fn broker(
        &self,
    ) -> Result<Option<clemmys_proto::identity::EnclavePublicKeys>, ConfidentialError> {
        if let Some(pin) = self.home.broker_pin(NODE_KEY)? {
            return Ok(Some(pin.keys));
        }
        let Some(mode) = &self.owner_mode else {
            return Ok(None);
        };
        // Connecting pins it; what was pinned is the answer even when the
        // connection then fails (the node presenting another broker).
        let connected = self.connection(mode.node_auth.clone()).await;
        match self.home.broker_pin(NODE_KEY)? {
            Some(pin) => Ok(Some(pin.keys)),
            None => connected.map(|_| None),
        }
    }

    /// The confidential client acting with `auth`: made (and the node's
    /// broker verified and pinned, the first time) on the key's first
    /// request, then reused. None once another instance of the gateway
    /// wrote its sealed state (web actions' anonymous callers included).
    pub async fn connection(&self, auth: AuthKey) -> Result<Arc<Confidential>, ConfidentialError> {
        self.state
            .check_current()
            .map_err(|error| ConfidentialError::State(error.to_string()))?;
        let key = Digest::of(auth.to_string().as_bytes());
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let client = match &self.config.node_in_process {
            Some(node) => Client::in_process(&self.config.node, auth, node.clone())?,
            None => Client::with_tls(&self.config.node, auth, &self.config.node_tls)?,
        };
        // A key of another namespace would have the gateway register and
        // seal in the served namespace (as its owner) while the node
        // stores in the key's own: refused.
        let namespaces = client.list_namespaces().await?;
        if !namespaces.contains(&self.config.namespace) {
            return Err(ConfidentialError::Api(clemmys_client::ClientError::Api {
                status: 403,
                message: format!(
                    "this gateway serves namespace {}, which this key does not",
                    self.config.namespace
                ),
                code: None,
            }));
        }
        self.pin_broker(&client).await?;
        let identity = ClientIdentity::from_secret(&self.identity.secret_bytes());
        let mut connected = Confidential::connect_as(
            client,
            self.home.clone(),
            identity,
            Some(self.config.namespace.clone()),
            NODE_KEY.to_owned(),
        )
        .await?;
        if let Some(owner) = self.config.owner {
            connected = connected.acting_for(owner);
        }
        let connected = Arc::new(connected);
        let mut connections = self.lock();
        if connections.len() >= MAX_CONNECTIONS {
            connections.clear();
        }
        connections.insert(key, connected.clone());
        Ok(connected)
    }

    /// Pins the broker `client`'s node presents, unless one is pinned: once
    /// only, whatever replies arrive later.
    async fn pin_broker(&self, client: &Client) -> Result<(), ConfidentialError> {
        let _pinning = self.pinning.lock().await;
        if self.home.broker_pin(NODE_KEY)?.is_some() {
            return Ok(());
        }
        // Bounded: the lock must not stay held for as long as the provider
        // holds the reply back.
        let doc = tokio::time::timeout(PIN_FETCH_TIMEOUT, BrokerIdentityDoc::fetch(client))
            .await
            .map_err(|_| {
                ConfidentialError::Attestation(format!(
                    "the node did not present its key broker within {} s",
                    PIN_FETCH_TIMEOUT.as_secs()
                ))
            })??;
        let mut pin = doc.verify(expected_broker_measurement(), self.config.broker_platform)?;
        pin.namespace = Some(self.config.namespace.clone());
        self.home.save_broker_pin(NODE_KEY, &pin)?;
        tracing::info!(node = %client.api_host(), "{PINNED}");
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Confidential>>> {
        lock(&self.connections)
    }
}

/// Removes what an older gateway kept in the clear in `dir`.
fn remove_plaintext_client_state(dir: &Path) -> Result<(), GatewayError> {
    for name in PLAINTEXT_CLIENT_FILES {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::warn!(
                file = %path.display(),
                "removed client state an older gateway kept in the clear (now sealed); answers it invoked before can no longer be opened"
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(GatewayError::Io { path, source }),
        }
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The certificate of `dir` when it is still this key's, this evidence's
/// and for these names; else a new one, written there.
fn certificate(
    dir: &Path,
    names: &[String],
    tee: &dyn Tee,
    secrets: &GatewaySecrets,
) -> Result<(CertificateDer<'static>, String), GatewayError> {
    use rcgen::PublicKeyData as _;
    let pem_path = dir.join(CERTIFICATE_FILE);
    let names_path = dir.join(NAMES_FILE);
    let id = secrets.identity.id();
    let stored = std::fs::read_to_string(&pem_path).ok().and_then(|pem| {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        Some((der, pem))
    });
    let made_for = std::fs::read_to_string(&names_path).unwrap_or_default();
    if let Some((der, pem)) = stored
        && made_for == names.join("\n")
        && let Ok(parsed) = RaTlsCertificate::parse(&der)
        && parsed.gateway() == id
    {
        let spki = secrets.tls_key.subject_public_key_info();
        let fresh = tee
            .attest(&ratls::report_data(&spki, &id))
            .map_err(RaTlsError::Attest)?;
        if parsed.evidence() == &fresh && parsed.spki_der() == spki.as_slice() {
            return Ok((der, pem));
        }
    }
    let made = ratls::make_certificate(tee, &secrets.tls_key, &id, names)?;
    let pem = made.pem();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| GatewayError::Io { path, source }
    };
    std::fs::write(&pem_path, &pem).map_err(io(&pem_path))?;
    std::fs::write(&names_path, names.join("\n")).map_err(io(&names_path))?;
    Ok((made.der().clone(), pem))
}

#[cfg(test)]
mod tests {
    use clemmys_client::confidential::HomeVault as _;
    use clemmys_tee::sim::{SimPlatform, SimTee};

    use super::*;

    fn config(state_dir: &Path) -> GatewayConfig {
        GatewayConfig {
            node: "https://127.0.0.1:9".to_owned(),
            node_tls: ClientTlsOptions::default(),
            node_in_process: None,
            state_dir: state_dir.to_owned(),
            namespace: "guest".to_owned(),
            names: vec!["localhost".to_owned()],
            broker_platform: None,
            owner: None,
            node_auth: None,
            client_log_limit: DEFAULT_CLIENT_LOG_LIMIT,
        }
    }

    #[test]
    fn a_gateway_run_from_a_copy_stops_serving_once_the_other_writes() {
        let (a_dir, b_dir) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        // One platform and one counter for both (a hardware counter).
        let tee: Arc<dyn Tee> = Arc::new(SimTee::new(Arc::new(SimPlatform::generate()), &[4; 32]));
        let a = Gateway::start(config(a_dir.path()), tee.clone()).expect("a");
        for file in [sealed::SECRETS_FILE, sealed::STATE_FILE] {
            std::fs::copy(a_dir.path().join(file), b_dir.path().join(file)).expect("copied");
        }
        let b = Gateway::start(config(b_dir.path()), tee).expect("b from a copy");
        assert_eq!(a.identity(), b.identity());
        let key: AuthKey = "caller:key".parse().expect("key");
        assert!(b.authenticate(key.clone()).is_ok());
        // A writes its state (here a high-water mark of its client).
        a.state.replace("freshness.json", b"{}").expect("written");
        assert!(a.authenticate(key.clone()).is_ok());
        assert!(matches!(
            b.authenticate(key),
            Err(CredentialFailure::State(SealedStateError::Forked { .. }))
        ));
    }

    #[test]
    fn a_second_gateway_on_a_directory_in_use_does_not_start() {
        let dir = tempfile::tempdir().expect("dir");
        let tee: Arc<dyn Tee> = Arc::new(SimTee::new(Arc::new(SimPlatform::generate()), &[4; 32]));
        let first = Gateway::start(config(dir.path()), tee.clone()).expect("first");
        assert!(matches!(
            Gateway::start(config(dir.path()), tee.clone()),
            Err(GatewayError::Secrets(SealedStateError::InUse { .. }))
        ));
        drop(first);
        Gateway::start(config(dir.path()), tee).expect("after the first stopped");
    }
}
