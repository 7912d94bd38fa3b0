//! `clemmys serve --tls` and the CLI over HTTPS: the server's own authority
//! is named in its `wskprops`, a user who does not trust it is refused with
//! a clear error, and `--cacert` or `-i` let them in.

use crate::common::{Server, arg, example};

#[test]
fn a_tls_server_is_used_through_its_wskprops_and_refused_without_trust() {
    let server = Server::start_with(&["--tls"]);
    assert!(
        server.api_host.starts_with("https://127.0.0.1:"),
        "{}",
        server.api_host
    );
    let ca = server.data_dir.join("tls/ca.pem");
    assert!(ca.is_file(), "{}", ca.display());
    assert!(
        server
            .log()
            .contains(&format!("clients trust {}", ca.display())),
        "{}",
        server.log()
    );

    // A user of the server's wskprops trusts its authority (CACERT), and
    // the confidential flow works end to end over TLS.
    let user = server.user();
    user.clemmys(&["namespace", "list"])
        .success()
        .stdout_has("guest");
    user.trust_broker();
    let hello = example("hello");
    user.clemmys(&["action", "create", "hello", arg(&hello)])
        .success();
    user.clemmys(&["action", "invoke", "hello", "-r", "-p", "name", "TLS"])
        .success()
        .stdout_has("Hello, TLS!")
        .stderr_has("decrypted; receipt verified");

    // A user whose properties name only the host and key: the system's
    // authorities do not vouch for this server.
    let stranger = server.user_via(&server.api_host);
    let refused = stranger.clemmys(&["namespace", "list"]).failure();
    refused
        .stderr_has("UnknownIssuer")
        .stderr_has("--cacert DATA_DIR/tls/ca.pem");
    assert!(
        !refused.stderr.contains("is the server running"),
        "{refused}"
    );
    stranger
        .clemmys(&["namespace", "list", "--cacert", arg(&ca)])
        .success()
        .stdout_has("guest");
    stranger
        .clemmys(&["namespace", "list", "-i"])
        .success()
        .stdout_has("guest");
    // `property set --cacert` keeps it.
    stranger
        .clemmys(&["property", "set", "--cacert", arg(&ca)])
        .success();
    stranger
        .clemmys(&["namespace", "list"])
        .success()
        .stdout_has("guest");

    // The operator's admin commands reach the running server over TLS too.
    server.admin(&["list"]).success().stdout_has("guest");
}

#[test]
fn an_https_api_host_for_a_plain_http_node_is_told_to_use_http() {
    let server = Server::start();
    let https = server.api_host.replacen("http://", "https://", 1);
    let user = server.user_via(&https);
    user.clemmys(&["namespace", "list", "-i"])
        .failure()
        .stderr_has("http://HOST:PORT");
}
