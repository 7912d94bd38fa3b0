//! Sessions: after one attested, HPKE-sealed and signed invocation that asks
//! for it (`InvocationHeader::open_session`), the client and the enclave
//! share a secret exported from that invocation's HPKE context. Later
//! invocations of the same action and version use only symmetric
//! cryptography under keys derived from it: AES-256-GCM with the request
//! counter as nonce ([`ChannelKey`]), and an HMAC-SHA256 receipt.
//!
//! Why it is as strong for the client: the session secret comes from an
//! HPKE context with the action key, which the broker releases only to
//! enclaves matching the policy, and the opening answer carried a receipt
//! signed by that enclave. Only the client and that enclave know the
//! secret, so a request that opens under it is the client's, and an answer
//! that opens and whose receipt MAC verifies is that enclave's. Replays:
//! only that enclave can open the session's requests, and it accepts each
//! counter once ([`CounterWindow`](crate::replay::CounterWindow)); the
//! broker still checks the session's version (leased by the enclave for up
//! to a second, see `clemmys_enclave`'s session lease). What it gives up:
//! a session receipt convinces the client, not a third party (it is a MAC,
//! not a signature).
//!
//! The answer is compact, because every byte of it is stored in the
//! activation record: one AEAD message holding the status (one byte), the
//! receipt's MAC (HMAC-SHA256 truncated to 128 bits, as RFC 4868 does), the
//! result JSON exactly as the enclave hashed it (length-prefixed) and the
//! logs. The AEAD's associated data names the format version and binds the
//! activation id and request. The client knows every other field of the
//! [`SessionReceipt`] (its request, the record's activation id) and
//! rebuilds it to check the MAC.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::invoke::{AnswerKeys, PendingAnswer};
use crate::suite::{ChannelKey, ExportedKey};
use crate::wire::{Reader, Writer};
use crate::{Digest, ProtoError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

// v2: the channel keys are AES-256-GCM (v1 was ChaCha20-Poly1305).
const FRAME: &str = "clemmys/session-invocation/v2";
/// Bytes of a session receipt's MAC: HMAC-SHA256 truncated to 128 bits.
pub const SESSION_MAC_BYTES: usize = 16;
const SECRET_LABEL: &str = "clemmys/session-secret/v2";
const ID_LABEL: &str = "clemmys/session-id/v2";

/// Random bytes the enclave draws when it opens a session and sends, sealed
/// in the opening answer, for both ends to derive the session's keys with.
/// Without them the keys would follow from the opening invocation alone,
/// and an invocation delivered again (a provider running two brokers on
/// copies of one state gets it admitted twice) would open the same session
/// again with a fresh replay window: the enclave would then answer its
/// requests again under the same key and counter nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSalt(#[serde(with = "crate::invoke::hex_bytes")] pub [u8; 16]);

impl SessionSalt {
    /// Fresh random bytes.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self(salt)
    }
}

/// The keys of one session, derived from its secret; zeroed on drop.
#[derive(Debug)]
pub struct SessionKeys {
    /// The session id (a prefix of SHA-256 of the opening invocation's
    /// digest and the enclave's salt).
    pub id: [u8; 16],
    secret: ExportedKey,
    request: ChannelKey,
    result: ChannelKey,
    receipt: ExportedKey,
}

impl SessionKeys {
    /// The session that the invocation with these answer keys and input
    /// hash opened, with the enclave's `salt`. Client and enclave derive
    /// the same.
    pub fn derive(
        answer: &AnswerKeys,
        input_hash: &Digest,
        salt: &SessionSalt,
    ) -> Result<Self, ProtoError> {
        // The id is salted too: an opening admitted twice (a forked
        // broker) gives two sessions side by side, and the one the client
        // kept goes on, its requests still refused a second time.
        let id_frame = Writer::new(ID_LABEL)
            .bytes(input_hash.as_bytes())
            .bytes(&salt.0)
            .finish();
        let mut id = [0u8; 16];
        id.copy_from_slice(&Digest::of(&id_frame).as_bytes()[..16]);
        let label = Writer::new(SECRET_LABEL).bytes(&salt.0).finish();
        Self::from_secret(id, answer.result.derive(&label)?)
    }

