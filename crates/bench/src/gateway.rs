//! The attested gateway against the node it fronts (issue 19): the same
//! `noop` invoked plain on a node serving TLS, and confidential through an
//! owner's gateway in front of that node, in alternating slices of one
//! window (see [`crate::alternate`]) at 1 and N clients. Both sides are
//! what an unmodified OpenWhisk client sends: `POST
//! …/actions/NAME?blocking=true&result=true` with HTTP Basic credentials,
//! over TLS on keep-alive connections; the plain side trusts the node's
//! authority, the gateway side only the gateway's RA-TLS certificate.
//! The goal: the gateway's throughput at least 0.8 of plain.
//!
//! Then the handshakes on their own ([`clemmys_tls::handshakes`]): full
//! and resumed, on the node's listener configuration and on the
//! gateway's, which keep-alive clients pay once per connection.
//!
//! Two gateways, measured in the same window: one beside the node, which
//! calls the node's API in this process as `clemmys serve --gateway` does
//! ([`GatewayLink::InProcess`]), and one that reaches it over keep-alive
//! HTTPS as `clemmys gateway serve --apihost` on another host does
//! ([`GatewayLink::Https`]).
//!
//! Each gateway is set up as its owner would in the CLI, in this process:
//! started with `--owner` (the node's confidential client) and the guest
//! key towards the node, authorized with the broker (`gateway
//! authorize`), and asked for a credential with a request the owner signs
//! over its challenge (`gateway credential`). It runs on the node's
//! runtime, so its CPU counts as the node's.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use clemmys_gateway::credentials::{CredentialAction, CredentialRequest};
use clemmys_gateway::{CredentialAnswer, Gateway};
use clemmys_server::gateway_node::{GatewayNodeConfig, RunningGateway};
use clemmys_server::{CertificateSource, HttpLimits, ListenerTls};
use clemmys_tls::handshakes::{HandshakeCosts, Timings};
use clemmys_whisk::AuthKey;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde_json::json;

use crate::alternate;
use crate::load::LatencySummary;
use crate::progress::Progress;
use crate::scenarios::{Modules, Node, Plan};

/// The bound issue 19 sets on gateway throughput over plain.
pub const GATEWAY_THROUGHPUT_GOAL: f64 = 0.8;
/// The actions, of equal name length (the node stores each name twice in
/// every record).
const PLAIN_NOOP: &str = "bench-noop-plain";
const GATED_NOOP: &str = "bench-noop-gated";
const GATED_HTTPS_NOOP: &str = "bench-noop-https";
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the owner's authorization of the gateway lasts.
const DELEGATION: Duration = Duration::from_secs(24 * 3600);
/// What `noop` answers with `result=true`.
const NOOP_RESULT: &[u8] = b"{}";

/// How a gateway reaches the node it fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GatewayLink {
    /// Beside the node, calling its API in this process (`clemmys serve
    /// --gateway`).
    InProcess,
    /// Over keep-alive HTTPS (`clemmys gateway serve --apihost`).
    Https,
}

impl GatewayLink {
    /// How tables name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Https => "https",
        }
    }
}

/// Plain on the node and confidential through a gateway, at one client
/// count, measured side by side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRow {
    /// Concurrent clients (keep-alive connections).
    pub clients: usize,
    /// How the gateway reached the node.
    pub link: GatewayLink,
    /// Plain `noop` on the node, over TLS.
    pub plain: LatencySummary,
    /// Confidential `noop` through the gateway.
    pub gateway: LatencySummary,
    /// Gateway throughput / plain throughput (higher is better; the goal
    /// is at least 0.8).
    pub throughput_ratio: f64,
    /// Gateway p50 / plain p50 (lower is better).
    pub p50_ratio: f64,
}

impl GatewayRow {
    /// The row of `gateway` (linked to the node by `link`) against
    /// `plain` at `clients`.
    pub fn new(
        clients: usize,
        link: GatewayLink,
        plain: LatencySummary,
        gateway: LatencySummary,
    ) -> Self {
        Self {
            clients,
            link,
            throughput_ratio: gateway.throughput_rps / plain.throughput_rps,
            p50_ratio: gateway.p50_ms / plain.p50_ms,
            plain,
            gateway,
        }
    }
}

