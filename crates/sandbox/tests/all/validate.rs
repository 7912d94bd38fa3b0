//! Deploy-time validation and preparation errors.

use clemmys_sandbox::{CodeDigest, InvalidModule, SandboxError};

use crate::common::*;

#[test]
fn code_that_is_not_wasm_is_rejected_as_such() {
    let sandbox = sandbox();
    let error = sandbox
        .validate(b"function main() { return {}; }")
        .expect_err("not wasm");
    assert_eq!(error, InvalidModule::NotWasm);
    assert_eq!(
        error.to_string(),
        "the code is not a WebAssembly module (missing \\0asm magic)"
    );
    assert_eq!(
        sandbox.validate(b"").expect_err("empty"),
        InvalidModule::NotWasm
    );

    let text = b"not wasm at all";
    let error = sandbox
        .prepare(CodeDigest::of(text), text)
        .expect_err("not wasm");
    assert!(
        matches!(error, SandboxError::Invalid(InvalidModule::NotWasm)),
        "{error}"
    );
}

#[test]
fn malformed_wasm_is_rejected_with_the_validator_message() {
    let sandbox = sandbox();
    let error = sandbox
        .validate(b"\0asm\x01\0\0\0\x7f")
        .expect_err("malformed");
    let InvalidModule::Malformed(message) = &error else {
        panic!("{error:?}")
    };
    assert!(!message.is_empty());
    assert!(
        error
            .to_string()
            .starts_with("the code is not a valid WebAssembly module: ")
    );
}

#[test]
fn a_module_without_start_is_not_a_command() {
    let sandbox = sandbox();
    let reactor = module(r#"(func (export "main"))"#);
    let error = sandbox.validate(&reactor).expect_err("no _start");
    assert_eq!(
        error,
        InvalidModule::MissingEntry {
            entry: "_start".into()
        }
    );
    assert!(
        error.to_string().contains("exports no `_start` function"),
        "{error}"
    );
    sandbox
        .validate_entry(&reactor, Some("main"))
        .expect("main is there");
    let error = sandbox
        .validate_entry(&reactor, Some("run"))
        .expect_err("no run");
    assert_eq!(
        error,
        InvalidModule::MissingEntry {
            entry: "run".into()
        }
    );
}

#[test]
fn a_wasi_command_is_valid() {
    sandbox().validate(&prints("{}", "", "")).expect("valid");
}

#[test]
fn imports_other_than_wasi_are_rejected() {
    let wasm =
        wat::parse_str(r#"(module (import "env" "host_secret" (func)) (func (export "_start")))"#)
            .expect("wat");
    let error = sandbox().validate(&wasm).expect_err("foreign import");
    assert_eq!(
        error,
        InvalidModule::ForeignImport {
            module: "env".into(),
            name: "host_secret".into()
        }
    );
}

#[test]
fn unknown_wasi_functions_fail_to_link() {
    let wasm = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))"#,
    )
    .expect("wat");
    let sandbox = sandbox();
    let error = sandbox
        .prepare(CodeDigest::of(&wasm), &wasm)
        .expect_err("link");
    assert!(matches!(error, SandboxError::Link(_)), "{error}");
    assert!(error.to_string().contains("no_such_call"), "{error}");
}