    /// The keys of session `id` from its secret (the client's keyring).
    pub fn from_secret(id: [u8; 16], secret: ExportedKey) -> Result<Self, ProtoError> {
        Ok(Self {
            id,
            // v2 labels: keys of another algorithm than v1's.
            request: ChannelKey::derive(&secret, b"clemmys/session-request-key/v2")?,
            result: ChannelKey::derive(&secret, b"clemmys/session-result-key/v2")?,
            receipt: secret.derive(b"clemmys/session-receipt-key/v1")?,
            secret,
        })
    }

    /// The session secret, for the client's keyring.
    pub fn secret(&self) -> &ExportedKey {
        &self.secret
    }

    /// The session a client opened with `pending`, whose answer carried
    /// `salt`.
    pub fn for_client(pending: &PendingAnswer, salt: &SessionSalt) -> Result<Self, ProtoError> {
        Self::derive(&pending.keys, &pending.input_hash, salt)
    }

    /// The broker nonce of request `counter`: unique per session and counter.
    pub fn replay_nonce(&self, counter: u64) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.id[..8]);
        nonce[8..].copy_from_slice(&counter.to_be_bytes());
        nonce
    }
}

/// What a session request binds besides its counter and time: the action,
/// its version and code, as both sides know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBinding<'a> {
    /// Namespace of the action.
    pub namespace: &'a str,
    /// Name of the action.
    pub action: &'a str,
    /// Policy version of the session.
    pub version: u64,
    /// Code digest of that version.
    pub code_digest: Digest,
}

/// One request within a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInvocation {
    /// Which session.
    pub session_id: [u8; 16],
    /// Strictly increasing per session (the AEAD nonce and replay nonce).
    pub counter: u64,
    /// The client's clock, epoch ms.
    pub timestamp_ms: u64,
    ciphertext: Vec<u8>,
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

fn request_aad(
    binding: &SessionBinding<'_>,
    id: &[u8; 16],
    counter: u64,
    timestamp_ms: u64,
) -> Vec<u8> {
    Writer::new("clemmys/session-aad/v1")
        .str(binding.namespace)
        .str(binding.action)
        .u64(binding.version)
        .bytes(binding.code_digest.as_bytes())
        .bytes(id)
        .u64(counter)
        .u64(timestamp_ms)
        .finish()
}

fn answer_aad(activation_id: &str, id: &[u8; 16], counter: u64) -> Vec<u8> {
    // v3: one message, `status ‖ mac ‖ output length ‖ output ‖ logs`.
    Writer::new("clemmys/session-answer-aad/v3")
        .str(activation_id)
        .bytes(id)
        .u64(counter)
        .finish()
}

impl SessionInvocation {
    pub(crate) const FRAME: &'static str = FRAME;

    /// Seals `params` (client side).
    pub fn seal(
        keys: &SessionKeys,
        binding: &SessionBinding<'_>,
        counter: u64,
        timestamp_ms: u64,
        params: &[u8],
    ) -> Result<Self, ProtoError> {
        let aad = request_aad(binding, &keys.id, counter, timestamp_ms);
        let ciphertext = keys.request.seal(params, &aad, &nonce(counter))?;
        Ok(Self {
            session_id: keys.id,
            counter,
            timestamp_ms,
            ciphertext,
        })
    }

    /// Opens the parameters (enclave side).
    pub fn open(
        &self,
        keys: &SessionKeys,
        binding: &SessionBinding<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
        // The caller found `keys` by this id; checking it here too means
        // the function alone refuses a request naming another session.
        if self.session_id != keys.id {
            return Err(ProtoError::Tampered(
                "session parameters (another session's id)",
            ));
        }
        let aad = request_aad(binding, &keys.id, self.counter, self.timestamp_ms);
        keys.request
            .open(
                &self.ciphertext,
                &aad,
                &nonce(self.counter),
                "session parameters",
            )
            .map(Zeroizing::new)
    }

    /// The digest the receipt names as the input.
    pub fn input_hash(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(FRAME)
            .bytes(&self.session_id)
            .u64(self.counter)
            .u64(self.timestamp_ms)
            .bytes(&self.ciphertext)
            .finish()
    }

    /// Parses the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, FRAME)?;
        let invocation = Self {
            session_id: reader.array()?,
            counter: reader.u64()?,
            timestamp_ms: reader.u64()?,
            ciphertext: reader.bytes()?.to_vec(),
        };
        reader.finish()?;
        Ok(invocation)
    }
}

