//! The cipher suite and its thin wrappers: HPKE (RFC 9180) with
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305 from the
//! `hpke` crate; ChaCha20-Poly1305 under exported keys for answers;
//! AES-256-GCM (`aes-gcm`) under the long-lived keys of sessions and chain
//! sessions ([`ChannelKey`]); Ed25519 signatures from `ed25519-dalek`.
//! Nothing here invents cryptography: it fixes the suite, the sizes and the
//! error mapping.

use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{KemPublicKey, ProtoError};

/// HPKE's KEM: DHKEM(X25519, HKDF-SHA256).
pub type Kem = hpke::kem::X25519HkdfSha256;
/// HPKE's KDF.
pub type Kdf = hpke::kdf::HkdfSha256;
/// HPKE's AEAD.
pub type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Length of an HPKE encapsulated key.
pub const ENC_LEN: usize = 32;
/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a ChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 12;

/// An X25519 key pair whose secret is zeroed on drop.
pub struct KemKeyPair {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: KemPublicKey,
}

impl KemKeyPair {
    /// A fresh key pair.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let (secret, public) = Kem::gen_keypair_with_rng(rng);
        Self {
            secret,
            public: KemPublicKey(public.to_bytes().into()),
        }
    }

    /// The key pair of a stored secret.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, ProtoError> {
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret)
            .map_err(|_| ProtoError::InvalidKey)?;
        let public = KemPublicKey(Kem::sk_to_pk(&secret).to_bytes().into());
        Ok(Self { secret, public })
    }

    /// The public half.
    pub fn public(&self) -> KemPublicKey {
        self.public
    }

    /// The secret bytes, for sealed storage or provisioning.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }
}

impl std::fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KemKeyPair(public: {}, secret: <redacted>)", self.public)
    }
}

fn recipient_key(public: &KemPublicKey) -> Result<<Kem as hpke::Kem>::PublicKey, ProtoError> {
    <Kem as hpke::Kem>::PublicKey::from_bytes(public.as_bytes()).map_err(|_| ProtoError::InvalidKey)
}

/// A 32-byte symmetric key exported from an HPKE context, zeroed on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ExportedKey([u8; 32]);

impl ExportedKey {
    /// A key from stored bytes (the client keeps answer keys to read
    /// activation records later).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A second, independent key derived from this one with HKDF-SHA256.
    pub fn derive(&self, label: &[u8]) -> Result<Self, ProtoError> {
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(None, &self.0);
        let mut key = [0u8; 32];
        hkdf.expand(label, &mut key)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
        Ok(Self(key))
    }

    /// Seals `plaintext` under this key, under a fresh random nonce that
    /// the sealed bytes carry in front. An exported key is meant to seal
    /// one message, but that rests on the broker admitting each request
    /// once, and a provider can fork the broker (two instances on copies of
    /// its state each admit it once: docs/THREAT-MODEL.md); with a fixed
    /// nonce the second message would share the first one's keystream.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, ProtoError> {
        seal_under_random_nonce(&self.0, plaintext, aad, rng)
    }

    /// Opens what [`ExportedKey::seal`] produced; `what` names it in errors.
    ///
    /// Also opens the form sealed before random nonces (2026-12-07): the
    /// whole of `sealed` under the zero nonce, so that records stored
    /// then (a client's activations, a gateway's log lines) still read.
    /// Accepting it gives a provider nothing: only the key's holders could
    /// make either form, and no current enclave seals the old one.
    pub fn open(
        &self,
        sealed: &[u8],
        aad: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, ProtoError> {
        open_nonce_prefixed(&self.0, sealed, aad)?
            .or_else(|| {
                cipher(&self.0)
                    .ok()?
                    .decrypt(&[0; NONCE_LEN].into(), Payload { msg: sealed, aad })
                    .ok()
            })
            .ok_or(ProtoError::Tampered(what))
    }
}

impl std::fmt::Debug for ExportedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportedKey(<redacted>)")
    }
}

