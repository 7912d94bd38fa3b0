//! `clemmys admin namespace …`: through the running server's admin route
//! (its store is locked while it runs), or on the store itself when the
//! server is stopped.

use crate::common::{Server, admin};

/// A `UUID:KEY` line as `admin namespace create|get|rekey` print it.
#[track_caller]
fn key_of(stdout: &str) -> String {
    let key = stdout.trim();
    let (uuid, secret) = key
        .split_once(':')
        .unwrap_or_else(|| panic!("not UUID:KEY: {stdout:?}"));
    assert_eq!(uuid.len(), 36, "{stdout:?}");
    assert_eq!(uuid.matches('-').count(), 4, "{stdout:?}");
    assert!(
        secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{stdout:?}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    key.to_owned()
}

#[test]
fn admin_against_a_running_server_goes_through_its_admin_route() {
    let server = Server::start();
    let user = server.user();

    let listed = server.admin(&["list"]).success();
    assert_eq!(
        listed.stdout,
        format!("{:<24} {}\n", "guest", server.guest_auth),
        "{listed}"
    );

    let key = key_of(&server.admin(&["create", "team"]).success().stdout);
    assert_eq!(
        key_of(&server.admin(&["get", "team"]).success().stdout),
        key
    );
    let record = server.admin(&["get", "team", "--json"]).success().json();
    assert_eq!(record["name"], "team", "{record}");
    assert_eq!(record["auth"], key.as_str(), "{record}");
    assert!(record["limits"].is_object(), "{record}");
    let listed = server.admin(&["list", "--json"]).success().json();
    let names: Vec<&str> = listed
        .as_array()
        .map(|all| all.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["guest", "team"], "{listed}");

    // The running server knows the new namespace at once.
    let actions = user.clemmys(&["action", "list", "-u", &key]).success();
    assert_eq!(actions.stdout, "actions\n", "{actions}");
    let namespaces = user.clemmys(&["namespace", "list", "-u", &key]).success();
    assert_eq!(namespaces.stdout, "namespaces\nteam\n", "{namespaces}");
    let created = user
        .clemmys(&[
            "action",
            "create",
            "teamhello",
            crate::common::arg(&crate::common::example("hello")),
            "--plain",
            "-u",
            &key,
        ])
        .success();
    created.stdout_has("ok: created action teamhello");
    let theirs = user.clemmys(&["action", "list", "-u", &key]).success();
    assert_eq!(
        theirs.stdout, "actions\n/team/teamhello  private  wasm\n",
        "{theirs}"
    );

    // rekey: the old key stops working, the new one works.
    let rekeyed = key_of(&server.admin(&["rekey", "team"]).success().stdout);
    assert_ne!(rekeyed, key);
    user.clemmys(&["action", "list", "-u", &key])
        .failure()
        .stderr_has("The supplied authentication is invalid. (HTTP 401");
    user.clemmys(&["action", "list", "-u", &rekeyed])
        .success()
        .stdout_has("teamhello");

    server
        .admin(&["create", "team"])
        .failure()
        .stderr_has("error: namespace team already exists");
    server
        .admin(&["get", "nobody"])
        .failure()
        .stderr_has("error: no namespace nobody");
    server
        .admin(&["rekey", "nobody"])
        .failure()
        .stderr_has("error: no namespace nobody");
}

#[test]
fn admin_on_a_stopped_server_uses_the_store_directly() {
    let mut server = Server::start();
    server.stop();

    let listed = server.admin(&["list"]).success();
    assert_eq!(
        listed.stdout,
        format!("{:<24} {}\n", "guest", server.guest_auth),
        "{listed}"
    );
    let key = key_of(&server.admin(&["create", "offline"]).success().stdout);
    assert_eq!(
        key_of(&server.admin(&["get", "offline"]).success().stdout),
        key
    );
    let rekeyed = key_of(&server.admin(&["rekey", "offline"]).success().stdout);
    assert_ne!(rekeyed, key);

    // The namespace is there when the server comes back.
    server.restart();
    let user = server.user();
    user.clemmys(&["namespace", "list", "-u", &rekeyed])
        .success()
        .stdout_has("offline");
    user.clemmys(&["action", "list", "-u", &key])
        .failure()
        .stderr_has("(HTTP 401");
}

#[test]
fn admin_on_a_directory_without_a_store_says_how_to_make_one() {
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = admin(empty.path(), &["list"]).failure();
    out.stderr_has("holds no Clemmys store: start `clemmys serve --data-dir ");
}

#[test]
fn admin_json_is_indented_like_the_rest_of_the_cli() {
    let server = Server::start();
    let out = server.admin(&["get", "guest", "--json"]).success();
    assert!(out.stdout.starts_with("{\n    \""), "{out}");
}

#[test]
fn generated_keys_do_not_repeat_themselves() {
    let server = Server::start();
    let mut keys = vec![server.guest_auth.clone()];
    for name in ["k1", "k2", "k3"] {
        keys.push(key_of(&server.admin(&["create", name]).success().stdout));
    }
    for key in keys {
        let secret = key.split_once(':').map(|(_, s)| s).unwrap_or_default();
        assert_eq!(secret.len(), 64, "{key}");
        assert_ne!(secret.get(..16), secret.get(48..), "{key}");
    }
}
