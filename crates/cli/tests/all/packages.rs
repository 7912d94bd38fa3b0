//! `clemmys package create|update|bind|get|list|delete` against a node.

use serde_json::json;

use crate::common::Server;

#[test]
fn packages_are_created_bound_listed_and_deleted() {
    let server = Server::start();
    let user = server.user();
    let created = user
        .clemmys(&["package", "create", "tools", "-p", "greeting", "hi"])
        .success();
    assert_eq!(created.stdout, "ok: created package tools\n", "{created}");
    user.clemmys(&["package", "create", "tools"]).failure();

    let updated = user
        .clemmys(&["package", "update", "tools", "--shared", "yes"])
        .success();
    assert_eq!(updated.stdout, "ok: updated package tools\n", "{updated}");
    let got = user
        .clemmys(&["package", "get", "tools", "--json"])
        .success()
        .json();
    assert_eq!(got["publish"], true);
    assert_eq!(
        got["parameters"],
        json!([{"key": "greeting", "value": "hi"}]),
        "an update without -p keeps the parameters"
    );

    let bound = user
        .clemmys(&[
            "package", "bind", "tools", "mytools", "-p", "greeting", "hey",
        ])
        .success();
    assert_eq!(bound.stdout, "ok: created binding mytools\n", "{bound}");
    let binding = user
        .clemmys(&["package", "get", "mytools", "--json"])
        .success()
        .json();
    assert_eq!(
        binding["binding"],
        json!({"namespace": "guest", "name": "tools"})
    );

    let listed = user.clemmys(&["package", "list"]).success();
    assert_eq!(
        listed.stdout, "packages\n/guest/mytools  private\n/guest/tools    shared\n",
        "{listed}"
    );
    // The namespace as `wsk` writes it, with its slash.
    let qualified = user.clemmys(&["package", "list", "/guest"]).success();
    assert_eq!(qualified.stdout, listed.stdout, "{qualified}");
    user.clemmys(&[
        "action",
        "create",
        "hello",
        crate::common::arg(&crate::common::example("hello")),
        "--plain",
    ])
    .success();
    let everything = user.clemmys(&["list"]).success();
    assert_eq!(
        everything.stdout,
        "Entities in namespace: guest\npackages\n/guest/mytools  private\n/guest/tools    shared\n\
         actions\n/guest/hello  private  wasm\ntriggers\nrules\n",
        "{everything}"
    );
    user.clemmys(&["package", "bind", "missing", "other"])
        .failure()
        .stderr_has("does not exist");

    // `pkg/name` paths reach actions in packages, which inherit its
    // parameters (here through the binding's).
    let hello = crate::common::example("hello");
    user.clemmys(&[
        "action",
        "create",
        "tools/greet",
        crate::common::arg(&hello),
        "--plain",
    ])
    .success();
    let greeted = user
        .clemmys(&[
            "action",
            "invoke",
            "mytools/greet",
            "-p",
            "name",
            "Ada",
            "-r",
        ])
        .success();
    assert_eq!(
        greeted.json(),
        json!({"payload": "Hello, Ada!"}),
        "{greeted}"
    );
    user.clemmys(&["package", "delete", "tools"])
        .failure()
        .stderr_has("not empty");
    user.clemmys(&["action", "delete", "tools/greet"]).success();

    let deleted = user.clemmys(&["package", "delete", "mytools"]).success();
    assert_eq!(deleted.stdout, "ok: deleted package mytools\n", "{deleted}");
    user.clemmys(&["package", "get", "mytools"]).failure();
}

