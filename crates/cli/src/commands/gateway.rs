//! `clemmys gateway …`: run the attested gateway, and verify one before
//! trusting it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clemmys_gateway::TEST_MODE_WARNING;
use clemmys_gateway::credentials::{CredentialAction, CredentialRequest};
use clemmys_gateway::ratls::{RaTlsCertificate, VerifiedGateway};
use clemmys_proto::identity::EnclavePublicKeys;
use clemmys_proto::{Measurement, SigningPublicKey};
use clemmys_tee::{Role, SIM_WARNING, SgxPolicy, Verifier, measurement};
use rustls_pki_types::CertificateDer;
use serde_json::json;

use super::GlobalArgs;
use crate::output::outln;

/// `clemmys gateway …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GatewayCommand {
    /// Run the attested gateway in front of a node: unmodified OpenWhisk
    /// clients talk TLS to it, and it seals for them.
    Serve(GatewayServeArgs),
    /// Fetch a gateway's RA-TLS certificate, verify its evidence, and
    /// write the certificate to pin (curl --cacert with --pinnedpubkey,
    /// SSL_CERT_FILE for node with --use-openssl-ca and for wsk).
    Verify(VerifyArgs),
    /// Verify a gateway, then authorize it with the key broker to act for
    /// you (your client identity) in your namespace until it expires.
    Authorize(AuthorizeArgs),
    /// Withdraw your authorization of a gateway: the broker refuses its
    /// requests for you, and enclaves its invocations, from now on.
    Revoke(RevokeArgs),
    /// Verify a gateway that acts for you (started with --owner YOU), then
    /// get from it, over its attested TLS and with a request signed by your
    /// client identity, a credential (UUID:KEY) for unmodified OpenWhisk
    /// clients: the gateway refuses the namespace key, which the provider
    /// holds.
    Credential(CredentialArgs),
    /// Revoke a credential the gateway issued you (by its UUID): the
    /// gateway refuses it from now on.
    RevokeCredential(RevokeCredentialArgs),
}

/// Arguments of `gateway credential`.
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialArgs {
    /// The gateway and how its evidence is checked.
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Also write a wskprops file (APIHOST and AUTH) for `wsk` here
    /// (WSK_CONFIG_FILE=FILE).
    #[arg(long, value_name = "FILE")]
    pub props: Option<PathBuf>,
}

/// Arguments of `gateway revoke-credential`.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeCredentialArgs {
    /// The gateway and how its evidence is checked.
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// The credential's UUID (the part of UUID:KEY before the colon).
    pub uuid: String,
}

/// Arguments of `gateway authorize`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthorizeArgs {
    /// The gateway and how its evidence is checked.
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// How long the authorization lasts (`30d`, `12h`, ...).
    #[arg(long = "for", value_name = "DURATION", default_value = "30d")]
    pub lasts: humantime::Duration,
}

/// Arguments of `gateway revoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The gateway's identity (64 hex digits, as `gateway verify` or
    /// `gateway authorize` print it).
    pub gateway: clemmys_proto::ClientId,
}

/// Arguments of `gateway serve`. The node it fronts is the global
/// `--apihost` (`https://HOST:PORT`), whose certificate is checked with the
/// global `--cacert` (or not, with `-i`).
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayServeArgs {
    /// Address to listen on (TLS always).
    #[arg(long, default_value = "127.0.0.1:3443")]
    pub listen: SocketAddr,
    /// The gateway's state directory: its sealed keys, its certificate and
    /// its client state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// This host's simulated platform key file, the node's (default:
    /// STATE_DIR/sim-platform.key).
    #[arg(long, value_name = "FILE")]
    pub sim_platform_key: Option<PathBuf>,
    /// The namespace it serves.
    #[arg(long, default_value = "guest")]
    pub namespace: String,
    /// Another DNS name or address for its certificate; repeatable.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Act for this namespace owner (their client identity, 64 hex digits,
    /// as `clemmys broker show` prints it): actions created through the
    /// gateway are theirs, and only credentials it issues them (`clemmys
    /// gateway credential`) are accepted; the namespace key (--auth) is
    /// used towards the node only. Works once they ran `clemmys gateway
    /// authorize`, and stops when they run `clemmys gateway revoke`. Fixed
    /// when the state directory is made. Without it the gateway runs in
    /// an owner-less TEST MODE that accepts the namespace key, which the
    /// provider holds, and so protects nothing from the provider.
    #[arg(long, value_name = "HEX")]
    pub owner: Option<clemmys_proto::ClientId>,
    /// The most MiB each of the gateway's client logs keeps on disk (the
    /// keys of the answers it can still open, its sessions' secrets), over
    /// two generations: when the newer one reaches half, the older is
    /// dropped, and answers whose keys were dropped can no longer be read
    /// through the gateway (as OpenWhisk expires activation records).
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub client_log_limit_mib: u64,
    /// The HTTP listener's limits.
    #[command(flatten)]
    pub http: crate::serve::HttpArgs,
}

