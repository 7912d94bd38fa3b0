//! `clemmys namespace list` and `clemmys property get`: what the user's
//! settings resolve to.

use crate::common::{Server, arg};

#[test]
fn namespace_list_shows_the_guest_namespace() {
    let server = Server::start();
    let user = server.user();
    let out = user.clemmys(&["namespace", "list"]).success();
    assert_eq!(out.stdout, "namespaces\nguest\n", "{out}");
    let json = user
        .clemmys(&["namespace", "list", "--json"])
        .success()
        .json();
    assert_eq!(json, serde_json::json!(["guest"]));
    let limits = user
        .clemmys(&["namespace", "get", "--json"])
        .success()
        .json();
    assert!(limits.is_object(), "{limits}");
}

#[test]
fn property_get_all_shows_the_server_settings() {
    let server = Server::start();
    let user = server.user();
    let out = user.clemmys(&["property", "get", "--all"]).success();
    let wskprops = server.wskprops();
    let expected = format!(
        "whisk API host\t\t{}\nwhisk auth\t\t{}\nwhisk namespace\t\tguest\nwhisk API version\tv1\n\
         clemmys CLI version\t{}\nproperties file\t\t{}\n",
        server.api_host,
        server.guest_auth,
        env!("CARGO_PKG_VERSION"),
        arg(&wskprops)
    );
    assert_eq!(out.stdout, expected, "{out}");

    let json = user
        .clemmys(&["property", "get", "--all", "--json"])
        .success()
        .json();
    assert_eq!(json["apihost"], server.api_host.as_str(), "{json}");
    assert_eq!(json["auth"], server.guest_auth.as_str(), "{json}");
    assert_eq!(json["namespace"], "guest", "{json}");
    assert_eq!(json["propsFile"], arg(&wskprops), "{json}");

    let only = user.clemmys(&["property", "get", "--apihost"]).success();
    assert_eq!(
        only.stdout,
        format!("whisk API host\t\t{}\n", server.api_host),
        "{only}"
    );
    // Nothing went to the user's HOME.
    assert_eq!(
        std::fs::read_dir(user.home()).map(Iterator::count).ok(),
        Some(0)
    );
}

#[test]
fn another_namespaces_key_is_shown_in_its_own_namespace() {
    let server = Server::start();
    let key = server
        .admin(&["create", "team", "--confidential-only", "true"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let user = server.user();
    let limits = user.clemmys(&["namespace", "get", "-u", &key]).success();
    limits.stdout_has("confidentialOnly       true");
    assert!(
        limits.stdout.starts_with("limits of namespace team\n"),
        "{limits}"
    );
    user.trust_broker();
    user.clemmys(&[
        "action",
        "create",
        "/team/hello",
        arg(&crate::common::example("hello")),
        "-u",
        &key,
    ])
    .success();
    let invoked = user
        .clemmys(&["action", "invoke", "/team/hello", "-b", "-u", &key])
        .success();
    invoked.stdout_has("ok: invoked /team/hello with id ");
}