#[test]
fn a_confidential_package_keeps_its_parameters_in_the_client() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    let created = user
        .clemmys(&[
            "package",
            "create",
            "vault",
            "--confidential",
            "-p",
            "token",
            "t-1",
        ])
        .success();
    assert!(
        created
            .stdout
            .starts_with("ok: created confidential package vault"),
        "{created}"
    );
    // The node holds none; the owner's `get` shows the client's copy.
    let (status, body) = server.get("/api/v1/namespaces/_/packages/vault");
    assert_eq!(status, 200);
    let stored: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(stored["parameters"], json!([]), "{stored}");
    let got = user
        .clemmys(&["package", "get", "vault", "--json"])
        .success()
        .json();
    assert_eq!(
        got["parameters"],
        json!([{"key": "token", "value": "t-1"}]),
        "{got}"
    );
    // The provider strips the package's annotation, so that the node would
    // take parameters in the clear. The client knows the package as a
    // confidential one of its own, whatever the node shows: an update
    // without --confidential keeps them too, and marks it again.
    // It also writes parameters of its own there, for the owner's `get`
    // to show as the package's.
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/vault?overwrite=true",
        &json!({"annotations": [], "parameters": [{"key": "token", "value": "PROVIDER-MADE"}]}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let got = user
        .clemmys(&["package", "get", "vault", "--json"])
        .success()
        .json();
    assert_eq!(
        got["parameters"],
        json!([{"key": "token", "value": "t-1"}]),
        "the node's parameters shown as the package's: {got}"
    );
    user.clemmys(&["package", "update", "vault", "-p", "token", "t-1"])
        .success()
        .stdout_has("ok: updated confidential package vault");
    let (_, body) = server.get("/api/v1/namespaces/_/packages/vault");
    let stored: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(stored["parameters"], json!([]), "{stored}");
    assert!(!stored.to_string().contains("t-1"), "{stored}");
    assert_eq!(
        stored["annotations"],
        json!([{"key": "confidential", "value": true}]),
        "{stored}"
    );

    // An action in it gets them sealed; an update of the package tells
    // that the action keeps what was sealed into it.
    let echo = crate::common::example("echo");
    user.clemmys(&["action", "create", "vault/echo", crate::common::arg(&echo)])
        .success()
        .stdout_has("ok: created confidential action vault/echo");
    let result = user
        .clemmys(&["action", "invoke", "vault/echo", "-r", "-p", "n", "1"])
        .success()
        .json();
    assert_eq!(result, json!({"token": "t-1", "n": 1}));
    user.clemmys(&[
        "package",
        "update",
        "vault",
        "--confidential",
        "-p",
        "token",
        "t-2",
    ])
    .success()
    .stderr_has("holds 1 action(s); each keeps the parameters sealed into it until it is updated");
    let kept = user
        .clemmys(&["action", "invoke", "vault/echo", "-r"])
        .success()
        .json();
    assert_eq!(kept, json!({"token": "t-1"}));
    user.clemmys(&["action", "update", "vault/echo", crate::common::arg(&echo)])
        .success();
    let resealed = user
        .clemmys(&["action", "invoke", "vault/echo", "-r"])
        .success()
        .json();
    assert_eq!(resealed, json!({"token": "t-2"}));
    // `final` holds the package's parameters too: the client refuses the
    // override before sending anything, with OpenWhisk's words.
    user.clemmys(&[
        "action",
        "update",
        "vault/echo",
        crate::common::arg(&echo),
        "-a",
        "final",
        "true",
    ])
    .success();
    user.clemmys(&["action", "invoke", "vault/echo", "-p", "token", "mine"])
        .failure()
        .stderr_has("Request defines parameters that are not allowed");

    // Deleting the package forgets the client's copy.
    user.clemmys(&["action", "delete", "vault/echo"]).success();
    user.clemmys(&["package", "delete", "vault"]).success();
    user.clemmys(&["package", "create", "vault", "--confidential"])
        .success();
    let fresh = user
        .clemmys(&["package", "get", "vault", "--json"])
        .success()
        .json();
    assert_eq!(fresh["parameters"], json!([]), "{fresh}");
}

#[test]
fn a_confidential_package_the_provider_deleted_first_leaves_no_parameters_behind() {
    let server = Server::start();
    let user = server.user();
    user.trust_broker();
    user.clemmys(&[
        "package",
        "create",
        "vault",
        "--confidential",
        "-p",
        "token",
        "SECRET-A",
    ])
    .success();
    // The provider deletes the package itself (with the namespace key), so
    // that the owner's delete finds nothing there.
    let (status, body) = crate::common::http_send(
        hyper::Method::DELETE,
        &server.api_host,
        "/api/v1/namespaces/_/packages/vault",
        &server.guest_auth,
        Vec::new(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    user.clemmys(&["package", "delete", "vault"])
        .success()
        .stdout_has("already gone from the node");
    // A package made later under the name, and an action sealed in it,
    // carry nothing of the deleted one.
    user.clemmys(&["package", "update", "vault", "--confidential"])
        .success();
    let echo = crate::common::example("echo");
    user.clemmys(&["action", "create", "vault/echo", crate::common::arg(&echo)])
        .success();
    let result = user
        .clemmys(&["action", "invoke", "vault/echo", "-r", "-p", "n", "1"])
        .success()
        .json();
    assert_eq!(
        result,
        json!({"n": 1}),
        "the deleted package's parameters came back"
    );
}

#[test]
fn binding_a_confidential_package_sends_nothing() {
    let server = Server::start();
    let wire = crate::leaks::Wire::start(&server.api_host);
    let user = server.user_via(&wire.api_host());
    user.trust_broker();
    user.clemmys(&[
        "package",
        "create",
        "vault",
        "--confidential",
        "-p",
        "token",
        "t-1",
    ])
    .success();
    let secret = crate::common::unique("BIND-SECRET-");
    let bind = || {
        user.clemmys(&["package", "bind", "vault", "mine", "-p", "token", &secret])
            .failure()
            .stderr_has("cannot be bound");
    };
    // The node would refuse it too, but only once the parameters reached it.
    bind();
    // The provider strips the package's annotation so that the node takes
    // the binding: the client's own record still refuses it.
    let (status, body) = server.put(
        "/api/v1/namespaces/_/packages/vault?overwrite=true",
        &json!({"annotations": []}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    bind();
    let leaked: Vec<_> = wire
        .sources()
        .into_iter()
        .filter(|source| crate::leaks::contains(&source.bytes, secret.as_bytes()))
        .map(|source| source.label)
        .collect();
    assert!(
        leaked.is_empty(),
        "the binding's parameter crossed the wire: {leaked:?}"
    );
}
