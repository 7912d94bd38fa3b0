//! Gateway credentials: the `UUID:KEY` that OpenWhisk clients (`wsk`, the
//! npm client, curl) present to an owner's gateway, in place of the
//! namespace API key. The provider issues and checks namespace keys, so a
//! gateway that accepted them would open every answer for the provider;
//! a gateway credential is issued by the gateway's enclave to its owner
//! only, and nobody without the gateway's sealed credential key can make
//! one.
//!
//! ```text
//! KEY = hex(HMAC-SHA256(credential key,
//!           frame("clemmys/gateway-credential/v1", gateway id, owner id, UUID)))
//! ```
//!
//! Checking one is recomputing it and comparing in constant time; the
//! gateway stores no list of issued credentials, only the UUIDs revoked
//! ([`crate::sealed::Revocations`]).
//!
//! The owner asks for one with a [`CredentialRequest`] signed by their
//! client identity (the Ed25519 key `--owner` names), over the RA-TLS
//! channel they verified. The request names the gateway and carries a
//! challenge the gateway made ([`Challenges`]): single use, short-lived,
//! and forgotten on restart, so a signed request cannot be replayed later,
//! after a restart, or to another gateway. This module is pure: no I/O,
//! time and randomness come in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clemmys_proto::ClientId;
use clemmys_proto::identity::{ClientIdentity, SIGNATURE_LEN};
use clemmys_proto::wire::Writer;
use clemmys_whisk::AuthKey;
use hmac::Mac as _;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const CREDENTIAL_FRAME: &str = "clemmys/gateway-credential/v1";
const REQUEST_FRAME: &str = "clemmys/gateway-credential-request/v1";
/// How long a challenge may be answered.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(120);
/// The most challenges outstanding; the oldest is dropped past it.
const MAX_CHALLENGES: usize = 256;
/// The longest UUID a revocation may name.
pub const MAX_UUID_LEN: usize = 64;

/// A credential, a credential request or a challenge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The presented `UUID:KEY` is not one this gateway issued (a
    /// namespace API key, a forgery, or one issued to another owner).
    #[error(
        "this gateway accepts only the credentials it issues to its owner (`clemmys gateway credential URL`): a namespace API key, which the provider holds, is refused"
    )]
    NotIssued,
    /// The credential was revoked by the owner.
    #[error("this gateway credential was revoked by the owner")]
    Revoked,
    /// The request was signed for another gateway.
    #[error("the request was signed for gateway {named}, not this one ({this})")]
    WrongGateway {
        /// The gateway the request names.
        named: ClientId,
        /// This gateway.
        this: ClientId,
    },
    /// The request is not from the owner this gateway acts for.
    #[error("the request is signed by {signer}, not by this gateway's owner")]
    NotTheOwner {
        /// Who claims to have signed it.
        signer: ClientId,
    },
    /// The signature does not verify under the owner's key.
    #[error("the request's signature does not verify under the owner's key")]
    BadSignature,
    /// The challenge was never issued, already used, or has expired.
    #[error("the request's challenge is unknown, used or expired: ask for a new one")]
    StaleChallenge,
    /// A field of the request is malformed.
    #[error("malformed credential request: {0}")]
    Malformed(&'static str),
    /// The gateway runs without an owner (test mode) and issues nothing.
    #[error(
        "this gateway runs in owner-less test mode (no --owner): it issues no credentials and protects nothing from the provider"
    )]
    NoOwner,
}

/// The secret credentials are MACed under: generated inside the enclave
/// on first start, kept sealed with its other secrets.
pub struct CredentialKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(<redacted>)")
    }
}

impl CredentialKey {
    /// A fresh key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// The key stored as `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The raw key, for sealing.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, gateway: &ClientId, owner: &ClientId, uuid: &str) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC-SHA256 accepts a 32-byte key");
        mac.update(
            &Writer::new(CREDENTIAL_FRAME)
                .bytes(gateway.as_bytes())
                .bytes(owner.as_bytes())
                .str(uuid)
                .finish(),
        );
        mac
    }

    /// The credential of `uuid` for `owner` at `gateway`.
    pub fn issue(&self, gateway: &ClientId, owner: &ClientId, uuid: String) -> AuthKey {
        let key = hex::encode(self.mac(gateway, owner, &uuid).finalize().into_bytes());
        AuthKey { uuid, key }
    }

    /// Whether `auth` is a credential this key issued for `owner` at
    /// `gateway` (revocation is the caller's to check).
    pub fn verify(
        &self,
        gateway: &ClientId,
        owner: &ClientId,
        auth: &AuthKey,
    ) -> Result<(), CredentialError> {
        let mut tag = [0u8; 32];
        hex::decode_to_slice(&auth.key, &mut tag).map_err(|_| CredentialError::NotIssued)?;
        // `verify_slice` compares in constant time.
        self.mac(gateway, owner, &auth.uuid)
            .verify_slice(&tag)
            .map_err(|_| CredentialError::NotIssued)
    }
}

