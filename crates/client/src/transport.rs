//! The HTTP plumbing: one pooled HTTP/1 connection set per [`Transport`],
//! Basic authentication, and raw requests relative to `APIHOST/api/v1`.
//!
//! [`Client`](crate::Client) builds its typed calls on
//! [`Transport::request`]; a layer that must see or rewrite bodies (sealing
//! parameters before an invoke, opening results after) can do the same with
//! [`Client::request`](crate::Client::request) without touching either.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clemmys_tls::ClientTlsOptions;
use clemmys_whisk::AuthKey;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::ClientError;

/// The path of the OpenWhisk API under the API host.
pub const API_PATH: &str = "/api/v1";

/// Largest response body read (action code is at most 48 MB, 64 MB as base64).
pub const MAX_RESPONSE_BYTES: usize = 96 * 1024 * 1024;

/// How long establishing a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unused pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer of the API host, whatever its status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as `T` when the status is a success, or the API's error.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
    ) -> Result<T, ClientError> {
        self.error_for_status()?;
        serde_json::from_slice(&self.body).map_err(|e| ClientError::decode(what, e))
    }

    /// `Err(ClientError::Api)` when the status is 400 or above.
    pub fn error_for_status(&self) -> Result<(), ClientError> {
        if self.status.is_client_error() || self.status.is_server_error() {
            Err(ClientError::from_response(self.status.as_u16(), &self.body))
        } else {
            Ok(())
        }
    }
}

/// One finished (or failed) exchange, reported to an [`Observer`].
#[derive(Debug)]
pub struct Exchange<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The full request URI.
    pub uri: &'a Uri,
    /// The response status, or `None` when no response arrived.
    pub status: Option<StatusCode>,
    /// Time from sending the request to having the whole body.
    pub elapsed: Duration,
}

/// A callback told about every exchange (for `--verbose` output or metrics).
pub type Observer = Arc<dyn Fn(&Exchange<'_>) + Send + Sync>;

/// Where and as whom to send requests; shared by all clones of a transport.
struct Target {
    api_host: String,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix up to and including `/api/v1`.
    prefix: String,
    authorization: HeaderValue,
    observer: Option<Observer>,
}

/// An API host served by this very process, called without a socket:
/// the node's router when an attested gateway runs beside it
/// (`clemmys serve --gateway`). It gets exactly the requests a network
/// client would send (sealed bodies, the same credentials), so what
/// crosses to the provider is unchanged; what goes is the cost of TLS,
/// HTTP framing and a socket per request.
pub trait LocalApi: std::fmt::Debug + Send + Sync + 'static {
    /// Serves one request: the whole answer, or why there is none.
    fn call(&self, request: Request<Full<Bytes>>) -> LocalAnswer;
}

/// What [`LocalApi::call`] returns.
pub type LocalAnswer = Pin<
    Box<
        dyn Future<Output = Result<Response<Bytes>, Box<dyn std::error::Error + Send + Sync>>>
            + Send,
    >,
>;

/// Where a transport's requests go.
#[derive(Clone)]
enum Route {
    /// Over pooled HTTP/1 connections (TLS for `https://`).
    Network(HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>),
    /// To a [`LocalApi`] in this process.
    InProcess(Arc<dyn LocalApi>),
}

impl Target {
    /// `api_host` taken apart, and `auth` as a Basic credential.
    fn new(api_host: &str, auth: &AuthKey) -> Result<Self, ClientError> {
        let ApiHost {
            scheme,
            authority,
            path,
        } = parse_api_host(api_host)?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(auth.to_string());
        let mut authorization =
            HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|_| {
                ClientError::Config {
                    message: "the API key contains characters that cannot be sent in a header"
                        .into(),
                }
            })?;
        authorization.set_sensitive(true);
        Ok(Self {
            api_host: api_host.trim().to_owned(),
            scheme,
            authority,
            prefix: format!("{path}{API_PATH}"),
            authorization,
            observer: None,
        })
    }
}

/// A connection-pooling HTTP/1 client bound to one API host and one key.
/// Cloning is cheap and clones share the connection pool.
#[derive(Clone)]
pub struct Transport {
    route: Route,
    target: Arc<Target>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api_host", &self.target.api_host)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport for `api_host` (see [`parse_api_host`]) authenticating
    /// with `auth`, checking an `https://` host's certificate against the
    /// system's authorities.
    pub fn new(api_host: &str, auth: &AuthKey) -> Result<Self, ClientError> {
        Self::with_tls(api_host, auth, &ClientTlsOptions::default())
    }

