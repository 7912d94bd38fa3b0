//! A web action's HTML page opened in headless Chromium (Debian's
//! `chromium`, installed by `scripts/setup.sh`), as a visitor's browser
//! opens it: without credentials, scripts running. The text the test reads
//! is written by a script in the page, so it is there only if the browser
//! loaded the page from the node and ran it.

use std::process::Command;

use crate::common::{Server, arg, js_engine};

/// A JavaScript web action whose page fills its greeting in with a script.
const PAGE_ACTION: &str = r#"function main(params) {
  const name = JSON.stringify(String(params.name));
  return { body: `<!doctype html>
<html><head><title>Clemmys</title></head>
<body><p id="greeting">no script ran</p>
<script>
  document.getElementById('greeting').textContent =
    'Hello, ' + ${name} + ', from a script: ' + [6, 7].reduce((a, b) => a * b);
</script></body></html>` };
}"#;

/// What the page shows once its script ran.
const RENDERED: &str = r#"<p id="greeting">Hello, Ada, from a script: 42</p>"#;

/// Headless Chromium's rendering of `url`: the DOM after the page's
/// scripts ran.
fn rendered_dom(url: &str, profile: &std::path::Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            // Tests may run as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .output()
        .unwrap_or_else(|error| panic!("running chromium (scripts/setup.sh installs it): {error}"));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium failed: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[test]
fn a_web_action_page_renders_in_headless_chromium() {
    let engine = js_engine();
    let server = Server::start_with(&["--js-engine", arg(&engine)]);
    let user = server.user();
    let source = user.home().join("page.js");
    std::fs::write(&source, PAGE_ACTION).unwrap_or_else(|error| panic!("{error}"));
    user.clemmys(&[
        "action",
        "create",
        "page",
        arg(&source),
        "--plain",
        "--web",
        "true",
        "-p",
        "name",
        "Ada",
    ])
    .success();
    let url = format!("{}/api/v1/web/guest/default/page.html", server.api_host);

    // What the node sends holds no such text: only a browser running the
    // page's script makes it.
    let (status, sent) = server.get("/api/v1/web/guest/default/page.html");
    let sent = String::from_utf8_lossy(&sent);
    assert_eq!(status, 200, "{sent}");
    assert!(
        sent.contains("no script ran") && !sent.contains(RENDERED),
        "{sent}"
    );

    let dom = rendered_dom(&url, &user.home().join("chromium-profile"));
    assert!(dom.contains(RENDERED), "the page did not render: {dom}");
    assert!(!dom.contains("no script ran"), "{dom}");
}
