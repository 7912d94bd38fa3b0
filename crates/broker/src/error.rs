//! Why the broker refused something.

use clemmys_proto::replay::ReplayError;
use clemmys_proto::{Measurement, ProtoError};
use clemmys_tee::{AttestError, CounterError};

/// A refusal or failure of the key broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The enclave's evidence did not verify.
    #[error("attestation refused: {0}")]
    Attestation(AttestError),
    /// The evidence verified but its measurement is not in the policy.
    #[error("enclave measurement {0} is not allowed by the action's policy")]
    MeasurementNotAllowed(Measurement),
    /// The evidence's digest is one the policy names, but measured by
    /// another kind of TEE (a `sim` enclave claiming an SGX enclave's
    /// MRENCLAVE): a downgrade, refused.
    #[error(
        "enclave measurement {presented} is of another TEE than the policy's {named}: refused as a TEE downgrade"
    )]
    MeasurementOfAnotherTee {
        /// What the evidence shows.
        presented: Measurement,
        /// The measurement of the policy with the same digest.
        named: Measurement,
    },
    /// The policy demands hardware and the evidence is not.
    #[error("the action's policy requires a hardware TEE; {0} evidence was presented")]
    HardwareRequired(&'static str),
    /// An admission request names a grant the broker does not know (it
    /// restarted, or the grant is forged): the enclave asks for a new grant.
    #[error("unknown grant: ask for the action key again")]
    UnknownGrant,
    /// No such confidential action.
    #[error("no confidential action of that name is registered")]
    UnknownAction,
    /// The client may not use this action.
    #[error("this client is not allowed to use the action")]
    ClientNotAllowed,
    /// A request made for an owner who has no live delegation to its
    /// signer (never delegated, expired, or revoked).
    #[error("this client holds no live delegation from owner {owner}")]
    NotDelegated {
        /// The owner named.
        owner: clemmys_proto::ClientId,
    },
    /// Delegations are made and withdrawn by owners only, never by a
    /// delegate on an owner's behalf.
    #[error("a delegate cannot delegate or revoke for its owner")]
    DelegateCannotDelegate,
    /// No delegation to revoke.
    #[error("no delegation to that gateway")]
    UnknownDelegation,
    /// A delegation or revocation stamped no later than the last change to
    /// that delegation: a replay, or older than the owner's last word.
    #[error(
        "the owner changed this delegation by a request stamped {changed_ms} (epoch ms); a delegation or revocation stamped no later is refused"
    )]
    DelegationChangedSince {
        /// The stamp of the last change.
        changed_ms: u64,
    },
    /// The identity has registered as many actions as one may.
    #[error("this client has registered {limit} confidential actions, the most one may")]
    TooManyActions {
        /// The bound.
        limit: usize,
    },
    /// The identity sent more requests than the broker answers per second.
    #[error("too many broker requests from this client: retry in a second")]
    Throttled,
    /// A registration did not move the version forward (replay or rollback).
    #[error(
        "version {requested} is not above the current version {current} (a replayed or stale registration)"
    )]
    VersionNotNewer {
        /// What was asked.
        requested: u64,
        /// What the broker holds.
        current: u64,
    },
    /// An invocation for a version other than the current one.
    #[error(
        "the invocation is for version {requested} but the action is at version {current}: refresh the action and retry"
    )]
    StaleVersion {
        /// The version invoked.
        requested: u64,
        /// The current version.
        current: u64,
    },
    /// A policy that allows no enclave at all.
    #[error("the policy allows no enclave measurement")]
    EmptyPolicy,
    /// A sequence's registration that allows enclave measurements: no
    /// enclave runs a sequence, so none may receive its key.
    #[error("a sequence's registration allows no enclave measurement")]
    SequenceWithMeasurements,
    /// A policy binding limits outside OpenWhisk's ranges.
    #[error("the policy's limits are out of range: {0}")]
    LimitsOutOfRange(#[from] clemmys_whisk::LimitError),
    /// A key asked for a registration that names a sequence, not an action.
    #[error("{0} is a confidential sequence, not an action: no enclave receives its key")]
    NotAnAction(String),
    /// A nonce was refused.
    #[error("{0}")]
    Replay(ReplayError),
    /// A protocol object did not open or parse.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The sealed state is older than the TEE's monotonic counter: the
    /// provider restored an old copy of it (a rollback). The broker does
    /// not start from it.
    #[error(
        "the broker's sealed state is at version {state_version} but its monotonic counter is at {counter}: it was rolled back"
    )]
    RolledBack {
        /// The version of the state found.
        state_version: u64,
        /// The counter's value.
        counter: u64,
    },
    /// Another broker on a copy of this one's sealed state wrote (the
    /// monotonic counter moved past this one's version): this one would
    /// serve without its revocations and updates, so it serves nothing.
    #[error(
        "the broker's sealed state is at version {state_version} but its monotonic counter is at {counter}: another broker on a copy of its state wrote, so this one serves nothing"
    )]
    Forked {
        /// The version of this broker's state.
        state_version: u64,
        /// The counter's value.
        counter: u64,
    },
    /// The sealed state was written over a version the monotonic counter
    /// never reached: the counter was reset or replaced. The broker does
    /// not start from it. (Not every reset shows: under a state written
    /// once over version 0, or in a format from before random steps, a
    /// reset counter reads as a lost counter step, which it catches up.
    /// A rollback is caught by [`BrokerError::RolledBack`], not by this.)
    #[error(
        "the broker's sealed state (version {state_version}) was written over version {previous}, but its monotonic counter is at {counter}: the counter was reset or replaced"
    )]
    CounterBehind {
        /// The version of the state found.
        state_version: u64,
        /// The version it was written over.
        previous: u64,
        /// The counter's value.
        counter: u64,
    },
    /// The TEE's monotonic counter failed.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// The sealed state could not be read or written.
    #[error("broker storage: {0}")]
    Storage(String),
}

