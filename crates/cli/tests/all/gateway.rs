//! The attested gateway (`clemmys gateway serve|verify`, `clemmys serve
//! --gateway`): Apache OpenWhisk's npm client drives it over TLS trusting
//! only the certificate `gateway verify` pinned, and the provider (the
//! node's data directory, its debug log, its API, every byte between the
//! gateway and the node) sees none of the secret example's markers.
//! Attacks: a client without the pin is refused; `gateway verify` refuses
//! evidence of another measurement, of an untrusted platform, and a TLS
//! server without evidence. From the provider's side against an owner's
//! gateway: calling it with the namespace key, with a forged credential,
//! with a revoked one, and replaying an owner's signed credential request
//! later, after a restart or at another gateway, are all refused; with a
//! copy of the gateway's state directory, the stock client opens none of
//! the answers the gateway invoked (its client state is sealed).
//! Confidential web actions: served by the gateway to anyone (the owner's
//! choice), never by the node; the provider cannot export an action
//! through the node, lift its `require-whisk-auth`, get more from the
//! gateway's web path than an anonymous caller, or make a later version
//! run under an earlier version's tag. Confidential sequences
//! created through the gateway: it signs their plan, answers their last
//! step's result, and the provider sees no step's value nor can reorder
//! the steps. An action's bound parameters given through the gateway are
//! sealed with its code: invokes get them as defaults (theirs winning,
//! unless `final`), and the provider sees neither key nor value. A
//! package created through the gateway is confidential: its parameters
//! are kept by the gateway and sealed into the actions deployed in it
//! (blocking, non-blocking, web), and the provider sees neither; a web
//! tag moved by the provider to another package, or out of the package,
//! serves nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clemmys_client::confidential::PLAN_RECHECK_INTERVAL;
use serde_json::{Value, json};

use crate::common::{START_TIMEOUT, Server, arg, bin, example, unique};
use crate::leaks::{
    CODE_MARKER, Source, Wire, add_files, contains, markers, provider_api_view, report, scan,
    strip_ansi,
};
use crate::npm::npm_client_dir;

/// What `clemmys gateway serve` announces before its URL.
const ANNOUNCEMENT: &str = "attested gateway serving on ";
/// Longer than an enclave's session lease (`clemmys_enclave::SESSION_LEASE`),
/// the longest a broker admission vouches for a session's later requests.
const SESSION_LEASE_PASSED: Duration = Duration::from_millis(1_100);

/// A `clemmys gateway serve` child process with a state directory of its
/// own, logging at debug level into a file. Dropping it kills it.
struct GatewayProcess {
    child: Option<Child>,
    root: tempfile::TempDir,
    url: String,
}

impl GatewayProcess {
    /// Starts a gateway in front of `node` on the platform of the node's
    /// data directory `node_data_dir`, with `flags` as well.
    fn start(node: &str, node_data_dir: &Path, flags: &[&str]) -> Self {
        let root = tempfile::Builder::new()
            .prefix("clemmys-cli-gateway-")
            .tempdir()
            .unwrap_or_else(|error| panic!("temp dir: {error}"));
        Self::spawn(root, node, node_data_dir, flags)
    }

    /// Stops this gateway and starts it again on the same state directory,
    /// with `flags`.
    fn restart(mut self, node: &str, node_data_dir: &Path, flags: &[&str]) -> Self {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let root = std::mem::replace(
            &mut self.root,
            tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}")),
        );
        Self::spawn(root, node, node_data_dir, flags)
    }

    fn spawn(root: tempfile::TempDir, node: &str, node_data_dir: &Path, flags: &[&str]) -> Self {
        let child = Self::spawn_child(root.path(), node, node_data_dir, flags);
        let mut gateway = Self {
            child: Some(child),
            root,
            url: String::new(),
        };
        gateway.url = gateway.wait_until_serving();
        gateway
    }

    /// Stops this gateway and starts it again on the same state directory
    /// with `flags`, which it must refuse: the log of the refusal.
    fn restart_refused(&mut self, node: &str, node_data_dir: &Path, flags: &[&str]) -> String {
        self.stop();
        let mut child = Self::spawn_child(self.root.path(), node, node_data_dir, flags);
        let deadline = Instant::now() + START_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                break status;
            }
            if Instant::now() > deadline || announced_gateway(&self.log()).is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the gateway started with {flags:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "{}", self.log());
        self.log()
    }

    /// `clemmys gateway serve` on the state directory under `root`,
    /// logging (at debug level) into `root/gateway.log`, which it truncates.
    fn spawn_child(root: &Path, node: &str, node_data_dir: &Path, flags: &[&str]) -> Child {
        let state = root.join("state");
        let (home, tmp) = (root.join("home"), root.join("tmp"));
        for dir in [&home, &tmp] {
            std::fs::create_dir_all(dir).unwrap_or_else(|error| panic!("{error}"));
        }
        let log = std::fs::File::create(root.join("gateway.log"))
            .unwrap_or_else(|error| panic!("gateway log: {error}"));
        let log_too = log
            .try_clone()
            .unwrap_or_else(|error| panic!("gateway log: {error}"));
        let platform = node_data_dir.join("sim-platform.key");
        let mut args = vec![
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--apihost",
            node,
            "--state-dir",
            arg(&state),
            "--sim-platform-key",
            arg(&platform),
        ];
        args.extend_from_slice(flags);
        let mut command = Command::new(bin());
        for variable in [
            "CLEMMYS_HOME",
            "WSK_CONFIG_FILE",
            "XDG_CONFIG_HOME",
            "RUST_LOG",
        ] {
            command.env_remove(variable);
        }
        command
            .args(&args)
            .env("RUST_LOG", "debug")
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .unwrap_or_else(|error| panic!("spawning the gateway: {error}"))
    }

    fn wait_until_serving(&mut self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(url) = announced_gateway(&log) {
                return url;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!("`clemmys gateway serve` exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not start within {START_TIMEOUT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("gateway.log")
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// Stops the process, keeping its state directory.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The gateway URL a log announces, if it does yet.
fn announced_gateway(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once(ANNOUNCEMENT)?;
        rest.split_whitespace().next().map(str::to_owned)
    })
}

/// The URL of the gateway beside `server` (`serve --gateway`), once it
/// announced it: it starts after the node's API.
fn gateway_beside(server: &Server) -> String {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(url) = announced_gateway(&server.log()) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "no gateway announced within {START_TIMEOUT:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `node ARGS` in `clients/npm` as an OpenWhisk user of `gateway` with
/// `auth`, trusting `pin` (if any) and nothing else, as `gateway
/// credential` tells users to (`--use-openssl-ca` with the pin as the
/// whole store); without a pin, the system's authorities.
fn node(gateway: &str, auth: &str, pin: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("node");
    command
        .current_dir(npm_client_dir())
        .args(args)
        .env("__OW_API_HOST", gateway)
        .env("__OW_API_KEY", auth)
        .env_remove("__OW_NAMESPACE")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_OPTIONS")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED");
    if let Some(pin) = pin {
        command
            .env("NODE_OPTIONS", "--use-openssl-ca")
            .env("SSL_CERT_FILE", pin)
            .env("SSL_CERT_DIR", "/nonexistent");
    }
    command
        .output()
        .unwrap_or_else(|error| panic!("running node (scripts/setup.sh installs it): {error}"))
}

/// A one-line npm client call that exits 3 with the error's message.
const LIST_NAMESPACES: &str = "require('openwhisk')().actions.list().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); })";

/// An owner, and a gateway started for them in front of `node` (with the
/// namespace key for the node), verified, pinned and holding a credential
/// it issued to them. Not yet authorized with the broker.
struct OwnersGateway {
    owner: crate::common::User,
    owner_id: String,
    gateway: GatewayProcess,
    pin: PathBuf,
    /// `UUID:KEY`, as `gateway credential` printed it.
    credential: String,
    uuid: String,
}

impl OwnersGateway {
    fn start(server: &Server, node: &str) -> Self {
        let owner = server.user();
        owner.trust_broker();
        let owner_id = owner.identity();
        let gateway =
            GatewayProcess::start(node, &server.data_dir, &owner_flags(&owner_id, server));
        assert!(
            gateway.log().contains("acting for owner"),
            "{}",
            gateway.log()
        );
        let pin = gateway.root.path().join("gateway.pem");
        owner
            .clemmys(&["gateway", "verify", &gateway.url, "--out", arg(&pin)])
            .success()
            .stdout_has("acts for owner:   ");
        let (credential, uuid) = credential_of(&owner, &gateway.url);
        Self {
            owner,
            owner_id,
            gateway,
            pin,
            credential,
            uuid,
        }
    }

    fn flags<'a>(&'a self, server: &'a Server) -> [&'a str; 4] {
        owner_flags(&self.owner_id, server)
    }

    fn authorize(&self) {
        self.owner
            .clemmys(&["gateway", "authorize", &self.gateway.url])
            .success()
            .stdout_has("authorized gateway");
    }
}

/// The flags of a gateway acting for `owner_id`, reaching the node with
/// the namespace key.
fn owner_flags<'a>(owner_id: &'a str, server: &'a Server) -> [&'a str; 4] {
    ["--owner", owner_id, "--auth", &server.guest_auth]
}

/// A credential `owner` gets from the gateway at `url`: `(UUID:KEY, UUID)`.
fn credential_of(owner: &crate::common::User, url: &str) -> (String, String) {
    let issued = owner
        .clemmys(&["gateway", "credential", url, "--json"])
        .success()
        .json();
    // Only `sim` gateways here: the JSON says what that does not protect.
    assert!(
        issued["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains("NO hardware protection")),
        "{issued}"
    );
    let field = |name: &str| {
        issued[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {issued}"))
            .to_owned()
    };
    (field("auth"), field("uuid"))
}

/// `curl` to the gateway at `url` trusting only `pin`: the status and the
/// body.
fn curl(
    url: &str,
    pin: &Path,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    curl_with(url, pin, method, path, auth, &[], body)
}

/// [`curl`], with extra `headers` (`name: value`).
fn curl_with(
    url: &str,
    pin: &Path,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let mut command = Command::new("curl");
    for header in headers {
        command.args(["-H", header]);
    }
    command
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
            arg(pin),
        ])
        .args(["-X", method, &format!("{url}{path}")]);
    if let Some(auth) = auth {
        command.args(["-u", auth]);
    }
    if let Some(body) = body {
        command.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = command
        .output()
        .unwrap_or_else(|error| panic!("running curl: {error}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl printed no status: {text}"));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|error| panic!("curl status {status:?}: {error}"));
    (status, body.to_owned())
}

/// [`curl`] that must answer `200 OK` with JSON: the JSON. Any other
/// status, or a body that is not JSON, fails the test with the body.
fn curl_json_ok(
    url: &str,
    pin: &Path,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Value {
    json_ok(
        &format!("{method} {path}"),
        curl(url, pin, method, path, auth, body),
    )
}

/// The JSON of the answer `(status, body)` to `request`, which must be
/// `200 OK` with JSON; anything else fails the test with the body.
fn json_ok(request: &str, (status, body): (u16, String)) -> Value {
    assert_eq!(status, 200, "{request}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{request}: {error}: {body}"))
}

/// What the gateway refuses a namespace key or a forged credential with.
const NOT_ISSUED: &str = "accepts only the credentials it issues to its owner";