/// Arguments of `gateway verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The gateway, `https://HOST:PORT` (without a scheme: https, as `wsk`
    /// takes an API host).
    #[arg(value_parser = gateway_url)]
    pub url: String,
    /// Write the verified certificate (PEM) here.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The measurement to accept, with its TEE kind (`sim:HEX` or
    /// `sgx-dcap:HEX`); default: this release's gateway.
    #[arg(long, value_name = "KIND:HEX")]
    pub measurement: Option<Measurement>,
    /// For `sim`: the platform key to accept (hex). Without it the key in
    /// the evidence is accepted on first use, which is all `sim` can offer.
    #[arg(long, value_name = "HEX")]
    pub sim_platform: Option<SigningPublicKey>,
    /// Write the pin (--out) of a gateway in owner-less test mode, which
    /// hands its callers' keys to the node: refused without it, since a
    /// provider could route a verification meant for an owner's gateway
    /// to a genuine test-mode one.
    #[arg(long)]
    pub allow_test_mode: bool,
}

/// Runs a gateway command.
pub async fn run(command: GatewayCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Serve(args) => serve(args, global).await,
        GatewayCommand::Verify(args) => verify(args, Shown::as_asked(global.json)).await.map(drop),
        GatewayCommand::Authorize(args) => authorize(args, global).await,
        GatewayCommand::Revoke(args) => revoke(args, global).await,
        GatewayCommand::Credential(args) => credential(args, global).await,
        GatewayCommand::RevokeCredential(args) => revoke_credential(args, global).await,
    }
}

/// Asks the gateway `verified` (which must act for this client's
/// identity) to do `action`, with a request signed over its challenge.
async fn ask_gateway(
    verified: &Verified,
    action: CredentialAction,
) -> anyhow::Result<serde_json::Value> {
    let identity = super::confidential::home()?
        .identity()
        .context("reading your client identity")?;
    match verified.owner {
        Some(owner) if owner == identity.id() => {}
        Some(owner) => bail!(
            "this gateway acts for {owner}, not for you ({}): only its owner gets credentials",
            identity.id()
        ),
        None => bail!("{TEST_MODE_WARNING}"),
    }
    let challenged = verified
        .channel
        .post("/clemmys/v1/credentials/challenge", &json!({}))
        .await?;
    let challenge = challenged["challenge"]
        .as_str()
        .context("the gateway sent no challenge")?
        .to_owned();
    let signed = CredentialRequest {
        action,
        gateway: verified.gateway.gateway,
        owner: identity.id(),
        challenge,
    }
    .sign(&identity);
    verified
        .channel
        .post("/clemmys/v1/credentials", &serde_json::to_value(&signed)?)
        .await
}