/// The key of one direction of a session or chain session: it seals many
/// messages, each under its own nonce (the request or run counter).
///
/// AES-256-GCM with the key schedule expanded once, when the key is
/// derived. Why not ChaCha20-Poly1305 as elsewhere: every warm request
/// seals and opens under these keys, its messages are tens of bytes, and
/// there ChaCha20-Poly1305's per-message setup (a ChaCha20 block for the
/// Poly1305 key, then the Poly1305 state) made it about five times slower
/// than AES-256-GCM with AES-NI on the benchmark machine (2.1 µs against
/// 0.4 µs to seal 40 bytes, key setup included). The key schedule and
/// GHASH key are zeroed on drop.
pub struct ChannelKey(Aes256Gcm);

impl ChannelKey {
    /// The channel key derived from `secret` with HKDF-SHA256 under `label`.
    pub fn derive(secret: &ExportedKey, label: &[u8]) -> Result<Self, ProtoError> {
        let key = secret.derive(label)?;
        Aes256Gcm::new_from_slice(key.as_bytes())
            .map(Self)
            .map_err(|e| ProtoError::Crypto(e.to_string()))
    }

    /// Seals `plaintext` under `nonce`; the caller guarantees each nonce is
    /// used once under this key (a counter it never repeats).
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: &[u8; 12],
    ) -> Result<Vec<u8>, ProtoError> {
        self.0
            .encrypt(
                &(*nonce).into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|e| ProtoError::Crypto(e.to_string()))
    }

    /// Opens what [`ChannelKey::seal`] produced; `what` names it in errors.
    pub fn open(
        &self,
        sealed: &[u8],
        aad: &[u8],
        nonce: &[u8; 12],
        what: &'static str,
    ) -> Result<Vec<u8>, ProtoError> {
        self.0
            .decrypt(&(*nonce).into(), Payload { msg: sealed, aad })
            .map_err(|_| ProtoError::Tampered(what))
    }
}

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKey(<redacted>)")
    }
}

fn cipher(key: &[u8; 32]) -> Result<ChaCha20Poly1305, ProtoError> {
    ChaCha20Poly1305::new_from_slice(key).map_err(|e| ProtoError::Crypto(e.to_string()))
}

/// `nonce ‖ ChaCha20-Poly1305(key, nonce, aad, plaintext)` under a fresh
/// random nonce: what exported and storage keys both seal.
fn seal_under_random_nonce(
    key: &[u8; 32],
    plaintext: &[u8],
    aad: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, ProtoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ciphertext = cipher(key)?
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens what [`seal_under_random_nonce`] produced: `None` when it does
/// not authenticate (or is too short to).
fn open_nonce_prefixed(
    key: &[u8; 32],
    sealed: &[u8],
    aad: &[u8],
) -> Result<Option<Vec<u8>>, ProtoError> {
    let cipher = cipher(key)?;
    Ok(sealed
        .split_first_chunk::<NONCE_LEN>()
        .and_then(|(nonce, msg)| cipher.decrypt(&(*nonce).into(), Payload { msg, aad }).ok()))
}

/// A symmetric key for data at rest (an enclave's sealing key), zeroed on
/// drop. Each sealed record carries its own random nonce.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct StorageKey([u8; 32]);

impl StorageKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Seals `plaintext` bound to `aad` under a fresh nonce.
    pub fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, ProtoError> {
        seal_under_random_nonce(&self.0, plaintext, aad, rng)
    }

    /// Opens what [`StorageKey::seal`] produced.
    pub fn open(
        &self,
        sealed: &[u8],
        aad: &[u8],
        what: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(ProtoError::Malformed("sealed record too short"));
        }
        open_nonce_prefixed(&self.0, sealed, aad)?
            .map(Zeroizing::new)
            .ok_or(ProtoError::Tampered(what))
    }
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(<redacted>)")
    }
}

/// One HPKE message: the encapsulated key and the ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct HpkeMessage {
    /// The encapsulated key.
    pub enc: [u8; ENC_LEN],
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for HpkeMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HpkeMessage({} ciphertext bytes)", self.ciphertext.len())
    }
}