#[test]
fn the_npm_client_drives_the_gateway_with_only_its_pin_and_the_provider_sees_nothing() {
    let mut server = Server::start();
    // Every byte between the gateway and the node goes through a recorder.
    let wire = Wire::start(&server.api_host);
    let owners = OwnersGateway::start(&server, &wire.api_host());
    let gateway = &owners.gateway;
    assert!(
        gateway.log().contains("SIMULATED TEE"),
        "the gateway's start-up does not say that sim gives no protection:\n{}",
        gateway.log()
    );
    let user = &owners.owner;
    let pin = owners.pin.clone();
    let verified = user
        .clemmys(&["gateway", "verify", &gateway.url, "--out", arg(&pin)])
        .success();
    verified
        .stdout_has("(as expected)")
        .stdout_has("SIMULATED TEE")
        .stdout_has("NO hardware protection");
    assert!(
        !verified.stdout.contains("TEST MODE"),
        "an owner's gateway is shown as in test mode:\n{verified}"
    );
    owners.authorize();

    let param = unique("gwk-");
    let secret = example("secret");
    assert!(
        contains(
            &std::fs::read(&secret).unwrap_or_default(),
            CODE_MARKER.as_bytes()
        ),
        "{} lacks the code marker: rebuild the examples",
        secret.display()
    );
    let out = node(
        &gateway.url,
        &owners.credential,
        Some(&pin),
        &["gateway.js", arg(&secret), &param],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the npm client's checks failed:\n{stderr}\n{stdout}\n--- gateway ---\n{}",
        gateway.log()
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON line ({error}):\n{stdout}"));
    let shout = param.to_uppercase();
    assert_eq!(seen["result"], json!({ "shout": shout }));
    assert_eq!(seen["nonBlocking"]["result"], json!({ "shout": shout }));
    // Bound with the code, and sealed with it: the scan below covers them.
    assert_eq!(
        seen["boundDefault"],
        json!([{"key": "secret", "value": param}])
    );
    // The package's parameter, kept by the gateway and sealed into the
    // action: the scan below covers it too.
    assert_eq!(seen["packaged"], json!({ "shout": shout }));
    let id = seen["nonBlocking"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id in {seen}"))
        .to_owned();

    // The client saw the plaintext: the scan below can find it.
    let markers = markers(&param);
    let client_view = [Source {
        label: "the npm client's output".into(),
        bytes: out.stdout.clone(),
    }];
    let found: Vec<&str> = scan(&client_view, &markers)
        .iter()
        .map(|finding| finding.marker)
        .collect();
    assert!(
        found.contains(&"RESULT") && found.contains(&"LOG"),
        "the client's own view lacks the result or the logs: {found:?}"
    );

    // Without the pin, the same client refuses the gateway.
    let untrusted = node(
        &gateway.url,
        &owners.credential,
        None,
        &["-e", LIST_NAMESPACES],
    );
    let refused = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{refused}");
    assert!(refused.contains("certificate"), "{refused}");

    // What the provider holds (the gateway's own disk is the provider's
    // too).
    let mut sources = Vec::new();
    provider_api_view(&server, ("secret", &id), false, &mut sources);
    sources.extend(provider_holdings(
        &mut server,
        &wire,
        gateway,
        &[
            "POST /api/v1/namespaces/_/actions/secret",
            "PUT /api/v1/namespaces/_/actions/secret",
            "PUT /api/v1/namespaces/_/packages/gw-vault",
            "POST /api/v1/namespaces/_/actions/gw-vault/secret",
        ],
    ));
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "confidential plaintext reached the provider through the gateway:\n{}",
        report(&findings)
    );
    // Nor did the credential's key: only the client and the gateway hold it.
    let (_, key) = owners
        .credential
        .split_once(':')
        .unwrap_or_else(|| panic!("not UUID:KEY: {}", owners.credential));
    for source in &sources {
        assert!(
            !contains(&source.bytes, key.as_bytes()),
            "the gateway credential's key is in {}",
            source.label
        );
    }
}

#[test]
fn the_all_in_one_gateway_verifies_only_as_itself_and_serves_in_process() {
    // The all-in-one node: TLS on the node, the gateway beside it.
    let server = Server::start_with(&["--tls", "--gateway", "127.0.0.1:0"]);
    let url = gateway_beside(&server);
    let user = server.user();

    let genuine = user
        .clemmys(&["gateway", "verify", &url, "--json"])
        .success();
    let shown = genuine.json();
    assert_eq!(shown["tee"], "sim");
    assert_eq!(shown["hardware"], false);
    // The all-in-one node's gateway has no owner: a test mode, and said so.
    assert_eq!(shown["testMode"], true, "{shown}");
    assert!(
        shown["testModeWarning"]
            .as_str()
            .is_some_and(|warning| warning.contains("protects nothing from the provider")),
        "{shown}"
    );
    assert!(
        server.log().contains("OWNER-LESS TEST MODE"),
        "{}",
        server.log()
    );
    user.clemmys(&["gateway", "verify", &url])
        .success()
        .stdout_has("acts for owner:   none (TEST MODE)")
        .stdout_has("WARNING: OWNER-LESS TEST MODE");
    // It issues no credentials.
    user.trust_broker();
    user.clemmys(&["gateway", "credential", &url])
        .failure()
        .stderr_has("OWNER-LESS TEST MODE");
    assert!(
        shown["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains("NO hardware protection")),
        "{shown}"
    );

    // Expecting another program: the genuine sim evidence names the
    // gateway's measurement, and is refused.
    let other = format!("sim:{}", "ab".repeat(32));
    user.clemmys(&["gateway", "verify", &url, "--measurement", &other])
        .failure()
        .stderr_has("measurement");
    // Evidence signed by a platform other than the one trusted.
    let stranger = "cd".repeat(32);
    user.clemmys(&["gateway", "verify", &url, "--sim-platform", &stranger])
        .failure()
        .stderr_has("untrusted platform");
    // The node's own TLS certificate carries no evidence.
    user.clemmys(&["gateway", "verify", &server.api_host])
        .failure()
        .stderr_has("no attestation evidence");

    // The node's authority does not make the gateway trusted either.
    let ca = server.data_dir.join("tls/ca.pem");
    let refused = node(
        &url,
        &server.guest_auth,
        Some(&ca),
        &["-e", LIST_NAMESPACES],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    // A key of another namespace cannot use a gateway of `guest` (it
    // would register as guest's owner while the node stores elsewhere).
    let other = server.admin(&["create", "other"]).success();
    let other_key = other.stdout.trim().to_owned();
    let pin = user.home().join("gateway.pem");
    // A test-mode gateway's pin is written only when asked for.
    user.clemmys(&["gateway", "verify", &url, "--out", arg(&pin)])
        .failure()
        .stderr_has("TEST MODE");
    assert!(!pin.exists());
    user.clemmys(&[
        "gateway",
        "verify",
        &url,
        "--out",
        arg(&pin),
        "--allow-test-mode",
    ])
    .success();
    let hello = example("hello");
    let deploy = ["gateway-step.js", "deploy", "hello", arg(&hello)];
    let refused = node(&url, &other_key, Some(&pin), &deploy);
    let seen: Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&refused.stdout)));
    assert_eq!(seen["statusCode"], 403, "{seen}");
    assert!(
        seen["error"]["error"]
            .as_str()
            .is_some_and(|message| message.contains("serves namespace guest")),
        "{seen}"
    );

    // With the pin, the all-in-one gateway serves (over a TLS node).
    let listed = node(
        &url,
        &server.guest_auth,
        Some(&pin),
        &["-e", LIST_NAMESPACES],
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // It calls the node in its own process, not over a socket: a
    // confidential action deploys and answers through it, and what it
    // sealed reaches the node's data and log only sealed.
    let deployed = step(&url, &server.guest_auth, &pin, &deploy[1..]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let param = unique("aio-in-process-secret");
    let answer = step(
        &url,
        &server.guest_auth,
        &pin,
        &["invoke", "hello", &json!({ "name": param }).to_string()],
    );
    assert_eq!(
        answer["out"],
        json!({ "payload": format!("Hello, {param}!") }),
        "{answer}"
    );
    let shown = user
        .clemmys(&["action", "get", "hello", "--json"])
        .success()
        .json();
    assert!(
        shown["annotations"].to_string().contains("confidential"),
        "the gateway's deploy is not confidential on the node: {shown}"
    );
    let mut sources = Vec::new();
    add_files(&server.data_dir, &mut sources);
    sources.push(Source {
        label: "node log (without colours)".into(),
        bytes: strip_ansi(server.log().as_bytes()),
    });
    let findings = scan(&sources, &markers(&param)[1..]);
    assert!(
        findings.is_empty(),
        "the all-in-one gateway's plaintext reached the node:\n{}",
        report(&findings)
    );
}

#[test]
fn an_owners_gateway_beside_the_node_takes_only_the_owners_credentials() {
    let mut server = Server::start_with(&["--tls"]);
    let owner = server.user();
    owner.trust_broker();
    let owner_id = owner.identity();
    server.restart_with(&[
        "--tls",
        "--gateway",
        "127.0.0.1:0",
        "--gateway-owner",
        &owner_id,
    ]);
    let url = gateway_beside(&server);
    // Nothing was running: the stop did not wait out its grace period
    // (a router kept for the gateway once held the bus open).
    assert!(
        !server
            .log()
            .contains("stopping with activations still running"),
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("OWNER-LESS TEST MODE"),
        "{}",
        server.log()
    );
    let pin = owner.home().join("gateway.pem");
    owner
        .clemmys(&["gateway", "verify", &url, "--out", arg(&pin)])
        .success()
        .stdout_has(&format!("acts for owner:   {owner_id}"));
    owner
        .clemmys(&["gateway", "authorize", &url])
        .success()
        .stdout_has("authorized gateway");
    let (credential, _) = credential_of(&owner, &url);
    let hello = example("hello");
    let deployed = step(&url, &credential, &pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let invoked = step(
        &url,
        &credential,
        &pin,
        &["invoke", "hello", r#"{"name":"beside"}"#],
    );
    assert_eq!(
        invoked["out"],
        json!({"payload": "Hello, beside!"}),
        "{invoked}"
    );
    // The action is the owner's: their own client runs it.
    let own = owner
        .clemmys(&["action", "invoke", "hello", "-p", "name", "owner", "-r"])
        .success();
    assert_eq!(own.json(), json!({"payload": "Hello, owner!"}), "{own}");
    // The namespace key, which the provider holds, opens nothing there.
    let refused = step(&url, &server.guest_auth, &pin, &["invoke", "hello", "{}"]);
    assert_eq!(refused["statusCode"], 401, "{refused}");
}

/// One `gateway-step.js` step as the npm client of the gateway at `url`.
fn step(url: &str, auth: &str, pin: &Path, args: &[&str]) -> Value {
    let mut all = vec!["gateway-step.js"];
    all.extend_from_slice(args);
    let out = node(url, auth, Some(pin), &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "not one JSON line ({error}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn an_unauthorized_gateway_cannot_act_for_the_owner_and_a_revoked_one_stops() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    let (owner, gateway, pin) = (&owners.owner, &owners.gateway, &owners.pin);
    let gateway_id = owner
        .clemmys(&["gateway", "verify", &gateway.url, "--json"])
        .success()
        .json()["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity"))
        .to_owned();
    let hello = example("hello");
    let auth = owners.credential.clone();

    // Not authorized: the broker refuses to register for the owner.
    let refused = step(&gateway.url, &auth, pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["statusCode"], 403, "{refused}");

    // Authorized after the owner verified it: it deploys and invokes as
    // the owner.
    owner
        .clemmys(&["gateway", "authorize", &gateway.url])
        .success()
        .stdout_has("authorized gateway")
        .stdout_has("SIMULATED TEE");
    let deployed = step(&gateway.url, &auth, pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let invoked = step(
        &gateway.url,
        &auth,
        pin,
        &["invoke", "hello", r#"{"name":"gw"}"#],
    );
    assert_eq!(
        invoked["out"],
        json!({"payload": "Hello, gw!"}),
        "{invoked}"
    );
    // The action is the owner's: the owner's own client invokes it.
    let own = owner
        .clemmys(&["action", "invoke", "hello", "-p", "name", "owner", "-r"])
        .success();
    assert_eq!(own.json(), json!({"payload": "Hello, owner!"}), "{own}");

    // Another gateway (another identity) claiming the same owner is not
    // authorized by the first one's delegation, even with a credential
    // the owner got from it.
    let impostor =
        GatewayProcess::start(&server.api_host, &server.data_dir, &owners.flags(&server));
    let impostor_pin = impostor.root.path().join("gateway.pem");
    owner
        .clemmys(&[
            "gateway",
            "verify",
            &impostor.url,
            "--out",
            arg(&impostor_pin),
        ])
        .success();
    let (impostor_auth, _) = credential_of(owner, &impostor.url);
    let denied = step(
        &impostor.url,
        &impostor_auth,
        &impostor_pin,
        &["invoke", "hello", r#"{"name":"impostor"}"#],
    );
    assert_eq!(denied["ok"], false, "{denied}");

    // Revoked: the gateway stops working, even with the session and the
    // descriptor it holds.
    owner
        .clemmys(&["gateway", "revoke", &gateway_id])
        .success()
        .stdout_has("revoked gateway");
    // An enclave admits a session's requests on a broker admission for up
    // to a second (its session lease): the revocation holds after that.
    std::thread::sleep(SESSION_LEASE_PASSED);
    let after = step(
        &gateway.url,
        &auth,
        pin,
        &["invoke", "hello", r#"{"name":"late"}"#],
    );
    assert_eq!(after["ok"], false, "{after}");
    let redeploy = step(&gateway.url, &auth, pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(redeploy["ok"], false, "{redeploy}");
    assert_eq!(redeploy["statusCode"], 403, "{redeploy}");
    // The owner is not locked out of their own action.
    owner
        .clemmys(&["action", "invoke", "hello", "-p", "name", "still", "-r"])
        .success()
        .stdout_has("Hello, still!");
}

#[test]
fn a_restarted_gateway_keeps_its_identity_certificate_credentials_and_answers() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let OwnersGateway {
        owner: user,
        gateway,
        pin,
        credential: auth,
        ..
    } = &owners;
    let before = user
        .clemmys(&[
            "gateway",
            "verify",
            &gateway.url,
            "--out",
            arg(pin),
            "--json",
        ])
        .success()
        .json();
    let pinned = std::fs::read(pin).unwrap_or_else(|error| panic!("pin: {error}"));
    let hello = example("hello");
    let deployed = step(&gateway.url, auth, pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let later = step(
        &gateway.url,
        auth,
        pin,
        &["invoke-later", "hello", r#"{"name":"before"}"#],
    );
    let id = later["out"]["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id: {later}"))
        .to_owned();
    // Recorded before the restart (the node answers it sealed).
    let deadline = Instant::now() + Duration::from_secs(30);
    while step(&gateway.url, auth, pin, &["result", &id])["ok"] != true {
        assert!(Instant::now() < deadline, "activation {id} never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gateway.log().contains(clemmys_gateway::PINNED),
        "{}",
        gateway.log()
    );

    let OwnersGateway {
        owner: user,
        gateway,
        pin,
        credential: auth,
        owner_id,
        ..
    } = owners;
    let gateway = gateway.restart(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    // The same sealed identity and TLS key: the same certificate, so the
    // pin clients hold still works.
    let after = user
        .clemmys(&[
            "gateway",
            "verify",
            &gateway.url,
            "--out",
            arg(&pin),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(after["identity"], before["identity"]);
    assert_eq!(
        std::fs::read(&pin).unwrap_or_default(),
        pinned,
        "the restarted gateway presents another certificate"
    );
    // The same sealed credential key: the credential still works. It still
    // opens the answer of an invocation made before the restart (its keys
    // in the sealed keyring), and invokes the action it deployed then (a
    // new session, under the broker pin kept in its sealed state: it does
    // not pin again).
    let result = step(&gateway.url, &auth, &pin, &["result", &id]);
    assert_eq!(
        result["out"]["result"],
        json!({"payload": "Hello, before!"}),
        "{result}"
    );
    let invoked = step(
        &gateway.url,
        &auth,
        &pin,
        &["invoke", "hello", r#"{"name":"after"}"#],
    );
    assert_eq!(
        invoked["out"],
        json!({"payload": "Hello, after!"}),
        "{invoked}"
    );
    assert!(
        !gateway.log().contains(clemmys_gateway::PINNED),
        "the restarted gateway pinned the broker again:\n{}",
        gateway.log()
    );
    // Its client state directory holds only sealed logs and lock files.
    for entry in std::fs::read_dir(gateway.state_dir().join("client"))
        .unwrap_or_else(|error| panic!("client state: {error}"))
    {
        let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            name.ends_with(".sealed") || name.ends_with(".lock"),
            "{} is not sealed",
            path.display()
        );
    }
    // Restarted without its owner (the test mode, which takes the
    // namespace key) it refuses to start: the owner is sealed with the
    // identity the owner's delegation names.
    let mut gateway = gateway;
    gateway.stop();
    let dir = gateway.state_dir();
    let restarted = Command::new(bin())
        .args([
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--apihost",
            &server.api_host,
            "--state-dir",
            arg(&dir),
            "--sim-platform-key",
            arg(&server.data_dir.join("sim-platform.key")),
        ])
        .env("HOME", gateway.root.path().join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("running the gateway: {error}"));
    let stderr = String::from_utf8_lossy(&restarted.stderr);
    assert!(!restarted.status.success(), "{stderr}");
    assert!(
        stderr.contains("an owner is fixed when the gateway's identity is made"),
        "{stderr}"
    );
}

/// Copies the files of `from` (not its subdirectories) into `to`.
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|error| panic!("{}: {error}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|error| panic!("{error}")) {
        let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
        if path.is_file() {
            let target = to.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &target).unwrap_or_else(|error| panic!("{error}"));
        }
    }
}

#[test]
fn the_provider_with_the_gateways_disk_cannot_open_its_answers() {
    // The provider holds the gateway's state directory, the node and its
    // activation records, and the namespace key. It points the stock
    // Clemmys client at a copy of the gateway's client state and asks it
    // to open the answers of invocations made through the gateway.
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    // The first invocation is sealed with HPKE (its answer keys kept per
    // activation), the later ones within the session it opened (the
    // session secret kept once).
    let mut invoked = Vec::new();
    for _ in 0..3 {
        let name = unique("gwdisk-");
        let params = json!({"name": name}).to_string();
        let record = curl_json_ok(
            &gateway.url,
            pin,
            "POST",
            "/api/v1/namespaces/_/actions/hello?blocking=true",
            Some(&owners.credential),
            Some(&params),
        );
        assert_eq!(
            record["response"]["result"]["payload"],
            format!("Hello, {name}!"),
            "{record}"
        );
        invoked.push((crate::common::activation_id(&record), name));
    }

    // The caller reads an answer again (the gateway writes out its
    // keyring to look it up).
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        &format!("/api/v1/namespaces/_/activations/{}/result", invoked[0].0),
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 200, "{body}");

    let provider = server.user();
    copy_files(
        &gateway.state_dir().join("client"),
        &provider.clemmys_home(),
    );
    // Whatever the copy holds, the provider pins the node's broker itself
    // (a pin is public).
    let _ = provider.clemmys(&["broker", "trust", "--yes"]);
    for (id, name) in &invoked {
        let opened = provider.clemmys(&["activation", "result", id]);
        assert!(
            !opened.stdout.contains(name.as_str()) && !opened.stderr.contains(name.as_str()),
            "the provider opened activation {id} with the gateway's client state:\n{opened}"
        );
    }
    // Nor does any file of the gateway's hold a key as the client's
    // keyring writes them.
    let mut sources = Vec::new();
    add_files(&gateway.state_dir(), &mut sources);
    let fields = ["\"resultKey\"", "\"logsKey\"", "\"secret\"", "\"chainKey\""];
    for source in &sources {
        for field in fields {
            assert!(
                !contains(&source.bytes, field.as_bytes()),
                "{} holds {field} in the clear",
                source.label
            );
        }
    }
}

#[test]
fn the_provider_calling_an_owners_gateway_with_the_namespace_key_is_refused() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    let hello = example("hello");
    let deployed = step(
        &gateway.url,
        &owners.credential,
        pin,
        &["deploy", "hello", arg(&hello)],
    );
    assert_eq!(deployed["ok"], true, "{deployed}");
    let later = step(
        &gateway.url,
        &owners.credential,
        pin,
        &["invoke-later", "hello", r#"{"name":"owner-secret"}"#],
    );
    let id = later["out"]["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id: {later}"))
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while step(&gateway.url, &owners.credential, pin, &["result", &id])["ok"] != true {
        assert!(Instant::now() < deadline, "activation {id} never finished");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The provider holds the namespace key, and the network: it calls the
    // gateway as any OpenWhisk client would.
    let provider = &server.guest_auth;
    let invoked = step(
        &gateway.url,
        provider,
        pin,
        &["invoke", "hello", r#"{"name":"provider"}"#],
    );
    assert_eq!(invoked["statusCode"], 401, "{invoked}");
    assert!(invoked.to_string().contains(NOT_ISSUED), "{invoked}");
    assert!(!invoked.to_string().contains("Hello"), "{invoked}");
    for path in [
        format!("/api/v1/namespaces/_/activations/{id}"),
        format!("/api/v1/namespaces/_/activations/{id}/result"),
        format!("/api/v1/namespaces/_/activations/{id}/logs"),
        "/api/v1/namespaces/_/actions".to_owned(),
        "/api/v1/namespaces".to_owned(),
    ] {
        let (status, body) = curl(&gateway.url, pin, "GET", &path, Some(provider), None);
        assert_eq!(status, 401, "GET {path}: {body}");
        assert!(body.contains(NOT_ISSUED), "GET {path}: {body}");
        assert!(!body.contains("owner-secret"), "GET {path}: {body}");
    }
    // A package request is authenticated before its body is read: no
    // answer about the body (here, a binding) to a caller without a
    // credential.
    let binding = r#"{"binding":{"namespace":"elsewhere","name":"p"}}"#;
    let (status, body) = curl(
        &gateway.url,
        pin,
        "PUT",
        "/api/v1/namespaces/_/packages/theirs",
        Some(provider),
        Some(binding),
    );
    assert_eq!(status, 401, "PUT a package: {body}");
    assert!(body.contains(NOT_ISSUED), "PUT a package: {body}");
    // No credentials for the provider: it is not the owner, and has none
    // of the owner's keys.
    let provider_user = server.user();
    provider_user.trust_broker();
    provider_user
        .clemmys(&["gateway", "credential", &gateway.url])
        .failure()
        .stderr_has("only its owner gets credentials");
    // The owner's credential still answers.
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        &format!("/api/v1/namespaces/_/activations/{id}/result"),
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello, owner-secret!"), "{body}");
}

#[test]
fn a_forged_gateway_credential_is_refused() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    let list = "/api/v1/namespaces/_/actions";
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        list,
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The owner's UUID with a key of the provider's making: random, and of
    // the right shape (64 hex digits).
    for key in ["a".repeat(64), "0123456789abcdef".repeat(4), "x".into()] {
        let forged = format!("{}:{key}", owners.uuid);
        let (status, body) = curl(&gateway.url, pin, "GET", list, Some(&forged), None);
        assert_eq!(status, 401, "{forged}: {body}");
        assert!(body.contains(NOT_ISSUED), "{body}");
    }
    // A genuine credential of another gateway acting for the same owner
    // (another credential key): not this gateway's.
    let other = GatewayProcess::start(&server.api_host, &server.data_dir, &owners.flags(&server));
    let (elsewhere, _) = credential_of(&owners.owner, &other.url);
    let (status, body) = curl(&gateway.url, pin, "GET", list, Some(&elsewhere), None);
    assert_eq!(status, 401, "{body}");
}

/// A request for a credential signed by `owner` for `gateway_id` over
/// `challenge`, as JSON.
fn signed_issue(owner: &crate::common::User, gateway_id: &str, challenge: &str) -> String {
    use clemmys_gateway::credentials::{CredentialAction, CredentialRequest};
    let identity = clemmys_client::confidential::ClientHome::open(owner.clemmys_home())
        .and_then(|home| home.identity())
        .unwrap_or_else(|error| panic!("the owner's identity: {error}"));
    let request = CredentialRequest {
        action: CredentialAction::Issue,
        gateway: gateway_id
            .parse()
            .unwrap_or_else(|error| panic!("{gateway_id}: {error}")),
        owner: identity.id(),
        challenge: challenge.to_owned(),
    };
    serde_json::to_string(&request.sign(&identity)).unwrap_or_else(|error| panic!("{error}"))
}

/// A fresh challenge of the gateway at `url`.
fn challenge_of(url: &str, pin: &Path) -> String {
    let answer = curl_json_ok(
        url,
        pin,
        "POST",
        "/clemmys/v1/credentials/challenge",
        None,
        None,
    );
    answer["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge: {answer}"))
        .to_owned()
}

#[test]
fn a_replayed_signed_credential_request_is_refused_later_after_a_restart_or_elsewhere() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    let (owner, gateway, pin) = (&owners.owner, &owners.gateway, &owners.pin);
    let gateway_id = owner
        .clemmys(&["gateway", "verify", &gateway.url, "--json"])
        .success()
        .json()["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity"))
        .to_owned();
    // A genuine request the owner signed (the provider is assumed to have
    // obtained a copy of it).
    let signed = signed_issue(owner, &gateway_id, &challenge_of(&gateway.url, pin));
    let issue = "/clemmys/v1/credentials";
    let (status, body) = curl(&gateway.url, pin, "POST", issue, None, Some(&signed));
    assert_eq!(status, 200, "{body}");
    // Replayed to the same gateway: its challenge is used up.
    let (status, body) = curl(&gateway.url, pin, "POST", issue, None, Some(&signed));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("challenge"), "{body}");
    // A request never sent (the provider kept the owner's signed request
    // and withheld it): at another gateway of the same owner, refused
    // even over that gateway's own fresh challenge…
    let kept = signed_issue(owner, &gateway_id, &challenge_of(&gateway.url, pin));
    let other = GatewayProcess::start(&server.api_host, &server.data_dir, &owners.flags(&server));
    let other_pin = other.root.path().join("gateway.pem");
    owner
        .clemmys(&["gateway", "verify", &other.url, "--out", arg(&other_pin)])
        .success();
    let (status, body) = curl(&other.url, &other_pin, "POST", issue, None, Some(&kept));
    assert_eq!(status, 403, "{body}");
    let elsewhere = signed_issue(owner, &gateway_id, &challenge_of(&other.url, &other_pin));
    let (status, body) = curl(
        &other.url,
        &other_pin,
        "POST",
        issue,
        None,
        Some(&elsewhere),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("signed for gateway"), "{body}");
    // …and at its own gateway after a restart.
    let OwnersGateway {
        gateway, owner_id, ..
    } = owners;
    let gateway = gateway.restart(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    let (status, body) = curl(&gateway.url, pin, "POST", issue, None, Some(&kept));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("challenge"), "{body}");
}

#[test]
fn a_revoked_gateway_credential_is_refused_also_after_a_restart() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    let (owner, gateway, pin) = (&owners.owner, &owners.gateway, &owners.pin);
    let (kept, _) = credential_of(owner, &gateway.url);
    let list = "/api/v1/namespaces/_/actions";
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        list,
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 200, "{body}");
    owner
        .clemmys(&["gateway", "revoke-credential", &gateway.url, &owners.uuid])
        .success()
        .stdout_has("revoked credential");
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        list,
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    // Another credential of the owner's still works.
    let (status, body) = curl(&gateway.url, pin, "GET", list, Some(&kept), None);
    assert_eq!(status, 200, "{body}");
    // The revocation is sealed: it survives a restart.
    let OwnersGateway {
        gateway,
        owner_id,
        credential,
        ..
    } = owners;
    let gateway = gateway.restart(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    let (status, body) = curl(&gateway.url, pin, "GET", list, Some(&credential), None);
    assert_eq!(status, 401, "{body}");
    // Restoring the sealed state (with the revocation list) from before
    // any revocation, here by removing it, is refused at start.
    let mut gateway = gateway;
    gateway.stop();
    let restore_dir = gateway.state_dir();
    let revoked = restore_dir.join(clemmys_gateway::sealed::STATE_FILE);
    std::fs::remove_file(&revoked).unwrap_or_else(|error| panic!("{error}"));
    let restarted = Command::new(bin())
        .args([
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--apihost",
            &server.api_host,
            "--state-dir",
            arg(&restore_dir),
            "--sim-platform-key",
            arg(&server.data_dir.join("sim-platform.key")),
            "--owner",
            &owner_id,
            "--auth",
            &server.guest_auth,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("running the gateway: {error}"));
    let stderr = String::from_utf8_lossy(&restarted.stderr);
    assert!(!restarted.status.success(), "{stderr}");
    assert!(stderr.contains("an older copy was restored"), "{stderr}");
}

#[test]
fn a_second_gateway_process_on_a_state_directory_in_use_is_refused() {
    // No node is needed to start: the gateway reaches it on a first request.
    let node_data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let node = "https://127.0.0.1:9";
    let first = GatewayProcess::start(node, node_data.path(), &[]);
    let log = node_data.path().join("second.log");
    let mut second = Command::new(bin())
        .args([
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--apihost",
            node,
            "--state-dir",
            arg(&first.state_dir()),
            "--sim-platform-key",
            arg(&node_data.path().join("sim-platform.key")),
        ])
        .env("HOME", node_data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap_or_else(|error| panic!("{error}")))
        .spawn()
        .unwrap_or_else(|error| panic!("running the gateway: {error}"));
    // It must give up on its own (a second gateway that serves would
    // overwrite the first one's state).
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        match second.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    if status.is_none() {
        let _ = second.kill();
        let _ = second.wait();
    }
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|status| !status.success()),
        "a second gateway started on a state directory in use: {stderr}"
    );
    assert!(
        stderr.contains("held by another gateway process"),
        "{stderr}"
    );
    // Once the first stops, the directory is free again.
    let first = first.restart(node, node_data.path(), &[]);
    assert!(first.url.starts_with("https://"), "{}", first.url);
}

/// Deploys `wasm` as `name` through the owner's gateway with curl (the
/// OpenWhisk body, base64 code) and `annotations`.
fn deploy_with_curl(owners: &OwnersGateway, name: &str, wasm: &Path, annotations: Value) {
    let body = json!({"exec": wasm_exec(wasm), "annotations": annotations});
    let (status, answer) = put_with_curl(owners, name, &body);
    assert_eq!(status, 200, "deploying {name}: {answer}");
}

fn web_export() -> Value {
    json!([{"key": "web-export", "value": true}])
}

/// What OpenWhisk answers for a missing (or unexported) web action.
const NO_RESOURCE: &str = "The requested resource does not exist.";

#[test]
fn a_confidential_web_action_is_served_by_the_gateway_and_the_provider_sees_nothing() {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owners = OwnersGateway::start(&server, &wire.api_host());
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), web_export());
    deploy_with_curl(&owners, "echo", &example("echo"), web_export());
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    // The owner's CLI, asked for its URL at the node, gives no node web
    // URL to hand out (the node's web route would see callers' requests).
    let asked = owners
        .owner
        .clemmys(&["action", "get", "secret", "--url"])
        .failure();
    asked.stderr_has("the owner's attested gateway serves it");
    assert!(!asked.stdout.contains("/api/v1/web/"), "{asked}");

    // Anyone, without credentials and trusting only the pinned
    // certificate: `.json` by GET (query) and POST (JSON body).
    let param = unique("gwweb-");
    let shout = json!({"shout": param.to_uppercase()});
    let path = format!("/api/v1/web/guest/default/secret.json?secret={param}");
    assert_eq!(
        curl_json_ok(&gateway.url, pin, "GET", &path, None, None),
        shout
    );
    let posted = json!({"secret": param}).to_string();
    let answer = curl_json_ok(
        &gateway.url,
        pin,
        "POST",
        "/api/v1/web/guest/default/secret.json",
        None,
        Some(&posted),
    );
    assert_eq!(answer, shout);
    // Projection along the path, as on the node.
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        &format!("/api/v1/web/guest/default/secret.text/shout?secret={param}"),
        None,
        None,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, param.to_uppercase().as_str())
    );
    // `.http`: the result says the status, headers and body; the request
    // is the action's `__ow_*` arguments.
    let made = unique("made-");
    let asked = json!({"statusCode": 201, "headers": {"x-made": "yes"}, "body": made}).to_string();
    let (status, body) = curl(
        &gateway.url,
        pin,
        "POST",
        "/api/v1/web/guest/default/echo.http",
        None,
        Some(&asked),
    );
    assert_eq!((status, body.as_str()), (201, made.as_str()));
    let echoed = curl_json_ok(
        &gateway.url,
        pin,
        "PUT",
        "/api/v1/web/guest/default/echo.json?q=1",
        None,
        None,
    );
    assert_eq!(echoed["__ow_method"], "put", "{echoed}");
    assert_eq!(echoed["__ow_path"], "", "{echoed}");
    assert_eq!(echoed["q"], "1", "{echoed}");
    // Not exported, or not there: the same 404.
    for missing in ["hello.json", "nothing.json"] {
        let path = format!("/api/v1/web/guest/default/{missing}?name=x");
        let (status, body) = curl(&gateway.url, pin, "GET", &path, None, None);
        assert_eq!(status, 404, "{missing}: {body}");
        assert!(body.contains(NO_RESOURCE), "{body}");
    }
    // The node's own web path does not serve it: it cannot open it, and
    // would show it to the provider if it could.
    let (status, body) = curl(&server.api_host, pin, "GET", &path, None, None);
    assert_eq!(status, 501, "{body}");
    assert!(!body.contains(&param.to_uppercase()), "{body}");

    // What the provider holds: its data, logs, and every byte between the
    // gateway and the node.
    let sources = provider_holdings(
        &mut server,
        &wire,
        gateway,
        &["POST /api/v1/namespaces/_/actions/secret"],
    );
    let mut markers = markers(&param);
    markers.push(crate::leaks::Marker {
        name: "HTTP BODY",
        text: made,
    });
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "a web action's plaintext reached the provider through the gateway:\n{}",
        report(&findings)
    );
}