/// What one listener's handshakes cost (ms), one connection at a time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeRow {
    /// `node` or `gateway`.
    pub listener: String,
    /// Connections of each kind.
    pub connections: usize,
    /// Connect and echo a byte without TLS: the floor.
    pub tcp_p50_ms: f64,
    /// Connect, full handshake, echo a byte.
    pub full_p50_ms: f64,
    /// Its 90th percentile.
    pub full_p90_ms: f64,
    /// Connect, resumed handshake, echo a byte.
    pub resumed_p50_ms: f64,
    /// Its 90th percentile.
    pub resumed_p90_ms: f64,
    /// How many of the resumed kind's connections did resume.
    pub resumed: usize,
}

impl HandshakeRow {
    /// The row of `listener`'s measured `costs`.
    pub fn new(listener: &str, costs: &HandshakeCosts) -> Self {
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        Self {
            listener: listener.to_owned(),
            connections: costs.full.connections,
            tcp_p50_ms: ms(costs.tcp.p50),
            full_p50_ms: ms(costs.full.p50),
            full_p90_ms: ms(costs.full.p90),
            resumed_p50_ms: ms(costs.resumed.p50),
            resumed_p90_ms: ms(costs.resumed.p90),
            resumed: costs.resumed.resumed.unwrap_or(0),
        }
    }
}

/// What `--only gateway` measured.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    /// Warm, side by side, per client count.
    pub rows: Vec<GatewayRow>,
    /// The node's listener and the gateway's.
    pub handshakes: Vec<HandshakeRow>,
}

/// Measures the gateway path against plain on a node of its own.
pub async fn measure(
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<GatewayReport> {
    let largest = plan.clients.iter().copied().max().unwrap_or(1);
    let dir = crate::temporary_dir()?;
    let node = Node::start_with(dir.path(), largest, |config| {
        config.tls = Some(ListenerTls {
            certificate: CertificateSource::Local {
                extra_names: Vec::new(),
            },
            client_ca: None,
        });
    })
    .await?;
    let (beside, remote) = (crate::temporary_dir()?, crate::temporary_dir()?);
    let measured = async {
        let in_process =
            start_gateway(&node, beside.path(), largest, GatewayLink::InProcess).await?;
        let https = start_gateway(&node, remote.path(), largest, GatewayLink::Https).await?;
        let gateways = [
            (&in_process, beside.path(), GATED_NOOP),
            (&https, remote.path(), GATED_HTTPS_NOOP),
        ];
        let measured = measure_with(&node, gateways, plan, modules, progress).await;
        let runtime = node.runtime()?;
        let _ = runtime.spawn(in_process.shutdown()).await;
        let _ = runtime.spawn(https.shutdown()).await;
        measured
    }
    .await;
    node.shutdown().await;
    measured
}

/// A running gateway, its state directory and the action deployed
/// through it.
type Gated<'a> = (&'a RunningGateway, &'a std::path::Path, &'static str);