/// Seals `plaintext` to `recipient`; returns the message and, when
/// `export_label` is given, a key exported from the same context for the
/// answer.
pub fn hpke_seal(
    recipient: &KemPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    export_label: Option<&[u8]>,
    rng: &mut impl CryptoRng,
) -> Result<(HpkeMessage, Option<ExportedKey>), ProtoError> {
    let recipient = recipient_key(recipient)?;
    let (enc, mut context) =
        hpke::setup_sender_with_rng::<HpkeAead, Kdf, Kem>(&OpModeS::Base, &recipient, info, rng)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let ciphertext = context
        .seal(plaintext, aad)
        .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let exported = export_label
        .map(|label| {
            let mut key = [0u8; 32];
            context
                .export(label, &mut key)
                .map_err(|e| ProtoError::Crypto(e.to_string()))?;
            Ok::<_, ProtoError>(ExportedKey(key))
        })
        .transpose()?;
    Ok((
        HpkeMessage {
            enc: enc.to_bytes().into(),
            ciphertext,
        },
        exported,
    ))
}

/// Opens an [`HpkeMessage`] with `keys`; `what` names it in errors.
pub fn hpke_open(
    keys: &KemKeyPair,
    message: &HpkeMessage,
    info: &[u8],
    aad: &[u8],
    export_label: Option<&[u8]>,
    what: &'static str,
) -> Result<(Zeroizing<Vec<u8>>, Option<ExportedKey>), ProtoError> {
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&message.enc)
        .map_err(|_| ProtoError::Tampered(what))?;
    let mut context =
        hpke::setup_receiver::<HpkeAead, Kdf, Kem>(&OpModeR::Base, &keys.secret, &enc, info)
            .map_err(|_| ProtoError::Tampered(what))?;
    let plaintext = context
        .open(&message.ciphertext, aad)
        .map_err(|_| ProtoError::Tampered(what))?;
    let exported = export_label
        .map(|label| {
            let mut key = [0u8; 32];
            context
                .export(label, &mut key)
                .map_err(|e| ProtoError::Crypto(e.to_string()))?;
            Ok::<_, ProtoError>(ExportedKey(key))
        })
        .transpose()?;
    Ok((Zeroizing::new(plaintext), exported))
}

