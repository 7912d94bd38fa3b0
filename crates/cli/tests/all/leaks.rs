//! The confidential leak scan (the security issue's acceptance test).
//!
//! The `secret` example is deployed and invoked through the CLI with a
//! parameter no one could guess. Four markers follow from it:
//!
//! * CODE: `clemmys-code-marker-4e1f0c2b`, a constant in the module's data
//!   section that the action never prints;
//! * PARAM: the parameter itself;
//! * RESULT: the parameter uppercased (the action returns `{"shout": …}`);
//! * LOG: the parameter reversed (the action logs `log: …`).
//!
//! The owner's client must see RESULT and LOG, so the scan is meaningful.
//! The provider must see none of the four, in any of raw, hex or base64
//! form: not in any file the server wrote (data directory with its redb
//! files and broker state, and the process's own home and temp dirs), not
//! in its `RUST_LOG=debug` output, not in any API answer, fetched over raw
//! HTTP or through the CLI of a user without the owner's keys, and not on
//! the wire: every CLI command goes through a recording TCP proxy, so
//! every request and response the provider's network saw is scanned too.
//!
//! The same scan over the same action deployed `--plain` must find all
//! four: the positive control that proves the scan can fail.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::{Server, User, activation_id, arg, example, js_engine, unique};

/// The constant compiled into `secret.wasm` and never printed.
pub(crate) const CODE_MARKER: &str = "clemmys-code-marker-4e1f0c2b";

/// A string that must not leak, by name.
pub(crate) struct Marker {
    pub(crate) name: &'static str,
    pub(crate) text: String,
}

/// CODE, PARAM, RESULT and LOG for parameter `param`.
pub(crate) fn markers(param: &str) -> Vec<Marker> {
    vec![
        Marker {
            name: "CODE",
            text: CODE_MARKER.to_owned(),
        },
        Marker {
            name: "PARAM",
            text: param.to_owned(),
        },
        Marker {
            name: "RESULT",
            text: param.to_uppercase(),
        },
        Marker {
            name: "LOG",
            text: param.chars().rev().collect(),
        },
    ]
}