async fn credential(args: CredentialArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let shown = if global.json {
        Shown::Nothing
    } else {
        Shown::Text
    };
    let url = args.verify.url.clone();
    // A credential opens every answer the gateway gives: only a gateway
    // on the owner's platform is asked for one.
    let verified = verify_for_owner(&args.verify, global, shown, SealsFor::OwnersBroker).await?;
    let issued = ask_gateway(&verified, CredentialAction::Issue)
        .await
        .context("getting a credential from the gateway")?;
    let auth = issued["auth"]
        .as_str()
        .context("the gateway sent no credential")?
        .to_owned();
    let uuid = issued["uuid"]
        .as_str()
        .context("the gateway sent no credential id")?
        .to_owned();
    super::confidential::home()?
        .keep_issued_credential(&uuid, verified.gateway.gateway)
        .context("recording which gateway issued the credential")?;
    if let Some(path) = &args.props {
        write_private(path, &format!("APIHOST={url}\nAUTH={auth}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if global.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "gateway": verified.gateway.gateway,
                "uuid": uuid,
                "auth": auth,
                "props": args.props,
                "warning": sim_warning_of(&verified),
            }))?
        );
        return Ok(());
    }
    outln!("");
    outln!("credential for unmodified OpenWhisk clients of {url}:");
    outln!("AUTH={auth}");
    let pem = match &args.verify.out {
        Some(path) => {
            outln!(
                "use it with the certificate of the gateway that issued it, pinned in {}, trusting nothing else:",
                path.display()
            );
            path.display().to_string()
        }
        None => {
            outln!(
                "use it with the certificate of the gateway that issued it (`clemmys gateway credential {url} --out gateway.pem` writes it), trusting nothing else:"
            );
            "gateway.pem".to_owned()
        }
    };
    for line in pinned_client_lines(&pem, &verified.key_pin, &url, Some(&auth)) {
        outln!("  {line}");
    }
    if let Some(path) = &args.props {
        outln!("written to {} (WSK_CONFIG_FILE)", path.display());
    }
    outln!("revoke it with `clemmys gateway revoke-credential {url} {uuid}`");
    Ok(())
}

