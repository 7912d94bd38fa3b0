//! Creating sandboxes: the production configuration, and many at once.

use clemmys_sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

use crate::common::*;

#[test]
fn the_default_sandbox_starts_and_runs() {
    let sandbox = Sandbox::new(&SandboxConfig::default()).expect("default sandbox");
    let module = prepare(&sandbox, &prints("{}", "", ""));
    assert_eq!(
        success(&sandbox.run(&module, Default::default())),
        &json!({})
    );
}

#[test]
fn many_sandboxes_can_live_in_one_process() {
    let wasm = prints(r#"{"ok":true}"#, "", "");
    let sandboxes: Vec<Sandbox> = (0..8).map(|_| sandbox()).collect();
    for sandbox in &sandboxes {
        let module = prepare(sandbox, &wasm);
        assert_eq!(
            success(&sandbox.run(&module, Default::default())),
            &json!({"ok": true})
        );
    }
}
