//! The attested gateway (`clemmys gateway serve|verify`, `clemmys serve
//! --gateway`): Apache OpenWhisk's npm client drives it over TLS trusting
//! only the certificate `gateway verify` pinned, and the provider (the
//! node's data directory, its debug log, its API, every byte between the
//! gateway and the node) sees none of the secret example's markers.
//! Attacks: a client without the pin is refused; `gateway verify` refuses
//! evidence of another measurement, of an untrusted platform, and a TLS
//! server without evidence.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{START_TIMEOUT, Server, arg, bin, example, unique};
use crate::leaks::{
    CODE_MARKER, Source, Wire, add_files, contains, markers, provider_api_view, report, scan,
    strip_ansi,
};
use crate::npm::npm_client_dir;

/// What `clemmys gateway serve` announces before its URL.
const ANNOUNCEMENT: &str = "attested gateway serving on ";

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

    /// Stops this gateway and starts it again on the same state directory.
    fn restart(mut self, node: &str, node_data_dir: &Path) -> Self {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let root = std::mem::replace(
            &mut self.root,
            tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}")),
        );
        Self::spawn(root, node, node_data_dir, &[])
    }

    fn spawn(root: tempfile::TempDir, node: &str, node_data_dir: &Path, flags: &[&str]) -> Self {
        let state = root.path().join("state");
        let (home, tmp) = (root.path().join("home"), root.path().join("tmp"));
        for dir in [&home, &tmp] {
            std::fs::create_dir_all(dir).unwrap_or_else(|error| panic!("{error}"));
        }
        let log = std::fs::File::create(root.path().join("gateway.log"))
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
        let child = command
            .args(&args)
            .env("RUST_LOG", "debug")
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .unwrap_or_else(|error| panic!("spawning the gateway: {error}"));
        let mut gateway = Self {
            child: Some(child),
            root,
            url: String::new(),
        };
        gateway.url = gateway.wait_until_serving();
        gateway
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

/// `node ARGS` in `clients/npm` as an OpenWhisk user of `gateway` with
/// `auth`, trusting `pin` (if any) besides the system's authorities.
fn node(gateway: &str, auth: &str, pin: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("node");
    command
        .current_dir(npm_client_dir())
        .args(args)
        .env("__OW_API_HOST", gateway)
        .env("__OW_API_KEY", auth)
        .env_remove("__OW_NAMESPACE")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED");
    if let Some(pin) = pin {
        command.env("NODE_EXTRA_CA_CERTS", pin);
    }
    command
        .output()
        .unwrap_or_else(|error| panic!("running node (scripts/setup.sh installs it): {error}"))
}

/// A one-line npm client call that exits 3 with the error's message.
const LIST_NAMESPACES: &str = "require('openwhisk')().actions.list().then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); })";

#[test]
fn the_npm_client_drives_the_gateway_with_only_its_pin_and_the_provider_sees_nothing() {
    let mut server = Server::start();
    // Every byte between the gateway and the node goes through a recorder.
    let wire = Wire::start(&server.api_host);
    let gateway = GatewayProcess::start(&wire.api_host(), &server.data_dir, &[]);
    assert!(
        gateway.log().contains("SIMULATED TEE"),
        "the gateway's start-up does not say that sim gives no protection:\n{}",
        gateway.log()
    );
    let user = server.user();
    let pin = gateway.root.path().join("gateway.pem");
    let verified = user
        .clemmys(&["gateway", "verify", &gateway.url, "--out", arg(&pin)])
        .success();
    verified
        .stdout_has("(as expected)")
        .stdout_has("SIMULATED TEE")
        .stdout_has("NO hardware protection");

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
        &server.guest_auth,
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
        &server.guest_auth,
        None,
        &["-e", LIST_NAMESPACES],
    );
    let refused = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "{refused}");
    assert!(refused.contains("certificate"), "{refused}");

    // What the provider holds.
    let mut sources = Vec::new();
    provider_api_view(&server, &id, false, &mut sources);
    server.stop();
    let recorded = wire.sources();
    assert!(
        recorded
            .iter()
            .any(|source| source.label.ends_with("requests")
                && contains(&source.bytes, b"POST /api/v1/namespaces/_/actions/secret")),
        "the recorder saw no invoke from the gateway"
    );
    assert!(
        recorded
            .iter()
            .any(|source| source.label.ends_with("requests")
                && contains(&source.bytes, b"PUT /api/v1/namespaces/_/actions/secret")),
        "the recorder saw no deploy from the gateway"
    );
    sources.extend(recorded);
    add_files(&server.data_dir, &mut sources);
    for dir in server.process_dirs() {
        add_files(&dir, &mut sources);
    }
    // The gateway's own disk is the provider's too.
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
    let findings = scan(&sources, &markers);
    assert!(
        findings.is_empty(),
        "confidential plaintext reached the provider through the gateway:\n{}",
        report(&findings)
    );
}

