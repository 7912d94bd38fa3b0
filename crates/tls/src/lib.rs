//! TLS for Clemmys' listeners (node, broker) and clients: rustls
//! configurations built from PEM files or, for a node given none, from a
//! certificate authority of its own made on first start.
//!
//! Everything below the configuration is rustls with the *ring* provider;
//! certificates are made by `rcgen`. Nothing here is home-made.
//!
//! TLS guards the connection to the provider's front door (the API key,
//! plain actions' parameters and results, names). It is not what keeps a
//! confidential action's code and data from the provider: those are sealed
//! end to end to attested enclaves whatever the transport, so a client
//! that skips certificate checks (`--insecure`) loses only what TLS adds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

pub mod handshakes;

pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The connector of [`http_connector`] and [`pinned_http_connector`].
pub type HttpsConnector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The file names of a node's own certificate authority and certificate.
pub const CA_FILE: &str = "ca.pem";
/// The node's certificate chain (its certificate, then the CA's).
pub const CERT_FILE: &str = "cert.pem";
/// The node certificate's private key (mode 0600).
pub const KEY_FILE: &str = "key.pem";
/// The names the node certificate was made for, one per line.
const NAMES_FILE: &str = "names";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A PEM file holds something that is not PEM.
    #[error("{}: not a PEM file: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no CERTIFICATE block found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A CA file's certificate cannot be a trust anchor.
    #[error("{}: a certificate cannot be trusted as an authority: {source}", path.display())]
    BadAuthority {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::Error,
    },
    /// rustls refused the certificate, key or settings.
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// rustls refused the client-certificate authority.
    #[error("client certificate authority refused: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// A certificate could not be made.
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Neither the system nor a CA file gave any certificate to trust.
    #[error(
        "no certificate authority to trust: the system has none and no CA file was given (use --cacert FILE, or --insecure)"
    )]
    NoRoots,
}

/// The one crypto provider of every configuration here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of the PEM file at `path`.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// Reads the private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| TlsError::Pem {
        path: path.to_owned(),
        source,
    })
}

/// The certificates of the PEM file at `path` as trust anchors.
fn read_roots(path: &Path, roots: &mut RootCertStore) -> Result<(), TlsError> {
    for certificate in read_certificates(path)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::BadAuthority {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// A listener's TLS configuration.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Serves the certificate chain at `cert_path` with the key at
    /// `key_path`; when `client_ca` is given, every client must present a
    /// certificate issued by one of its certificates.
    pub fn from_pem_files(
        cert_path: &Path,
        key_path: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let chain = read_certificates(cert_path)?;
        let key = read_private_key(key_path)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                read_roots(path, &mut roots)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key)?;
        // The listener speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Serves `chain` (end-entity certificate first) with `key`, asking
    /// clients for no certificate: a listener whose certificate was made in
    /// memory (the gateway's RA-TLS certificate).
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The acceptor that runs handshakes on accepted connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

/// A node's own certificate authority and the certificate it made, as
/// files in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCertificate {
    /// The authority's certificate: what clients trust (`--cacert`,
    /// `curl --cacert`, `NODE_EXTRA_CA_CERTS`).
    pub ca_path: PathBuf,
    /// The node's certificate chain.
    pub cert_path: PathBuf,
    /// The node certificate's key.
    pub key_path: PathBuf,
    /// Whether the files were made now (rather than found).
    pub created: bool,
}

/// The certificate of `dir` for `names` (DNS names or IP addresses): the
/// one found there when it was made for all of them, else a new one from
/// a new authority. The authority's key is dropped once the certificate is
/// signed, so nothing on disk can issue another.
pub fn ensure_local_certificate(
    dir: &Path,
    names: &[String],
) -> Result<LocalCertificate, TlsError> {
    let mut local = LocalCertificate {
        ca_path: dir.join(CA_FILE),
        cert_path: dir.join(CERT_FILE),
        key_path: dir.join(KEY_FILE),
        created: false,
    };
    let names_path = dir.join(NAMES_FILE);
    let complete = [&local.ca_path, &local.cert_path, &local.key_path]
        .iter()
        .all(|path| path.is_file());
    if complete {
        let made_for = std::fs::read_to_string(&names_path).unwrap_or_default();
        let made_for: Vec<&str> = made_for.lines().collect();
        if names.iter().all(|name| made_for.contains(&name.as_str())) {
            return Ok(local);
        }
        tracing::warn!(
            dir = %dir.display(),
            "the node's certificate does not cover every name asked for; making a new authority and certificate, which clients must trust again"
        );
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate()?;
    // A name of its own: clients that trust several nodes' authorities
    // find the right one by name.
    let tag: String = ca_key
        .public_key_raw()
        .iter()
        .rev()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Clemmys node CA {tag}"));
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut node_params = rcgen::CertificateParams::new(names.to_vec())?;
    node_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Clemmys node");
    // Client use too: a node may present it to a broker that asks
    // (`--tls-client-ca` naming this authority).
    node_params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node_key = rcgen::KeyPair::generate()?;
    let node = node_params.signed_by(&node_key, &issuer)?;

    write_file(&local.key_path, node_key.serialize_pem().as_bytes(), true)?;
    write_file(
        &local.cert_path,
        format!("{}{}", node.pem(), ca.pem()).as_bytes(),
        false,
    )?;
    write_file(&local.ca_path, ca.pem().as_bytes(), false)?;
    write_file(&names_path, names.join("\n").as_bytes(), false)?;
    local.created = true;
    Ok(local)
}

/// Writes `contents` to `path` through a temporary file, readable by the
/// owner only when `private`.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write as _;
    let error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

/// How a client checks the servers it talks to, and who it is to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsOptions {
    /// A PEM file of authorities trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Skip every check of the server's certificate (`-i`, as `wsk`).
    pub insecure: bool,
    /// A client certificate chain and its key, for servers that ask.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// A client configuration following `options`.
pub fn client_config(options: &ClientTlsOptions) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnrootedCertificate::any()))
    } else {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            tracing::debug!(%error, "reading the system's certificate authorities");
        }
        let (_added, _ignored) = roots.add_parsable_certificates(system.certs);
        if let Some(path) = &options.ca_file {
            read_roots(path, &mut roots)?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        builder.with_root_certificates(roots)
    };
    // No ALPN here: the HTTP connector sets it (and insists on doing so).
    Ok(match &options.identity {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => builder
            .with_client_auth_cert(read_certificates(cert_path)?, read_private_key(key_path)?)?,
    })
}

