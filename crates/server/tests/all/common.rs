//! The shared test server and a small HTTP client that returns status,
//! headers and JSON, so tests can assert the exact API.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clemmys_client::ClientTlsOptions;
use clemmys_server::ListenerTls;
use clemmys_server::{RunningServer, ServerConfig};
use clemmys_whisk::ActivationId;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// A running node and an HTTP client authenticated as `guest`.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub data_dir: tempfile::TempDir,
    pub http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub base: String,
    pub auth: String,
    /// The listener's TLS, kept across restarts.
    pub tls: Option<ListenerTls>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

/// The compiled example action `name` (built by scripts/build-examples.sh).
pub fn example(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("CLEMMYS_EXAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/examples/wasm32-wasip1/release")
        });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; run scripts/build-examples.sh first",
            path.display()
        )
    })
}

/// The JavaScript engine module (built by scripts/build-runtimes.sh).
pub fn js_engine() -> PathBuf {
    let path = std::env::var_os("CLEMMYS_JS_ENGINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/runtimes/wasm32-wasip1/release/clemmys-js.wasm")
        });
    assert!(
        path.is_file(),
        "{}: missing; run scripts/build-runtimes.sh first",
        path.display()
    );
    path
}

/// The JSON `PUT` body creating a wasm action from `code`.
pub fn wasm_body(code: &[u8]) -> Value {
    json!({ "exec": { "kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(code), "binary": true } })
}

/// The Basic authorization header of the node's guest key.
fn basic(server: &RunningServer) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(server.guest_auth.to_string())
    )
}

/// A raw HTTP client of `server`, trusting the authority it made when it
/// serves TLS.
fn http_client(server: &RunningServer) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let options = ClientTlsOptions {
        ca_file: server.ca_file.clone(),
        ..ClientTlsOptions::default()
    };
    let https = server.api_host().starts_with("https://");
    let connector = clemmys_tls::http_connector(&options, https, Duration::from_secs(10))
        .expect("TLS settings");
    Client::builder(TokioExecutor::new()).build(connector)
}

fn config(dir: &tempfile::TempDir) -> ServerConfig {
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        dir.path().join("data"),
    );
    // A small pool keeps each test server's address-space reservation small.
    config.sandbox = clemmys_sandbox::SandboxConfig::with_slots(16);
    config.invoker.concurrency = 16;
    config
}