/// The provider's copy of action `name`'s record on the node, read with
/// the namespace key (its sealed code included).
fn provider_copy(server: &Server, pin: &Path, name: &str) -> Value {
    curl_json_ok(
        &server.api_host,
        pin,
        "GET",
        &format!("/api/v1/namespaces/_/actions/{name}?code=true"),
        Some(server.guest_auth.as_str()),
        None,
    )
}

/// The provider puts `copy` (see [`provider_copy`]: its sealed code,
/// annotations and limits) on the node as action `name`, with the
/// namespace key.
fn provider_puts_back(server: &Server, name: &str, copy: &Value) {
    let put =
        json!({"exec": copy["exec"], "annotations": copy["annotations"], "limits": copy["limits"]});
    let path = format!("/api/v1/namespaces/_/actions/{name}?overwrite=true");
    let (status, body) = server.put(&path, &put);
    assert_eq!(
        status,
        200,
        "the provider's PUT {path}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// The provider rewrites action `name`'s annotations on the node with the
/// namespace key (keeping its sealed code): `change` edits them.
fn provider_reannotates(
    server: &Server,
    pin: &Path,
    name: &str,
    change: impl FnOnce(&mut Vec<Value>),
) {
    let mut doc = provider_copy(server, pin, name);
    let mut annotations = doc["annotations"].as_array().cloned().unwrap_or_default();
    change(&mut annotations);
    doc["annotations"] = Value::Array(annotations);
    provider_puts_back(server, name, &doc);
}

#[test]
fn the_provider_cannot_export_a_confidential_action_or_lift_its_web_auth() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    deploy_with_curl(
        &owners,
        "echo",
        &example("echo"),
        json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": true}]),
    );
    let provider = server.guest_auth.as_str();
    let param = unique("gwexp-");
    let secret_path = format!("/api/v1/web/guest/default/secret.json?secret={param}");
    let echo_path = "/api/v1/web/guest/default/echo.json?x=1";

    // require-whisk-auth: true wants the owner's key, here a credential the
    // gateway issued: the provider's namespace key gets what an anonymous
    // caller gets.
    for auth in [None, Some(provider)] {
        let (status, body) = curl(&gateway.url, pin, "GET", echo_path, auth, None);
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    let echoed = curl_json_ok(
        &gateway.url,
        pin,
        "GET",
        echo_path,
        Some(&owners.credential),
        None,
    );
    assert_eq!(echoed["__ow_user"], "guest", "{echoed}");
    assert!(
        echoed["__ow_headers"].get("authorization").is_none(),
        "{echoed}"
    );

    // The provider exports `secret` on the node, tag or no tag (it copies
    // echo's): the gateway does not serve it.
    let echo_tag = {
        let (_, body) = curl(
            &server.api_host,
            pin,
            "GET",
            "/api/v1/namespaces/_/actions/echo",
            Some(provider),
            None,
        );
        let doc: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        doc["annotations"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|kv| kv["key"] == "clemmys-gateway-web")
                    .cloned()
            })
            .unwrap_or_else(|| panic!("echo has no web tag: {doc}"))
    };
    provider_reannotates(&server, pin, "secret", |annotations| {
        annotations.push(json!({"key": "web-export", "value": true}));
        annotations.push(echo_tag.clone());
    });
    for auth in [None, Some(provider)] {
        let (status, body) = curl(&gateway.url, pin, "GET", &secret_path, auth, None);
        assert_eq!(status, 404, "{body}");
        assert!(!body.contains(&param.to_uppercase()), "{body}");
    }
    // The provider lifts echo's require-whisk-auth: the tag no longer
    // verifies, and the gateway serves it to nobody.
    provider_reannotates(&server, pin, "echo", |annotations| {
        annotations.retain(|kv| kv["key"] != "require-whisk-auth");
    });
    for auth in [None, Some(provider), Some(owners.credential.as_str())] {
        let (status, body) = curl(&gateway.url, pin, "GET", echo_path, auth, None);
        assert_eq!(status, 404, "{auth:?}: {body}");
    }
    // Nor does the node's own web path run either.
    let (status, body) = curl(&server.api_host, pin, "GET", &secret_path, None, None);
    assert_eq!(status, 501, "{body}");
    assert!(!body.contains(&param.to_uppercase()), "{body}");
}