    /// A transport for `api_host` authenticating with `auth`, checking an
    /// `https://` host as `tls` says.
    pub fn with_tls(
        api_host: &str,
        auth: &AuthKey,
        tls: &ClientTlsOptions,
    ) -> Result<Self, ClientError> {
        let target = Target::new(api_host, auth)?;
        let connector =
            clemmys_tls::http_connector(tls, target.scheme == Scheme::HTTPS, CONNECT_TIMEOUT)
                .map_err(|source| ClientError::Tls {
                    api_host: target.api_host.clone(),
                    source,
                })?;
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            route: Route::Network(http),
            target: Arc::new(target),
        })
    }

    /// A transport that hands its requests to `api`, the API host
    /// `api_host` served by this process, authenticating with `auth` as
    /// over the network.
    pub fn in_process(
        api_host: &str,
        auth: &AuthKey,
        api: Arc<dyn LocalApi>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            route: Route::InProcess(api),
            target: Arc::new(Target::new(api_host, auth)?),
        })
    }

    /// This transport, reporting every exchange to `observer`.
    pub fn with_observer(self, observer: Observer) -> Self {
        let target = Target {
            api_host: self.target.api_host.clone(),
            scheme: self.target.scheme.clone(),
            authority: self.target.authority.clone(),
            prefix: self.target.prefix.clone(),
            authorization: self.target.authorization.clone(),
            observer: Some(observer),
        };
        Self {
            route: self.route,
            target: Arc::new(target),
        }
    }

    /// The API host as configured.
    pub fn api_host(&self) -> &str {
        &self.target.api_host
    }

    /// Sends `method` to `APIHOST/api/v1{path_and_query}` (which must start
    /// with `/` and be percent-encoded) with an optional JSON body, and
    /// returns the answer whatever its status.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<RawResponse, ClientError> {
        let target = &*self.target;
        let uri = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(format!("{}{path_and_query}", target.prefix))
            .build()
            .map_err(|e| ClientError::Config {
                message: format!("cannot build a request for '{path_and_query}': {e}"),
            })?;
        // Kept only when someone observes exchanges.
        let observed = target
            .observer
            .as_ref()
            .map(|observer| (observer, method.clone(), uri.clone(), Instant::now()));
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, target.authorization.clone())
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .header(
                header::USER_AGENT,
                HeaderValue::from_static(concat!("clemmys-client/", env!("CARGO_PKG_VERSION"))),
            );
        if body.is_some() {
            builder = builder.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ClientError::Config {
                message: format!("cannot build a request for '{path_and_query}': {e}"),
            })?;

        let result = self.exchange(request).await;
        if let Some((observer, method, uri, started)) = observed {
            observer(&Exchange {
                method: &method,
                uri: &uri,
                status: result.as_ref().ok().map(|r| r.status),
                elapsed: started.elapsed(),
            });
        }
        result
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<RawResponse, ClientError> {
        let transport_error =
            |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Transport {
                api_host: self.target.api_host.clone(),
                source,
            };
        let http = match &self.route {
            Route::Network(http) => http,
            Route::InProcess(api) => {
                let (parts, body) = api
                    .call(request)
                    .await
                    .map_err(transport_error)?
                    .into_parts();
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(transport_error("the response body is too large".into()));
                }
                return Ok(RawResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                });
            }
        };
        let response =
            http.request(request).await.map_err(|error| {
                match clemmys_tls::tls_failure(&error) {
                    Some(failure) => ClientError::TlsHandshake {
                        api_host: self.target.api_host.clone(),
                        reason: failure.to_string(),
                        hint: tls_hint(failure),
                    },
                    None => transport_error(Box::new(error)),
                }
            })?;
        let (parts, incoming) = response.into_parts();
        let body = Limited::new(incoming, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(transport_error)?
            .to_bytes();
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// An OpenWhisk `APIHOST`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHost {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// A path prefix before `/api/v1`, without a trailing `/` (often empty).
    pub path: String,
}

/// Splits an OpenWhisk `APIHOST` into scheme, authority and an optional
/// path prefix. As in OpenWhisk, a host without a scheme means `https://`.
pub fn parse_api_host(api_host: &str) -> Result<ApiHost, ClientError> {
    let trimmed = api_host.trim();
    let invalid = |reason: &str| ClientError::InvalidApiHost {
        api_host: trimmed.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let lower = trimmed.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("http://") {
        (
            Scheme::HTTP,
            trimmed.get("http://".len()..).unwrap_or_default(),
        )
    } else if lower.starts_with("https://") {
        (
            Scheme::HTTPS,
            trimmed.get("https://".len()..).unwrap_or_default(),
        )
    } else if !lower.contains("://") {
        (Scheme::HTTPS, trimmed)
    } else {
        return Err(invalid("only http:// and https:// are supported"));
    };
    let (host, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(invalid("it has no host name"));
    }
    if host.contains('@') {
        return Err(invalid(
            "credentials do not belong in the API host; use AUTH",
        ));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("it must not have a query or fragment"));
    }
    let authority: Authority = host.parse().map_err(|_| invalid("bad host or port"))?;
    let after_ipv6 = host.rsplit(']').next().unwrap_or(host);
    if let Some((_, port)) = after_ipv6.rsplit_once(':')
        && port.parse::<u16>().is_err()
    {
        return Err(invalid("the port must be a number from 0 to 65535"));
    }
    let path = path.trim_end_matches('/').to_owned();
    Ok(ApiHost {
        scheme,
        authority,
        path,
    })
}