/// Sets up an HPKE context to `recipient` and exports a secret from it
/// under `label`, sealing nothing: the encapsulated key and the secret, for
/// a sender that derives the keys of many messages from one setup.
pub fn hpke_export_to(
    recipient: &KemPublicKey,
    info: &[u8],
    label: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<([u8; ENC_LEN], ExportedKey), ProtoError> {
    let recipient = recipient_key(recipient)?;
    let (enc, context) =
        hpke::setup_sender_with_rng::<HpkeAead, Kdf, Kem>(&OpModeS::Base, &recipient, info, rng)
            .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    let mut key = [0u8; 32];
    context
        .export(label, &mut key)
        .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    Ok((enc.to_bytes().into(), ExportedKey(key)))
}

/// The receiver's side of [`hpke_export_to`]: the same secret, from the
/// encapsulated key and `keys`; `what` names it in errors.
pub fn hpke_export_from(
    keys: &KemKeyPair,
    enc: &[u8; ENC_LEN],
    info: &[u8],
    label: &[u8],
    what: &'static str,
) -> Result<ExportedKey, ProtoError> {
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| ProtoError::Tampered(what))?;
    let context =
        hpke::setup_receiver::<HpkeAead, Kdf, Kem>(&OpModeR::Base, &keys.secret, &enc, info)
            .map_err(|_| ProtoError::Tampered(what))?;
    let mut key = [0u8; 32];
    context
        .export(label, &mut key)
        .map_err(|e| ProtoError::Crypto(e.to_string()))?;
    Ok(ExportedKey(key))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The OS RNG, for tests.
    pub(crate) fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
        rand_core::UnwrapErr(getrandom::SysRng)
    }

    #[test]
    fn seal_open_and_export_agree() {
        let mut rng = os_rng();
        let keys = KemKeyPair::generate(&mut rng);
        let (message, sender_key) = hpke_seal(
            &keys.public(),
            b"info",
            b"aad",
            b"secret",
            Some(b"answer"),
            &mut rng,
        )
        .expect("seal");
        let (plaintext, receiver_key) =
            hpke_open(&keys, &message, b"info", b"aad", Some(b"answer"), "test").expect("open");
        assert_eq!(plaintext.as_slice(), b"secret");
        let (sender_key, receiver_key) = (sender_key.expect("key"), receiver_key.expect("key"));
        assert_eq!(sender_key.as_bytes(), receiver_key.as_bytes());
        let answer = receiver_key.seal(b"reply", b"ctx", &mut rng).expect("seal");
        assert_eq!(
            sender_key.open(&answer, b"ctx", "reply").expect("open"),
            b"reply"
        );
        assert!(sender_key.open(&answer, b"other", "reply").is_err());
        // Sealed twice (a request a forked broker admitted twice), the two
        // messages get their own nonces: no keystream in common.
        let again = receiver_key.seal(b"reply", b"ctx", &mut rng).expect("seal");
        assert_ne!(again[..12], answer[..12], "a fresh nonce");
        assert_ne!(again[12..], answer[12..]);
        assert_eq!(
            sender_key.open(&again, b"ctx", "reply").expect("open"),
            b"reply"
        );
        // The form sealed before random nonces still opens.
        let legacy = cipher(receiver_key.as_bytes())
            .expect("cipher")
            .encrypt(
                &[0; 12].into(),
                Payload {
                    msg: b"stored",
                    aad: b"ctx",
                },
            )
            .expect("seal");
        assert_eq!(
            sender_key.open(&legacy, b"ctx", "reply").expect("open"),
            b"stored"
        );
        assert!(sender_key.open(&legacy, b"other", "reply").is_err());
    }

    #[test]
    fn wrong_info_aad_key_or_bits_fail() {
        let mut rng = os_rng();
        let keys = KemKeyPair::generate(&mut rng);
        let other = KemKeyPair::generate(&mut rng);
        let (message, _) =
            hpke_seal(&keys.public(), b"info", b"aad", b"secret", None, &mut rng).expect("seal");
        assert!(hpke_open(&keys, &message, b"other", b"aad", None, "t").is_err());
        assert!(hpke_open(&keys, &message, b"info", b"other", None, "t").is_err());
        assert!(hpke_open(&other, &message, b"info", b"aad", None, "t").is_err());
        let mut flipped = message.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(
            hpke_open(&keys, &flipped, b"info", b"aad", None, "t").err(),
            Some(ProtoError::Tampered("t"))
        );
    }

    #[test]
    fn channel_keys_open_only_their_own_messages() {
        let secret = ExportedKey::from_bytes([9; 32]);
        let key = ChannelKey::derive(&secret, b"a").expect("key");
        let other = ChannelKey::derive(&secret, b"b").expect("key");
        let nonce = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let sealed = key.seal(b"message", b"aad", &nonce).expect("seal");
        assert_eq!(
            key.open(&sealed, b"aad", &nonce, "m").expect("open"),
            b"message"
        );
        assert!(key.open(&sealed, b"other", &nonce, "m").is_err(), "aad");
        assert!(key.open(&sealed, b"aad", &[0; 12], "m").is_err(), "nonce");
        assert!(other.open(&sealed, b"aad", &nonce, "m").is_err(), "label");
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(
            key.open(&flipped, b"aad", &nonce, "m").err(),
            Some(ProtoError::Tampered("m"))
        );
        assert!(!format!("{key:?}").contains("9"), "redacted");
    }

    #[test]
    fn storage_key_seals_with_fresh_nonces() {
        let key = StorageKey::from_bytes([5; 32]);
        let a = key.seal(b"record", b"k", &mut os_rng()).expect("seal");
        let b = key.seal(b"record", b"k", &mut os_rng()).expect("seal");
        assert_ne!(a, b, "fresh nonce per record");
        assert_eq!(key.open(&a, b"k", "r").expect("open").as_slice(), b"record");
        assert!(key.open(&a, b"other", "r").is_err(), "bound to its key");
        assert!(key.open(&a[..10], b"k", "r").is_err());
    }

    #[test]
    fn key_pairs_round_trip_through_their_secret() {
        let keys = KemKeyPair::generate(&mut os_rng());
        let again = KemKeyPair::from_secret(&keys.secret_bytes()).expect("valid");
        assert_eq!(again.public(), keys.public());
        assert!(!format!("{keys:?}").contains(&hex::encode(*keys.secret_bytes())));
    }
}