/// Creates sequence `name` of `components` through the owner's gateway
/// with curl, as an OpenWhisk client sends it.
fn sequence_with_curl(owners: &OwnersGateway, name: &str, components: &[&str]) {
    let body = json!({"exec": {"kind": "sequence", "components": components}}).to_string();
    let (status, answer) = curl(
        &owners.gateway.url,
        &owners.pin,
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        Some(&owners.credential),
        Some(&body),
    );
    assert_eq!(status, 200, "creating {name}: {answer}");
}

#[test]
fn a_sequence_through_the_gateway_answers_its_last_step_and_the_provider_sees_no_step() {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owners = OwnersGateway::start(&server, &wire.api_host());
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    sequence_with_curl(&owners, "shout-then-greet", &["/guest/secret", "/_/hello"]);

    // `secret` answers {"shout": PARAM uppercased}: the intermediate value,
    // which only `hello` sees. `hello` greets `name`, which that answer
    // lacks: a greeting of the caller's name would mean it ran on the
    // caller's parameters, not on the first step's answer.
    let param = unique("gwseq-");
    let name = unique("gwname-");
    let params = json!({"secret": param, "name": name}).to_string();
    let answer = curl_json_ok(
        &gateway.url,
        pin,
        "POST",
        "/api/v1/namespaces/_/actions/shout-then-greet?blocking=true&result=true",
        Some(&owners.credential),
        Some(&params),
    );
    assert_eq!(answer, json!({"payload": "Hello, World!"}));
    // The owner's CLI shows it, and runs it: the gateway signed its plan
    // and registered it as the owner's delegate, and the registration
    // names the plan's bytes.
    let shown = owners
        .owner
        .clemmys(&["action", "get", "shout-then-greet", "--json"])
        .success()
        .json();
    assert_eq!(
        shown["exec"]["components"],
        json!(["/guest/secret", "/guest/hello"]),
        "{shown}"
    );
    let ran = owners
        .owner
        .clemmys(&[
            "action",
            "invoke",
            "shout-then-greet",
            "-p",
            "secret",
            "x",
            "-r",
        ])
        .success();
    assert_eq!(ran.json(), json!({"payload": "Hello, World!"}), "{ran}");

    // What the provider holds: its data, logs, and every byte between the
    // gateway and the node.
    let sources = provider_holdings(
        &mut server,
        &wire,
        gateway,
        &["POST /api/v1/namespaces/_/actions/shout-then-greet"],
    );
    let mut markers = markers(&param);
    markers.push(crate::leaks::Marker {
        name: "INTERMEDIATE (the first step's answer)",
        text: param.to_uppercase(),
    });
    markers.push(crate::leaks::Marker {
        name: "NAME",
        text: name,
    });
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "a sequence's plaintext reached the provider through the gateway:\n{}",
        report(&findings)
    );
}

#[test]
fn a_sequence_reordered_by_the_provider_is_refused_through_the_gateway() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    deploy_with_curl(&owners, "echo", &example("echo"), json!([]));
    sequence_with_curl(
        &owners,
        "shout-then-echo",
        &["/guest/secret", "/guest/echo"],
    );
    let invoke = || {
        let params = json!({"secret": unique("gwreorder-")}).to_string();
        curl(
            &gateway.url,
            pin,
            "POST",
            "/api/v1/namespaces/_/actions/shout-then-echo?blocking=true&result=true",
            Some(&owners.credential),
            Some(&params),
        )
    };
    let (status, body) = invoke();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("shout"), "{body}");

    // The provider swaps the steps on the node with the namespace key,
    // keeping the signed plan annotation.
    let path = "/api/v1/namespaces/_/actions/shout-then-echo";
    let auth = Some(server.guest_auth.as_str());
    let doc = curl_json_ok(&server.api_host, pin, "GET", path, auth, None);
    let put = json!({
        "exec": {"kind": "sequence", "components": ["/guest/echo", "/guest/secret"]},
        "annotations": doc["annotations"],
    })
    .to_string();
    let (status, body) = curl(
        &server.api_host,
        pin,
        "PUT",
        &format!("{path}?overwrite=true"),
        auth,
        Some(&put),
    );
    assert_eq!(status, 200, "the provider's PUT: {body}");

    // A fresh gateway connection (after a restart) reads the plan again.
    let OwnersGateway {
        owner_id,
        gateway,
        pin,
        credential,
        ..
    } = owners;
    let gateway = gateway.restart(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    let params = json!({"secret": unique("gwreorder-")}).to_string();
    let (status, body) = curl(
        &gateway.url,
        &pin,
        "POST",
        "/api/v1/namespaces/_/actions/shout-then-echo?blocking=true&result=true",
        Some(&credential),
        Some(&params),
    );
    assert_eq!(status, 502, "the reordered sequence ran: {body}");
    assert!(
        body.contains("components differ from its signed plan"),
        "{body}"
    );
    // Nor does its GET show the reordered steps as the sequence's.
    let (status, body) = curl(&gateway.url, &pin, "GET", path, Some(&credential), None);
    assert_eq!(status, 502, "the reordered sequence was shown: {body}");
    assert!(
        body.contains("components differ from its signed plan"),
        "{body}"
    );
}

/// A running gateway refuses a sequence's older plan that the provider put
/// back on the node after the owner updated the sequence with their own
/// client, and runs the owner's update. Failed before the gateway read a
/// plan again after `PLAN_RECHECK_INTERVAL`: it ran the plan it had
/// verified first until it restarted, so the provider's restored plan ran
/// the step the owner had dropped on the caller's parameters.
#[test]
fn a_running_gateway_refuses_an_old_plan_put_back_after_an_update() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (owner, pin) = (&owners.owner, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    deploy_with_curl(&owners, "echo", &example("echo"), json!([]));
    sequence_with_curl(&owners, "pipe", &["/guest/secret", "/guest/echo"]);
    let param = unique("gwupdated-");
    let run = || invoke_result_with_curl(&owners, "pipe", &json!({"secret": param}));
    let (status, first) = run();
    assert_eq!(status, 200, "{first}");
    assert!(first.get("shout").is_some(), "{first}");

    // What the provider keeps: the sequence as the node stores it now.
    let path = "/api/v1/namespaces/_/actions/pipe";
    let auth = Some(server.guest_auth.as_str());
    let old = curl_json_ok(&server.api_host, pin, "GET", path, auth, None);
    let drop_the_first_step = || {
        owner
            .clemmys(&["action", "update", "pipe", "--sequence", "/guest/echo"])
            .success();
    };

    // The owner drops the first step with their own client; the provider
    // puts the old plan back with the namespace key.
    drop_the_first_step();
    let put = json!({"exec": old["exec"], "annotations": old["annotations"]}).to_string();
    let (status, body) = curl(
        &server.api_host,
        pin,
        "PUT",
        &format!("{path}?overwrite=true"),
        auth,
        Some(&put),
    );
    assert_eq!(status, 200, "the provider's PUT: {body}");
    std::thread::sleep(PLAN_RECHECK_INTERVAL + Duration::from_millis(200));
    let (status, refused) = run();
    assert_eq!(status, 502, "the old plan ran: {refused}");
    let refused = refused.to_string();
    assert!(refused.contains("older than version"), "{refused}");
    assert!(!refused.contains("shout"), "{refused}");

    // The owner updates it again: the gateway runs the update.
    drop_the_first_step();
    std::thread::sleep(PLAN_RECHECK_INTERVAL + Duration::from_millis(200));
    assert_eq!(run(), (200, json!({"secret": param})), "the old plan ran");
}

#[test]
fn a_revoked_gateways_sequence_stops() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (owner, gateway, pin) = (&owners.owner, &owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    sequence_with_curl(&owners, "shout-then-greet", &["/guest/secret", "/_/hello"]);
    let run = || {
        let params = json!({"secret": unique("gwrevoked-")}).to_string();
        curl(
            &gateway.url,
            pin,
            "POST",
            "/api/v1/namespaces/_/actions/shout-then-greet?blocking=true&result=true",
            Some(&owners.credential),
            Some(&params),
        )
    };
    // Delegated: it runs, twice (the second run within the chain session
    // the first opened).
    for _ in 0..2 {
        assert_eq!(
            json_ok("POST shout-then-greet", run()),
            json!({"payload": "Hello, World!"})
        );
    }

    // The owner revokes the delegation at the broker.
    let gateway_id = owner
        .clemmys(&["gateway", "verify", &gateway.url, "--json"])
        .success()
        .json()["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity"))
        .to_owned();
    owner
        .clemmys(&["gateway", "revoke", &gateway_id])
        .success()
        .stdout_has("revoked gateway");

    // The next run is refused, at the latest once an enclave's cached
    // admission (up to about a second) has lapsed.
    let deadline = Instant::now() + Duration::from_secs(3);
    let (status, body) = loop {
        let (status, body) = run();
        if status != 200 || Instant::now() >= deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 403, "the revoked gateway's sequence ran: {body}");
    let refused: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(refused.get("payload").is_none(), "{refused}");
    // The enclave's typed refusal: this client is not allowed (no live
    // delegation from the owner).
    assert_eq!(refused["refusal"], "client_not_allowed", "{refused}");
    // The owner is not locked out of the sequence's steps.
    owner
        .clemmys(&["action", "invoke", "hello", "-p", "name", "owner", "-r"])
        .success()
        .stdout_has("Hello, owner!");
}