async fn revoke_credential(args: RevokeCredentialArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let shown = if global.json {
        Shown::Nothing
    } else {
        Shown::Text
    };
    // A gateway on another platform could claim the issuer's identity
    // and say "revoked" while the credential stays valid. Its broker is
    // not compared: a revocation must work after an honest broker change.
    let verified = verify_for_owner(&args.verify, global, shown, SealsFor::Any).await?;
    // A credential is a MAC under the issuing gateway's sealed key: any
    // other gateway of the owner's would "revoke" it and it would stay
    // valid where it works. Only the gateway that issued it is asked.
    match super::confidential::home()?.credential_issuer(&args.uuid)? {
        Some(issuer) if issuer != verified.gateway.gateway => bail!(
            "credential {} was issued by gateway {issuer}, and {} is gateway {}: revoke it there (nothing was revoked)",
            args.uuid,
            args.verify.url,
            verified.gateway.gateway
        ),
        Some(_) => {}
        None => {
            if !global.json {
                eprintln!(
                    "warning: this client has no record of the gateway that issued credential {} (it records those it gets): if {} is another gateway, the credential stays valid where it was issued",
                    args.uuid, args.verify.url
                );
            }
        }
    }
    ask_gateway(
        &verified,
        CredentialAction::Revoke {
            uuid: args.uuid.clone(),
        },
    )
    .await
    .context("revoking the credential")?;
    if global.json {
        outln!(
            "{}",
            json!({"revoked": args.uuid, "warning": sim_warning_of(&verified)})
        );
    } else {
        outln!("");
        outln!(
            "revoked credential {}: the gateway refuses it from now on",
            args.uuid
        );
    }
    Ok(())
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// HTTPS to one gateway, trusting exactly the certificate whose evidence
/// was verified: what is said on it is said by that enclave.
struct PinnedChannel {
    http: hyper_util::client::legacy::Client<
        clemmys_tls::HttpsConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
}

impl PinnedChannel {
    fn new(address: &str, certificate: CertificateDer<'static>) -> anyhow::Result<Self> {
        let connector =
            clemmys_tls::pinned_http_connector(certificate, std::time::Duration::from_secs(10))?;
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self {
            http,
            base: format!("https://{address}"),
        })
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        use http_body_util::BodyExt as _;
        let bytes = match body {
            Some(body) => bytes::Bytes::from(serde_json::to_vec(body)?),
            None => bytes::Bytes::new(),
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes))?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("calling {}{path}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("{}{path} answered {status} with no JSON", self.base))?;
        if !status.is_success() {
            bail!(
                "the gateway answered {status}: {}",
                value["error"].as_str().unwrap_or("(no message)")
            );
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call(hyper::Method::GET, path, None).await
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.call(hyper::Method::POST, path, Some(body)).await
    }
}

async fn authorize(args: AuthorizeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let ctx = super::Context::new(global)?;
    // With --json, only the delegation is printed.
    let shown = if global.json {
        Shown::Nothing
    } else {
        Shown::Text
    };
    let confidential = super::confidential::connect(ctx.client()?, None).await?;
    // A delegation lets the gateway act for the owner wherever the broker
    // does.
    let verified = verify_on_pinned_platform(
        &args.verify,
        confidential.pin(),
        shown,
        SealsFor::OwnersBroker,
    )
    .await?;
    let me = confidential.owner();
    match verified.owner {
        Some(owner) if owner == me => {}
        Some(owner) => bail!(
            "refusing to authorize {}: it acts for owner {owner}, not for you ({me})",
            args.verify.url
        ),
        None => bail!(
            "refusing to authorize {}: it acts for no owner (test mode, which takes the namespace key from anyone)",
            args.verify.url
        ),
    }
    if verified.namespace != confidential.namespace() {
        bail!(
            "refusing to authorize {}: it serves namespace {}, and your confidential actions are in {}",
            args.verify.url,
            verified.namespace,
            confidential.namespace()
        );
    }
    let lasts = u64::try_from(args.lasts.as_millis()).unwrap_or(u64::MAX);
    let expires_ms = clemmys_whisk::now_ms().saturating_add(lasts);
    let delegation = confidential
        .delegate(
            verified.gateway.gateway,
            verified.gateway.evidence.measurement(),
            expires_ms,
        )
        .await
        .context("authorizing the gateway with the key broker")?;
    if global.json {
        let mut shown = serde_json::to_value(&delegation)?;
        shown["warning"] = json!(sim_warning_of(&verified));
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    outln!("");
    outln!(
        "authorized gateway {} to act for {} until {}",
        delegation.gateway,
        delegation.owner,
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(delegation.expires_ms)
        )
    );
    outln!(
        "the gateway acts for you when started with --owner {}; its OpenWhisk clients then need a credential from `clemmys gateway credential {}`",
        delegation.owner,
        args.verify.url
    );
    Ok(())
}

async fn revoke(args: RevokeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let ctx = super::Context::new(global)?;
    let confidential = super::confidential::connect(ctx.client()?, None).await?;
    confidential
        .revoke(args.gateway)
        .await
        .context("revoking the gateway with the key broker")?;
    if global.json {
        outln!("{}", json!({"revoked": args.gateway}));
    } else {
        outln!(
            "revoked gateway {}: the broker refuses it from now on",
            args.gateway
        );
    }
    Ok(())
}

/// How `curl`, the npm client and `wsk` reach the gateway at `url` with
/// `auth`, trusting only its certificate `pem` (whose key is `key_pin`):
/// `--cacert` or `NODE_EXTRA_CA_CERTS` alone add to the system's
/// authorities, any of which could sign a certificate for the gateway's
/// name for whoever answers there.
fn pinned_client_lines(pem: &str, key_pin: &str, url: &str, auth: Option<&str>) -> [String; 3] {
    let only_the_pin = format!("SSL_CERT_FILE={pem} SSL_CERT_DIR=/nonexistent");
    let (user, key, wsk_auth) = match auth {
        Some(auth) => (
            format!(" -u {auth}"),
            format!(" __OW_API_KEY={auth}"),
            format!(" --auth {auth}"),
        ),
        None => Default::default(),
    };
    [
        format!("curl --cacert {pem} --pinnedpubkey {key_pin}{user} {url}/api/v1/namespaces"),
        // What a user's environment may add to Node's trust (an extra
        // authority, the checks turned off) is taken away first.
        format!(
            "env -u NODE_EXTRA_CA_CERTS -u NODE_USE_SYSTEM_CA -u NODE_TLS_REJECT_UNAUTHORIZED -u __OW_IGNORE_CERTS NODE_OPTIONS=--use-openssl-ca {only_the_pin} __OW_API_HOST={url}{key} node app.js"
        ),
        format!("{only_the_pin} wsk --apihost {url}{wsk_auth} ..."),
    ]
}

/// The node's TLS settings from the global flags.
pub fn node_tls(global: &GlobalArgs) -> anyhow::Result<clemmys_client::ClientTlsOptions> {
    let flags = super::TlsFlags::new(global);
    flags.check_values()?;
    Ok(clemmys_client::ClientTlsOptions {
        ca_file: flags.cacert,
        insecure: global.insecure,
        identity: flags.cert.zip(flags.key),
    })
}

async fn serve(args: GatewayServeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let Some(Some(node)) = global.apihost.clone() else {
        bail!("the node to front is required: --apihost https://HOST:PORT");
    };
    // Only an owner's gateway acts with a key of its own; in test mode it
    // uses each caller's.
    let node_auth = match args.owner {
        Some(_) => {
            let ctx = super::Context::new(global)?;
            let Some(auth) = ctx.auth else {
                bail!(
                    "a gateway with --owner needs the namespace's API key for the node: --auth UUID:KEY (its callers present gateway credentials instead)"
                );
            };
            Some(
                auth.value
                    .parse::<clemmys_whisk::AuthKey>()
                    .with_context(|| format!("the API key from {}", auth.source))?,
            )
        }
        None => None,
    };
    let gateway = clemmys_server::gateway_node::RunningGateway::start(
        clemmys_server::gateway_node::GatewayNodeConfig {
            listen: args.listen,
            node,
            node_tls: node_tls(global)?,
            // Another process: over the network.
            node_in_process: None,
            state_dir: args.state_dir.clone(),
            sim_platform_key: args.sim_platform_key.clone(),
            namespace: args.namespace.clone(),
            extra_names: args.names.clone(),
            http: args.http.limits(),
            owner: args.owner,
            node_auth,
            client_log_limit: args.client_log_limit_mib.saturating_mul(1 << 20),
        },
    )
    .await
    .with_context(|| format!("starting the attested gateway on {}", args.listen))?;
    announce(&gateway);
    gateway.run_until_signal().await
}

/// What a starting gateway tells its operator.
pub fn announce(gateway: &clemmys_server::gateway_node::RunningGateway) {
    let inner = &gateway.gateway;
    eprintln!(
        "clemmys: attested gateway serving on {} for {} (namespace {})",
        gateway.url(),
        inner.node(),
        inner.namespace()
    );
    eprintln!(
        "clemmys: gateway measurement {}, identity {}",
        inner.measurement(),
        inner.identity()
    );
    if !inner.tee().is_hardware() {
        eprintln!("clemmys: WARNING: {SIM_WARNING}");
    }
    match inner.owner() {
        Some(owner) => eprintln!(
            "clemmys: acting for owner {owner}; callers need a credential from `clemmys gateway credential {}` (namespace keys are refused)",
            gateway.url()
        ),
        None => eprintln!("clemmys: WARNING: {TEST_MODE_WARNING}"),
    }
    eprintln!(
        "clemmys: clients verify it with `clemmys gateway verify {} --out gateway.pem`",
        gateway.url()
    );
}

/// `host:port` and the host of an `https://` URL (port 443 by default).
/// A gateway's URL as it is used and printed: always `https://` (the
/// lines printed for curl must not fall back to curl's default of plain
/// HTTP, which would send the credential in the clear).
fn gateway_url(url: &str) -> Result<String, String> {
    let authority = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{url}: a gateway speaks TLS only (https://), not {scheme}://"
            ));
        }
        None => url,
    };
    // Only `HOST[:PORT]`: the printed lines append the API's paths, and a
    // character a shell reads (`&`, `;`, `$`, a space) would split them.
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if authority.is_empty() || !authority.chars().all(allowed) {
        return Err(format!(
            "{url}: name a gateway as https://HOST[:PORT], without a path, user or query"
        ));
    }
    Ok(format!("https://{authority}"))
}