/// What the enclave attests about one session request, under the session's
/// receipt key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReceipt {
    /// The activation id.
    pub activation_id: String,
    /// The session.
    #[serde(with = "crate::invoke::hex_bytes")]
    pub session_id: [u8; 16],
    /// The request counter.
    pub counter: u64,
    /// Policy version that ran.
    pub version: u64,
    /// SHA-256 of the module that ran.
    pub code_digest: Digest,
    /// The export of the module that ran (the policy's entry).
    pub entry: String,
    /// Digest of the session request.
    pub input_hash: Digest,
    /// Digest of the result JSON.
    pub output_hash: Digest,
    /// HMAC-SHA256 over the above, truncated to [`SESSION_MAC_BYTES`]
    /// (hex in JSON); zero until computed or checked.
    #[serde(with = "crate::invoke::hex_bytes")]
    pub mac: [u8; SESSION_MAC_BYTES],
}

fn receipt_transcript(receipt: &SessionReceipt) -> Vec<u8> {
    Writer::new("clemmys/session-receipt/v2")
        .str(&receipt.activation_id)
        .bytes(&receipt.session_id)
        .u64(receipt.counter)
        .u64(receipt.version)
        .bytes(receipt.code_digest.as_bytes())
        .str(&receipt.entry)
        .bytes(receipt.input_hash.as_bytes())
        .bytes(receipt.output_hash.as_bytes())
        .finish()
}

impl SessionReceipt {
    fn hmac(&self, keys: &SessionKeys) -> Result<HmacSha256, ProtoError> {
        use hmac::{KeyInit, Mac};
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(keys.receipt.as_bytes())
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
        mac.update(&receipt_transcript(self));
        Ok(mac)
    }

    /// Computes the MAC (enclave side).
    pub fn seal(mut self, keys: &SessionKeys) -> Result<Self, ProtoError> {
        use hmac::Mac;
        let full = self.hmac(keys)?.finalize().into_bytes();
        self.mac.copy_from_slice(&full[..SESSION_MAC_BYTES]);
        Ok(self)
    }

    /// Checks the MAC (client side), in constant time.
    pub fn verify(&self, keys: &SessionKeys) -> Result<(), ProtoError> {
        self.verify_tag(keys, &self.mac)
    }

    fn verify_tag(&self, keys: &SessionKeys, tag: &[u8]) -> Result<(), ProtoError> {
        use hmac::Mac;
        if tag.len() != SESSION_MAC_BYTES {
            return Err(ProtoError::BadSignature("session receipt"));
        }
        self.hmac(keys)?
            .verify_truncated_left(tag)
            .map_err(|_| ProtoError::BadSignature("session receipt"))
    }
}

/// A session answer, as the client opened it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionResultBody {
    /// How the run ended.
    pub status: clemmys_whisk::ActivationStatus,
    /// The result.
    pub result: serde_json::Value,
    /// The log lines.
    pub logs: Vec<String>,
    /// The MAC'd receipt.
    pub receipt: SessionReceipt,
}

/// Bytes of the result length in a sealed session answer.
const OUTPUT_LEN_BYTES: usize = 4;

/// Seals a session answer (enclave side) in one AEAD message under the
/// session's result key, with the request counter as nonce:
/// `status ‖ receipt MAC ‖ u32 length of output ‖ output ‖ logs JSON`,
/// where `output` is the result JSON that `receipt.output_hash` hashes.
/// The logs travel with the result: neither can be dropped, swapped or
/// replaced without the other failing to open.
pub fn seal_session_answer(
    status: clemmys_whisk::ActivationStatus,
    output: &[u8],
    receipt: &SessionReceipt,
    logs: &[String],
    keys: &SessionKeys,
) -> Result<Vec<u8>, ProtoError> {
    let output_len = u32::try_from(output.len())
        .map_err(|_| ProtoError::Malformed("session result longer than 4 GiB"))?;
    let mut answer = Zeroizing::new(Vec::with_capacity(
        1 + SESSION_MAC_BYTES + OUTPUT_LEN_BYTES + output.len() + 2,
    ));
    answer.push(status.code());
    answer.extend_from_slice(&receipt.mac);
    answer.extend_from_slice(&output_len.to_be_bytes());
    answer.extend_from_slice(output);
    serde_json::to_writer(&mut *answer, logs).map_err(|e| ProtoError::Crypto(e.to_string()))?;
    keys.result.seal(
        &answer,
        &answer_aad(&receipt.activation_id, &keys.id, receipt.counter),
        &nonce(receipt.counter),
    )
}