/// The activations of the gateway's namespace, as the provider lists them
/// with the namespace key.
fn provider_activation_count(server: &Server, pin: &Path) -> usize {
    let listed = curl_json_ok(
        &server.api_host,
        pin,
        "GET",
        "/api/v1/namespaces/_/activations?limit=200",
        Some(&server.guest_auth),
        None,
    );
    listed
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {listed}"))
        .len()
}

#[test]
fn a_web_tag_carried_over_to_a_later_version_runs_nothing() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    deploy_with_curl(&owners, "echo", &example("echo"), web_export());
    let path = "/api/v1/web/guest/default/echo.json?probe=1";
    let (status, body) = curl(&gateway.url, pin, "GET", path, None, None);
    assert_eq!(status, 200, "{body}");
    // The provider keeps version 1's annotations, its web tag included.
    let mut exported = Vec::new();
    provider_reannotates(&server, pin, "echo", |annotations| {
        exported.clone_from(annotations);
    });
    // The owner withdraws the export: version 2, untagged.
    deploy_with_curl(&owners, "echo", &example("echo"), json!([]));
    let (status, body) = curl(&gateway.url, pin, "GET", path, None, None);
    assert_eq!(status, 404, "{body}");

    // The provider puts version 1's annotations back on version 2 and
    // calls the URL: the tag is genuine, but names version 1. Version 2
    // must not run on the provider's request at all (its answer's size
    // and timing would be an oracle on an action the owner keeps
    // private), not only have its answer withheld.
    provider_reannotates(&server, pin, "echo", |annotations| {
        *annotations = exported;
    });
    let before = provider_activation_count(&server, pin);
    let (status, body) = curl(&gateway.url, pin, "GET", path, None, None);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("probe"), "{body}");
    assert_eq!(
        provider_activation_count(&server, pin),
        before,
        "the gateway ran version 2 of an action only version 1 of which was exported:\n{}",
        gateway.log()
    );
}

// Bound parameters through the gateway: sealed with the code as default
// parameters, as the owner's `clemmys` seals them.

/// What the provider holds once `server` has stopped: every byte `wire`
/// saw between the gateway and the node (which must hold each request line
/// of `requests`, so that the recorder is known to have been in the way),
/// the node's files and debug log, and the gateway's state directory and
/// log, which are on the provider's disk too.
fn provider_holdings(
    server: &mut Server,
    wire: &Wire,
    gateway: &GatewayProcess,
    requests: &[&str],
) -> Vec<Source> {
    server.stop();
    let recorded = wire.sources();
    for request in requests {
        assert!(
            recorded
                .iter()
                .any(|source| source.label.ends_with("requests")
                    && contains(&source.bytes, request.as_bytes())),
            "the recorder saw no {request} from the gateway"
        );
    }
    let mut sources = recorded;
    add_files(&server.data_dir, &mut sources);
    for dir in server.process_dirs() {
        add_files(&dir, &mut sources);
    }
    add_files(&gateway.state_dir(), &mut sources);
    let log = std::fs::read(&server.log_path).unwrap_or_default();
    sources.push(Source {
        label: "node log (without colours)".into(),
        bytes: strip_ansi(&log),
    });
    sources.push(Source {
        label: "node log".into(),
        bytes: log,
    });
    let gateway_log = std::fs::read(gateway.log_path()).unwrap_or_default();
    sources.push(Source {
        label: "gateway log (without colours)".into(),
        bytes: strip_ansi(&gateway_log),
    });
    sources.push(Source {
        label: "gateway log".into(),
        bytes: gateway_log,
    });
    sources
}

/// The `exec` of `wasm` as OpenWhisk clients send it (base64 code).
fn wasm_exec(wasm: &Path) -> Value {
    use base64::Engine as _;
    let module = std::fs::read(wasm).unwrap_or_else(|error| panic!("{}: {error}", wasm.display()));
    let code = base64::engine::general_purpose::STANDARD.encode(module);
    json!({"kind": "wasm", "code": code, "binary": true})
}

/// `PUT` of action `body` as `name` through the owner's gateway with curl
/// (`?overwrite=true`): the status and the answer.
fn put_with_curl(owners: &OwnersGateway, name: &str, body: &Value) -> (u16, String) {
    let path = format!("/api/v1/namespaces/_/actions/{name}?overwrite=true");
    owners_curl(owners, "PUT", &path, Some(body))
}

/// A blocking invoke of `name` with `params` through the owner's gateway,
/// answering the result only: the status and the result.
fn invoke_result_with_curl(owners: &OwnersGateway, name: &str, params: &Value) -> (u16, Value) {
    let (status, body) = curl(
        &owners.gateway.url,
        &owners.pin,
        "POST",
        &format!("/api/v1/namespaces/_/actions/{name}?blocking=true&result=true"),
        Some(&owners.credential),
        Some(&params.to_string()),
    );
    let result = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"));
    (status, result)
}

