//! `clemmys broker trust|show`: the user verifies and pins the node's key
//! broker before deploying confidential actions, and is told what the `sim`
//! TEE does not protect.

use clemmys_client::confidential::expected_broker_measurement;
use serde_json::json;

use crate::common::{SIM_WARNING_POINT, SIM_WARNING_START, Server};

/// The value after `label` on the line of `text` that starts with it.
#[track_caller]
pub(crate) fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{text}"))
}

#[test]
fn broker_trust_shows_the_sim_tee_and_its_warning_then_pins() {
    let server = Server::start();
    let user = server.user();
    let expected = expected_broker_measurement().to_string();

    let trusted = user.clemmys(&["broker", "trust", "--yes"]).success();
    let text = &trusted.stdout;
    assert_eq!(
        text.lines().next(),
        Some(format!("key broker of {}", server.api_host).as_str()),
        "{trusted}"
    );
    assert_eq!(field(text, "TEE:"), "sim", "{trusted}");
    let measurement = field(text, "measurement:");
    assert_eq!(measurement, expected, "{trusted}");
    assert_eq!(
        field(text, "expected measurement:"),
        format!("{expected} (this release's broker)"),
        "{trusted}"
    );
    for label in ["HPKE key:", "signing key:", "sim platform key:"] {
        let key = field(text, label);
        assert!(
            key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{label} {key:?} in {trusted}"
        );
    }
    trusted
        .stdout_has(SIM_WARNING_START)
        .stdout_has(SIM_WARNING_POINT)
        .stdout_has(&format!("ok: pinned the key broker of {}", server.api_host));

    let shown = user.clemmys(&["broker", "show"]).success();
    assert_eq!(
        shown.stdout.lines().next(),
        Some(format!("key broker pinned for {}", server.api_host).as_str()),
        "{shown}"
    );
    assert_eq!(field(&shown.stdout, "TEE:"), "sim", "{shown}");
    assert_eq!(field(&shown.stdout, "measurement:"), expected, "{shown}");
    shown
        .stdout_has(SIM_WARNING_START)
        .stdout_has(SIM_WARNING_POINT);

    let json = user.clemmys(&["broker", "show", "--json"]).success().json();
    assert_eq!(json["tee"], "sim", "{json}");
    assert_eq!(json["measurement"], expected.as_str(), "{json}");
    assert!(
        json["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains(SIM_WARNING_POINT)),
        "{json}"
    );

    // The pin lives in CLEMMYS_HOME; nothing went to the user's HOME.
    assert!(
        std::fs::read_dir(user.clemmys_home())
            .map(|mut dir| dir.next().is_some())
            .unwrap_or(false),
        "nothing was written to CLEMMYS_HOME"
    );
    assert_eq!(
        std::fs::read_dir(user.home()).map(Iterator::count).ok(),
        Some(0),
        "the CLI wrote into HOME"
    );
}

#[test]
fn broker_trust_json_reports_the_pin() {
    let server = Server::start();
    let user = server.user();
    let out = user
        .clemmys(&["broker", "trust", "--yes", "--json"])
        .success();
    let json = out.json();
    assert_eq!(json["apiHost"], server.api_host.as_str(), "{out}");
    assert_eq!(json["pinned"]["tee"], "sim", "{out}");
    assert_eq!(json["changedSincePinned"], json!([]), "{out}");
    assert!(
        json["warning"]
            .as_str()
            .is_some_and(|warning| warning.contains(SIM_WARNING_POINT)),
        "{out}"
    );
    assert_eq!(
        json["pinned"]["measurement"],
        expected_broker_measurement().to_string().as_str(),
        "{out}"
    );
}

#[test]
fn broker_show_before_trust_fails() {
    let server = Server::start();
    let out = server.user().clemmys(&["broker", "show"]).failure();
    out.stderr_has(&format!(
        "error: no key broker is pinned for {}: run `clemmys broker trust`",
        server.api_host
    ));
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn broker_trust_without_a_terminal_or_yes_refuses_to_pin() {
    let server = Server::start();
    let user = server.user();
    let out = user.clemmys(&["broker", "trust"]).failure();
    // The attestation is still shown, with the warning.
    out.stdout_has("TEE:                  sim")
        .stdout_has(SIM_WARNING_START)
        .stderr_has("not a terminal: pass --yes");
    assert!(!out.stdout.contains("ok: pinned"), "{out}");
    user.clemmys(&["broker", "show"]).failure();
}

#[test]
fn broker_trust_of_an_unexpected_measurement_refuses_to_pin() {
    let server = Server::start();
    let user = server.user();
    // The genuine broker's digest, but as an SGX measurement: the sim
    // broker does not meet it (measurements carry their TEE kind).
    let genuine = expected_broker_measurement().to_string();
    let wrong = genuine.replacen("sim:", "sgx-dcap:", 1);
    assert_ne!(wrong, genuine);
    let out = user
        .clemmys(&["broker", "trust", "--expect-measurement", &wrong])
        .failure();
    out.stdout_has(&format!("expected measurement: {wrong}"))
        .stderr_has(&format!(
            "refusing to pin: the broker's measurement {} is not the expected {wrong}",
            expected_broker_measurement()
        ));
    user.clemmys(&["broker", "show"]).failure();
    // A bare digest names no TEE kind: refused as a usage error (exit 2).
    let bare = user.clemmys(&["broker", "trust", "--expect-measurement", &"00".repeat(32)]);
    assert_eq!(bare.code(), Some(2), "{bare}");
    bare.stderr_has("KIND:HEX");
}

#[test]
fn another_identity_uses_an_owners_action_only_once_it_trusts_the_owner() {
    let server = Server::start();
    let owner = server.user();
    owner
        .trust_broker()
        .stdout_has("namespace:            guest");
    let friend = server.user();
    friend.trust_broker();
    let (owner_id, friend_id) = (owner.identity(), friend.identity());
    let hello = crate::common::example("hello");
    owner
        .clemmys(&[
            "action",
            "create",
            "hello",
            crate::common::arg(&hello),
            "--allow-client",
            &friend_id,
        ])
        .success();
    // Allowed by the owner's policy, but the friend trusts nobody else yet.
    friend
        .clemmys(&["action", "invoke", "hello", "-r"])
        .failure()
        .stderr_has("no confidential action of that name is registered");
    friend
        .clemmys(&["broker", "trust", "--yes", "--trust-owner", &owner_id])
        .success()
        .stdout_has(&format!("trusted owner:        {owner_id}"));
    let out = friend
        .clemmys(&["action", "invoke", "hello", "-p", "name", "F", "-r"])
        .success();
    out.stdout_has("Hello, F!");
}

#[test]
fn a_key_given_on_the_command_line_needs_a_qualified_confidential_name() {
    let server = Server::start();
    let key = server
        .admin(&["create", "team"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let user = server.user();
    user.trust_broker();
    let hello = crate::common::example("hello");
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&hello),
        "-u",
        &key,
    ])
    .failure()
    .stderr_has("name it in full, /NAMESPACE/hello");
    // Nor is anything of an invoke, a rule or a package update sent under
    // that key, as if the name were a plain action of the pinned
    // namespace's (where the provider shows a plain one).
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&hello),
        "--plain",
        "-u",
        &key,
    ])
    .success();
    for command in [
        &["action", "invoke", "hello", "-p", "k", "v"][..],
        &["rule", "create", "r", "t", "hello"],
        &["package", "update", "pkg", "-p", "k", "v"],
        &["action", "delete", "hello"],
    ] {
        user.clemmys(&[command, &["-u", &key]].concat())
            .failure()
            .stderr_has("name it in full, /NAMESPACE/");
    }
}