#[test]
fn gateway_verify_refuses_another_measurement_platform_or_no_evidence() {
    // The all-in-one node: TLS on the node, the gateway beside it.
    let server = Server::start_with(&["--tls", "--gateway", "127.0.0.1:0"]);
    // The gateway starts after the node's API: wait for its announcement.
    let deadline = Instant::now() + START_TIMEOUT;
    let url = loop {
        if let Some(url) = announced_gateway(&server.log()) {
            break url;
        }
        assert!(
            Instant::now() < deadline,
            "no gateway announced within {START_TIMEOUT:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let user = server.user();

    let genuine = user
        .clemmys(&["gateway", "verify", &url, "--json"])
        .success();
    let shown = genuine.json();
    assert_eq!(shown["tee"], "sim");
    assert_eq!(shown["hardware"], false);
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
    user.clemmys(&["gateway", "verify", &url, "--out", arg(&pin)])
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
}

/// One `gateway-step.js` step as the npm client of `gateway`.
fn step(gateway: &GatewayProcess, auth: &str, pin: &Path, args: &[&str]) -> Value {
    let mut all = vec!["gateway-step.js"];
    all.extend_from_slice(args);
    let out = node(&gateway.url, auth, Some(pin), &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "not one JSON line ({error}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The owner's client identity, as `clemmys broker show` prints it.
fn identity_of(user: &crate::common::User) -> String {
    let shown = user.clemmys(&["broker", "show"]).success();
    shown
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("your client identity: "))
        .unwrap_or_else(|| panic!("no identity in {shown}"))
        .trim()
        .to_owned()
}

#[test]
fn an_unauthorized_gateway_cannot_act_for_the_owner_and_a_revoked_one_stops() {
    let server = Server::start();
    let owner = server.user();
    owner.trust_broker();
    let owner_id = identity_of(&owner);
    let gateway =
        GatewayProcess::start(&server.api_host, &server.data_dir, &["--owner", &owner_id]);
    let pin = gateway.root.path().join("gateway.pem");
    let verified = owner
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
    let gateway_id = verified["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no identity in {verified}"))
        .to_owned();
    let hello = example("hello");
    let auth = server.guest_auth.clone();

    // Not authorized: the broker refuses to register for the owner.
    let refused = step(&gateway, &auth, &pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["statusCode"], 403, "{refused}");

    // Authorized after the owner verified it: it deploys and invokes as
    // the owner.
    owner
        .clemmys(&["gateway", "authorize", &gateway.url])
        .success()
        .stdout_has("authorized gateway")
        .stdout_has("SIMULATED TEE");
    let deployed = step(&gateway, &auth, &pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let invoked = step(
        &gateway,
        &auth,
        &pin,
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
    // authorized by the first one's delegation.
    let impostor =
        GatewayProcess::start(&server.api_host, &server.data_dir, &["--owner", &owner_id]);
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
    let denied = step(
        &impostor,
        &auth,
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
    let after = step(
        &gateway,
        &auth,
        &pin,
        &["invoke", "hello", r#"{"name":"late"}"#],
    );
    assert_eq!(after["ok"], false, "{after}");
    let redeploy = step(&gateway, &auth, &pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(redeploy["ok"], false, "{redeploy}");
    assert_eq!(redeploy["statusCode"], 403, "{redeploy}");
    // The owner is not locked out of their own action.
    owner
        .clemmys(&["action", "invoke", "hello", "-p", "name", "still", "-r"])
        .success()
        .stdout_has("Hello, still!");
}

#[test]
fn a_restarted_gateway_keeps_its_identity_certificate_and_answers() {
    let server = Server::start();
    let gateway = GatewayProcess::start(&server.api_host, &server.data_dir, &[]);
    let user = server.user();
    let pin = user.home().join("gateway.pem");
    let before = user
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
    let pinned = std::fs::read(&pin).unwrap_or_else(|error| panic!("pin: {error}"));
    let auth = server.guest_auth.clone();
    let hello = example("hello");
    let deployed = step(&gateway, &auth, &pin, &["deploy", "hello", arg(&hello)]);
    assert_eq!(deployed["ok"], true, "{deployed}");
    let later = step(
        &gateway,
        &auth,
        &pin,
        &["invoke-later", "hello", r#"{"name":"before"}"#],
    );
    let id = later["out"]["activationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no activation id: {later}"))
        .to_owned();
    // Recorded before the restart (the node answers it sealed).
    let deadline = Instant::now() + Duration::from_secs(30);
    while step(&gateway, &auth, &pin, &["result", &id])["ok"] != true {
        assert!(Instant::now() < deadline, "activation {id} never finished");
        std::thread::sleep(Duration::from_millis(100));
    }

    let gateway = gateway.restart(&server.api_host, &server.data_dir);
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
    // It still opens the answer of an invocation made before the restart,
    // and invokes the action it deployed then.
    let result = step(&gateway, &auth, &pin, &["result", &id]);
    assert_eq!(
        result["out"]["result"],
        json!({"payload": "Hello, before!"}),
        "{result}"
    );
    let invoked = step(
        &gateway,
        &auth,
        &pin,
        &["invoke", "hello", r#"{"name":"after"}"#],
    );
    assert_eq!(
        invoked["out"],
        json!({"payload": "Hello, after!"}),
        "{invoked}"
    );
}