fn address_of(url: &str) -> anyhow::Result<(String, String)> {
    let url = gateway_url(url).map_err(anyhow::Error::msg)?;
    let url = url.as_str();
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        bail!("{url}: no host");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if host.contains(':') && !host.starts_with('[') {
                (authority, "443")
            } else {
                (host, port)
            }
        }
        _ => (authority, "443"),
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("{url}: {port} is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((address, host.to_owned()))
}

/// How `verify` shows what it verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Text,
    Json,
    Nothing,
}

impl Shown {
    fn as_asked(json: bool) -> Self {
        if json { Self::Json } else { Self::Text }
    }
}

/// A gateway verified, and what it says of itself over the pinned channel.
struct Verified {
    /// Its verified evidence and identity.
    gateway: VerifiedGateway,
    /// The owner it acts for; `None`: test mode.
    owner: Option<clemmys_proto::ClientId>,
    /// The namespace it serves (sealed with its identity).
    namespace: String,
    /// The keys of the key broker it seals for (`None`: not pinned yet).
    broker: Option<EnclavePublicKeys>,
    /// Its TLS key as `curl --pinnedpubkey` takes it: `sha256//` and the
    /// base64 SHA-256 of the certificate's SubjectPublicKeyInfo.
    key_pin: String,
    /// HTTPS to it, trusting only its verified certificate.
    channel: PinnedChannel,
}