/// Opens a session answer (client side) and checks its receipt: `expected`
/// is the receipt of the client's request as the client knows it
/// (activation id, session, counter, version, code, input hash); the
/// answer supplies the output hash, of the result JSON it carries, and the
/// MAC, which must verify over the whole.
pub fn open_session_result(
    sealed: &[u8],
    keys: &SessionKeys,
    expected: SessionReceipt,
) -> Result<SessionResultBody, ProtoError> {
    let aad = answer_aad(&expected.activation_id, &keys.id, expected.counter);
    let plaintext = Zeroizing::new(keys.result.open(
        sealed,
        &aad,
        &nonce(expected.counter),
        "sealed result",
    )?);
    let malformed = || ProtoError::Malformed("session result");
    let (&status, rest) = plaintext.split_first().ok_or_else(malformed)?;
    let status = clemmys_whisk::ActivationStatus::from_code(status).ok_or_else(malformed)?;
    let (tag, rest) = rest
        .split_at_checked(SESSION_MAC_BYTES)
        .ok_or_else(malformed)?;
    let (output_len, rest) = rest
        .split_first_chunk::<OUTPUT_LEN_BYTES>()
        .ok_or_else(malformed)?;
    let output_len = usize::try_from(u32::from_be_bytes(*output_len)).map_err(|_| malformed())?;
    let (output, logs) = rest.split_at_checked(output_len).ok_or_else(malformed)?;
    let mut receipt = SessionReceipt {
        output_hash: Digest::of(output),
        ..expected
    };
    receipt.verify_tag(keys, tag)?;
    receipt.mac.copy_from_slice(tag);
    let result = serde_json::from_slice(output).map_err(|_| malformed())?;
    let logs = serde_json::from_slice(logs).map_err(|_| ProtoError::Malformed("session logs"))?;
    Ok(SessionResultBody {
        status,
        result,
        logs,
        receipt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ClientIdentity;
    use crate::invoke::{InvocationHeader, SealedInvocation, seal_invocation};
    use crate::suite::KemKeyPair;
    use crate::suite::tests::os_rng;

    fn binding() -> SessionBinding<'static> {
        SessionBinding {
            namespace: "guest",
            action: "a",
            version: 2,
            code_digest: Digest::of(b"code"),
        }
    }

    /// An invocation that asks to open a session, as the client seals it,
    /// with the action's keys and code digest the enclave opens it with.
    fn opening_invocation() -> (SealedInvocation, PendingAnswer, KemKeyPair, Digest) {
        let mut rng = os_rng();
        let client = ClientIdentity::generate(&mut rng);
        let action = KemKeyPair::generate(&mut rng);
        let header = InvocationHeader {
            namespace: "guest".into(),
            action: "a".into(),
            version: 2,
            nonce: [1; 16],
            timestamp_ms: 1,
            client: client.id(),
            open_session: true,
        };
        let code = Digest::of(b"code");
        let (sealed, pending) =
            seal_invocation(&client, &action.public(), header, &code, b"{}", &mut rng)
                .expect("seal");
        (sealed, pending, action, code)
    }

    /// Opens a session the way client and enclave do; both sides' keys.
    fn open_session() -> (SessionKeys, SessionKeys) {
        let (sealed, pending, action, code) = opening_invocation();
        let opened = sealed.open(&action, &code).expect("open");
        let salt = SessionSalt::generate(&mut os_rng());
        let enclave =
            SessionKeys::derive(&opened.answer_keys, &sealed.input_hash(), &salt).expect("keys");
        (
            SessionKeys::for_client(&pending, &salt).expect("keys"),
            enclave,
        )
    }

    #[test]
    fn an_invocation_opening_a_session_again_opens_other_keys() {
        let (sealed, _, action, code) = opening_invocation();
        let mut rng = os_rng();
        let [first, again] = [(); 2].map(|()| {
            let opened = sealed.open(&action, &code).expect("open");
            let salt = SessionSalt::generate(&mut rng);
            SessionKeys::derive(&opened.answer_keys, &sealed.input_hash(), &salt).expect("keys")
        });
        assert_ne!(first.id, again.id, "two sessions side by side");
        assert_ne!(
            first.secret().as_bytes(),
            again.secret().as_bytes(),
            "under other keys"
        );
    }

    #[test]
    fn requests_and_answers_round_trip_under_the_shared_keys() {
        let (client, enclave) = open_session();
        assert_eq!(client.id, enclave.id);
        let request =
            SessionInvocation::seal(&client, &binding(), 7, 100, br#"{"x":1}"#).expect("seal");
        let parsed = SessionInvocation::from_bytes(&request.to_bytes()).expect("parse");
        assert!(matches!(
            crate::inbound::SealedInput::from_bytes(&request.to_bytes()),
            Ok(crate::inbound::SealedInput::SessionRequest(_))
        ));
        assert_eq!(
            parsed.open(&enclave, &binding()).expect("open").as_slice(),
            br#"{"x":1}"#
        );

        let expected = SessionReceipt {
            activation_id: "id".into(),
            session_id: enclave.id,
            counter: 7,
            version: 2,
            code_digest: Digest::of(b"code"),
            entry: "_start".into(),
            input_hash: parsed.input_hash(),
            output_hash: Digest::of(b""),
            mac: [0; SESSION_MAC_BYTES],
        };
        let receipt = SessionReceipt {
            output_hash: Digest::of(b"{}"),
            ..expected.clone()
        }
        .seal(&enclave)
        .expect("mac");
        let status = clemmys_whisk::ActivationStatus::Success;
        let result =
            seal_session_answer(status, b"{}", &receipt, &["l".into(), "m".into()], &enclave)
                .expect("seal");
        let opened = open_session_result(&result, &client, expected.clone()).expect("open");
        assert_eq!(opened.receipt, receipt, "the client rebuilds the receipt");
        assert_eq!(opened.result, serde_json::json!({}));
        assert_eq!(opened.logs, ["l", "m"], "the logs travel with the result");
        opened.receipt.verify(&client).expect("mac verifies");
        assert!(
            receipt
                .verify_tag(&client, &receipt.mac[..SESSION_MAC_BYTES - 1])
                .is_err(),
            "a shorter tag is refused"
        );
        let mut flipped = receipt.clone();
        flipped.mac[0] ^= 1;
        assert!(flipped.verify(&client).is_err(), "another tag is refused");
        let expecting = |change: fn(&mut SessionReceipt)| {
            let mut other = expected.clone();
            change(&mut other);
            other
        };
        assert!(
            open_session_result(&result, &client, expecting(|r| r.counter = 8)).is_err(),
            "bound to its counter"
        );
        assert!(
            open_session_result(
                &result,
                &client,
                expecting(|r| r.activation_id = "other".into())
            )
            .is_err(),
            "bound to its activation"
        );
        // Fields only the MAC binds: the enclave ran other code, another
        // version or another request.
        for change in [
            (|r: &mut SessionReceipt| r.code_digest = Digest::of(b"other")) as fn(&mut _),
            |r| r.version = 1,
            |r| r.entry = "other".into(),
            |r| r.input_hash = Digest::of(b"other"),
        ] {
            assert_eq!(
                open_session_result(&result, &client, expecting(change)).err(),
                Some(ProtoError::BadSignature("session receipt"))
            );
        }
    }

    #[test]
    fn a_request_for_another_binding_or_counter_does_not_open() {
        let (client, enclave) = open_session();
        let request = SessionInvocation::seal(&client, &binding(), 7, 100, b"{}").expect("seal");
        let mut other = binding();
        other.version = 1;
        assert!(
            request.open(&enclave, &other).is_err(),
            "rolled back version"
        );
        let mut moved = request.clone();
        moved.counter = 8;
        assert!(
            moved.open(&enclave, &binding()).is_err(),
            "counter is bound"
        );
        let (_, stranger) = open_session();
        assert!(
            request.open(&stranger, &binding()).is_err(),
            "another session's keys"
        );
        let mut renamed = request.clone();
        renamed.session_id[0] ^= 1;
        assert!(
            matches!(
                renamed.open(&enclave, &binding()),
                Err(ProtoError::Tampered(_))
            ),
            "the session id is checked, not only used to find the keys"
        );
    }
}
