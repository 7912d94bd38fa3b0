//! Why an enclave or the broker refused a request, as a code that crosses
//! every boundary: in the broker's MACed admission answers, in the
//! provider-visible record of a refused activation (`"refusal"`), and in the
//! client's errors. Callers decide by variant (retry or not), never by
//! reading a message.
//!
//! In a provider-visible record the code is only a hint: the provider can
//! change it. The worst it can do with that is make a client retry once,
//! or give up; it cannot make a refused request count as answered.

use serde::{Deserialize, Serialize};

/// One reason for refusing a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// Sealed for a version that is no longer the action's current one.
    #[error("stale version")]
    StaleVersion,
    /// A session (or chain session) the enclave does not hold.
    #[error("unknown session")]
    UnknownSession,
    /// Stamped before the broker's replay floor (it restarted).
    #[error("stamped before the broker's replay floor")]
    StampedBeforeFloor,
    /// Seen before: a replay.
    #[error("replayed")]
    Replayed,
    /// A session counter too far below the highest one seen to tell
    /// whether it is a replay.
    #[error("counter below the replay window")]
    CounterBelowWindow,
    /// Stamped too long ago or too far ahead.
    #[error("stale or future timestamp")]
    StaleTimestamp,
    /// Sealed for another action, or for another owner's.
    #[error("sealed for another action")]
    WrongAction,
    /// Not the step the chain ticket names at that position.
    #[error("not the ticket's step")]
    NotTheTicketsStep,
    /// The client is not allowed by the action's policy.
    #[error("client not allowed")]
    ClientNotAllowed,
    /// The stored code does not open under the policy, or does not run.
    #[error("code rejected")]
    CodeRejected,
    /// The broker would not release the action key.
    #[error("key refused")]
    KeyRefused,
    /// Something sealed did not open or parse: tampering.
    #[error("tampered or malformed")]
    Tampered,
    /// The broker holds no registration of that action by that owner.
    #[error("not registered")]
    UnknownAction,
    /// Too many requests from that identity for now.
    #[error("throttled")]
    Throttled,
    /// Anything else.
    #[error("refused")]
    Other,
}

impl Refusal {
    /// Whether the same request, sealed again (after refreshing the action
    /// or restamping), may succeed: the client retries these once.
    pub fn is_cured_by_a_fresh_request(self) -> bool {
        matches!(
            self,
            Self::StaleVersion
                | Self::UnknownSession
                | Self::StampedBeforeFloor
                | Self::CounterBelowWindow
        )
    }

    /// The code as it is written in records.
    pub fn code(self) -> &'static str {
        match self {
            Self::StaleVersion => "stale_version",
            Self::UnknownSession => "unknown_session",
            Self::StampedBeforeFloor => "stamped_before_floor",
            Self::Replayed => "replayed",
            Self::CounterBelowWindow => "counter_below_window",
            Self::StaleTimestamp => "stale_timestamp",
            Self::WrongAction => "wrong_action",
            Self::NotTheTicketsStep => "not_the_tickets_step",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::CodeRejected => "code_rejected",
            Self::KeyRefused => "key_refused",
            Self::Tampered => "tampered",
            Self::UnknownAction => "unknown_action",
            Self::Throttled => "throttled",
            Self::Other => "other",
        }
    }
}

impl From<crate::replay::ReplayError> for Refusal {
    fn from(error: crate::replay::ReplayError) -> Self {
        use crate::replay::ReplayError;
        match error {
            ReplayError::Replayed => Self::Replayed,
            ReplayError::PredatesStart { .. } => Self::StampedBeforeFloor,
            ReplayError::BelowWindow => Self::CounterBelowWindow,
            ReplayError::Stale | ReplayError::Future => Self::StaleTimestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serialized_names_and_round_trip() {
        for refusal in [
            Refusal::StaleVersion,
            Refusal::UnknownSession,
            Refusal::StampedBeforeFloor,
            Refusal::Replayed,
            Refusal::CounterBelowWindow,
            Refusal::StaleTimestamp,
            Refusal::WrongAction,
            Refusal::NotTheTicketsStep,
            Refusal::ClientNotAllowed,
            Refusal::CodeRejected,
            Refusal::KeyRefused,
            Refusal::Tampered,
            Refusal::UnknownAction,
            Refusal::Throttled,
            Refusal::Other,
        ] {
            let json = serde_json::to_value(refusal).expect("serializes");
            assert_eq!(json, serde_json::Value::String(refusal.code().into()));
            let back: Refusal = serde_json::from_value(json).expect("parses");
            assert_eq!(back, refusal);
        }
        assert!(Refusal::StaleVersion.is_cured_by_a_fresh_request());
        assert!(!Refusal::Replayed.is_cured_by_a_fresh_request());
    }
}