async fn measure_with(
    node: &Node,
    [beside, remote]: [Gated<'_>; 2],
    plan: &Plan,
    modules: &Modules,
    progress: &Progress,
) -> anyhow::Result<GatewayReport> {
    let on_node = Api::new(
        node.client.api_host(),
        node.guest_auth(),
        clemmys_tls::http_connector(node.client_tls(), true, CONNECT_TIMEOUT)?,
    )?;
    node.put_plain(PLAIN_NOOP, &modules.noop, true).await?;
    // The RA-TLS certificate a gateway wrote, which its clients pin.
    let certificate_of = |state_dir: &std::path::Path| -> anyhow::Result<_> {
        clemmys_tls::read_certificates(&state_dir.join(clemmys_gateway::CERTIFICATE_FILE))?
            .into_iter()
            .next()
            .context("the gateway wrote no certificate")
    };
    let mut operations = vec![on_node.invoke_operation(PLAIN_NOOP).await?];
    for (gateway, state_dir, action) in [beside, remote] {
        let credential = credential_for_owner(node, &gateway.gateway).await?;
        let through_gateway = Api::new(
            &gateway.url(),
            &credential,
            clemmys_tls::pinned_http_connector(certificate_of(state_dir)?, CONNECT_TIMEOUT)?,
        )?;
        through_gateway.deploy(action, &modules.noop).await?;
        operations.push(through_gateway.invoke_operation(action).await?);
    }
    let mut rows = Vec::new();
    for &clients in &plan.clients {
        let label = format!(
            "gateway: noop plain vs through a gateway in-process and over https, {clients} client(s)"
        );
        let mut measured =
            alternate::side_by_side(&label, plan.spec(clients), &operations, progress)
                .await?
                .into_iter();
        let (Some(plain), Some(in_process), Some(https)) =
            (measured.next(), measured.next(), measured.next())
        else {
            bail!("{label}: the side-by-side window measured fewer than three operations");
        };
        rows.push(GatewayRow::new(
            clients,
            GatewayLink::InProcess,
            plain.summary,
            in_process.summary,
        ));
        rows.push(GatewayRow::new(
            clients,
            GatewayLink::Https,
            plain.summary,
            https.summary,
        ));
    }
    // Both gateways' listeners are configured alike: one is measured.
    let (gateway, state_dir, _) = beside;

    let step = progress.counted("gateway: TLS handshakes, node and gateway", 2);
    let node_tls = node.data_dir().join(clemmys_server::tls::LOCAL_TLS_DIR);
    let node_listener = clemmys_tls::ServerTls::from_pem_files(
        &node_tls.join(clemmys_tls::CERT_FILE),
        &node_tls.join(clemmys_tls::KEY_FILE),
        None,
    )?;
    let node_costs = clemmys_tls::handshakes::measure(
        node_listener.acceptor(),
        clemmys_tls::client_config(node.client_tls())?,
        "localhost",
        plan.handshakes,
    )
    .await
    .context("measuring the node's handshakes")?;
    step.inc();
    let gateway_costs = clemmys_tls::handshakes::measure(
        gateway.gateway.tls().acceptor(),
        clemmys_tls::pinned_client_config(certificate_of(state_dir)?)?,
        "localhost",
        plan.handshakes,
    )
    .await
    .context("measuring the gateway's handshakes")?;
    step.inc();
    let handshakes = vec![
        HandshakeRow::new("node", &node_costs),
        HandshakeRow::new("gateway", &gateway_costs),
    ];
    step.finish(&format!(
        "full p50 {:.3} / {:.3} ms, resumed p50 {:.3} / {:.3} ms (node / gateway)",
        millis(&node_costs.full),
        millis(&gateway_costs.full),
        millis(&node_costs.resumed),
        millis(&gateway_costs.resumed)
    ));
    Ok(GatewayReport { rows, handshakes })
}

fn millis(timings: &Timings) -> f64 {
    timings.p50.as_secs_f64() * 1e3
}

/// Starts an owner's gateway in front of `node`, on its runtime, as
/// `clemmys gateway serve --owner OWNER --auth GUEST_KEY` does, reaching
/// the node by `link`, and authorizes it with the broker as the owner
/// (`gateway authorize`).
async fn start_gateway(
    node: &Node,
    state_dir: &std::path::Path,
    clients: usize,
    link: GatewayLink,
) -> anyhow::Result<RunningGateway> {
    let owner = node
        .owner
        .home()
        .identity()
        .context("reading the owner's identity")?
        .id();
    let config = GatewayNodeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        node: node.client.api_host().to_owned(),
        node_tls: node.client_tls().clone(),
        node_in_process: match link {
            GatewayLink::InProcess => Some(node.in_process()),
            GatewayLink::Https => None,
        },
        state_dir: state_dir.to_owned(),
        // The node's platform: its broker accepts the gateway's evidence.
        sim_platform_key: Some(node.data_dir().join("sim-platform.key")),
        namespace: node.owner.namespace().to_owned(),
        extra_names: Vec::new(),
        http: HttpLimits {
            max_connections: HttpLimits::default()
                .max_connections
                .max(clients.saturating_mul(2)),
            ..HttpLimits::default()
        },
        owner: Some(owner),
        node_auth: Some(node.guest_auth().clone()),
        client_log_limit: clemmys_gateway::DEFAULT_CLIENT_LOG_LIMIT,
    };
    let gateway = node
        .runtime()?
        .spawn(RunningGateway::start(config))
        .await
        .context("the gateway's start panicked")?
        .context("starting the gateway")?;
    let expires_ms = clemmys_whisk::now_ms()
        .saturating_add(u64::try_from(DELEGATION.as_millis()).unwrap_or(u64::MAX));
    let inner = &gateway.gateway;
    node.owner
        .delegate(inner.identity(), inner.measurement(), expires_ms)
        .await
        .context("authorizing the gateway with the broker")?;
    Ok(gateway)
}