/// A client configuration trusting exactly `pinned` (a certificate
/// verified by other means, as an RA-TLS certificate is for its
/// evidence): no authority, name or date is consulted, but the handshake
/// must still be signed by that certificate's key.
pub fn pinned_client_config(pinned: CertificateDer<'static>) -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UnrootedCertificate::pinned(pinned)))
        .with_no_client_auth())
}

/// A connector as [`http_connector`] for `https://` URLs whose server
/// must present exactly `pinned` ([`pinned_client_config`]).
pub fn pinned_http_connector(
    pinned: CertificateDer<'static>,
    connect_timeout: std::time::Duration,
) -> Result<HttpsConnector, TlsError> {
    Ok(connector_with(
        pinned_client_config(pinned)?,
        connect_timeout,
    ))
}

/// A connection-pool connector for `http://` and `https://` URLs, with
/// TCP_NODELAY and `connect_timeout`. Its TLS settings follow `options`
/// and are built only when `https` (the client's URL is `https://`), so a
/// plain-HTTP client needs no authorities to trust; such a connector then
/// trusts none and fails any `https://` URL it is handed.
pub fn http_connector(
    options: &ClientTlsOptions,
    https: bool,
    connect_timeout: std::time::Duration,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    TlsError,
> {
    let config = if https {
        client_config(options)?
    } else {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth()
    };
    Ok(connector_with(config, connect_timeout))
}

fn connector_with(
    config: ClientConfig,
    connect_timeout: std::time::Duration,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    // The TLS layer above takes `https://` URLs.
    tcp.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}

/// The TLS failure (an untrusted certificate, a refused client
/// certificate, a protocol error) somewhere in `error`'s chain of causes,
/// if that is why a connection failed.
pub fn tls_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An I/O error's own `source` skips the error it wraps.
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| tls_failure(inner))
        {
            return Some(inner);
        }
        cause = current.source();
    }
    None
}