impl CredentialKey {
    /// A MAC under this key of `message`, which its caller frames (as
    /// [`Writer`] does) apart from credentials.
    pub fn tag(&self, message: &[u8]) -> [u8; 32] {
        self.message_mac(message).finalize().into_bytes().into()
    }

    /// Whether `tag` is [`Self::tag`] of `message` (compared in constant
    /// time).
    pub fn verify_tag(&self, message: &[u8], tag: &[u8]) -> bool {
        self.message_mac(message).verify_slice(tag).is_ok()
    }

    fn message_mac(&self, message: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC-SHA256 accepts a 32-byte key");
        mac.update(message);
        mac
    }
}

/// A fresh credential's UUID (random, v4 format as OpenWhisk's).
pub fn new_uuid(rng: &mut impl CryptoRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    // `from_random` formats the UUID; its key half is not used.
    AuthKey::from_random(bytes, [0; 64]).uuid
}

/// What the owner asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum CredentialAction {
    /// Issue a new credential.
    Issue,
    /// Revoke the credential of this UUID.
    Revoke {
        /// Its UUID.
        uuid: String,
    },
}

/// An owner's request, before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRequest {
    /// What is asked.
    #[serde(flatten)]
    pub action: CredentialAction,
    /// The gateway it is for (its client identity, from its verified
    /// certificate).
    pub gateway: ClientId,
    /// The owner asking (the signer).
    pub owner: ClientId,
    /// The gateway's challenge, hex.
    pub challenge: String,
}

impl CredentialRequest {
    /// The signed bytes.
    fn transcript(&self) -> Vec<u8> {
        let (action, uuid) = match &self.action {
            CredentialAction::Issue => ("issue", ""),
            CredentialAction::Revoke { uuid } => ("revoke", uuid.as_str()),
        };
        Writer::new(REQUEST_FRAME)
            .str(action)
            .str(uuid)
            .bytes(self.gateway.as_bytes())
            .bytes(self.owner.as_bytes())
            .str(&self.challenge)
            .finish()
    }

    /// Signs it with the owner's identity.
    pub fn sign(self, owner: &ClientIdentity) -> SignedCredentialRequest {
        let signature = hex::encode(owner.sign(&self.transcript()));
        SignedCredentialRequest {
            request: self,
            signature,
        }
    }
}

/// A request with the owner's signature: what travels, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCredentialRequest {
    /// The request.
    #[serde(flatten)]
    pub request: CredentialRequest,
    /// Ed25519 over its transcript, hex.
    pub signature: String,
}

impl SignedCredentialRequest {
    /// Checks that this request is for `gateway`, from `owner`, and signed
    /// by them; answers the request and its challenge (which the caller
    /// must still [`Challenges::take`]).
    pub fn verify(
        self,
        gateway: &ClientId,
        owner: &ClientId,
    ) -> Result<(CredentialRequest, [u8; 32]), CredentialError> {
        let request = self.request;
        if request.gateway != *gateway {
            return Err(CredentialError::WrongGateway {
                named: request.gateway,
                this: *gateway,
            });
        }
        if request.owner != *owner {
            return Err(CredentialError::NotTheOwner {
                signer: request.owner,
            });
        }
        if let CredentialAction::Revoke { uuid } = &request.action
            && (uuid.is_empty() || uuid.len() > MAX_UUID_LEN)
        {
            return Err(CredentialError::Malformed("the UUID to revoke"));
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| CredentialError::Malformed("the signature is not 128 hex digits"))?;
        let mut challenge = [0u8; 32];
        hex::decode_to_slice(&request.challenge, &mut challenge)
            .map_err(|_| CredentialError::Malformed("the challenge is not 64 hex digits"))?;
        owner
            .verify(&request.transcript(), &signature, "credential request")
            .map_err(|_| CredentialError::BadSignature)?;
        Ok((request, challenge))
    }
}

/// The challenges a gateway handed out and not yet saw answered. In
/// memory only: a restart forgets them, and with them every request
/// signed before it.
#[derive(Debug, Default)]
pub struct Challenges {
    outstanding: VecDeque<([u8; 32], Instant)>,
}

impl Challenges {
    /// A new challenge, made at `now`.
    pub fn make(&mut self, rng: &mut impl CryptoRng, now: Instant) -> [u8; 32] {
        let mut challenge = [0u8; 32];
        rng.fill_bytes(&mut challenge);
        self.forget_expired(now);
        if self.outstanding.len() >= MAX_CHALLENGES {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((challenge, now));
        challenge
    }

    /// Uses up `challenge`: it must have been made here less than
    /// [`CHALLENGE_LIFETIME`] before `now`, and not used before.
    pub fn take(&mut self, challenge: &[u8; 32], now: Instant) -> Result<(), CredentialError> {
        self.forget_expired(now);
        let position = self
            .outstanding
            .iter()
            .position(|(made, _)| made == challenge)
            .ok_or(CredentialError::StaleChallenge)?;
        self.outstanding.remove(position);
        Ok(())
    }

    fn forget_expired(&mut self, now: Instant) {
        self.outstanding
            .retain(|(_, made)| now.saturating_duration_since(*made) < CHALLENGE_LIFETIME);
    }
}

#[cfg(test)]
mod tests {
    use clemmys_tee::os_rng;

