//! `clemmys namespace list` and `clemmys property get`, `set` and `unset`:
//! what the user's settings resolve to.

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
        "whisk API host\t\t{}\nwhisk auth\t\t{}\nwhisk namespace\t\tguest\nclient cert\t\t\n\
         Client key\t\t\nCA certificates\t\t\nwhisk API version\tv1\n\
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

/// The keys of a properties file, in order.
fn keys_in(wskprops: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(wskprops)
        .unwrap_or_else(|error| panic!("reading {}: {error}", wskprops.display()))
        .lines()
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim().to_owned()))
        .collect()
}

#[test]
fn property_unset_removes_what_property_set_saved() {
    let server = Server::start();
    let user = server.user_via(&server.api_host);
    // `property set` and `unset` record paths only; nothing reads these.
    let files: Vec<_> = ["cert.pem", "key.pem", "ca.pem"]
        .into_iter()
        .map(|name| {
            let path = user.home().join(name);
            std::fs::write(&path, "unread").unwrap_or_else(|error| panic!("{error}"));
            path
        })
        .collect();
    user.clemmys(&[
        "property",
        "set",
        "--cert",
        arg(&files[0]),
        "--key",
        arg(&files[1]),
        "--cacert",
        arg(&files[2]),
    ])
    .success();
    assert_eq!(
        keys_in(user.wskprops()),
        ["APIHOST", "AUTH", "NAMESPACE", "CERT", "KEY", "CACERT"]
    );
    let shown = user
        .clemmys(&["property", "get", "--all", "--json"])
        .success()
        .json();
    assert_eq!(shown["cert"], arg(&files[0]), "{shown}");
    assert_eq!(shown["key"], arg(&files[1]), "{shown}");
    assert_eq!(shown["cacert"], arg(&files[2]), "{shown}");

    // Flags take no values here, and the client's certificate goes with
    // its key.
    user.clemmys(&["property", "unset", "--cacert", arg(&files[2])])
        .failure()
        .stderr_has("takes no value");
    user.clemmys(&["property", "unset", "--cert"])
        .failure()
        .stderr_has("--cert and --key go together");
    user.clemmys(&["property", "unset"])
        .failure()
        .stderr_has("nothing to unset");
    assert_eq!(keys_in(user.wskprops()).len(), 6, "refusals change nothing");

    let out = user
        .clemmys(&["property", "unset", "--cert", "--key", "--cacert"])
        .success();
    out.stdout_has("client cert unset.")
        .stdout_has("client key unset.")
        .stdout_has("CA certificates unset.");
    assert_eq!(keys_in(user.wskprops()), ["APIHOST", "AUTH", "NAMESPACE"]);
    // The key still works: the host and key are untouched.
    user.clemmys(&["namespace", "list"])
        .success()
        .stdout_has("guest");

    user.clemmys(&["property", "unset", "--namespace"])
        .success()
        .stdout_has("whisk namespace unset.");
    let json = user
        .clemmys(&["property", "unset", "--auth", "--json"])
        .success()
        .json();
    assert_eq!(json, serde_json::json!({ "APIHOST": server.api_host }));
    user.clemmys(&["namespace", "list"])
        .failure()
        .stderr_has("no API key is configured");

    user.clemmys(&["property", "unset", "--apihost"])
        .success()
        .stdout_has("whisk API host unset.");
    assert_eq!(keys_in(user.wskprops()), Vec::<String>::new());
}

#[test]
fn a_properties_file_named_but_missing_is_named_in_the_error() {
    let server = Server::start();
    let user = server.user_via(&server.api_host);
    std::fs::remove_file(user.wskprops()).unwrap_or_else(|error| panic!("{error}"));
    user.clemmys(&["namespace", "list"])
        .failure()
        .stderr_has("no API host is configured (the properties file")
        .stderr_has("does not exist)");
}
