//! What a host hands an enclave to run, parsed once into one typed value,
//! so that the enclave then follows one path per kind (authenticate, admit,
//! execute, seal) and never looks at the bytes again.

use crate::ProtoError;
use crate::chain::SealedHop;
use crate::chain_session::SessionHop;
use crate::invoke::SealedInvocation;
use crate::session::SessionInvocation;
use crate::wire::Reader;

/// One sealed input, by what its frame says it is. Nothing in it is
/// authenticated yet: each kind is opened with its own keys.
#[derive(Debug, Clone)]
pub enum SealedInput {
    /// A client's invocation sealed to the action key (HPKE, signed).
    Invocation(SealedInvocation),
    /// A request in a session a client opened with this enclave.
    SessionRequest(SessionInvocation),
    /// One step of a confidential chain's first run.
    ChainHop(SealedHop),
    /// One step of a later run of a chain session.
    ChainSessionHop(SessionHop),
}

impl SealedInput {
    /// Parses `bytes` by the domain of their frame; any other domain, or a
    /// frame that does not parse whole, is malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let domain = Reader::domain(bytes)?;
        if domain == SealedInvocation::FRAME.as_bytes() {
            SealedInvocation::from_bytes(bytes).map(Self::Invocation)
        } else if domain == SessionInvocation::FRAME.as_bytes() {
            SessionInvocation::from_bytes(bytes).map(Self::SessionRequest)
        } else if domain == SealedHop::FRAME.as_bytes() {
            SealedHop::from_bytes(bytes).map(Self::ChainHop)
        } else if domain == SessionHop::FRAME.as_bytes() {
            SessionHop::from_bytes(bytes).map(Self::ChainSessionHop)
        } else {
            Err(ProtoError::Malformed("not a sealed input of this version"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Writer;

    fn session_request(counter: u64) -> Vec<u8> {
        Writer::new(SessionInvocation::FRAME)
            .bytes(&[1; 16])
            .u64(counter)
            .u64(9)
            .bytes(&[1, 2, 3])
            .finish()
    }

    #[test]
    fn each_frame_parses_to_its_own_kind() {
        assert!(matches!(
            SealedInput::from_bytes(&session_request(7)),
            Ok(SealedInput::SessionRequest(parsed)) if parsed.counter == 7
        ));
        let hop = Writer::new(SessionHop::FRAME)
            .bytes(&[2; 16])
            .u64(1)
            .u64(3)
            .u64(4)
            .bytes(&[5])
            .finish();
        assert!(matches!(
            SealedInput::from_bytes(&hop),
            Ok(SealedInput::ChainSessionHop(parsed)) if parsed.header.index == 3
        ));
    }

    #[test]
    fn unknown_truncated_and_trailing_frames_are_malformed() {
        let unknown = Writer::new("clemmys/sealed-invocation/v0").u64(1).finish();
        assert!(matches!(
            SealedInput::from_bytes(&unknown),
            Err(ProtoError::Malformed(_))
        ));
        assert!(SealedInput::from_bytes(&[]).is_err());
        assert!(SealedInput::from_bytes(&[0, 0, 0, 9, b'c']).is_err());
        let mut trailing = session_request(7);
        trailing.push(0);
        assert!(SealedInput::from_bytes(&trailing).is_err());
        let mut truncated = session_request(7);
        truncated.pop();
        assert!(SealedInput::from_bytes(&truncated).is_err());
    }
}
