//! [`RemoteBroker`]: a [`BrokerLink`] to a broker running as its own
//! process ([`crate::broker_service`]), over HTTP. It is host code: it carries only
//! self-authenticating messages (evidence, sealed grants, MACed admissions).
//!
//! Enclaves call the link synchronously, from blocking threads; the HTTP
//! exchanges run on a small runtime of the link's own.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clemmys_proto::broker::{
    AdmitReply, AdmitRequest, BrokerIdentity, BrokerLink, KeyRequest, LinkError,
};
use clemmys_tls::ClientTlsOptions;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest one exchange with the broker may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest establishing a TCP connection to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A link to a broker at `http://HOST:PORT` or `https://HOST:PORT`.
pub struct RemoteBroker {
    base: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    identity: BrokerIdentity,
}

impl std::fmt::Debug for RemoteBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBroker")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RemoteBroker {
    /// Connects to the broker at `base` (`http://HOST:PORT`, or
    /// `https://HOST:PORT` checked as `tls` says) and fetches its identity
    /// document. Call from outside any async runtime (or from a blocking
    /// thread).
    pub fn connect(base: &str, tls: &ClientTlsOptions) -> Result<Self, LinkError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("broker-link")
            .enable_all()
            .build()
            .map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let https = base
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        let connector = clemmys_tls::http_connector(tls, https, CONNECT_TIMEOUT)
            .map_err(|e| LinkError::Unreachable(format!("the broker's TLS settings: {e}")))?;
        let http = Client::builder(TokioExecutor::new()).build(connector);
        let base = base.trim_end_matches('/').to_owned();
        let mut link = Self {
            base,
            http,
            runtime: Some(runtime),
            identity: placeholder_identity(),
        };
        let document = link.exchange("GET", "/identity", None)?;
        link.identity = serde_json::from_value(document["identity"].clone()).map_err(|e| {
            LinkError::Unreachable(format!("the broker's identity is malformed: {e}"))
        })?;
        Ok(link)
    }

    /// The broker's identity document, as its `/identity` route serves it
    /// now (its replay floor moves when it restarts). The identity itself
    /// must be the one this link met: a broker with other keys is another
    /// broker, and the link refuses to pass it off as its own.
    pub fn fetch_identity_document(&self) -> Result<Value, LinkError> {
        let document = self.exchange("GET", "/identity", None)?;
        let identity: BrokerIdentity = serde_json::from_value(document["identity"].clone())
            .map_err(|e| {
                LinkError::Unreachable(format!("the broker's identity is malformed: {e}"))
            })?;
        // Its evidence may be made anew at a restart; its keys are its own.
        if identity.keys != self.identity.keys {
            return Err(LinkError::Refused(
                "the broker's identity changed since this node connected to it: restart the node to meet it".into(),
            ));
        }
        Ok(document)
    }

    /// Forwards a sealed client request; answers the sealed reply.
    pub fn handle_client(&self, sealed: &[u8]) -> Result<Vec<u8>, LinkError> {
        let body = serde_json::json!({ "request": base64::engine::general_purpose::STANDARD.encode(sealed) });
        let reply = self.exchange("POST", "/client", Some(body))?;
        decode(&reply["reply"])
    }

    /// One JSON exchange, run on the link's own runtime.
    fn exchange(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, LinkError> {
        let uri = format!("{}{path}", self.base);
        let body = body.map(|value| value.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let http = self.http.clone();
        let exchange = async move {
            let response = http
                .request(request)
                .await
                .map_err(|e| LinkError::Unreachable(e.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| LinkError::Unreachable(e.to_string()))?
                .to_bytes();
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                LinkError::Unreachable(format!(
                    "the broker answered something that is not JSON: {e}"
                ))
            })?;
            if status.is_success() {
                return Ok(value);
            }
            let message = value["error"].as_str().unwrap_or("refused").to_owned();
            Err(match value["kind"].as_str() {
                Some("unknown-grant") => LinkError::UnknownGrant,
                _ => LinkError::Refused(message),
            })
        };
        let timed = async move {
            tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
                .await
                .map_err(|_| {
                    LinkError::Unreachable(format!(
                        "no answer from {uri} within {EXCHANGE_TIMEOUT:?}"
                    ))
                })?
        };
        // The link's runtime runs the exchange; this thread only waits for
        // it, so the call is safe from any thread, async or not.
        let (sender, receiver) = std::sync::mpsc::channel();
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| LinkError::Unreachable("the broker link stopped".into()))?;
        runtime.spawn(async move {
            let _ = sender.send(timed.await);
        });
        receiver
            .recv()
            .map_err(|_| LinkError::Unreachable("the broker link stopped".into()))?
    }
}

impl Drop for RemoteBroker {
    fn drop(&mut self) {
        // Dropping a runtime blocks; the link may be dropped inside another
        // runtime, so let this one wind down in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn decode(value: &Value) -> Result<Vec<u8>, LinkError> {
    value
        .as_str()
        .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .ok_or_else(|| LinkError::Unreachable("the broker answered without its payload".into()))
}

/// Replaced by the real identity before `connect` returns.
fn placeholder_identity() -> BrokerIdentity {
    BrokerIdentity {
        evidence: clemmys_proto::Evidence {
            tee: clemmys_proto::TeeKind::Sim,
            data: Vec::new(),
        },
        keys: clemmys_proto::identity::EnclavePublicKeys {
            kem: clemmys_proto::KemPublicKey([0; 32]),
            signing: clemmys_proto::SigningPublicKey([0; 32]),
        },
    }
}

impl BrokerLink for RemoteBroker {
    fn identity(&self) -> BrokerIdentity {
        self.identity.clone()
    }

    fn request_key(&self, request: &KeyRequest) -> Result<Vec<u8>, LinkError> {
        let body =
            serde_json::to_value(request).map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let reply = self.exchange("POST", "/grant", Some(body))?;
        decode(&reply["grant"])
    }

    fn admit(&self, request: &AdmitRequest) -> Result<AdmitReply, LinkError> {
        let body =
            serde_json::to_value(request).map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let reply = self.exchange("POST", "/admit", Some(body))?;
        serde_json::from_value(reply)
            .map_err(|e| LinkError::Unreachable(format!("malformed admission answer: {e}")))
    }
}