/// The forms in which `text` could appear in a byte stream: raw, hex, and
/// base64 (standard and URL-safe) at each of the three alignments. A base64
/// form is the part of the encoding that does not depend on the bytes
/// around the marker.
fn encodings(text: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = text.as_bytes();
    let mut forms = vec![
        ("raw".to_owned(), bytes.to_vec()),
        (
            "hex".to_owned(),
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    for offset in 0..3 {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(bytes);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&shifted);
        let start = if offset == 0 { 0 } else { 4 };
        let stable = encoded
            .get(start..encoded.len().saturating_sub(4))
            .unwrap_or_default()
            .to_owned();
        assert!(stable.len() >= 12, "marker {text:?} is too short to scan");
        let url_safe = stable.replace('+', "-").replace('/', "_");
        forms.push((format!("base64@{offset}"), stable.clone().into_bytes()));
        if url_safe != stable {
            forms.push((format!("base64url@{offset}"), url_safe.into_bytes()));
        }
    }
    forms
}

/// Bytes the provider can see, and where they came from.
pub(crate) struct Source {
    pub(crate) label: String,
    pub(crate) bytes: Vec<u8>,
}

/// A marker found in a source.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) marker: &'static str,
    form: String,
    pub(crate) source: String,
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Every (marker, form, source) where a marker occurs.
pub(crate) fn scan(sources: &[Source], markers: &[Marker]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for marker in markers {
        for (form, needle) in encodings(&marker.text) {
            for source in sources {
                if contains(&source.bytes, &needle) {
                    findings.push(Finding {
                        marker: marker.name,
                        form: form.clone(),
                        source: source.label.clone(),
                    });
                }
            }
        }
    }
    findings
}

/// Every file under `dir`, recursively (symlinks are not followed).
pub(crate) fn add_files(dir: &Path, sources: &mut Vec<Source>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|error| panic!("in {}: {error}", dir.display()));
        let path = entry.path();
        let kind = entry
            .file_type()
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        if kind.is_dir() {
            add_files(&path, sources);
        } else if kind.is_file() {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            sources.push(Source {
                label: format!("file {}", path.display()),
                bytes,
            });
        }
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`), so that colour
/// codes cannot split a marker in the server's log.
pub(crate) fn strip_ansi(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        if byte == 0x1b && bytes.peek() == Some(&b'[') {
            for next in bytes.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(byte);
        }
    }
    out
}

/// The bytes of one direction of one connection.
type Recording = Arc<Mutex<Vec<u8>>>;
/// Every recording so far, labelled.
type Recordings = Arc<Mutex<Vec<(String, Recording)>>>;

/// A TCP proxy in front of the server that records every byte of every
/// connection, each direction in a buffer of its own (so a marker is never
/// split by interleaving). Bytes are recorded before they are forwarded:
/// once a command has its answer, the recording holds it.
pub(crate) struct Wire {
    addr: std::net::SocketAddr,
    streams: Recordings,
    stop: Arc<AtomicBool>,
}

impl Wire {
    /// Starts a proxy to `upstream` (`http://HOST:PORT`).
    pub(crate) fn start(upstream: &str) -> Self {
        let (upstream, listener, addr) = crate::common::proxy_listener(upstream);
        let streams = Recordings::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (recorded, stopping) = (streams.clone(), stop.clone());
        std::thread::spawn(move || {
            for (number, client) in listener.incoming().enumerate() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (direction, from, to) in [
                    ("request", client.try_clone(), server.try_clone()),
                    ("response", server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let buffer = Recording::default();
                    if let Ok(mut all) = recorded.lock() {
                        all.push((
                            format!("wire connection {number} {direction}s"),
                            buffer.clone(),
                        ));
                    }
                    std::thread::spawn(move || copy_recording(from, to, &buffer));
                }
            }
        });
        Self {
            addr,
            streams,
            stop,
        }
    }

    /// `http://ADDR` of the proxy.
    pub(crate) fn api_host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything recorded so far, one source per connection and direction.
    pub(crate) fn sources(&self) -> Vec<Source> {
        let all = self
            .streams
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default();
        all.into_iter()
            .map(|(label, buffer)| Source {
                label,
                bytes: buffer.lock().map(|b| b.clone()).unwrap_or_default(),
            })
            .collect()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        // Wake the accepting thread so that it sees the flag and ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Forwards `from` to `to` until either closes, recording each chunk first.
fn copy_recording(mut from: TcpStream, mut to: TcpStream, buffer: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let Some(bytes) = chunk.get(..read) else {
            break;
        };
        if let Ok(mut recorded) = buffer.lock() {
            recorded.extend_from_slice(bytes);
        }
        if to.write_all(bytes).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// What one run of the scenario leaves for the scan.
struct Scenario {
    markers: Vec<Marker>,
    sources: Vec<Source>,
    /// The data directory, to name the files that must have been scanned.
    data_dir: std::path::PathBuf,
}

/// The `secret` example's behaviour in JavaScript, with [`CODE_MARKER`] as
/// a string it never prints and [`NAME_MARKER`] as a function's name
/// (both are in its bytecode as well as in its source), and a comment that
/// makes it longer than the checks on the stored code expect.
fn secret_js() -> String {
    format!(
        "// {padding}\n\
         function {NAME_MARKER}(text) {{\n\
         \x20 if (text === \"{CODE_MARKER}\") throw new Error('refusing the code marker');\n\
         \x20 return text.toUpperCase();\n\
         }}\n\
         function main(params) {{\n\
         \x20 console.log('log: ' + params.secret.split('').reverse().join(''));\n\
         \x20 return {{ shout: {NAME_MARKER}(params.secret) }};\n\
         }}\n",
        padding = "padding ".repeat(150),
    )
}

/// A function's name in [`secret_js`], never printed.
const NAME_MARKER: &str = "clemmys_name_marker_7d3a9b";

/// Which `secret` to deploy.
#[derive(Clone, Copy)]
enum Secret {
    /// The wasm example.
    Wasm,
    /// [`secret_js`], under the node's JavaScript engine.
    JavaScript,
}

/// Deploys `secret` (confidential, or `--plain`), invokes it through the
/// CLI, checks that the owner sees the answer, gathers everything the
/// provider can see, then stops the server and gathers its files.
fn deploy_and_invoke_secret(plain: bool) -> Scenario {
    deploy_and_invoke(Secret::Wasm, plain)
}

/// [`deploy_and_invoke_secret`] for `secret`'s code.
fn deploy_and_invoke(secret: Secret, plain: bool) -> Scenario {
    let engine = js_engine();
    let mut server = match secret {
        Secret::Wasm => Server::start(),
        Secret::JavaScript => Server::start_with(&["--js-engine", arg(&engine)]),
    };
    let wire = Wire::start(&server.api_host);
    let owner = server.user_via(&wire.api_host());
    owner.trust_broker();
    let param = unique("pmk-");
    let mut markers = markers(&param);
    let result_marker = param.to_uppercase();
    let log_marker: String = param.chars().rev().collect();

    let code = match secret {
        Secret::Wasm => example("secret"),
        Secret::JavaScript => {
            markers.push(Marker {
                name: "NAME",
                text: NAME_MARKER.to_owned(),
            });
            let path = owner.home().join("secret.js");
            std::fs::write(&path, secret_js()).unwrap_or_else(|error| panic!("{error}"));
            path
        }
    };
    assert!(
        contains(
            &std::fs::read(&code).unwrap_or_default(),
            CODE_MARKER.as_bytes()
        ),
        "{} does not contain the code marker: rebuild the examples",
        code.display()
    );
    let mut create = vec!["action", "create", "secret", arg(&code)];
    match (plain, secret) {
        (true, _) => create.push("--plain"),
        (false, Secret::JavaScript) => create.extend(["--js-engine", arg(&engine)]),
        (false, Secret::Wasm) => {}
    }
    let created = owner.clemmys(&create).success();
    assert_eq!(created.stdout.contains("confidential"), !plain, "{created}");

    // The owner's client sees the answer: the scan below is meaningful.
    // Three times: JavaScript runs from bytecode after the first.
    for _ in 0..3 {
        let shouted = owner
            .clemmys(&["action", "invoke", "secret", "-p", "secret", &param, "-r"])
            .success();
        assert_eq!(
            shouted.json(),
            json!({ "shout": result_marker }),
            "{shouted}"
        );
    }
    let record = owner
        .clemmys(&[
            "action", "invoke", "secret", "-p", "secret", &param, "-b", "--json",
        ])
        .success()
        .json();
    let id = activation_id(&record);
    assert_eq!(
        record["response"]["result"]["shout"],
        result_marker.as_str()
    );
    let result = owner.clemmys(&["activation", "result", &id]).success();
    assert_eq!(result.json(), json!({ "shout": result_marker }), "{result}");
    let logs = owner
        .clemmys(&["activation", "logs", &id, "--strip"])
        .success();
    assert_eq!(logs.stdout, format!("log: {log_marker}\n"), "{logs}");
    if !plain {
        owner
            .clemmys(&["activation", "verify", &id])
            .success()
            .stdout_has(&format!("ok: activation {id} verified"));
    }

    let sources = provider_view(&mut server, &wire, ("secret", &id), plain);
    Scenario {
        markers,
        sources,
        data_dir: server.data_dir.clone(),
    }
}

/// Everything the provider can see once action `secret` ran as activation
/// `id`: its API (raw and through a stranger's CLI), the wire, and, after
/// the server stopped, its files and its debug log.
/// What the provider holds of the run of `action` (`secret`, or
/// `package/secret`).
fn provider_view(
    server: &mut Server,
    wire: &Wire,
    (action, id): (&str, &str),
    plain: bool,
) -> Vec<Source> {
    let mut sources = Vec::new();
    provider_api_view(server, (action, id), plain, &mut sources);
    let stranger = server.user_via(&wire.api_host());
    stranger_cli_view(&stranger, (action, id), &mut sources);

    server.stop();
    let recorded = wire.sources();
    let invoke = format!("POST /api/v1/namespaces/_/actions/{action}");
    assert!(
        recorded
            .iter()
            .any(|s| s.label.ends_with("requests") && contains(&s.bytes, invoke.as_bytes())),
        "the proxy recorded no invoke request"
    );
    sources.extend(recorded);
    add_files(&server.data_dir, &mut sources);
    for dir in server.process_dirs() {
        add_files(&dir, &mut sources);
    }
    let log = std::fs::read(&server.log_path).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&strip_ansi(&log)).contains(" DEBUG "),
        "the server did not log at debug level:\n{}",
        String::from_utf8_lossy(&log)
    );
    sources.push(Source {
        label: "server log (without colours)".into(),
        bytes: strip_ansi(&log),
    });
    sources.push(Source {
        label: "server log".into(),
        bytes: log,
    });
    sources
}

/// The API as the provider sees it: raw HTTP with the namespace key, no
/// client keys.
pub(crate) fn provider_api_view(
    server: &Server,
    (action, id): (&str, &str),
    plain: bool,
    sources: &mut Vec<Source>,
) {
    let short = action.rsplit('/').next().unwrap_or(action);
    let mut paths = vec![
        format!("/api/v1/namespaces/_/actions/{action}?code=true"),
        format!("/api/v1/namespaces/_/actions/{action}?code=false"),
        "/api/v1/namespaces/_/actions".to_owned(),
        "/api/v1/namespaces/_/activations".to_owned(),
        "/api/v1/namespaces/_/activations?docs=true".to_owned(),
        format!("/api/v1/namespaces/guest/activations?docs=true&name={short}"),
        format!("/api/v1/namespaces/_/activations/{id}"),
        format!("/api/v1/namespaces/_/activations/{id}/result"),
        format!("/api/v1/namespaces/_/activations/{id}/logs"),
        "/api/v1/broker/identity".to_owned(),
    ];
    if let Some((package, _)) = action.split_once('/') {
        paths.push(format!("/api/v1/namespaces/_/packages/{package}"));
        paths.push("/api/v1/namespaces/_/packages".to_owned());
    }
    let first = sources.len();
    for path in paths {
        let (status, body) = server.get(&path);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        sources.push(Source {
            label: format!("GET {path}"),
            bytes: body,
        });
    }
    // The scan holds the stored code and the stored answer.
    let stored: Value = serde_json::from_slice(&sources[first].bytes).unwrap_or_default();
    let code = stored["exec"]["code"].as_str().unwrap_or_default();
    assert!(
        code.len() > 1000,
        "GET …/actions/{action}?code=true returned no code: {stored}"
    );
    let record: Value = serde_json::from_slice(&sources[first + 6].bytes).unwrap_or_default();
    assert_eq!(
        record["response"]["result"]["sealed"].is_string(),
        !plain,
        "{record}"
    );
}

/// The API through the CLI of a user in the same namespace without the
/// owner's keyring (and without a pinned broker): it cannot decrypt.
fn stranger_cli_view(stranger: &User, (action, id): (&str, &str), sources: &mut Vec<Source>) {
    let saved = stranger.home().join("secret.saved");
    let commands: [&[&str]; 7] = [
        &["action", "get", action, "--json"],
        &["action", "get", action, "--save-as", arg(&saved)],
        &["activation", "list", "--full", "--json"],
        &["activation", "list", "--full"],
        &["activation", "get", id, "--json"],
        &["activation", "result", id],
        &["activation", "logs", id],
    ];
    for args in commands {
        let out = stranger.clemmys(args);
        sources.push(Source {
            label: format!("`{}` stdout", out.command),
            bytes: out.stdout.clone().into_bytes(),
        });
        sources.push(Source {
            label: format!("`{}` stderr", out.command),
            bytes: out.stderr.clone().into_bytes(),
        });
    }
    let code = std::fs::read(&saved)
        .unwrap_or_else(|error| panic!("`action get --save-as` saved nothing: {error}"));
    sources.push(Source {
        label: "code saved by `action get --save-as`".into(),
        bytes: code,
    });
}

/// The findings, one per line.
pub(crate) fn report(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {} ({}) in {}\n", f.marker, f.form, f.source))
        .collect()
}

#[test]
fn confidential_deploy_and_invoke_leak_nothing() {
    let scenario = deploy_and_invoke_secret(false);
    for file in ["store.redb", "broker.redb"] {
        let path = format!("file {}", scenario.data_dir.join(file).display());
        assert!(
            scenario
                .sources
                .iter()
                .any(|s| s.label == path && !s.bytes.is_empty()),
            "{path} was not scanned"
        );
    }
    found_no_marker(&scenario, "confidential plaintext");
}

/// Checks that the scan of `scenario` finds none of its markers (`what`).
fn found_no_marker(scenario: &Scenario, what: &str) {
    let findings = scan(&scenario.sources, &scenario.markers);
    assert!(
        findings.is_empty(),
        "{what} reached the provider:\n{}",
        report(&findings)
    );
}

/// A confidential JavaScript action runs from bytecode its enclave
/// compiled from the opened source (after its first run): neither that
/// bytecode nor the source (its strings, its functions' names) may reach
/// the provider's files, log, API answers or wire.
#[test]
fn confidential_javascript_bytecode_and_source_leak_nothing() {
    let scenario = deploy_and_invoke(Secret::JavaScript, false);
    found_no_marker(
        &scenario,
        "a confidential JavaScript action's code (source or bytecode) or data",
    );
}

/// The positive control of the scan above: the same JavaScript deployed
/// `--plain` leaks every marker, its code's included.
#[test]
fn plain_javascript_leaks_everything() {
    let scenario = deploy_and_invoke(Secret::JavaScript, true);
    found_every_marker(&scenario, "a plain JavaScript deployment");
}

/// Deploys `echo` as action `secret` with a default parameter (key and
/// value no one could guess) through the CLI, confidential or `--plain`,
/// invokes it and checks that the owner gets the parameter back.
fn deploy_with_defaults_and_invoke(plain: bool) -> Scenario {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owner = server.user_via(&wire.api_host());
    owner.trust_broker();
    let key = unique("dpk-");
    let value = unique("dpv-");
    let echo = example("echo");
    let mut create = vec!["action", "create", "secret", arg(&echo), "-p", &key, &value];
    if plain {
        create.push("--plain");
    }
    owner.clemmys(&create).success();
    let run = Bound {
        action: "secret",
        key: ("DEFAULT_KEY", key),
        value: ("DEFAULT_VALUE", value),
        plain,
    };
    invoke_and_take_the_providers_view(&mut server, &wire, &owner, run)
}

/// A parameter bound to `action` (a marker key and value, by name), which
/// its run must hand back.
struct Bound {
    action: &'static str,
    key: (&'static str, String),
    value: (&'static str, String),
    plain: bool,
}

/// `owner` invokes `bound.action` (an echo) with one more parameter, checks
/// that the bound one comes back, and takes what the provider holds.
fn invoke_and_take_the_providers_view(
    server: &mut Server,
    wire: &Wire,
    owner: &User,
    bound: Bound,
) -> Scenario {
    let record = owner
        .clemmys(&[
            "action",
            "invoke",
            bound.action,
            "-p",
            "other",
            "x",
            "-b",
            "--json",
        ])
        .success()
        .json();
    let mut expected = serde_json::Map::new();
    expected.insert(bound.key.1.clone(), json!(bound.value.1));
    expected.insert("other".into(), json!("x"));
    assert_eq!(record["response"]["result"], Value::Object(expected));
    let id = activation_id(&record);
    let sources = provider_view(server, wire, (bound.action, &id), bound.plain);
    Scenario {
        markers: vec![
            Marker {
                name: bound.key.0,
                text: bound.key.1,
            },
            Marker {
                name: bound.value.0,
                text: bound.value.1,
            },
        ],
        sources,
        data_dir: server.data_dir.clone(),
    }
}

#[test]
fn confidential_default_parameters_leak_nothing() {
    let scenario = deploy_with_defaults_and_invoke(false);
    found_no_marker(&scenario, "a confidential action's default parameters");
}

#[test]
fn plain_default_parameters_leak() {
    let scenario = deploy_with_defaults_and_invoke(true);
    found_every_marker(&scenario, "a plain deployment");
}

/// Creates a package with a parameter (a marker key and value), kept by
/// the owner's client for a confidential package (`--confidential`) or
/// stored by the node for a plain one, then an echo action in it of the
/// same kind, invokes it and checks that the owner gets the package's
/// parameter back.
fn package_parameters_and_invoke(plain: bool) -> Scenario {
    let mut server = Server::start();
    let wire = Wire::start(&server.api_host);
    let owner = server.user_via(&wire.api_host());
    owner.trust_broker();
    let key = unique("ppk-");
    let value = unique("ppv-");
    let mut package = vec!["package", "create", "vault", "-p", &key, &value];
    if !plain {
        package.push("--confidential");
    }
    owner.clemmys(&package).success();
    let echo = example("echo");
    let mut create = vec!["action", "create", "vault/secret", arg(&echo)];
    if plain {
        create.push("--plain");
    }
    owner.clemmys(&create).success();
    let run = Bound {
        action: "vault/secret",
        key: ("PACKAGE_KEY", key),
        value: ("PACKAGE_VALUE", value),
        plain,
    };
    invoke_and_take_the_providers_view(&mut server, &wire, &owner, run)
}

#[test]
fn confidential_package_parameters_leak_nothing() {
    let scenario = package_parameters_and_invoke(false);
    found_no_marker(&scenario, "a confidential package's parameters");
}

#[test]
fn plain_package_parameters_leak() {
    let scenario = package_parameters_and_invoke(true);
    found_every_marker(&scenario, "a plain package");
}

/// The findings of the scan of `scenario` (`what`), which must include
/// every marker.
fn found_every_marker(scenario: &Scenario, what: &str) -> Vec<Finding> {
    let findings = scan(&scenario.sources, &scenario.markers);
    for marker in &scenario.markers {
        assert!(
            findings.iter().any(|f| f.marker == marker.name),
            "the scan did not find {} ({:?}) in {what}, so it could not catch a leak \
             of it; found:\n{}",
            marker.name,
            marker.text,
            report(&findings)
        );
    }
    findings
}

#[test]
fn plain_deploy_and_invoke_leak_everything() {
    let scenario = deploy_and_invoke_secret(true);
    let findings = found_every_marker(&scenario, "a plain deployment");
    // Each kind of source can catch a leak.
    for (channel, prefix) in [
        ("the data directory", "file "),
        ("raw API answers", "GET "),
        ("the CLI of a user without keys", "`clemmys "),
        ("the wire", "wire "),
    ] {
        assert!(
            findings.iter().any(|f| f.source.starts_with(prefix)),
            "the scan found nothing in {channel} of a plain deployment; found:\n{}",
            report(&findings)
        );
    }
}

#[test]
fn the_scan_finds_markers_in_every_encoding() {
    let markers = markers("pmk-0123456789abcdef");
    for marker in &markers {
        let text = format!("{{\"x\":\"..{}..\"}}", marker.text);
        for padding in 0..3 {
            let mut plain = vec![b'#'; padding];
            plain.extend_from_slice(text.as_bytes());
            let sources = [
                Source {
                    label: "raw".into(),
                    bytes: plain.clone(),
                },
                Source {
                    label: "base64".into(),
                    bytes: base64::engine::general_purpose::STANDARD
                        .encode(&plain)
                        .into_bytes(),
                },
                Source {
                    label: "base64url".into(),
                    bytes: base64::engine::general_purpose::URL_SAFE
                        .encode(&plain)
                        .into_bytes(),
                },
                Source {
                    label: "hex".into(),
                    bytes: plain
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into_bytes(),
                },
            ];
            let found = scan(&sources, std::slice::from_ref(marker));
            for source in &sources {
                assert!(
                    found.iter().any(|f| f.source == source.label),
                    "{} not found in {} with padding {padding}",
                    marker.name,
                    source.label
                );
            }
        }
    }
    let clean = Source {
        label: "noise".into(),
        bytes: b"nothing to see here".to_vec(),
    };
    assert!(scan(&[clean], &markers).is_empty());
}

/// WASI's glue traces every host call a guest makes, with its arguments
/// and result: the length of each line written to stdout or stderr (one
/// log line, or one secret a guest prints), the exit code. The provider
/// runs the node at `RUST_LOG=trace`, and must read none of it.
#[test]
fn a_guests_host_calls_are_not_traced_at_any_log_level() {
    let mut server = Server::start_logging("trace", &[]);
    let owner = server.user();
    owner.trust_broker();
    owner
        .clemmys(&["action", "create", "secret", arg(&example("secret"))])
        .success();
    // Its log line is `log: `, the parameter reversed and a newline: 4,327
    // bytes.
    let param = "x".repeat(4321);
    owner
        .clemmys(&["action", "invoke", "secret", "-p", "secret", &param, "-r"])
        .success()
        .stdout_has("XXXX");
    server.stop();
    let log = server.log();
    assert!(
        log.contains("serving the OpenWhisk API"),
        "not the node's log"
    );
    for traced in ["fd_write", "proc_exit", "4327", "wiggle"] {
        assert!(
            !log.contains(traced),
            "{traced} in the provider's log: {}",
            log.lines()
                .filter(|line| line.contains(traced))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