/// A broker pinned on hardware, replaced by the provider with a `sim` one
/// (which it can read): `broker trust` must not re-pin it without the
/// user saying so. Nothing here runs on SGX, so the hardware pin is the
/// one pinned here with its TEE rewritten as the user's own file would
/// hold it after trusting a hardware broker.
#[test]
fn a_hardware_pin_is_not_replaced_by_a_sim_broker_without_asking() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let pins = user.clemmys_home().join("brokers.json");
    let pinned = std::fs::read_to_string(&pins).expect("the pin");
    assert!(pinned.contains("\"tee\": \"sim\""), "{pinned}");
    std::fs::write(
        &pins,
        pinned
            .replace("\"tee\": \"sim\"", "\"tee\": \"sgx-dcap\"")
            .replace("\"measurement\": \"sim:", "\"measurement\": \"sgx-dcap:"),
    )
    .expect("rewritten");

    let refused = user.clemmys(&["broker", "trust", "--yes"]).failure();
    refused
        .stderr_has("was pinned on hardware and now shows sim evidence")
        .stderr_has("--downgrade-to-sim");
    assert!(
        std::fs::read_to_string(&pins)
            .expect("the pin")
            .contains("\"tee\": \"sgx-dcap\""),
        "the hardware pin was replaced"
    );
    let downgraded = user
        .clemmys(&["broker", "trust", "--yes", "--downgrade-to-sim", "--json"])
        .success()
        .json();
    // A script sees what changed, too.
    assert!(
        downgraded["changedSincePinned"]
            .as_array()
            .is_some_and(|changes| !changes.is_empty()),
        "{downgraded}"
    );
    assert!(
        std::fs::read_to_string(&pins)
            .expect("the pin")
            .contains("\"tee\": \"sim\""),
        "the user's downgrade was not pinned"
    );
}