/// What a verified gateway's evidence does not protect, for `--json`
/// outputs (the text ones print it as they verify).
fn sim_warning_of(verified: &Verified) -> Option<&'static str> {
    (!verified.gateway.evidence.tee().is_hardware()).then_some(SIM_WARNING)
}

/// Which platforms a gateway's evidence may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrustedPlatform {
    /// Hardware, or for `sim` the platform key given, else the one the
    /// evidence claims (on first use: all `sim` can offer a stranger).
    ClaimedOnFirstUse,
    /// Hardware, or for `sim` only the platform key given.
    Given,
    /// Hardware only.
    Hardware,
}

async fn verify(args: VerifyArgs, shown: Shown) -> anyhow::Result<Verified> {
    verify_as(args, shown, TrustedPlatform::ClaimedOnFirstUse, None).await
}

/// Which key broker an owner's gateway must seal for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SealsFor {
    /// The one the owner pinned (to authorize it, or ask it for a
    /// credential).
    OwnersBroker,
    /// Any (to revoke a credential it issued).
    Any,
}

/// Verifies a gateway that is to act for this client's identity, on the
/// platform of the key broker the client pinned for the configured API
/// host (see [`verify_on_pinned_platform`]); without a pin, refused.
async fn verify_for_owner(
    args: &VerifyArgs,
    global: &GlobalArgs,
    shown: Shown,
    seals_for: SealsFor,
) -> anyhow::Result<Verified> {
    let client = super::Context::new(global)?.client()?;
    let Some(pin) = super::confidential::home()?.broker_pin(client.api_host())? else {
        bail!(
            "no key broker is pinned for {}: a gateway that acts for you is verified on your broker's platform (run `clemmys broker trust` first)",
            client.api_host()
        );
    };
    verify_on_pinned_platform(args, &pin, shown, seals_for).await
}

/// Verifies a gateway whose evidence must come from the platform the owner
/// pinned its broker on (hardware for a hardware pin, else the pinned
/// `sim` platform key), never only from the one the evidence claims: the
/// provider can make a `sim` platform of its own.
async fn verify_on_pinned_platform(
    args: &VerifyArgs,
    pin: &clemmys_client::confidential::BrokerPin,
    shown: Shown,
    seals_for: SealsFor,
) -> anyhow::Result<Verified> {
    let mut to_verify = args.clone();
    let trusted = if pin.tee.is_hardware() {
        TrustedPlatform::Hardware
    } else {
        to_verify.sim_platform = to_verify.sim_platform.or(pin.sim_platform);
        TrustedPlatform::Given
    };
    let owners_broker = (seals_for == SealsFor::OwnersBroker).then_some(&pin.keys);
    verify_as(to_verify, shown, trusted, owners_broker).await
}

/// Refuses an owner's gateway that does not seal for `expected`, the
/// broker the owner pinned: the gateway seals for the broker of the node
/// its host points it at (a test-mode gateway is refused by the callers,
/// whatever it pinned).
fn check_seals_for(
    url: &str,
    owner: Option<clemmys_proto::ClientId>,
    broker: Option<&EnclavePublicKeys>,
    expected: &EnclavePublicKeys,
) -> anyhow::Result<()> {
    if owner.is_none() {
        return Ok(());
    }
    match broker {
        Some(keys) if keys == expected => Ok(()),
        Some(keys) => bail!(
            "refusing the gateway {url}: it seals for the key broker with signing key {}, and yours is {} (its host points it at another node's broker)",
            keys.signing,
            expected.signing
        ),
        None => bail!(
            "refusing the gateway {url}: it names no key broker it seals for (it could not reach its node)"
        ),
    }
}

