//! Why the enclave refused to run something. Every message is safe to show
//! the provider: none contains plaintext.

use clemmys_proto::ProtoError;
use clemmys_proto::broker::LinkError;
use clemmys_proto::refusal::Refusal;
use clemmys_tee::AttestError;

/// What the provider may learn when a confidential action's code opened
/// but failed to compile, link or instantiate.
pub const GENERIC_COMPILE_ERROR: &str = "the confidential action's code failed to compile";

/// Why a confidential action's code failed to compile (wasmtime's message,
/// which names the code's imports, exports and offsets). Neither `Display`
/// nor `Debug` shows it: only the sealed answer to the client does.
pub struct CompileFailure(String);

impl CompileFailure {
    pub(crate) fn new(detail: String) -> Self {
        Self(detail)
    }

    /// The detailed message, to seal for the client only.
    pub(crate) fn detail(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CompileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompileFailure(<sealed>)")
    }
}

impl std::fmt::Display for CompileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(GENERIC_COMPILE_ERROR)
    }
}

/// A refusal or failure inside the enclave.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnclaveError {
    /// The broker's evidence did not verify or has the wrong measurement.
    #[error("the key broker failed attestation: {0}")]
    BrokerNotTrusted(String),
    /// The broker refused to release the action key.
    #[error("the key broker refused the action key: {0}")]
    KeyRefused(LinkError),
    /// The sealed invocation names another action than the one to run.
    #[error("the sealed parameters belong to action {claimed}, not {running}")]
    WrongAction {
        /// The action the client sealed for.
        claimed: String,
        /// The action the provider asked to run.
        running: String,
    },
    /// The host asked an enclave bound to one action to run or provision
    /// another: an enclave holds the key of one action only.
    #[error("this enclave serves action {bound}, not {requested}")]
    BoundToAnotherAction {
        /// The action the enclave is bound to.
        bound: String,
        /// The action the host asked for.
        requested: String,
    },
    /// The host asked an enclave bound to one owner's action to provision
    /// another owner's code of the same name: a fresh enclave serves it.
    #[error("this enclave serves the action as registered by {bound}, not by {found}")]
    OwnedByAnother {
        /// The owner the enclave is bound to.
        bound: clemmys_proto::ClientId,
        /// The owner the stored code names.
        found: clemmys_proto::ClientId,
    },
    /// The broker, asked again for the grant a request was opened under,
    /// answered with another registration's (another owner, key, code or
    /// entry): the request is not admitted under it.
    #[error("the key broker's grant is no longer the one this request was opened under")]
    GrantChanged,
    /// The invocation names an older version than the policy (rollback).
    #[error(
        "the invocation is for version {requested} but the policy requires version {current}: refresh the action and retry"
    )]
    VersionMismatch {
        /// The version the client sealed for.
        requested: u64,
        /// The version the broker's policy holds.
        current: u64,
    },
    /// The host named another entry export (`exec.main`) than the one the
    /// owner's policy binds: it would run other code of the same module.
    #[error(
        "the host names entry export {requested:?}, not the one the owner's policy binds for this code"
    )]
    EntryMismatch {
        /// The export the host named.
        requested: String,
    },
    /// A chain hop reached an enclave whose action is not the step the
    /// client's ticket names at that index (reordered, skipped or injected).
    #[error(
        "this action is not step {index} of the client's chain ticket (a reordered, skipped or injected step)"
    )]
    NotTheTicketsStep {
        /// The hop's index.
        index: u64,
    },
    /// The code the policy holds is not the code the ticket names.
    #[error("the action's code is not the code the client's chain ticket names for step {index}")]
    CodeNotTheTickets {
        /// The step.
        index: u64,
    },
    /// A session request names a session this enclave does not hold
    /// (expired, dropped, or opened with another enclave).
    #[error("unknown session (it ended or its enclave was replaced): seal it again")]
    UnknownSession,
    /// The client is not allowed by the action's policy.
    #[error("this client is not allowed to invoke the action")]
    ClientNotAllowed,
    /// The broker refused to admit the request: a replay, a stale
    /// timestamp, or a version that is no longer current. Its reason.
    #[error("{reason}")]
    Refused {
        /// Its code.
        refusal: Refusal,
        /// Its reason.
        reason: String,
    },
    /// The broker restarted and refuses requests stamped before its replay
    /// floor (it cannot know what it admitted before): the client re-seals
    /// the request stamped at or after `floor_ms` (MACed by the broker).
    #[error(
        "the request is stamped before {floor_ms}, the key broker's replay floor since it restarted: seal it again, stamped at or after it"
    )]
    StampedBeforeFloor {
        /// The earliest timestamp the broker admits, epoch ms.
        floor_ms: u64,
    },
    /// The stored code is missing.
    #[error("the action's sealed code is not stored")]
    CodeMissing,
    /// The stored code does not open under the policy: it was tampered
    /// with, substituted, or is an older version (rollback).
    #[error(
        "the stored code does not match the action's policy (tampered, substituted or rolled back): {0}"
    )]
    CodeRejected(ProtoError),
    /// The decrypted code does not compile. Why is derived from the sealed
    /// code, so it is shown only sealed to the client: this error says no
    /// more than that it failed.
    #[error("{GENERIC_COMPILE_ERROR}")]
    Compile(CompileFailure),
    /// A sealed object did not open or parse.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The enclave pool's maintenance thread could not start.
    #[error("cannot start the enclave pool's thread: {0}")]
    PoolThread(std::io::Error),
    /// The enclave's own attestation failed.
    #[error("enclave attestation failed: {0}")]
    Attestation(#[from] AttestError),
}

impl EnclaveError {
    /// The refusal's code, written into the provider-visible record so
    /// that the client decides by it (retry or not), not by the message.
    pub fn refusal(&self) -> Refusal {
        match self {
            Self::Refused { refusal, .. } => *refusal,
            Self::VersionMismatch { .. } => Refusal::StaleVersion,
            Self::UnknownSession => Refusal::UnknownSession,
            Self::StampedBeforeFloor { .. } => Refusal::StampedBeforeFloor,
            Self::WrongAction { .. }
            | Self::BoundToAnotherAction { .. }
            | Self::OwnedByAnother { .. } => Refusal::WrongAction,
            Self::GrantChanged => Refusal::KeyRefused,
            Self::EntryMismatch { .. } => Refusal::CodeRejected,
            Self::NotTheTicketsStep { .. } | Self::CodeNotTheTickets { .. } => {
                Refusal::NotTheTicketsStep
            }
            Self::ClientNotAllowed => Refusal::ClientNotAllowed,
            Self::CodeMissing | Self::CodeRejected(_) | Self::Compile(_) => Refusal::CodeRejected,
            Self::KeyRefused(_) | Self::BrokerNotTrusted(_) | Self::Attestation(_) => {
                Refusal::KeyRefused
            }
            Self::Proto(_) => Refusal::Tampered,
            Self::PoolThread(_) => Refusal::Other,
        }
    }
}