/// A credential the gateway issues its owner for a request signed over
/// its challenge, as `clemmys gateway credential` gets one.
async fn credential_for_owner(node: &Node, gateway: &Gateway) -> anyhow::Result<AuthKey> {
    let identity = node
        .owner
        .home()
        .identity()
        .context("reading the owner's identity")?;
    let challenge = gateway.challenge().context("asking for a challenge")?;
    let signed = CredentialRequest {
        action: CredentialAction::Issue,
        gateway: gateway.identity(),
        owner: identity.id(),
        challenge: hex::encode(challenge),
    }
    .sign(&identity);
    match gateway.answer(signed).context("asking for a credential")? {
        CredentialAnswer::Issued(auth) => Ok(auth),
        other => bail!("the gateway answered a credential request with {other:?}"),
    }
}

/// The OpenWhisk API of one server over keep-alive HTTPS connections, as
/// an unmodified client speaks it.
#[derive(Clone)]
struct Api {
    http: HyperClient<clemmys_tls::HttpsConnector, Full<Bytes>>,
    base: String,
    authorization: HeaderValue,
}

impl Api {
    fn new(
        base: &str,
        auth: &AuthKey,
        connector: clemmys_tls::HttpsConnector,
    ) -> anyhow::Result<Self> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(auth.to_string());
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .context("the API key cannot be sent in a header")?;
        authorization.set_sensitive(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// `method path` with a JSON `body`: the status and the answer.
    async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let uri = format!("{}{path}", self.base);
        let request = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .context("building the request")?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("calling {uri}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of {uri}"))?
            .to_bytes();
        Ok((status, body))
    }

    /// Creates (or replaces) wasm action `name`, as `wsk action update`
    /// sends it: through the gateway, that deploys it confidential.
    async fn deploy(&self, name: &str, wasm: &[u8]) -> anyhow::Result<()> {
        let code = base64::engine::general_purpose::STANDARD.encode(wasm);
        let body = json!({"exec": {"kind": "wasm", "code": code, "binary": true}});
        let (status, answer) = self
            .send(
                hyper::Method::PUT,
                &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
                Bytes::from(body.to_string()),
            )
            .await?;
        if status != 200 {
            bail!(
                "creating {name} through {}: HTTP {status}: {}",
                self.base,
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }

    /// One blocking invoke of `noop` action `name` that must answer `{}`.
    async fn invoke(&self, name: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .send(
                hyper::Method::POST,
                &format!("/api/v1/namespaces/_/actions/{name}?blocking=true&result=true"),
                Bytes::from_static(b"{}"),
            )
            .await?;
        crate::load::check_answer(status, &body, NOOP_RESULT)
    }

    /// The invoke of `name` as a load-generator operation, after one
    /// untimed invoke (a failure there is a setup error).
    async fn invoke_operation(&self, name: &str) -> anyhow::Result<alternate::Operation> {
        self.invoke(name)
            .await
            .with_context(|| format!("invoking {name} through {}", self.base))?;
        let (api, name): (Self, std::sync::Arc<str>) = (self.clone(), name.into());
        Ok(alternate::operation(move || {
            let (api, name) = (api.clone(), name.clone());
            async move { api.invoke(&name).await }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_divide_the_gateway_by_plain() {
        let summary = |rps: f64, p50: f64| crate::model::tests::summary(rps, p50);
        let row = GatewayRow::new(
            8,
            GatewayLink::Https,
            summary(4000.0, 2.0),
            summary(3400.0, 2.5),
        );
        assert!((row.throughput_ratio - 0.85).abs() < 1e-12);
        assert!((row.p50_ratio - 1.25).abs() < 1e-12);
        assert_eq!(row.link.name(), "https");
        assert_eq!(
            serde_json::to_value(GatewayLink::InProcess).expect("json"),
            "inProcess"
        );
    }

    #[test]
    fn handshake_rows_are_in_milliseconds() {
        let timings = |micros: u64, resumed| Timings {
            connections: 100,
            p50: Duration::from_micros(micros),
            p90: Duration::from_micros(micros * 2),
            mean: Duration::from_micros(micros),
            resumed,
        };
        let costs = HandshakeCosts {
            tcp: timings(60, None),
            full: timings(500, Some(0)),
            resumed: timings(350, Some(99)),
        };
        let row = HandshakeRow::new("gateway", &costs);
        assert_eq!(row.connections, 100);
        assert!((row.full_p50_ms - 0.5).abs() < 1e-12);
        assert!((row.full_p90_ms - 1.0).abs() < 1e-12);
        assert!((row.resumed_p50_ms - 0.35).abs() < 1e-12);
        assert!((row.tcp_p50_ms - 0.06).abs() < 1e-12);
        assert_eq!(row.resumed, 99);
    }
}