impl TestServer {
    /// Starts a node on a fresh data directory.
    pub async fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(data_dir).await
    }

    /// Wraps a node started elsewhere, whose data dir lives in `data_dir`.
    pub fn wrap(server: RunningServer, data_dir: tempfile::TempDir) -> Self {
        Self {
            base: server.api_host(),
            auth: basic(&server),
            http: http_client(&server),
            server: Some(server),
            data_dir,
            tls: None,
        }
    }

    /// How clients check this node's certificate: they trust the authority
    /// it made, if it made one.
    pub fn tls_options(&self) -> ClientTlsOptions {
        ClientTlsOptions {
            ca_file: self.node().ca_file.clone(),
            ..ClientTlsOptions::default()
        }
    }

    /// Starts a node on `data_dir` (reused by restart tests).
    pub async fn start_in(data_dir: tempfile::TempDir) -> Self {
        Self::start_configured(data_dir, |_| {}).await
    }

    /// Starts a node configured like [`start`](Self::start), then by
    /// `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        Self::start_configured(data_dir, configure).await
    }

    async fn start_configured(
        data_dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = config(&data_dir);
        configure(&mut config);
        let tls = config.tls.clone();
        let server = RunningServer::start(config).await.expect("server starts");
        let mut wrapped = Self::wrap(server, data_dir);
        wrapped.tls = tls;
        wrapped
    }

    /// The running node.
    pub fn node(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// The node's enclaves (every test node runs actions).
    pub fn enclaves(&self) -> &std::sync::Arc<clemmys_invoker::pool::EnclavePool> {
        self.node()
            .enclaves
            .as_ref()
            .expect("a node of all roles has enclaves")
    }

    /// Plays the provider: rewrites stored activation record `id` with
    /// `edit`.
    pub async fn tamper_record(
        &self,
        id: ActivationId,
        edit: impl FnOnce(&mut clemmys_whisk::Activation),
    ) {
        let store = &self.node().store;
        let mut record = store
            .get_activation("guest", &id)
            .await
            .expect("read")
            .expect("stored");
        edit(&mut record);
        store.put_activation(record).await.expect("write");
    }

    /// Plays the provider: swaps the stored responses of activations `a`
    /// and `b` (results of two requests, or values of two chains).
    pub async fn swap_responses(&self, a: ActivationId, b: ActivationId) {
        let store = &self.node().store;
        let read = async |id: &ActivationId| {
            store
                .get_activation("guest", id)
                .await
                .expect("read")
                .expect("stored")
        };
        let (mut first, mut second) = (read(&a).await, read(&b).await);
        std::mem::swap(&mut first.response, &mut second.response);
        store.put_activation(first).await.expect("write");
        store.put_activation(second).await.expect("write");
    }

    /// Stops the node and starts a new one on the same data directory.
    /// The node comes back on the same address, as a restarted service
    /// would, so clients' pins (per API host) still apply.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// [`restart_after`](Self::restart_after), which must succeed.
    pub async fn restart_with(self, meanwhile: impl FnOnce(&std::path::Path)) -> Self {
        self.restart_after(meanwhile)
            .await
            .unwrap_or_else(|error| panic!("the node did not restart: {error:#}"))
    }

    /// Stops the node, lets `edit` change its data directory while it is
    /// down (the provider restoring old copies), and starts it again on the
    /// same address: the started node, or why it did not start.
    pub async fn restart_after(
        self,
        edit: impl FnOnce(&std::path::Path),
    ) -> Result<Self, anyhow::Error> {
        self.restart_configured(edit, |_| {}).await
    }

    /// [`restart_after`](Self::restart_after), the new node configured
    /// like [`start`](Self::start), then by `configure`.
    pub async fn restart_configured(
        mut self,
        edit: impl FnOnce(&std::path::Path),
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<Self, anyhow::Error> {
        let mut config = config(&self.data_dir);
        config.tls = self.tls.clone();
        configure(&mut config);
        if let Some(server) = self.server.take() {
            config.listen = server.addr;
            server.shutdown().await;
        }
        edit(&config.data_dir);
        let mut last = None;
        // The store's writer releases the file once the old node is gone;
        // any other refusal is final.
        for _ in 0..200 {
            match RunningServer::start(config.clone()).await {
                Ok(server) => {
                    self.base = server.api_host();
                    self.auth = basic(&server);
                    self.http = http_client(&server);
                    self.server = Some(server);
                    return Ok(self);
                }
                Err(error)
                    if error
                        .downcast_ref::<clemmys_broker::BrokerError>()
                        .is_some() =>
                {
                    return Err(error);
                }
                Err(error) => {
                    last = Some(error);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("the node did not start")))
    }

    /// A request with the guest's credentials.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|value| value.to_string()).unwrap_or_default();
        self.raw(method, path, Bytes::from(body), Some(&self.auth))
            .await
    }

    /// A request with any body and authorization header.
    pub async fn raw(&self, method: Method, path: &str, body: Bytes, auth: Option<&str>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, HeaderValue::from_str(auth).expect("header"));
        }
        let request = request
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let response = self.http.request(request).await.expect("HTTP exchange");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    /// Creates action `name` from example `example`, asserting success.
    pub async fn create(&self, name: &str, example_name: &str) -> Answer {
        let answer = self
            .call(
                Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{name}"),
                Some(wasm_body(&example(example_name))),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "creating {name}: {:?}",
            answer.json
        );
        answer
    }

    /// Blocking invoke of `name` with `params`.
    pub async fn invoke(&self, name: &str, params: Value) -> Answer {
        self.call(
            Method::POST,
            &format!("/api/v1/namespaces/_/actions/{name}?blocking=true"),
            Some(params),
        )
        .await
    }

    /// `GET` of activation `id`, as the provider stores it.
    pub async fn activation(&self, id: impl std::fmt::Display) -> Answer {
        self.call(
            Method::GET,
            &format!("/api/v1/namespaces/_/activations/{id}"),
            None,
        )
        .await
    }

    /// Polls until activation `id` is stored, at most 10 s.
    pub async fn wait_for_activation(&self, id: &str) -> Value {
        for _ in 0..1000 {
            let answer = self.activation(id).await;
            if answer.status == StatusCode::OK {
                return answer.json;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("activation {id} was not stored within 10 s");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the node's handles stops it with the test runtime.
        self.server.take();
    }
}

/// The value of annotation `key` in an activation or action JSON.
pub fn annotation<'a>(entity: &'a Value, key: &str) -> Option<&'a Value> {
    entity["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

/// A confidential client of `server` with its own state directory, which
/// has verified and pinned the node's broker.
pub struct Owner {
    pub client: clemmys_client::confidential::Confidential,
    pub home: tempfile::TempDir,
}

impl TestServer {
    /// A fresh confidential client (its own identity) with the broker pinned.
    pub async fn owner(&self) -> Owner {
        self.owner_via(self.api_client(), "guest").await
    }

    /// A gateway `owner` delegated to (for an hour): a fresh identity,
    /// acting for the owner; and that identity.
    pub async fn delegated_gateway(&self, owner: &Owner) -> (Owner, clemmys_proto::ClientId) {
        let gateway = self.owner().await;
        let gateway_id = gateway.client.client_id();
        owner
            .client
            .delegate(
                gateway_id,
                clemmys_client::confidential::expected_runtime_measurement(),
                clemmys_whisk::now_ms() + 3_600_000,
            )
            .await
            .expect("delegated");
        let gateway = Owner {
            client: gateway.client.acting_for(owner.client.client_id()),
            home: gateway.home,
        };
        (gateway, gateway_id)
    }

    /// A fresh confidential client of `client`'s API host and key, which
    /// pinned the broker with `namespace` as its own.
    pub async fn owner_via(&self, client: clemmys_client::Client, namespace: &str) -> Owner {
        let home = tempfile::tempdir().expect("tempdir");
        let client = pin_and_connect(client, home.path(), namespace).await;
        Owner { client, home }
    }

    /// A plain API client with the guest key.
    pub fn api_client(&self) -> clemmys_client::Client {
        let auth = self.node().guest_auth.clone();
        clemmys_client::Client::with_tls(&self.base, auth, &self.tls_options()).expect("client")
    }

    /// Posts sealed bytes to the broker through the API, as any client (or
    /// the provider replaying them) can.
    pub async fn post_broker_request(&self, sealed: &[u8]) -> Answer {
        self.call(
            Method::POST,
            "/api/v1/broker/request",
            Some(json!({"request": base64::engine::general_purpose::STANDARD.encode(sealed)})),
        )
        .await
    }

    /// Sends `op` to the broker as `identity`, sealed to `broker_kem`;
    /// answers the opened reply.
    pub async fn ask_broker(
        &self,
        identity: &clemmys_proto::identity::ClientIdentity,
        broker_kem: &clemmys_proto::KemPublicKey,
        op: clemmys_proto::broker::BrokerOp,
    ) -> clemmys_proto::broker::BrokerReply {
        self.ask_broker_for(identity, broker_kem, op, None).await
    }

    /// [`ask_broker`](Self::ask_broker), made on behalf of owner
    /// `on_behalf_of` when given (as a delegated gateway asks).
    pub async fn ask_broker_for(
        &self,
        identity: &clemmys_proto::identity::ClientIdentity,
        broker_kem: &clemmys_proto::KemPublicKey,
        op: clemmys_proto::broker::BrokerOp,
        on_behalf_of: Option<clemmys_proto::ClientId>,
    ) -> clemmys_proto::broker::BrokerReply {
        let (request, key) = clemmys_proto::broker::seal_broker_request_for(
            identity,
            broker_kem,
            op,
            on_behalf_of,
            clemmys_whisk::now_ms(),
            &mut clemmys_tee::os_rng(),
        )
        .expect("seal");
        let reply = self.post_broker_request(&request).await;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(reply.json["reply"].as_str().expect("reply"))
            .expect("b64");
        clemmys_proto::broker::open_broker_reply(&sealed, &key)
            .expect("open")
            .reply
    }

    /// Creates namespace `name` with a fresh key, as the operator (the
    /// provider) can; answers its key.
    pub async fn add_namespace(&self, name: &str) -> clemmys_whisk::AuthKey {
        let auth = clemmys_whisk::AuthKey::from_random(rand_bytes(), rand_bytes());
        let record = clemmys_whisk::NamespaceRecord {
            name: clemmys_whisk::EntityName::new(name).expect("namespace name"),
            auth: auth.clone(),
            limits: Default::default(),
        };
        self.node()
            .store
            .put_namespace(record)
            .await
            .expect("namespace stored");
        auth
    }
}

/// Pins the broker of `client`'s API host in the client home at `home`
/// (with `namespace` as the user's own, as `clemmys broker trust` does) and
/// connects.
pub async fn pin_and_connect(
    client: clemmys_client::Client,
    home: &std::path::Path,
    namespace: &str,
) -> clemmys_client::confidential::Confidential {
    use clemmys_client::confidential::{
        BrokerIdentityDoc, ClientHome, Confidential, expected_broker_measurement,
    };
    let doc = BrokerIdentityDoc::fetch(&client)
        .await
        .expect("broker identity");
    let mut pin = doc
        .verify(expected_broker_measurement(), doc.sim_platform_key)
        .expect("broker verifies");
    pin.namespace = Some(namespace.into());
    let state = ClientHome::open(home).expect("client home");
    state.save_broker_pin(client.api_host(), &pin).expect("pin");
    Confidential::connect(client, state).await.expect("connect")
}

impl Owner {
    /// A second client of the same owner, as on another of the owner's
    /// machines: the same identity and broker pin, nothing cached.
    pub async fn second_client(&self, server: &TestServer) -> Owner {
        use clemmys_client::confidential::{ClientHome, Confidential};
        let home = ClientHome::open(self.home.path()).expect("client home");
        let client = Confidential::connect(server.api_client(), home)
            .await
            .expect("connect");
        // It reads the first client's home; the one it owns stays empty.
        let home = tempfile::tempdir().expect("tempdir");
        Owner { client, home }
    }

    /// Deploys example `example_name` as confidential action `name`.
    pub async fn deploy(&self, name: &str, example_name: &str) {
        self.deploy_with(name, example_name, &Default::default(), true)
            .await;
    }

    /// Deploys with explicit policy options.
    pub async fn deploy_with(
        &self,
        name: &str,
        example_name: &str,
        options: &clemmys_client::confidential::DeployOptions,
        overwrite: bool,
    ) {
        self.client
            .deploy(
                name,
                &example(example_name),
                Default::default(),
                overwrite,
                options,
            )
            .await
            .unwrap_or_else(|error| panic!("deploying {name}: {error}"));
    }

    /// Deploys example `echo` as confidential action `name` with default
    /// parameters `defaults` (a JSON object, sealed with the code) and
    /// `annotations` (a JSON object, if any).
    pub async fn deploy_echo_with_defaults(
        &self,
        name: &str,
        defaults: &serde_json::Value,
        annotations: Option<&serde_json::Value>,
    ) {
        let object = |value: &serde_json::Value| {
            clemmys_whisk::KeyValues::from_object(value.as_object().expect("an object"))
        };
        let put = clemmys_whisk::ActionPut {
            parameters: Some(object(defaults)),
            annotations: annotations.map(object),
            ..Default::default()
        };
        self.client
            .deploy(name, &example("echo"), put, true, &Default::default())
            .await
            .unwrap_or_else(|error| panic!("deploying {name}: {error}"));
    }

    /// Creates (or updates) confidential sequence `name` of `components`
    /// (short names in the owner's namespace), its plan signed by the owner.
    pub async fn create_sequence(&self, name: &str, components: &[&str]) {
        let components: Vec<String> = components.iter().map(|c| format!("/guest/{c}")).collect();
        self.client
            .put_sequence(name, &components, Default::default(), true)
            .await
            .unwrap_or_else(|error| panic!("creating sequence {name}: {error}"));
    }

    /// Blocking confidential invoke; the opened, verified answer.
    pub async fn invoke(
        &self,
        name: &str,
        params: Value,
    ) -> Result<
        clemmys_client::confidential::OpenedActivation,
        clemmys_client::confidential::ConfidentialError,
    > {
        use clemmys_client::confidential::ConfidentialInvoked;
        match self
            .client
            .invoke(name, &params, clemmys_client::InvokeOptions::blocking())
            .await?
        {
            ConfidentialInvoked::Completed(opened) => Ok(*opened),
            ConfidentialInvoked::Accepted { activation_id } => {
                panic!("{activation_id} did not finish in time")
            }
        }
    }
}

impl TestServer {
    /// Creates sequence `name` of `components` (short names in `guest`).
    pub async fn create_sequence(&self, name: &str, components: &[&str]) -> Answer {
        let components: Vec<String> = components.iter().map(|c| format!("/guest/{c}")).collect();
        let body = serde_json::json!({"exec": {"kind": "sequence", "components": components}});
        self.call(
            Method::PUT,
            &format!("/api/v1/namespaces/_/actions/{name}"),
            Some(body),
        )
        .await
    }

    /// The stored activation `id`, as the provider sees it.
    pub async fn record(&self, id: &str) -> Value {
        self.activation(id).await.json
    }

    /// Every stored activation record of the namespace, whole, as the
    /// provider reads them with its key (`?docs=true`).
    pub async fn activation_records(&self) -> Value {
        self.call(
            Method::GET,
            "/api/v1/namespaces/_/activations?docs=true",
            None,
        )
        .await
        .json
    }

    /// How many activations the namespace's records hold.
    pub async fn activation_count(&self) -> u64 {
        self.call(
            Method::GET,
            "/api/v1/namespaces/_/activations?count=true",
            None,
        )
        .await
        .json["activations"]
            .as_u64()
            .expect("count")
    }
}

/// Asserts that the client detected tampering in what it opened.
pub fn expect_tampered(
    outcome: &Result<
        clemmys_client::confidential::OpenedActivation,
        clemmys_client::confidential::ConfidentialError,
    >,
) {
    assert!(
        matches!(
            outcome,
            Err(clemmys_client::confidential::ConfidentialError::Tampered(_))
        ),
        "{outcome:?}"
    );
}

/// `N` random bytes.
fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("OS RNG");
    bytes
}

/// Every file under `dir` whose bytes contain `marker`.
pub fn files_containing(dir: &std::path::Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes
                .windows(marker.len())
                .any(|window| window == marker.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Rewrites the node's answer to the `n`th invoke (from 0) through a
/// [`ProviderFront`]: `(n, status, answer)` to what the client gets.
pub type Rewrite = Box<dyn FnMut(usize, StatusCode, Bytes) -> (StatusCode, Bytes) + Send>;

/// The provider's front of the node: it forwards every request, the
/// invokes of one action too (so they run), and may hold the first of
/// those back before forwarding it, and rewrite the node's answers.
pub struct ProviderFront {
    pub addr: std::net::SocketAddr,
    /// Notified once the first invoke is held (with [`Self::holding_first`]).
    pub holding: std::sync::Arc<tokio::sync::Notify>,
    /// Releases the held invoke.
    pub release: std::sync::Arc<tokio::sync::Notify>,
    serving: tokio::task::JoinHandle<()>,
}

impl ProviderFront {
    /// A front that rewrites the answers to invokes of `action`.
    pub async fn rewriting(
        node: std::net::SocketAddr,
        action: &'static str,
        rewrite: Rewrite,
    ) -> Self {
        Self::with(node, action, false, rewrite).await
    }

    /// A front that holds the first invoke of `action` back, before
    /// forwarding it, until [`Self::release`] is notified.
    pub async fn holding_first(node: std::net::SocketAddr, action: &'static str) -> Self {
        Self::with(
            node,
            action,
            true,
            Box::new(|_, status, answer| (status, answer)),
        )
        .await
    }

    async fn with(
        node: std::net::SocketAddr,
        action: &'static str,
        hold_first: bool,
        rewrite: Rewrite,
    ) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex, PoisonError};
        let holding = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let invokes = Arc::new(AtomicUsize::new(0));
        let rewrite = Arc::new(Mutex::new(rewrite));
        let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let handler = {
            let (holding, release) = (holding.clone(), release.clone());
            move |request: axum::extract::Request| {
                let (holding, release, invokes, rewrite, http) = (
                    holding.clone(),
                    release.clone(),
                    invokes.clone(),
                    rewrite.clone(),
                    http.clone(),
                );
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.expect("body").to_bytes();
                    let invoke = (parts.method == Method::POST
                        && parts.uri.path().ends_with(&format!("/actions/{action}")))
                    .then(|| invokes.fetch_add(1, Ordering::SeqCst));
                    if hold_first && invoke == Some(0) {
                        holding.notify_one();
                        release.notified().await;
                    }
                    let mut forwarded = Request::builder()
                        .method(parts.method)
                        .uri(format!("http://{node}{}", parts.uri));
                    for (name, value) in &parts.headers {
                        forwarded = forwarded.header(name, value);
                    }
                    let response = http
                        .request(forwarded.body(Full::new(body)).expect("request"))
                        .await
                        .expect("the node answers");
                    let status = response.status();
                    let answer = response
                        .into_body()
                        .collect()
                        .await
                        .expect("answer")
                        .to_bytes();
                    let (status, answer) = match invoke {
                        Some(n) => (rewrite.lock().unwrap_or_else(PoisonError::into_inner))(
                            n, status, answer,
                        ),
                        None => (status, answer),
                    };
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(answer))
                        .expect("response")
                }
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = axum::Router::new().fallback(handler);
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            holding,
            release,
            serving,
        }
    }

    /// A plain API client of the node through this front, with `server`'s
    /// guest key.
    pub fn client(&self, server: &TestServer) -> clemmys_client::Client {
        clemmys_client::Client::with_tls(
            &format!("http://{}", self.addr),
            server.node().guest_auth.clone(),
            &Default::default(),
        )
        .expect("client")
    }
}

impl Drop for ProviderFront {
    fn drop(&mut self) {
        self.serving.abort();
    }
}