    use super::*;

    fn ids() -> (ClientId, ClientIdentity) {
        let gateway = ClientIdentity::generate(&mut os_rng()).id();
        (gateway, ClientIdentity::generate(&mut os_rng()))
    }

    #[test]
    fn an_issued_credential_verifies_and_a_forged_one_does_not() {
        let key = CredentialKey::generate(&mut os_rng());
        let (gateway, owner) = ids();
        let uuid = new_uuid(&mut os_rng());
        let issued = key.issue(&gateway, &owner.id(), uuid.clone());
        assert_eq!(issued.key.len(), 64);
        assert_eq!(issued.uuid.len(), 36);
        key.verify(&gateway, &owner.id(), &issued).expect("issued");
        // A random key for the same UUID: a forgery.
        let forged = AuthKey::from_random([1; 16], [2; 64]);
        let forged = AuthKey {
            uuid: uuid.clone(),
            key: forged.key,
        };
        assert_eq!(
            key.verify(&gateway, &owner.id(), &forged),
            Err(CredentialError::NotIssued)
        );
        // A hex key of the right length, but not the MAC.
        let hex_forged = AuthKey {
            uuid,
            key: "00".repeat(32),
        };
        assert_eq!(
            key.verify(&gateway, &owner.id(), &hex_forged),
            Err(CredentialError::NotIssued)
        );
        // Valid for one owner and gateway only, and under one key only.
        let other = ClientIdentity::generate(&mut os_rng()).id();
        assert!(key.verify(&gateway, &other, &issued).is_err());
        assert!(key.verify(&other, &owner.id(), &issued).is_err());
        let another_key = CredentialKey::generate(&mut os_rng());
        assert!(another_key.verify(&gateway, &owner.id(), &issued).is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.secret_bytes())));
    }

    #[test]
    fn a_signed_request_verifies_only_for_its_gateway_and_owner() {
        let (gateway, owner) = ids();
        let request = CredentialRequest {
            action: CredentialAction::Issue,
            gateway,
            owner: owner.id(),
            challenge: hex::encode([7; 32]),
        };
        let signed = request.clone().sign(&owner);
        let (verified, challenge) = signed
            .clone()
            .verify(&gateway, &owner.id())
            .expect("verified");
        assert_eq!((verified, challenge), (request.clone(), [7; 32]));
        let other = ClientIdentity::generate(&mut os_rng());
        assert!(matches!(
            signed.clone().verify(&other.id(), &owner.id()),
            Err(CredentialError::WrongGateway { .. })
        ));
        assert!(matches!(
            signed.clone().verify(&gateway, &other.id()),
            Err(CredentialError::NotTheOwner { .. })
        ));
        // Signed by someone else claiming to be the owner.
        let impostor = request.clone().sign(&other);
        assert_eq!(
            impostor.verify(&gateway, &owner.id()),
            Err(CredentialError::BadSignature)
        );
        // The signature covers the action: an issue is not a revoke.
        let mut altered = signed.clone();
        altered.request.action = CredentialAction::Revoke { uuid: "u".into() };
        assert_eq!(
            altered.verify(&gateway, &owner.id()),
            Err(CredentialError::BadSignature)
        );
        // And the challenge.
        let mut rechallenged = signed;
        rechallenged.request.challenge = hex::encode([8; 32]);
        assert_eq!(
            rechallenged.verify(&gateway, &owner.id()),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn signed_requests_travel_as_json() {
        let (gateway, owner) = ids();
        let signed = CredentialRequest {
            action: CredentialAction::Revoke { uuid: "u-1".into() },
            gateway,
            owner: owner.id(),
            challenge: hex::encode([1; 32]),
        }
        .sign(&owner);
        let text = serde_json::to_string(&signed).expect("json");
        assert!(text.contains(r#""action":"revoke""#), "{text}");
        let back: SignedCredentialRequest = serde_json::from_str(&text).expect("parsed");
        assert_eq!(back, signed);
        back.verify(&gateway, &owner.id()).expect("verified");
    }

    #[test]
    fn a_challenge_is_used_once_and_expires() {
        let mut challenges = Challenges::default();
        let start = Instant::now();
        let first = challenges.make(&mut os_rng(), start);
        challenges.take(&first, start).expect("fresh");
        assert_eq!(
            challenges.take(&first, start),
            Err(CredentialError::StaleChallenge)
        );
        let second = challenges.make(&mut os_rng(), start);
        let late = start + CHALLENGE_LIFETIME;
        assert_eq!(
            challenges.take(&second, late),
            Err(CredentialError::StaleChallenge)
        );
        // Never made here (another gateway's, or before a restart).
        assert_eq!(
            challenges.take(&[9; 32], start),
            Err(CredentialError::StaleChallenge)
        );
        // Past the cap the oldest goes.
        let oldest = challenges.make(&mut os_rng(), start);
        for _ in 0..MAX_CHALLENGES {
            challenges.make(&mut os_rng(), start);
        }
        assert_eq!(
            challenges.take(&oldest, start),
            Err(CredentialError::StaleChallenge)
        );
    }
}