#[test]
fn bound_parameters_through_the_gateway_are_sealed_defaults_the_provider_never_sees() {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owners = OwnersGateway::start(&server, &wire.api_host());
    owners.authorize();
    let (key, value, fixed) = (unique("gwdpk-"), unique("gwdpv-"), unique("gwfinal-"));

    // `echo` answers its parameters: the defaults under the invoke's.
    let parameters = json!([{"key": key, "value": value}, {"key": "greeting", "value": "hi"}]);
    let put = json!({"exec": wasm_exec(&example("echo")), "parameters": parameters});
    let (status, echo_answer) = put_with_curl(&owners, "echo", &put);
    assert_eq!(status, 200, "{echo_answer}\n{}", owners.gateway.log());
    let answered: Value =
        serde_json::from_str(&echo_answer).unwrap_or_else(|error| panic!("{error}: {echo_answer}"));
    assert_eq!(answered["parameters"], parameters, "{answered}");
    assert!(answered["exec"].get("code").is_none(), "{answered}");
    for _ in 0..2 {
        let (status, result) =
            invoke_result_with_curl(&owners, "echo", &json!({"greeting": "hey", "name": "Ada"}));
        assert_eq!(status, 200, "{result}");
        let mut expected = serde_json::Map::new();
        expected.insert(key.clone(), json!(value));
        expected.insert("greeting".into(), json!("hey"));
        expected.insert("name".into(), json!("Ada"));
        assert_eq!(result, Value::Object(expected));
    }

    // `final`: the defaults hold against the invoke's parameters.
    let put = json!({
        "exec": wasm_exec(&example("echo")),
        "parameters": [{"key": "mode", "value": fixed}],
        "annotations": [{"key": "final", "value": true}],
    });
    let (status, answer) = put_with_curl(&owners, "fixed", &put);
    assert_eq!(status, 200, "{answer}");
    let (status, result) = invoke_result_with_curl(&owners, "fixed", &json!({"other": 1}));
    assert_eq!((status, result), (200, json!({"mode": fixed, "other": 1})));
    // The gateway sealed them: it refuses the override with OpenWhisk's
    // 400 before sending anything.
    let (status, refused) = invoke_result_with_curl(&owners, "fixed", &json!({"mode": "unsafe"}));
    assert_eq!(
        status, 400,
        "an overridden final parameter was sent: {refused}"
    );
    assert!(refused.get("mode").is_none(), "{refused}");
    assert_eq!(
        refused["error"],
        "Request defines parameters that are not allowed (e.g., reserved properties).",
        "{refused}"
    );

    // An update with the code and no parameters keeps them, as OpenWhisk
    // does: the gateway seals its own copy again. A GET through it shows
    // them (the node's shows none: see the leak scan below).
    let (status, body) = put_with_curl(
        &owners,
        "echo",
        &json!({"exec": wasm_exec(&example("echo"))}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, result) = invoke_result_with_curl(&owners, "echo", &json!({}));
    assert_eq!((status, &result[&key]), (200, &json!(value)), "{result}");
    let shown = curl_json_ok(
        &owners.gateway.url,
        &owners.pin,
        "GET",
        "/api/v1/namespaces/_/actions/echo",
        Some(&owners.credential),
        None,
    );
    let shown_parameters: serde_json::Map<String, Value> = shown["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), kv["value"].clone())))
        .collect();
    assert_eq!(
        Value::Object(shown_parameters),
        json!({key.clone(): value, "greeting": "hi"}),
        "{shown}"
    );
    // Parameters without the code cannot be sealed: a 400, and the action
    // keeps its defaults.
    let (status, body) = put_with_curl(
        &owners,
        "echo",
        &json!({"parameters": [{"key": key, "value": "changed"}]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sealed with its code"), "{body}");
    let (status, result) = invoke_result_with_curl(&owners, "echo", &json!({}));
    assert_eq!((status, &result[&key]), (200, &json!(value)), "{result}");

    // What the provider holds: the node's API, its data, its log, the
    // gateway's disk and log, and every byte between gateway and node.
    let mut sources = Vec::new();
    for path in [
        "/api/v1/namespaces/_/actions/echo?code=true",
        "/api/v1/namespaces/_/actions/fixed?code=true",
        "/api/v1/namespaces/_/activations?docs=true",
    ] {
        let (status, bytes) = server.get(path);
        assert_eq!(status, 200, "GET {path}");
        sources.push(Source {
            label: format!("GET {path}"),
            bytes,
        });
    }
    sources.extend(provider_holdings(
        &mut server,
        &wire,
        &owners.gateway,
        &[
            "PUT /api/v1/namespaces/_/actions/echo",
            "POST /api/v1/namespaces/_/actions/fixed",
        ],
    ));
    let markers = [
        crate::leaks::Marker {
            name: "DEFAULT KEY",
            text: key,
        },
        crate::leaks::Marker {
            name: "DEFAULT VALUE",
            text: value,
        },
        crate::leaks::Marker {
            name: "FINAL DEFAULT VALUE",
            text: fixed,
        },
    ];
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "default parameters reached the provider through the gateway:\n{}",
        report(&findings)
    );
    // The scan finds them where they are: in what the owner was answered.
    let owners_view = [Source {
        label: "the gateway's answer to the owner's PUT".into(),
        bytes: echo_answer.into_bytes(),
    }];
    let found = scan(&owners_view, &markers);
    for name in ["DEFAULT KEY", "DEFAULT VALUE"] {
        assert!(found.iter().any(|finding| finding.marker == name), "{name}");
    }
}

#[test]
fn a_web_secret_read_from_the_node_does_not_open_a_confidential_web_action() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    // The owner exports `secret` to callers who know a secret header.
    let web_secret = unique("websecret-");
    deploy_with_curl(
        &owners,
        "secret",
        &example("secret"),
        json!([{"key": "web-export", "value": true}, {"key": "require-whisk-auth", "value": web_secret}]),
    );
    let param = unique("gwexp-");
    let path = format!("/api/v1/web/guest/default/secret.json?secret={param}");
    let (status, body) = curl(&gateway.url, pin, "GET", &path, None, None);
    assert_eq!(status, 401, "{body}");
    // The provider reads the action's annotations on the node with the
    // namespace key: the secret is not there.
    let (status, body) = curl(
        &server.api_host,
        pin,
        "GET",
        "/api/v1/namespaces/_/actions/secret",
        Some(server.guest_auth.as_str()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains(&web_secret),
        "the node stores the web secret in the clear"
    );
    // So it has nothing to send but guesses; the owner's callers get in.
    let header = |secret: &str| format!("X-Require-Whisk-Auth: {secret}");
    for guess in ["", "hmac-sha256", "true"] {
        let (status, body) = curl_with(
            &gateway.url,
            pin,
            "GET",
            &path,
            None,
            &[&header(guess)],
            None,
        );
        assert_eq!(status, 401, "{guess:?}: {body}");
        assert!(!body.contains(&param.to_uppercase()), "{body}");
    }
    let (status, body) = curl_with(
        &gateway.url,
        pin,
        "GET",
        &path,
        None,
        &[&header(&web_secret)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&param.to_uppercase()), "{body}");
}

// Confidential packages through the gateway: the package's parameters are
// kept (sealed) by the gateway and sealed, under each action's own, into
// the actions it deploys in the package; the node stores none.

/// `method path` through the owner's gateway with the owner's credential
/// and `body` (JSON): the status and the answer.
fn owners_curl(
    owners: &OwnersGateway,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let file = body.map(|body| {
        let file = owners
            .gateway
            .root
            .path()
            .join(format!("{}.json", unique("body-")));
        std::fs::write(&file, body.to_string()).unwrap_or_else(|error| panic!("{error}"));
        format!("@{}", file.display())
    });
    curl(
        &owners.gateway.url,
        &owners.pin,
        method,
        path,
        Some(&owners.credential),
        file.as_deref(),
    )
}

/// Creates confidential package `name` with `parameters` through the
/// owner's gateway: its answer.
fn package_with_curl(owners: &OwnersGateway, name: &str, parameters: &Value) -> Value {
    let path = format!("/api/v1/namespaces/_/packages/{name}");
    json_ok(
        &format!("PUT {path}"),
        owners_curl(
            owners,
            "PUT",
            &path,
            Some(&json!({"parameters": parameters})),
        ),
    )
}

/// A key-value list as a JSON object.
fn key_values(list: &Value) -> Value {
    Value::Object(
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv["key"].as_str()?.to_owned(), kv["value"].clone())))
            .collect(),
    )
}

#[test]
fn a_package_through_the_gateway_seals_its_parameters_into_its_actions_unseen_by_the_provider() {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owners = OwnersGateway::start(&server, &wire.api_host());
    owners.authorize();
    let (key, value) = (unique("gwpkk-"), unique("gwpkv-"));

    // A package with a parameter: the gateway answers it as OpenWhisk
    // does, marked confidential.
    let parameters = json!([{"key": key, "value": value}]);
    let created = package_with_curl(&owners, "vault", &parameters);
    assert_eq!(created["parameters"], parameters, "{created}");
    let annotations = key_values(&created["annotations"]);
    assert_eq!(annotations["confidential"], json!(true), "{created}");

    // An action in it, with a parameter of its own: the invoke's result
    // shows the package's parameter under the action's and the invoke's.
    let put = json!({"exec": wasm_exec(&example("echo")), "parameters": [{"key": "greeting", "value": "hi"}]});
    let (status, body) = owners_curl(
        &owners,
        "PUT",
        "/api/v1/namespaces/_/actions/vault/echo",
        Some(&put),
    );
    assert_eq!(status, 200, "{body}\n{}", owners.gateway.log());
    let (status, result) = invoke_result_with_curl(&owners, "vault/echo", &json!({"name": "Ada"}));
    assert_eq!(
        (status, result),
        (
            200,
            json!({key.clone(): value, "greeting": "hi", "name": "Ada"})
        )
    );
    // A sequence in the package: its first step, an action outside the
    // package without parameters of its own, gets the package's
    // parameters under the invoke's, as OpenWhisk passes them on.
    deploy_with_curl(&owners, "echo-out", &example("echo"), json!([]));
    sequence_with_curl(&owners, "vault/pipe", &["/guest/echo-out"]);
    let (status, result) = invoke_result_with_curl(&owners, "vault/pipe", &json!({"name": "Bo"}));
    assert_eq!(
        (status, result),
        (200, json!({key.clone(): value, "name": "Bo"}))
    );
    let (status, result) =
        invoke_result_with_curl(&owners, "vault/pipe", &json!({key.clone(): "mine"}));
    assert_eq!((status, result), (200, json!({key.clone(): "mine"})));
    // The whole record, blocking; and a non-blocking invoke's result.
    let record = json_ok(
        "POST vault/echo",
        owners_curl(
            &owners,
            "POST",
            "/api/v1/namespaces/_/actions/vault/echo?blocking=true",
            Some(&json!({})),
        ),
    );
    assert_eq!(record["response"]["result"][&key], json!(value), "{record}");
    let (status, body) = owners_curl(
        &owners,
        "POST",
        "/api/v1/namespaces/_/actions/vault/echo",
        Some(&json!({"later": 1})),
    );
    assert_eq!(status, 202, "{body}");
    let accepted: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let id = accepted["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {accepted}"))
        .to_owned();
    let path = format!("/api/v1/namespaces/_/activations/{id}/result");
    let deadline = Instant::now() + Duration::from_secs(30);
    let later = loop {
        let (status, body) = owners_curl(&owners, "GET", &path, None);
        if status == 200 {
            break serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        }
        assert!(Instant::now() < deadline, "{status}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(later["result"][&key], json!(value), "{later}");
    assert_eq!(later["result"]["later"], json!(1), "{later}");

    // GETs through the gateway show the parameters to its caller.
    let shown = json_ok(
        "GET vault",
        owners_curl(&owners, "GET", "/api/v1/namespaces/_/packages/vault", None),
    );
    assert_eq!(shown["parameters"], parameters, "{shown}");
    let action = json_ok(
        "GET vault/echo",
        owners_curl(
            &owners,
            "GET",
            "/api/v1/namespaces/_/actions/vault/echo",
            None,
        ),
    );
    assert_eq!(
        key_values(&action["parameters"]),
        json!({key.clone(): value, "greeting": "hi"}),
        "{action}"
    );
    assert!(action["exec"].get("code").is_none(), "{action}");
    let listed = json_ok(
        "GET packages",
        owners_curl(&owners, "GET", "/api/v1/namespaces/_/packages", None),
    );
    assert!(
        listed
            .as_array()
            .is_some_and(|all| all.iter().any(|package| package["name"] == "vault")),
        "{listed}"
    );

    // Refused: a binding (400, as the node refuses binding a confidential
    // package), and an action in a package the gateway did not make (it
    // holds none of its parameters): the provider's own confidential one.
    let (status, body) = owners_curl(
        &owners,
        "PUT",
        "/api/v1/namespaces/_/packages/bound",
        Some(&json!({"binding": {"namespace": "_", "name": "vault"}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("does not bind packages"), "{body}");
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/theirs",
        &json!({"annotations": [{"key": "confidential", "value": true}]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = owners_curl(
        &owners,
        "PUT",
        "/api/v1/namespaces/_/actions/theirs/echo",
        Some(&put),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not created through this gateway"), "{body}");

    // A PUT without a body is a package with nothing given.
    let bare = json_ok(
        "PUT bare",
        owners_curl(&owners, "PUT", "/api/v1/namespaces/_/packages/bare", None),
    );
    assert_eq!(bare["parameters"], json!([]), "{bare}");

    // An update keeps what it does not name, as OpenWhisk's does: the
    // parameters (the gateway's copy), then the annotations.
    package_with_curl(&owners, "doomed", &json!([{"key": "k", "value": 1}]));
    let path = "/api/v1/namespaces/_/packages/doomed?overwrite=true";
    let noted = json!({"annotations": [{"key": "note", "value": "kept"}]});
    let updated = json_ok(path, owners_curl(&owners, "PUT", path, Some(&noted)));
    assert_eq!(
        key_values(&updated["parameters"]),
        json!({"k": 1}),
        "{updated}"
    );
    let changed = json!({"parameters": [{"key": "k", "value": 2}]});
    let updated = json_ok(path, owners_curl(&owners, "PUT", path, Some(&changed)));
    assert_eq!(
        key_values(&updated["parameters"]),
        json!({"k": 2}),
        "{updated}"
    );
    let annotations = key_values(&updated["annotations"]);
    assert_eq!(
        (&annotations["note"], &annotations["confidential"]),
        (&json!("kept"), &json!(true)),
        "{updated}"
    );

    // Deleted through the gateway: the action, then its package.
    let (status, body) = owners_curl(
        &owners,
        "PUT",
        "/api/v1/namespaces/_/actions/doomed/echo",
        Some(&put),
    );
    assert_eq!(status, 200, "{body}");
    for path in [
        "/api/v1/namespaces/_/actions/doomed/echo",
        "/api/v1/namespaces/_/packages/doomed",
    ] {
        let (status, body) = owners_curl(&owners, "DELETE", path, None);
        assert_eq!(status, 200, "DELETE {path}: {body}");
        let (status, body) = owners_curl(&owners, "GET", path, None);
        assert_eq!(status, 404, "GET {path}: {body}");
    }

    // What the provider holds: the node's API, its data, its log, the
    // gateway's disk and log, and every byte between gateway and node.
    let mut sources = Vec::new();
    for path in [
        "/api/v1/namespaces/_/packages/vault",
        "/api/v1/namespaces/_/packages",
        "/api/v1/namespaces/_/actions/vault/echo?code=true",
        "/api/v1/namespaces/_/activations?docs=true",
    ] {
        let (status, bytes) = server.get(path);
        assert_eq!(status, 200, "GET {path}");
        sources.push(Source {
            label: format!("GET {path}"),
            bytes,
        });
    }
    sources.extend(provider_holdings(
        &mut server,
        &wire,
        &owners.gateway,
        &[
            "PUT /api/v1/namespaces/_/packages/vault",
            "PUT /api/v1/namespaces/_/actions/vault/echo",
            "POST /api/v1/namespaces/_/actions/vault/echo",
        ],
    ));
    let markers = [
        crate::leaks::Marker {
            name: "PACKAGE PARAMETER KEY",
            text: key,
        },
        crate::leaks::Marker {
            name: "PACKAGE PARAMETER VALUE",
            text: value,
        },
    ];
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "a package's parameters reached the provider through the gateway:\n{}",
        report(&findings)
    );
    // The scan finds them where they are: in what the owner was answered.
    let owners_view = [Source {
        label: "the gateway's answer to the owner's package PUT".into(),
        bytes: created.to_string().into_bytes(),
    }];
    assert_eq!(scan(&owners_view, &markers).len(), 2);
}

#[test]
fn a_confidential_web_action_in_a_package_is_served_by_the_gateway() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    let value = unique("gwpkweb-");
    package_with_curl(&owners, "p1", &json!([{"key": "secret", "value": value}]));
    deploy_with_curl(&owners, "p1/secret", &example("secret"), web_export());

    // Anyone, without credentials: the package's parameter is sealed in,
    // the query's wins over it.
    let answer = curl_json_ok(
        &gateway.url,
        pin,
        "GET",
        "/api/v1/web/guest/p1/secret.json",
        None,
        None,
    );
    assert_eq!(answer, json!({"shout": value.to_uppercase()}));
    let answer = curl_json_ok(
        &gateway.url,
        pin,
        "GET",
        "/api/v1/web/_/p1/secret.json?secret=mine",
        None,
        None,
    );
    assert_eq!(answer, json!({"shout": "MINE"}));
    // Under another package, or none: nothing.
    for path in [
        "/api/v1/web/guest/default/secret.json",
        "/api/v1/web/guest/p2/secret.json",
    ] {
        let (status, body) = curl(&gateway.url, pin, "GET", path, None, None);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains(NO_RESOURCE), "{body}");
    }
    // The node's own web path does not serve it.
    let (status, body) = curl(
        &server.api_host,
        pin,
        "GET",
        "/api/v1/web/guest/p1/secret.json",
        None,
        None,
    );
    assert_eq!(status, 501, "{body}");
    assert!(!body.contains(&value.to_uppercase()), "{body}");
}

#[test]
fn a_web_tag_moved_to_another_package_or_out_of_its_package_serves_nothing() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    for package in ["p1", "p2"] {
        package_with_curl(&owners, package, &json!([]));
    }
    // The owner exports p1/echo only; p2/echo and echo are private.
    deploy_with_curl(&owners, "p1/echo", &example("echo"), web_export());
    deploy_with_curl(&owners, "p2/echo", &example("echo"), json!([]));
    deploy_with_curl(&owners, "echo", &example("echo"), json!([]));
    let (status, body) = curl(
        &gateway.url,
        pin,
        "GET",
        "/api/v1/web/guest/p1/echo.json?probe=1",
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");

    // The provider, with the namespace key, puts p1/echo's web
    // annotations (its genuine tag included) on p2/echo and on echo, at
    // the same policy version, and calls their URLs: the tag names
    // p1/echo, so nothing is served, and nothing runs.
    let mut exported = Vec::new();
    provider_reannotates(&server, pin, "p1/echo", |annotations| {
        exported.clone_from(annotations);
    });
    assert!(
        exported.iter().any(|kv| kv["key"] == "clemmys-gateway-web"),
        "p1/echo has no web tag: {exported:?}"
    );
    for moved_to in ["p2/echo", "echo"] {
        provider_reannotates(&server, pin, moved_to, |annotations| {
            annotations.clone_from(&exported);
        });
    }
    let before = provider_activation_count(&server, pin);
    let served: Vec<(&str, u16, String)> = [
        "/api/v1/web/guest/p2/echo.json?probe=1",
        "/api/v1/web/guest/default/echo.json?probe=1",
    ]
    .into_iter()
    .map(|path| {
        let (status, body) = curl(&gateway.url, pin, "GET", path, None, None);
        (path, status, body)
    })
    .filter(|(_, status, body)| *status != 404 || body.contains("probe"))
    .collect();
    assert!(
        served.is_empty(),
        "served under a web tag moved from p1/echo: {served:#?}"
    );
    assert_eq!(
        provider_activation_count(&server, pin),
        before,
        "the gateway ran an action whose web tag was made for another:\n{}",
        gateway.log()
    );
}

/// `DELETE path` on the node with the namespace key: the provider.
fn provider_deletes(server: &Server, pin: &Path, path: &str) {
    let (status, body) = curl(
        &server.api_host,
        pin,
        "DELETE",
        path,
        Some(server.guest_auth.as_str()),
        None,
    );
    assert_eq!(status, 200, "the provider's DELETE {path}: {body}");
}

#[test]
fn a_package_the_provider_deleted_is_made_anew_without_its_old_parameters() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let pin = &owners.pin;
    let update = |name: &str| {
        let path = format!("/api/v1/namespaces/_/packages/{name}?overwrite=true");
        json_ok(&path, owners_curl(&owners, "PUT", &path, None))
    };
    // The provider deletes the owner's package on the node. The owner,
    // who no longer sees it, makes a package of that name anew (`wsk
    // package update`, as deploy tools do: an overwriting PUT naming no
    // parameters): a new package, without the old one's secret, as
    // OpenWhisk makes it.
    let old = unique("gwpkold-");
    package_with_curl(&owners, "gone", &json!([{"key": "db", "value": old}]));
    provider_deletes(&server, pin, "/api/v1/namespaces/_/packages/gone");
    let made = update("gone");
    assert_eq!(made["parameters"], json!([]), "{made}");
    // The same when the owner deleted it through the gateway (the node
    // answering 404: it is gone), and the provider made it again on the
    // node before the owner's update.
    package_with_curl(&owners, "gone2", &json!([{"key": "db", "value": old}]));
    provider_deletes(&server, pin, "/api/v1/namespaces/_/packages/gone2");
    let (status, body) = owners_curl(
        &owners,
        "DELETE",
        "/api/v1/namespaces/_/packages/gone2",
        None,
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/gone2",
        &json!({"annotations": [{"key": "confidential", "value": true}]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let made = update("gone2");
    assert_eq!(made["parameters"], json!([]), "{made}");
    // So an action the owner puts in the new package gets none of them.
    let put = json!({"exec": wasm_exec(&example("echo"))});
    for package in ["gone", "gone2"] {
        let (status, body) = owners_curl(
            &owners,
            "PUT",
            &format!("/api/v1/namespaces/_/actions/{package}/echo"),
            Some(&put),
        );
        assert_eq!(status, 200, "{body}");
        let (status, result) =
            invoke_result_with_curl(&owners, &format!("{package}/echo"), &json!({}));
        assert_eq!((status, result), (200, json!({})), "{package}");
    }
}

#[test]
fn a_web_action_of_a_package_deleted_through_the_gateway_is_not_served_again() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    let value = unique("gwpkdel-");
    package_with_curl(&owners, "p", &json!([{"key": "secret", "value": value}]));
    deploy_with_curl(&owners, "p/secret", &example("secret"), web_export());
    let url = "/api/v1/web/guest/p/secret.json";
    let answer = curl_json_ok(&gateway.url, pin, "GET", url, None, None);
    assert_eq!(answer, json!({"shout": value.to_uppercase()}));

    // The provider keeps the action's record (sealed code, tagged web
    // annotations); the owner deletes the action and its package through
    // the gateway.
    let kept = provider_copy(&server, pin, "p/secret");
    for path in [
        "/api/v1/namespaces/_/actions/p/secret",
        "/api/v1/namespaces/_/packages/p",
    ] {
        let (status, body) = owners_curl(&owners, "DELETE", path, None);
        assert_eq!(status, 200, "DELETE {path}: {body}");
    }
    // It puts both back on the node and calls the URL: the gateway no
    // longer keeps that package, so it serves none of its actions.
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/p",
        &json!({"annotations": [{"key": "confidential", "value": true}]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    provider_puts_back(&server, "p/secret", &kept);
    let before = provider_activation_count(&server, pin);
    let (status, body) = curl(&gateway.url, pin, "GET", url, None, None);
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains(&value.to_uppercase()), "{body}");
    assert_eq!(
        provider_activation_count(&server, pin),
        before,
        "the gateway ran an action of a package deleted through it:\n{}",
        gateway.log()
    );
}

#[test]
fn a_web_action_deleted_through_the_gateway_is_not_served_again() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let (gateway, pin) = (&owners.gateway, &owners.pin);
    let value = unique("gwdel-");
    package_with_curl(&owners, "p", &json!([{"key": "secret", "value": value}]));
    // Outside packages, and in a package the owner keeps.
    for name in ["gone", "p/gone"] {
        deploy_with_curl(&owners, name, &example("secret"), web_export());
    }
    let url = |name: &str| {
        let (package, action) = name.split_once('/').unwrap_or(("default", name));
        format!("/api/v1/web/guest/{package}/{action}.json?secret={value}")
    };
    for name in ["gone", "p/gone"] {
        let answer = curl_json_ok(&gateway.url, pin, "GET", &url(name), None, None);
        assert_eq!(answer, json!({"shout": value.to_uppercase()}), "{name}");
    }
    // The provider keeps the records (sealed code, tagged web
    // annotations); the owner deletes the actions through the gateway;
    // the provider puts them back on the node and calls their URLs: the
    // gateway serves none and runs nothing.
    let mut kept = Vec::new();
    for name in ["gone", "p/gone"] {
        kept.push(provider_copy(&server, pin, name));
        let path = format!("/api/v1/namespaces/_/actions/{name}");
        let (status, body) = owners_curl(&owners, "DELETE", &path, None);
        assert_eq!(status, 200, "DELETE {path}: {body}");
    }
    for (name, doc) in ["gone", "p/gone"].into_iter().zip(&kept) {
        provider_puts_back(&server, name, doc);
    }
    let before = provider_activation_count(&server, pin);
    for name in ["gone", "p/gone"] {
        let (status, body) = curl(&gateway.url, pin, "GET", &url(name), None, None);
        assert_eq!(status, 404, "{name}: {body}");
    }
    assert_eq!(
        provider_activation_count(&server, pin),
        before,
        "the gateway ran a web action deleted through it:\n{}",
        gateway.log()
    );
    // Deployed again by the owner, it is served again.
    let (status, body) = owners_curl(&owners, "DELETE", "/api/v1/namespaces/_/actions/gone", None);
    assert_eq!(status, 200, "{body}");
    deploy_with_curl(&owners, "gone", &example("secret"), web_export());
    let answer = curl_json_ok(&gateway.url, pin, "GET", &url("gone"), None, None);
    assert_eq!(answer, json!({"shout": value.to_uppercase()}));
}

#[test]
fn a_gateway_restarted_for_its_node_spelt_otherwise_or_another_namespace_keeps_its_word() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let value = unique("gwspelt-");
    deploy_with_curl(&owners, "gone", &example("secret"), web_export());
    let url = format!("/api/v1/web/guest/default/gone.json?secret={value}");
    let answer = curl_json_ok(&owners.gateway.url, &owners.pin, "GET", &url, None, None);
    assert_eq!(answer, json!({"shout": value.to_uppercase()}));
    // The provider keeps the record; the owner deletes the action through
    // the gateway; the provider puts it back on the node.
    let kept = provider_copy(&server, &owners.pin, "gone");
    let (status, body) = owners_curl(&owners, "DELETE", "/api/v1/namespaces/_/actions/gone", None);
    assert_eq!(status, 200, "{body}");
    provider_puts_back(&server, "gone", &kept);

    // It restarts the gateway for the same node spelt otherwise (the
    // gateway's client state was keyed by the --apihost string: found
    // none, it pinned the broker anew and knew of no deletion).
    let OwnersGateway {
        gateway,
        pin,
        owner_id,
        ..
    } = owners;
    let spelt_otherwise = server.api_host.replacen("http://", "HTTP://", 1);
    assert_ne!(spelt_otherwise, server.api_host);
    let mut gateway = gateway.restart(
        &spelt_otherwise,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    let before = provider_activation_count(&server, &pin);
    let (status, body) = curl(&gateway.url, &pin, "GET", &url, None, None);
    assert_eq!(status, 404, "{body}\n{}", gateway.log());
    assert!(!body.contains(&value.to_uppercase()), "{body}");
    assert_eq!(
        provider_activation_count(&server, &pin),
        before,
        "the gateway ran a web action deleted through it:\n{}",
        gateway.log()
    );
    assert!(
        !gateway.log().contains(clemmys_gateway::PINNED),
        "the gateway pinned the node's broker again:\n{}",
        gateway.log()
    );

    // Or restarts it for another namespace of the owner's, whose actions
    // of the same names would get the callers' parameters: refused.
    let mut flags = owner_flags(&owner_id, &server).to_vec();
    flags.extend(["--namespace", "elsewhere"]);
    let refused = gateway.restart_refused(&server.api_host, &server.data_dir, &flags);
    assert!(
        refused.contains("made for namespace guest, and it is started for elsewhere"),
        "{refused}"
    );
}

/// An owner of `server` who pinned its broker (with its identity), and
/// the provider's gateway of the right measurement acting for that owner
/// on a simulated platform of its own (a key it made, in the directory
/// returned, to keep while the gateway runs).
fn owner_and_impostor(
    server: &Server,
) -> (
    crate::common::User,
    String,
    tempfile::TempDir,
    GatewayProcess,
) {
    let owner = server.user();
    owner.trust_broker();
    let owner_id = owner.identity();
    let elsewhere = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    let impostor = GatewayProcess::start(
        &server.api_host,
        elsewhere.path(),
        &owner_flags(&owner_id, server),
    );
    (owner, owner_id, elsewhere, impostor)
}

#[test]
fn a_gateway_of_another_platform_or_owner_is_not_authorized() {
    let server = Server::start();
    let (owner, _, _elsewhere, impostor) = owner_and_impostor(&server);
    // `gateway verify` alone accepts the claimed `sim` platform on first
    // use (all `sim` offers a stranger, and it says so)...
    owner
        .clemmys(&["gateway", "verify", &impostor.url])
        .success()
        .stdout_has("accepted on first use");
    // ...but authorizing takes only the platform the owner pinned its
    // broker on.
    owner
        .clemmys(&["gateway", "authorize", &impostor.url])
        .failure()
        .stderr_has("refusing the gateway");
    // A gateway on the right platform acting for someone else.
    let other = server.user();
    other.trust_broker();
    let others = GatewayProcess::start(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&other.identity(), &server),
    );
    owner
        .clemmys(&["gateway", "authorize", &others.url])
        .failure()
        .stderr_has("not for you");
}

#[test]
fn a_gateway_pointed_at_another_nodes_broker_is_not_authorized() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let owner_id = owner.identity();
    // The provider's own node on the same (simulated) platform, with a
    // broker of its own, and the owner's genuine gateway pointed at it:
    // the gateway's evidence, owner and namespace are all right, and it
    // would seal for the provider's broker.
    let platform = server.data_dir.join("sim-platform.key");
    let providers = Server::start_with(&["--sim-platform-key", arg(&platform)]);
    let gateway = GatewayProcess::start(
        &providers.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &providers),
    );
    for command in ["authorize", "credential"] {
        owner
            .clemmys(&["gateway", command, &gateway.url])
            .failure()
            .stderr_has("it seals for the key broker with signing key");
    }
    // Pointed at the owner's node, the same kind of gateway is authorized.
    let genuine = GatewayProcess::start(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    owner
        .clemmys(&["gateway", "authorize", &genuine.url])
        .success();
}

/// A front of the node at `upstream` (plain HTTP) that, one request per
/// connection, forwards every request but the first `GET` of the broker's
/// identity, which it holds until `release` is set (setting `holding`)
/// and answers with `identity`: the provider's network holding back the
/// first pin of a gateway and answering it with another broker's.
fn holding_first_broker_identity(
    upstream: &str,
    identity: Vec<u8>,
) -> (String, Arc<AtomicBool>, Arc<AtomicBool>) {
    use std::io::{Read as _, Write as _};
    let (upstream, listener, addr) = crate::common::proxy_listener(upstream);
    let (holding, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let held_once = Arc::new(AtomicBool::new(false));
    let (holding_too, release_too) = (holding.clone(), release.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let (upstream, identity) = (upstream.clone(), identity.clone());
            let (holding, release, held_once) =
                (holding_too.clone(), release_too.clone(), held_once.clone());
            std::thread::spawn(move || {
                // The request head (no bodies are held: bodies follow it).
                let mut request = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                let head_end = loop {
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                    match client.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let first_line = head.lines().next().unwrap_or_default().to_owned();
                if first_line.contains("/broker/identity")
                    && !held_once.swap(true, Ordering::SeqCst)
                {
                    holding.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        identity.len()
                    );
                    let _ = client.write_all(answer.as_bytes());
                    let _ = client.write_all(&identity);
                    return;
                }
                // Forwarded with the connection closed after its answer.
                let length = head
                    .lines()
                    .find_map(|line| {
                        let lower = line.to_ascii_lowercase();
                        lower
                            .strip_prefix("content-length:")
                            .and_then(|value| value.trim().parse::<usize>().ok())
                    })
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    match client.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                }
                let kept: Vec<&str> = head
                    .trim_end()
                    .lines()
                    .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
                    .collect();
                let mut forwarded =
                    format!("{}\r\nconnection: close\r\n\r\n", kept.join("\r\n")).into_bytes();
                forwarded.extend_from_slice(&request[head_end..head_end + length]);
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                if server.write_all(&forwarded).is_err() {
                    return;
                }
                let _ = std::io::copy(&mut server, &mut client);
            });
        }
    });
    (format!("http://{addr}"), holding, release)
}

#[test]
fn a_held_back_broker_identity_does_not_replace_the_pin_the_owner_checked() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let owner_id = owner.identity();
    // The provider's broker, on a node of its own on the same platform.
    let platform = server.data_dir.join("sim-platform.key");
    let providers = Server::start_with(&["--sim-platform-key", arg(&platform)]);
    let (status, identity) = providers.get("/api/v1/broker/identity");
    assert_eq!(status, 200);
    let (front, holding, release) = holding_first_broker_identity(&server.api_host, identity);
    let gateway = GatewayProcess::start(&front, &server.data_dir, &owner_flags(&owner_id, &server));
    // Anyone's request makes the gateway pin its broker: the provider's
    // first one is held at the broker's identity.
    let about = format!("{}/clemmys/v1/gateway", gateway.url);
    let provider_asks = std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sk", "--max-time", "60", &about])
            .output()
    });
    let deadline = Instant::now() + START_TIMEOUT;
    while !holding.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the gateway never asked for the broker"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The owner checks the gateway meanwhile; then the held answer, of the
    // provider's broker, arrives.
    let releasing = {
        let release = release.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            release.store(true, Ordering::SeqCst);
        })
    };
    let authorized = owner.clemmys(&["gateway", "authorize", &gateway.url]);
    let _ = releasing.join();
    let _ = provider_asks.join();
    // What the owner was told must still hold: a gateway it authorized
    // seals for its broker, and so still gets it a credential.
    if authorized.status.success() {
        owner
            .clemmys(&["gateway", "credential", &gateway.url])
            .success();
    } else {
        authorized.stderr_has("it seals for the key broker with signing key");
    }
}