/// Why a server's certificate could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server could not be reached.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// The address tried.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The name is not a valid TLS server name.
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    /// The handshake failed.
    #[error("TLS handshake with {address}: {source}")]
    Handshake {
        /// The address tried.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server presented no certificate.
    #[error("{0} presented no certificate")]
    NoCertificate(String),
    /// TLS settings could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Completes a TLS handshake with `address` (`host:port`) for
/// `server_name` and answers the end-entity certificate it presented,
/// without judging it: the caller checks it (an RA-TLS certificate is
/// trusted for its evidence, not for an authority's signature). The
/// handshake still proves the server holds that certificate's key.
pub async fn fetch_server_certificate(
    address: &str,
    server_name: &str,
) -> Result<CertificateDer<'static>, FetchError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::from)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UnrootedCertificate::any()))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| FetchError::ServerName(server_name.to_owned()))?;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|source| FetchError::Connect {
            address: address.to_owned(),
            source,
        })?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| FetchError::Handshake {
            address: address.to_owned(),
            source,
        })?;
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|certificate| certificate.clone().into_owned())
        .ok_or_else(|| FetchError::NoCertificate(address.to_owned()))
}

/// A verifier that accepts server certificates without a CA: any one
/// (`--insecure`) or only a pinned one. Either way the handshake's
/// signatures are still checked against the certificate presented.
#[derive(Debug)]
struct UnrootedCertificate {
    accepted: AcceptedCertificate,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Which server certificate an [`UnrootedCertificate`] accepts.
#[derive(Debug)]
enum AcceptedCertificate {
    /// Any (`--insecure`).
    Any,
    /// Exactly this one (see [`pinned_client_config`]).
    Pinned(CertificateDer<'static>),
}

impl UnrootedCertificate {
    fn any() -> Self {
        Self {
            accepted: AcceptedCertificate::Any,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    fn pinned(pinned: CertificateDer<'static>) -> Self {
        Self {
            accepted: AcceptedCertificate::Pinned(pinned),
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for UnrootedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.accepted {
            AcceptedCertificate::Any => Ok(ServerCertVerified::assertion()),
            AcceptedCertificate::Pinned(pinned) if end_entity.as_ref() == pinned.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            AcceptedCertificate::Pinned(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_verifier_accepts_only_its_certificate() {
        let certificate = |name: &str| {
            rcgen::CertificateParams::new(vec![name.to_owned()])
                .expect("params")
                .self_signed(&rcgen::KeyPair::generate().expect("key"))
                .expect("certificate")
                .der()
                .clone()
        };
        let (pinned, other) = (certificate("localhost"), certificate("localhost"));
        let verifier = UnrootedCertificate::pinned(pinned.clone());
        let name = ServerName::try_from("localhost").expect("name");
        assert!(
            verifier
                .verify_server_cert(&pinned, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            verifier
                .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn a_local_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let made = ensure_local_certificate(dir.path(), &names()).expect("made");
        assert!(made.created);
        let again = ensure_local_certificate(dir.path(), &names()).expect("found");
        assert!(!again.created);
        assert_eq!(
            std::fs::read(&made.ca_path).expect("ca"),
            std::fs::read(&again.ca_path).expect("ca")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&made.key_path)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }
        // A name the certificate lacks makes a new authority.
        let first_ca = std::fs::read(&made.ca_path).expect("ca");
        let wider = [names(), vec!["node.example".into()]].concat();
        let remade = ensure_local_certificate(dir.path(), &wider).expect("remade");
        assert!(remade.created);
        assert_ne!(first_ca, std::fs::read(&remade.ca_path).expect("ca"));
    }

    #[test]
    fn a_server_and_a_client_are_configured_from_the_files() {
        let dir = tempfile::tempdir().expect("dir");
        let local = ensure_local_certificate(dir.path(), &names()).expect("made");
        ServerTls::from_pem_files(&local.cert_path, &local.key_path, None).expect("server");
        ServerTls::from_pem_files(&local.cert_path, &local.key_path, Some(&local.ca_path))
            .expect("server asking for client certificates");
        client_config(&ClientTlsOptions {
            ca_file: Some(local.ca_path.clone()),
            ..ClientTlsOptions::default()
        })
        .expect("client");
    }

    #[test]
    fn unreadable_or_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.pem");
        let error = read_certificates(&missing).expect_err("missing");
        assert!(error.to_string().contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").expect("write");
        assert!(matches!(
            read_certificates(&empty),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(read_private_key(&empty).is_err());
    }
}
