//! Where a listener's TLS certificate comes from: files the operator
//! gives, or a certificate authority of the node's own, made on first start
//! in `DATA_DIR/tls` (see [`clemmys_tls::ensure_local_certificate`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clemmys_tls::{ServerTls, TlsAcceptor};

/// The directory under the data directory holding the node's own
/// certificate authority and certificate.
pub const LOCAL_TLS_DIR: &str = "tls";

/// A listener's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The certificate the listener presents.
    pub certificate: CertificateSource,
    /// When given, clients must present a certificate issued by one of the
    /// authorities in this PEM file.
    pub client_ca: Option<PathBuf>,
}

/// Where the listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A PEM certificate chain and its key.
    Files {
        /// The chain.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// The node's own authority in `DATA_DIR/tls`, for `localhost`, the
    /// loopback addresses, the listen address and these extra names.
    Local {
        /// DNS names or addresses besides the defaults.
        extra_names: Vec<String>,
    },
}

/// A listener's TLS, ready to accept.
pub(crate) struct ResolvedTls {
    pub acceptor: TlsAcceptor,
    /// The authority clients should trust, when the node made its own.
    pub ca_file: Option<PathBuf>,
}

impl ListenerTls {
    /// Loads (or, for [`CertificateSource::Local`], makes) the certificate.
    pub(crate) fn resolve(
        &self,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> anyhow::Result<ResolvedTls> {
        let (cert, key, ca_file) = match &self.certificate {
            CertificateSource::Files { cert, key } => (cert.clone(), key.clone(), None),
            CertificateSource::Local { extra_names } => {
                let mut names = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ];
                let listen_ip = (!listen.ip().is_unspecified()).then(|| listen.ip().to_string());
                for name in listen_ip.iter().chain(extra_names) {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                // Absolute, as clients are told to trust its authority's
                // file from wherever they run.
                let dir = std::path::absolute(data_dir.join(LOCAL_TLS_DIR))
                    .context("resolving the data directory")?;
                let local =
                    clemmys_tls::ensure_local_certificate(&dir, &names).with_context(|| {
                        format!("making the node's certificate in {}", dir.display())
                    })?;
                if local.created {
                    tracing::info!(
                        ca = %local.ca_path.display(),
                        names = ?names,
                        "made a certificate authority and a TLS certificate for this node; clients trust the authority's file"
                    );
                }
                (local.cert_path, local.key_path, Some(local.ca_path))
            }
        };
        let server = ServerTls::from_pem_files(&cert, &key, self.client_ca.as_deref())
            .context("configuring TLS")?;
        Ok(ResolvedTls {
            acceptor: server.acceptor(),
            ca_file,
        })
    }
}