#[test]
fn no_credential_is_asked_of_or_revoked_at_a_gateway_on_another_platform() {
    let server = Server::start();
    // Had the owner's signed request reached the impostor, it could have
    // relayed it to the owner's real gateway.
    let (owner, owner_id, _elsewhere, impostor) = owner_and_impostor(&server);
    owner
        .clemmys(&["gateway", "credential", &impostor.url, "--json"])
        .failure()
        .stderr_has("refusing the gateway")
        .stderr_has("untrusted platform");
    // Nor does it get to say "revoked" for a credential that stays valid.
    let genuine = GatewayProcess::start(
        &server.api_host,
        &server.data_dir,
        &owner_flags(&owner_id, &server),
    );
    let (_, uuid) = credential_of(&owner, &genuine.url);
    // Given without a scheme, the gateway is https (as `wsk` takes an API
    // host), and so is every line printed for curl, whose default is
    // plain HTTP.
    let schemeless = genuine.url.trim_start_matches("https://");
    let printed = owner
        .clemmys(&["gateway", "credential", schemeless])
        .success();
    assert!(
        printed
            .stdout
            .lines()
            .filter(|line| line.contains(schemeless))
            .all(|line| line.contains(&genuine.url)),
        "{printed}"
    );
    owner
        .clemmys(&["gateway", "revoke-credential", &impostor.url, &uuid])
        .failure()
        .stderr_has("refusing the gateway");
    // Without a pinned broker there is no platform to verify on.
    let stranger = server.user();
    stranger
        .clemmys(&["gateway", "credential", &genuine.url])
        .failure()
        .stderr_has("no key broker is pinned");
}

#[test]
fn the_gateway_shows_the_limits_an_action_runs_under() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    // The provider rewrites the limits in the node's record.
    let (status, body) = server.get("/api/v1/namespaces/_/actions/hello?code=true");
    assert_eq!(status, 200);
    let mut record: Value = serde_json::from_slice(&body).unwrap_or_else(|error| panic!("{error}"));
    record["limits"] = json!({"timeout": 100, "memory": 128, "logs": 10, "concurrency": 1});
    let (status, body) = server.put("/api/v1/namespaces/_/actions/hello?overwrite=true", &record);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = owners_curl(&owners, "GET", "/api/v1/namespaces/_/actions/hello", None);
    assert_eq!(status, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}"));
    // OpenWhisk's defaults, bound in the policy when it was deployed.
    assert_eq!(shown["limits"]["memory"], 256, "{shown}");
    assert_eq!(shown["limits"]["timeout"], 60000, "{shown}");
    assert_eq!(shown["parameters"], json!([]), "{shown}");
}