impl BrokerError {
    /// The refusal's code, for admission answers.
    pub fn refusal(&self) -> clemmys_proto::refusal::Refusal {
        use clemmys_proto::refusal::Refusal;
        match self {
            Self::StaleVersion { .. } | Self::VersionNotNewer { .. } => Refusal::StaleVersion,
            Self::Replay(replay) => Refusal::from(*replay),
            Self::DelegationChangedSince { .. } => Refusal::Replayed,
            Self::ClientNotAllowed | Self::NotDelegated { .. } => Refusal::ClientNotAllowed,
            Self::Attestation(_)
            | Self::MeasurementNotAllowed(_)
            | Self::MeasurementOfAnotherTee { .. }
            | Self::HardwareRequired(_)
            | Self::NotAnAction(_)
            | Self::UnknownAction => Refusal::KeyRefused,
            Self::Proto(_) => Refusal::Tampered,
            _ => Refusal::Other,
        }
    }

    /// The refusal's code in a reply to a client: as [`Self::refusal`],
    /// but naming an unknown action and a throttled client apart, so that
    /// a client reads "not registered" only from the broker itself.
    pub fn client_refusal(&self) -> clemmys_proto::refusal::Refusal {
        use clemmys_proto::refusal::Refusal;
        match self {
            Self::UnknownAction => Refusal::UnknownAction,
            Self::Throttled => Refusal::Throttled,
            other => other.refusal(),
        }
    }

    /// What an enclave learns of this over its link: whether to ask for a
    /// new grant, or the refusal's reason.
    pub fn into_link(self) -> clemmys_proto::broker::LinkError {
        use clemmys_proto::broker::LinkError;
        match self {
            Self::UnknownGrant => LinkError::UnknownGrant,
            other => LinkError::Refused(other.to_string()),
        }
    }
}