/// What a user can try after the TLS failure `failure`.
fn tls_hint(failure: &rustls::Error) -> &'static str {
    match failure {
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the server wants a client certificate: give one with --cert FILE --key FILE, \
             or `clemmys property set --cert FILE --key FILE`"
        }
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            "the server did not answer in TLS: if it speaks plain HTTP, write the API host \
             as http://HOST:PORT"
        }
        _ => {
            "a server that made its own authority, `clemmys serve --tls`, is trusted with \
             --cacert DATA_DIR/tls/ca.pem or `clemmys property set --cacert FILE`; -i skips \
             the check"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a [`Recorder`] was sent: method, URI, credential, body.
    type Seen = (Method, String, Option<HeaderValue>, Bytes);

    /// An API host in this process that answers every request with
    /// `answer` and keeps what it was sent.
    #[derive(Debug)]
    struct Recorder {
        seen: Arc<std::sync::Mutex<Vec<Seen>>>,
        answer: Bytes,
    }

    impl LocalApi for Recorder {
        fn call(&self, request: Request<Full<Bytes>>) -> LocalAnswer {
            let (seen, answer) = (self.seen.clone(), self.answer.clone());
            Box::pin(async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                seen.lock().expect("lock").push((
                    parts.method,
                    parts.uri.to_string(),
                    parts.headers.get(header::AUTHORIZATION).cloned(),
                    body,
                ));
                Ok(Response::builder()
                    .status(StatusCode::ACCEPTED)
                    .body(answer)?)
            })
        }
    }

    #[tokio::test]
    async fn an_in_process_transport_sends_what_the_network_one_would() {
        let api = Arc::new(Recorder {
            seen: Arc::default(),
            answer: Bytes::from_static(b"{\"activationId\":\"a\"}"),
        });
        let auth: AuthKey = format!("{}:{}", "1".repeat(36), "k".repeat(64))
            .parse()
            .expect("auth");
        let transport = Transport::in_process("https://127.0.0.1:3233/prefix", &auth, api.clone())
            .expect("transport");
        let answer = transport
            .request(
                Method::POST,
                "/namespaces/_/actions/a?blocking=true",
                Some(Bytes::from_static(b"{\"sealed\":\"x\"}")),
            )
            .await
            .expect("answered");
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert_eq!(&answer.body[..], b"{\"activationId\":\"a\"}");
        let seen = api.seen.lock().expect("lock");
        let (method, uri, authorization, body) = &seen[0];
        assert_eq!(method, Method::POST);
        assert_eq!(
            uri,
            "https://127.0.0.1:3233/prefix/api/v1/namespaces/_/actions/a?blocking=true"
        );
        let expected = base64::engine::general_purpose::STANDARD.encode(auth.to_string());
        assert_eq!(
            authorization.as_ref().and_then(|v| v.to_str().ok()),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(&body[..], b"{\"sealed\":\"x\"}");
    }

    #[test]
    fn accepts_plain_http_hosts() {
        let host = parse_api_host("http://127.0.0.1:3233").expect("valid");
        assert_eq!(host.scheme, Scheme::HTTP);
        assert_eq!(host.authority.as_str(), "127.0.0.1:3233");
        assert_eq!(host.path, "");
        let host = parse_api_host(" HTTP://example.test/openwhisk/ ").expect("valid");
        assert_eq!(host.authority.as_str(), "example.test");
        assert_eq!(host.path, "/openwhisk");
        let host = parse_api_host("http://[::1]:3233/").expect("valid");
        assert_eq!(host.authority.port_u16(), Some(3233));
    }

    #[test]
    fn https_and_schemeless_hosts_mean_tls() {
        for (given, authority) in [
            ("https://openwhisk.example", "openwhisk.example"),
            ("HTTPS://127.0.0.1:3233/", "127.0.0.1:3233"),
            ("localhost:3233", "localhost:3233"),
            ("openwhisk.ng.bluemix.net", "openwhisk.ng.bluemix.net"),
        ] {
            let host = parse_api_host(given).expect(given);
            assert_eq!(host.scheme, Scheme::HTTPS, "{given}");
            assert_eq!(host.authority.as_str(), authority, "{given}");
        }
    }

    #[test]
    fn refuses_malformed_hosts() {
        for host in [
            "",
            "ftp://x",
            "http://",
            "https://",
            "http://u:p@host",
            "http://host:port",
            "http://h/?q",
        ] {
            assert!(
                matches!(
                    parse_api_host(host),
                    Err(ClientError::InvalidApiHost { .. })
                ),
                "{host}"
            );
        }
    }
}