#[test]
fn a_record_the_provider_relabelled_is_shown_as_the_action_the_gateway_invoked() {
    let mut server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let value = unique("gwlabel-");
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
    deploy_with_curl(&owners, "secret", &example("secret"), json!([]));
    let (status, body) = owners_curl(
        &owners,
        "POST",
        "/api/v1/namespaces/_/actions/secret?blocking=true",
        Some(&json!({"secret": value})),
    );
    assert_eq!(status, 200, "{body}");
    let invoked: Value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}"));
    let id = invoked["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id: {invoked}"))
        .to_owned();
    assert_eq!(invoked["name"], "secret", "{invoked}");

    // The provider labels the record of `secret` as one of `hello` (its
    // activation list shows any name it writes).
    server.stop();
    crate::confidential::forge_record(&server.data_dir, &id, |record| {
        crate::confidential::relabel(record, "hello");
        // And claims about the run: a sequence's step that timed out.
        record.cause = Some(id.parse().unwrap_or_else(|error| panic!("{error:?}")));
        record.annotations.set("causedBy", json!("sequence"));
        record.annotations.set("timeout", json!(true));
        record.annotations.set("limits", json!({"timeout": 1}));
        // And a claim of its own making: that it ran on hardware.
        record
            .annotations
            .set("tee", json!("sgx: hardware-protected"));
        // Or in the value of one shown.
        record
            .annotations
            .set("kind", json!("wasm (sgx: hardware-protected)"));
    });
    server.spawn_again_on_the_same_port();

    let path = format!("/api/v1/namespaces/_/activations/{id}");
    let (status, body) = owners_curl(&owners, "GET", &path, None);
    assert_eq!(status, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        shown["response"]["result"],
        json!({"shout": value.to_uppercase()})
    );
    assert_eq!(
        shown["name"], "secret",
        "a verified answer shown under the name the provider wrote: {shown}"
    );
    let path_annotation = shown["annotations"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["key"] == "path"))
        .map(|a| a["value"].clone());
    assert_eq!(path_annotation, Some(json!("guest/secret")), "{shown}");
    assert!(shown.get("cause").is_none_or(Value::is_null), "{shown}");
    let annotations = shown["annotations"].to_string();
    for claim in ["causedBy", "timeout", "limits", "hardware-protected"] {
        assert!(!annotations.contains(claim), "{claim} shown: {shown}");
    }
}

/// Sends `head` (a request's line and headers, announcing a body far
/// larger than it sends) and a few bytes of body to the gateway at `url`
/// over TLS trusting `pin`, keeps the connection open without sending
/// more, and returns the status line it answers with within `within`
/// (`None`: it answered nothing, waiting for the body).
fn answer_to_a_stalled_body(url: &str, pin: &Path, head: &str, within: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not https: {url}"))
        .to_owned();
    let certificate = clemmys_tls::read_certificates(pin)
        .unwrap_or_else(|error| panic!("{error}"))
        .remove(0);
    let config =
        clemmys_tls::pinned_client_config(certificate).unwrap_or_else(|error| panic!("{error}"));
    let connector = clemmys_tls::TlsConnector::from(std::sync::Arc::new(config));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("runtime: {error}"));
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .unwrap_or_else(|error| panic!("{address}: {error}"));
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1")
            .unwrap_or_else(|error| panic!("{error}"));
        let mut tls = connector
            .connect(name, tcp)
            .await
            .unwrap_or_else(|error| panic!("TLS to {address}: {error}"));
        tls.write_all(format!("{head}\r\n{{\"a\":").as_bytes())
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        tls.flush().await.unwrap_or_else(|error| panic!("{error}"));
        let mut answer = vec![0u8; 4096];
        match tokio::time::timeout(within, tls.read(&mut answer)).await {
            Ok(Ok(read)) if read > 0 => {
                let text = String::from_utf8_lossy(&answer[..read]).into_owned();
                text.lines().next().map(str::to_owned)
            }
            _ => None,
        }
    })
}

#[test]
fn a_caller_without_a_credential_is_refused_before_its_body_is_read() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    // The provider (or anyone on the internet) announces 100 MiB, sends a
    // few bytes and waits: the gateway must answer without waiting for
    // (and buffering) the rest.
    const LENGTH: &str = "Content-Length: 104857600";
    let forged = base64_basic("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:forged");
    for (head, status) in [
        (
            format!(
                "PUT /api/v1/namespaces/_/actions/big HTTP/1.1\r\nHost: gateway\r\n{LENGTH}\r\n"
            ),
            "401",
        ),
        (
            format!(
                "POST /api/v1/namespaces/_/actions/big?blocking=true HTTP/1.1\r\nHost: gateway\r\nAuthorization: Basic {forged}\r\n{LENGTH}\r\n"
            ),
            "401",
        ),
        (
            format!(
                "POST /api/v1/web/guest/default/big.json HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\n{LENGTH}\r\n"
            ),
            "413",
        ),
    ] {
        let answer = answer_to_a_stalled_body(
            &owners.gateway.url,
            &owners.pin,
            &head,
            Duration::from_secs(5),
        );
        let line = answer.unwrap_or_else(|| {
            panic!(
                "no answer while the body was pending, to:\n{head}\n{}",
                owners.gateway.log()
            )
        });
        assert!(line.contains(status), "{line}, to:\n{head}");
    }
    // The owner's credential still gets its large bodies read.
    deploy_with_curl(&owners, "hello", &example("hello"), json!([]));
}

/// HTTP Basic credentials `user:password`, encoded.
fn base64_basic(credentials: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(credentials)
}

#[test]
fn a_public_web_call_cannot_tell_which_final_parameters_are_sealed() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let fixed = unique("gwwebfinal-");
    let mut annotations = web_export();
    if let Some(all) = annotations.as_array_mut() {
        all.push(json!({"key": "final", "value": true}));
    }
    let put = json!({
        "exec": wasm_exec(&example("echo")),
        "parameters": [{"key": "mode", "value": fixed}],
        "annotations": annotations,
    });
    let (status, answer) = put_with_curl(&owners, "fixedweb", &put);
    assert_eq!(status, 200, "{answer}");
    // Anyone (the provider first) calls the URL with a guessed name and
    // without: the answers must not differ by whether the name is sealed.
    // OpenWhisk refuses the first; here that refusal named a sealed key.
    for query in ["other=1", "other=1&mode=guess", "other=1&absent=guess"] {
        let url = format!("/api/v1/web/guest/default/fixedweb.json?{query}");
        let (status, body) = curl(&owners.gateway.url, &owners.pin, "GET", &url, None, None);
        assert_eq!(status, 200, "{query}: {body}");
        let answered: Value =
            serde_json::from_str(&body).unwrap_or_else(|error| panic!("{query}: {error}: {body}"));
        assert_eq!(answered["mode"], json!(fixed), "{query}: {answered}");
        assert_eq!(answered["other"], "1", "{query}: {answered}");
    }
}

#[test]
fn final_added_by_an_update_that_keeps_the_parameters_is_sealed() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    let fixed = unique("gwlatefinal-");
    // Bound parameters first, not final; then exported as `wsk action
    // update NAME --web true` does it: web-export and final, no
    // parameters (OpenWhisk keeps them).
    let put = json!({
        "exec": wasm_exec(&example("echo")),
        "parameters": [{"key": "mode", "value": fixed}],
    });
    let (status, answer) = put_with_curl(&owners, "laterfinal", &put);
    assert_eq!(status, 200, "{answer}");
    let mut annotations = web_export();
    if let Some(all) = annotations.as_array_mut() {
        all.push(json!({"key": "final", "value": true}));
    }
    let put = json!({"exec": wasm_exec(&example("echo")), "annotations": annotations});
    let (status, answer) = put_with_curl(&owners, "laterfinal", &put);
    assert_eq!(status, 200, "{answer}");
    // Anyone calling the URL cannot override the bound value.
    let url = "/api/v1/web/guest/default/laterfinal.json?mode=guess";
    let (status, body) = curl(&owners.gateway.url, &owners.pin, "GET", url, None, None);
    assert_eq!(status, 200, "{body}");
    let answered: Value =
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"));
    assert_eq!(answered["mode"], json!(fixed), "{answered}");
}

/// A TLS server standing in for the gateway at `127.0.0.1`, with a
/// certificate from an authority of its own (`authority`, PEM): what the
/// provider answers with once some authority the client's system trusts
/// signed a certificate for the gateway's name. Counts the requests that
/// reached it (a client that sent one sent its credential).
struct StandIn {
    url: String,
    authority: PathBuf,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl StandIn {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let local = clemmys_tls::ensure_local_certificate(dir.path(), &["127.0.0.1".to_owned()])
            .unwrap_or_else(|error| panic!("{error}"));
        let tls = clemmys_tls::ServerTls::from_pem_files(&local.cert_path, &local.key_path, None)
            .unwrap_or_else(|error| panic!("{error}"));
        let acceptor = tls.acceptor();
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|error| panic!("{error}"));
        let url = format!(
            "https://{}",
            listener
                .local_addr()
                .unwrap_or_else(|error| panic!("{error}"))
        );
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|error| panic!("{error}"));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|error| panic!("{error}"));
            runtime.block_on(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap_or_else(|error| panic!("{error}"));
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, counted) = (acceptor.clone(), counted.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut request = [0u8; 4096];
                        if matches!(tls.read(&mut request).await, Ok(read) if read > 0) {
                            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                                .await;
                        }
                    });
                }
            });
        });
        Self {
            url,
            authority: local.ca_path,
            requests,
            _dir: dir,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn the_pinned_client_lines_trust_only_the_gateway_not_the_systems_authorities() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    owners.authorize();
    // The pin where the lines name it (relative: they run in its
    // directory).
    let root = owners.gateway.root.path();
    let pin = root.join("gateway.pem");
    let issued = owners
        .owner
        .clemmys(&[
            "gateway",
            "credential",
            &owners.gateway.url,
            "--out",
            arg(&pin),
        ])
        .success();
    let auth = issued
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("AUTH="))
        .unwrap_or_else(|| panic!("no AUTH= in:\n{issued}"))
        .to_owned();
    // The lines that carry the credential.
    let line = |start: &str| -> Vec<String> {
        issued
            .stdout
            .lines()
            .map(str::trim)
            .find(|line| line.contains(start) && line.contains(&auth))
            .unwrap_or_else(|| panic!("no `{start}` line with the credential in:\n{issued}"))
            .split_whitespace()
            .map(|word| word.replace(&owners.gateway.url, "GATEWAY"))
            .collect()
    };
    let (curl_line, node_line) = (line("curl "), line("__OW_API_HOST="));

    // The lines work against the gateway.
    let at = |words: &[String], url: &str| -> Vec<String> {
        words
            .iter()
            .map(|word| word.replace("GATEWAY", url))
            .collect()
    };
    let run_curl = |url: &str, system_store: Option<&Path>| {
        let words = at(&curl_line, url);
        let mut command = Command::new("curl");
        command
            .current_dir(root)
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(store) = system_store {
            command.args(["--capath", arg(store)]);
        }
        command.args(&words[1..]);
        let out = command
            .output()
            .unwrap_or_else(|error| panic!("curl: {error}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let run_node = |url: &str, system_store: Option<&Path>| {
        let words = at(&node_line, url);
        let mut command = Command::new("node");
        command
            .current_dir(root)
            .env("NODE_PATH", npm_client_dir().join("node_modules"))
            .args(["-e", LIST_NAMESPACES])
            .env_remove("NODE_EXTRA_CA_CERTS")
            .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
            .env_remove("__OW_NAMESPACE");
        if let Some(store) = system_store {
            // A node that uses the system's store, holding the authority,
            // for a user whose environment also trusts it as an extra
            // authority and has turned the checks off.
            command
                .env("NODE_OPTIONS", "--use-openssl-ca")
                .env("SSL_CERT_DIR", store)
                .env("NODE_EXTRA_CA_CERTS", store.join("authority.pem"))
                .env("NODE_USE_SYSTEM_CA", "1")
                .env("NODE_TLS_REJECT_UNAUTHORIZED", "0")
                .env("__OW_IGNORE_CERTS", "true");
        }
        // `env -u NAME … NAME=VALUE … node …`, as a shell runs it.
        let mut words = words.iter().take_while(|word| word.as_str() != "node");
        while let Some(word) = words.next() {
            match word.as_str() {
                "env" => {}
                "-u" => {
                    let name = words
                        .next()
                        .unwrap_or_else(|| panic!("no name after -u: {node_line:?}"));
                    command.env_remove(name);
                }
                assignment => {
                    let (name, value) = assignment
                        .split_once('=')
                        .unwrap_or_else(|| panic!("not NAME=VALUE: {assignment}"));
                    command.env(name, value);
                }
            }
        }
        command
            .output()
            .unwrap_or_else(|error| panic!("node: {error}"))
            .status
    };
    assert_eq!(run_curl(&owners.gateway.url, None), "200", "{curl_line:?}");
    assert!(
        run_node(&owners.gateway.url, None).success(),
        "{node_line:?}"
    );

    // A stand-in whose certificate an authority of the system's store
    // signed gets nothing from either.
    let stand_in = StandIn::start();
    let store = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    std::fs::copy(&stand_in.authority, store.path().join("authority.pem"))
        .unwrap_or_else(|error| panic!("{error}"));
    let rehashed = Command::new("openssl")
        .args(["rehash", arg(store.path())])
        .status()
        .unwrap_or_else(|error| panic!("openssl: {error}"));
    assert!(rehashed.success());
    let code = run_curl(&stand_in.url, Some(store.path()));
    assert!(!run_node(&stand_in.url, Some(store.path())).success());
    assert_eq!(
        stand_in.requests(),
        0,
        "a client following the printed lines sent its credential to a stand-in (curl answered {code})"
    );
}

#[test]
fn a_credential_is_revoked_only_at_the_gateway_that_issued_it() {
    let server = Server::start();
    let owners = OwnersGateway::start(&server, &server.api_host);
    // The provider runs a second genuine gateway for the same owner and
    // routes the owner's revocation to it: it would "revoke" any UUID,
    // while the credential stays valid at the gateway that issued it.
    let other = GatewayProcess::start(&server.api_host, &server.data_dir, &owners.flags(&server));
    owners
        .owner
        .clemmys(&["gateway", "revoke-credential", &other.url, &owners.uuid])
        .failure()
        .stderr_has("was issued by gateway");
    let list = "/api/v1/namespaces/_/actions";
    let (status, body) = curl(
        &owners.gateway.url,
        &owners.pin,
        "GET",
        list,
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // At the gateway that issued it, the revocation holds.
    owners
        .owner
        .clemmys(&[
            "gateway",
            "revoke-credential",
            &owners.gateway.url,
            &owners.uuid,
        ])
        .success()
        .stdout_has("revoked credential");
    let (status, body) = curl(
        &owners.gateway.url,
        &owners.pin,
        "GET",
        list,
        Some(&owners.credential),
        None,
    );
    assert_eq!(status, 401, "{body}");
}
