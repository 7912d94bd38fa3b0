//! Fuzzing Clemmys: an oracle for every parser of bytes that someone we do
//! not trust controls, with the fixtures they start from.
//!
//! Most of these bytes come from the provider: sealed invocations, code and
//! chain hops reach the enclave through the untrusted host, evidence
//! reaches the client and the broker through it, sealed answers reach the
//! client. Request bodies come from any API user. Each oracle in
//! [`oracles`] is a function of arbitrary bytes that panics exactly when a
//! property is broken; its doc line names the property.
//!
//! Two drivers run them:
//! * `fuzz/fuzz_targets/<target>.rs`, thin [libFuzzer] targets for
//!   `cargo +nightly fuzz run <target>` (see `fuzz/README.md`);
//! * this crate's tests, on stable and in CI: every oracle over the valid
//!   fixture, every byte of it flipped, and thousands of deterministic
//!   random inputs and edits.
//!
//! An oracle reads its input through [`input::Input`]: raw bytes for the
//! parser, or edits (flip, insert, remove, truncate) to a valid object from
//! [`fixtures`], so that a fuzzer reaches the checks behind the framing.
//!
//! [libFuzzer]: https://llvm.org/docs/LibFuzzer.html

pub mod fixtures;
pub mod input;
pub mod oracles;

/// An oracle: panics if and only if its property is broken for `data`.
pub type Oracle = fn(&[u8]);

/// A fuzz target: its name (of `fuzz/fuzz_targets/<name>.rs`), its oracle
/// and the valid object its edits apply to.
#[derive(Clone, Copy)]
pub struct Target {
    /// The fuzz target's name.
    pub name: &'static str,
    /// What it checks.
    pub oracle: Oracle,
    /// The valid bytes its edits start from (empty for `wire`, which takes
    /// no edits).
    pub valid: fn() -> &'static [u8],
}

impl Target {
    /// Inputs a fuzzer should start from: the valid object, raw and as an
    /// empty edit list.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        vec![input::raw((self.valid)()), input::edits(&[])]
    }
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "wire",
        oracle: oracles::wire,
        valid: || &[],
    },
    Target {
        name: "invocation",
        oracle: oracles::invocation,
        valid: || &fixtures::fixtures().invocation,
    },
    Target {
        name: "session",
        oracle: oracles::session,
        valid: || &fixtures::fixtures().session_invocation,
    },
    Target {
        name: "session_answer",
        oracle: oracles::session_answer,
        valid: || &fixtures::fixtures().session_answer,
    },
    Target {
        name: "sealed_code",
        oracle: oracles::sealed_code,
        valid: || &fixtures::fixtures().sealed_code,
    },
    Target {
        name: "opened_code",
        oracle: oracles::opened_code,
        valid: || &fixtures::fixtures().code_with_defaults,
    },
    Target {
        name: "chain_hop",
        oracle: oracles::chain_hop,
        valid: || &fixtures::fixtures().hop,
    },
    Target {
        name: "chain_session_hop",
        oracle: oracles::chain_session_hop,
        valid: || &fixtures::fixtures().session_hop,
    },
    Target {
        name: "chain_ticket",
        oracle: oracles::chain_ticket,
        valid: || &fixtures::fixtures().ticket_json,
    },
    Target {
        name: "chain_plan",
        oracle: oracles::chain_plan,
        valid: || &fixtures::fixtures().plan_bytes,
    },
    Target {
        name: "answer",
        oracle: oracles::answer,
        valid: || &fixtures::fixtures().sealed_result,
    },
    Target {
        name: "evidence",
        oracle: oracles::evidence,
        valid: || &fixtures::fixtures().evidence.data,
    },
    Target {
        name: "broker_request",
        oracle: oracles::broker_request,
        valid: || &fixtures::fixtures().broker_request,
    },
    Target {
        name: "broker_reply",
        oracle: oracles::broker_reply,
        valid: || &fixtures::fixtures().broker_reply,
    },
    Target {
        name: "grant",
        oracle: oracles::grant,
        valid: || &fixtures::fixtures().grant,
    },
    Target {
        name: "key_request",
        oracle: oracles::key_request,
        valid: || &fixtures::fixtures().key_request_json,
    },
    Target {
        name: "broker_identity",
        oracle: oracles::broker_identity,
        valid: || &fixtures::fixtures().broker_identity_json,
    },
    Target {
        name: "admit_request",
        oracle: oracles::admit_request,
        valid: || &fixtures::fixtures().admit_request_json,
    },
    Target {
        name: "admit_reply",
        oracle: oracles::admit_reply,
        valid: || &fixtures::fixtures().admit_reply_json,
    },
    Target {
        name: "ratls_certificate",
        oracle: oracles::ratls_certificate,
        valid: || &fixtures::fixtures().ratls_certificate,
    },
    Target {
        name: "credential_request",
        oracle: oracles::credential_request,
        valid: || &fixtures::fixtures().credential_request_json,
    },
    Target {
        name: "action_put",
        oracle: oracles::action_put,
        valid: || oracles::ACTION_PUT,
    },
    Target {
        name: "trigger_put",
        oracle: oracles::trigger_put,
        valid: || oracles::TRIGGER_PUT,
    },
    Target {
        name: "web_request",
        oracle: oracles::web_request,
        valid: || oracles::WEB_REQUEST,
    },
    Target {
        name: "web_result",
        oracle: oracles::web_result,
        valid: || oracles::WEB_RESULT,
    },
    Target {
        name: "package_put",
        oracle: oracles::package_put,
        valid: || oracles::PACKAGE_PUT,
    },
    Target {
        name: "store_record",
        oracle: oracles::store_record,
        valid: || oracles::STORE_RECORD,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}