async fn verify_as(
    args: VerifyArgs,
    shown: Shown,
    trusted: TrustedPlatform,
    owners_broker: Option<&EnclavePublicKeys>,
) -> anyhow::Result<Verified> {
    let (address, host) = address_of(&args.url)?;
    let der = clemmys_tls::fetch_server_certificate(&address, &host)
        .await
        .with_context(|| format!("fetching the certificate of {}", args.url))?;
    let certificate = RaTlsCertificate::parse(&der)
        .with_context(|| format!("reading the certificate of {}", args.url))?;
    let evidence = certificate.evidence();
    let platform = match trusted {
        TrustedPlatform::ClaimedOnFirstUse => args
            .sim_platform
            .or_else(|| clemmys_tee::sim::claimed_platform(evidence)),
        TrustedPlatform::Given => args.sim_platform,
        TrustedPlatform::Hardware => {
            if !evidence.tee.is_hardware() {
                bail!(
                    "refusing the gateway {}: its evidence is {}, and your key broker is pinned on hardware ({})",
                    args.url,
                    evidence.tee.name(),
                    SIM_WARNING
                );
            }
            None
        }
    };
    let mut verifier = Verifier::new().trust_sgx_dcap(SgxPolicy::new());
    if let Some(platform) = platform {
        verifier = verifier.trust_sim_platform(platform);
    }
    let expected = args
        .measurement
        .unwrap_or_else(|| measurement::expected(Role::Gateway));
    let verified = certificate
        .verify(&verifier, expected)
        .with_context(|| format!("refusing the gateway {}", args.url))?;
    let pem = to_pem(&der);
    // Asked over a connection that trusts only this certificate: the
    // answer is the verified enclave's.
    let channel = PinnedChannel::new(&address, der.clone().into_owned())?;
    let about = channel
        .get("/clemmys/v1/gateway")
        .await
        .with_context(|| format!("asking {} who it acts for", args.url))?;
    if about["identity"] != json!(verified.gateway) {
        bail!(
            "{}: the gateway answers for another identity than its certificate's",
            args.url
        );
    }
    let owner = match &about["owner"] {
        serde_json::Value::Null => None,
        value => Some(
            serde_json::from_value::<clemmys_proto::ClientId>(value.clone())
                .with_context(|| format!("{}: the owner it names", args.url))?,
        ),
    };
    let namespace = about["namespace"]
        .as_str()
        .with_context(|| format!("{}: it names no namespace", args.url))?
        .to_owned();
    let broker = match &about["broker"] {
        serde_json::Value::Null => None,
        value => Some(
            serde_json::from_value::<EnclavePublicKeys>(value.clone())
                .with_context(|| format!("{}: the key broker it names", args.url))?,
        ),
    };
    // Before anything is written or shown as attested.
    if let Some(expected) = owners_broker {
        check_seals_for(&args.url, owner, broker.as_ref(), expected)?;
    }
    let key_pin = format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD
            .encode(clemmys_proto::Digest::of(certificate.spki_der()).as_bytes())
    );
    let verified = Verified {
        gateway: verified,
        owner,
        namespace,
        broker,
        key_pin,
        channel,
    };
    if let Some(path) = &args.out {
        if verified.owner.is_none() && !args.allow_test_mode {
            bail!(
                "refusing to pin {}: it runs in owner-less TEST MODE, which hands its callers' keys to the node (pass --allow-test-mode to pin it anyway; nothing was written)",
                args.url
            );
        }
        let mut file =
            std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
        file.write_all(pem.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let hardware = verified.gateway.evidence.is_hardware();
    if shown == Shown::Nothing {
        return Ok(verified);
    }
    if shown == Shown::Json {
        let shown = json!({
            "gateway": args.url,
            "tee": verified.gateway.evidence.tee(),
            "measurement": verified.gateway.evidence.measurement(),
            "hardware": hardware,
            "identity": verified.gateway.gateway,
            "owner": verified.owner,
            "namespace": verified.namespace,
            "broker": verified.broker,
            "keyPin": verified.key_pin,
            "testMode": verified.owner.is_none(),
            "simPlatformKey": platform.filter(|_| !hardware),
            "warning": (!hardware).then_some(SIM_WARNING),
            "testModeWarning": verified.owner.is_none().then_some(TEST_MODE_WARNING),
            "certificate": args.out,
        });
        outln!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(verified);
    }
    outln!("attested gateway {}", args.url);
    outln!(
        "  TEE:              {}",
        verified.gateway.evidence.tee().name()
    );
    outln!(
        "  measurement:      {} (as expected)",
        verified.gateway.evidence.measurement()
    );
    outln!("  gateway identity: {}", verified.gateway.gateway);
    match verified.owner {
        Some(owner) => outln!("  acts for owner:   {owner} (callers need its credentials)"),
        None => outln!("  acts for owner:   none (TEST MODE)"),
    }
    outln!("  serves namespace: {}", verified.namespace);
    match &verified.broker {
        Some(broker) => outln!("  seals for broker: {} (signing key)", broker.signing),
        None => outln!("  seals for broker: none pinned yet"),
    }
    outln!("  TLS key pin:      {}", verified.key_pin);
    if let Some(platform) = platform.filter(|_| !hardware) {
        outln!(
            "  sim platform key: {platform}{}",
            if args.sim_platform.is_some() {
                ""
            } else {
                " (accepted on first use)"
            }
        );
    }
    outln!("  TLS key:          bound by the evidence");
    if !hardware {
        outln!("");
        outln!("WARNING: {SIM_WARNING}");
    }
    if verified.owner.is_none() {
        outln!("");
        outln!("WARNING: {TEST_MODE_WARNING}");
    }
    if let Some(path) = &args.out {
        let path = path.display();
        outln!("");
        outln!("pinned certificate written to {path}; trust it and nothing else, as");
        for line in pinned_client_lines(&path.to_string(), &verified.key_pin, &args.url, None) {
            outln!("  {line}");
        }
    }
    Ok(verified)
}

/// `der` as a PEM certificate.
fn to_pem(der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_name_an_address_and_a_host() {
        assert_eq!(
            address_of("https://127.0.0.1:3443").expect("url"),
            ("127.0.0.1:3443".into(), "127.0.0.1".into())
        );
        assert_eq!(
            address_of("https://gw.example").expect("url"),
            ("gw.example:443".into(), "gw.example".into())
        );
        assert_eq!(
            address_of("https://[::1]:8443").expect("url"),
            ("[::1]:8443".into(), "::1".into())
        );
        assert!(address_of("http://127.0.0.1:1").is_err());
        assert!(address_of("https://h:notaport").is_err());
    }

    #[test]
    fn a_gateway_url_is_always_used_and_printed_as_https() {
        // curl, given no scheme, speaks plain HTTP: the printed lines must
        // name https.
        assert_eq!(
            gateway_url("gw.example:3443").as_deref(),
            Ok("https://gw.example:3443")
        );
        assert_eq!(
            gateway_url("HTTPS://gw.example").as_deref(),
            Ok("https://gw.example")
        );
        assert!(gateway_url("http://gw.example").is_err());
        assert!(gateway_url("ftp://gw.example").is_err());
        assert_eq!(
            gateway_url("https://[::1]:8443/").as_deref(),
            Ok("https://[::1]:8443")
        );
        for unsafe_url in [
            "https://gw.example/api/v1",
            "https://gw.example/&",
            "https://user@gw.example",
            "https://gw.example?x=1",
            "gw.example;rm",
            "https://gw example",
            "",
        ] {
            assert!(gateway_url(unsafe_url).is_err(), "{unsafe_url}");
        }
        let lines = pinned_client_lines(
            "gateway.pem",
            "sha256//pin",
            &gateway_url("gw.example:3443").expect("url"),
            Some("uuid:key"),
        );
        assert!(
            lines
                .iter()
                .filter(|line| line.contains("gw.example"))
                .all(|line| line.contains("https://gw.example:3443")),
            "{lines:?}"
        );
    }
}
