//! Sealed code: an action's WebAssembly module, or its JavaScript source
//! with the digest of the engine it must run under ([`JavaScriptCode`]),
//! sealed with HPKE to the action key, bound to the action's name, version,
//! code digest and entry export. The provider stores only this.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::suite::{HpkeMessage, KemKeyPair, hpke_open, hpke_seal};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, KemPublicKey, ProtoError};

const FRAME: &str = "clemmys/sealed-code/v2";
const JAVASCRIPT_FRAME: &str = "clemmys/js-code/v1";

/// The export a WASI command runs when the owner names no other.
pub const DEFAULT_ENTRY: &str = "_start";

/// What sealed code is bound to. The enclave rebuilds this from the policy
/// the broker granted, so code sealed for another action, version, digest
/// or entry export does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBinding<'a> {
    /// Namespace of the action.
    pub namespace: &'a str,
    /// Name of the action.
    pub action: &'a str,
    /// The policy version the code belongs to.
    pub version: u64,
    /// SHA-256 of the plaintext module.
    pub code_digest: Digest,
    /// The export the owner runs (`exec.main`; [`DEFAULT_ENTRY`] if none):
    /// another export of the same module is other code.
    pub entry: &'a str,
}

impl CodeBinding<'_> {
    /// The owner is in the HPKE info: sealed code whose (clear) owner was
    /// changed does not open.
    fn info(&self, owner: &ClientId) -> Vec<u8> {
        Writer::new("clemmys/code-info/v2")
            .bytes(owner.as_bytes())
            .str(self.namespace)
            .str(self.action)
            .finish()
    }

    fn aad(&self) -> Vec<u8> {
        Writer::new("clemmys/code-aad/v2")
            .str(self.namespace)
            .str(self.action)
            .u64(self.version)
            .bytes(self.code_digest.as_bytes())
            .str(self.entry)
            .finish()
    }
}

/// A sealed WebAssembly module, with the identity that registered its
/// action in the clear: the enclave asks the broker for that owner's key.
/// The owner needs no protection: the broker keys each registration by its
/// owner, so a host that names another owner gets another action's key,
/// under which this code and the owner's clients' parameters do not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCode {
    owner: ClientId,
    message: HpkeMessage,
}

impl SealedCode {
    /// Seals `code` to the action key of `owner`'s action under `binding`.
    pub fn seal(
        code: &[u8],
        owner: ClientId,
        action_key: &KemPublicKey,
        binding: &CodeBinding<'_>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, ProtoError> {
        let (message, _) = hpke_seal(
            action_key,
            &binding.info(&owner),
            &binding.aad(),
            code,
            None,
            rng,
        )?;
        Ok(Self { owner, message })
    }

    /// The identity that registered the action (as the stored bytes say).
    pub fn owner(&self) -> ClientId {
        self.owner
    }

    /// Opens with the action's key pair; fails if the bytes, the binding or
    /// the key differ from what was sealed.
    pub fn open(
        &self,
        keys: &KemKeyPair,
        binding: &CodeBinding<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
        let (code, _) = hpke_open(
            keys,
            &self.message,
            &binding.info(&self.owner),
            &binding.aad(),
            None,
            "sealed code",
        )?;
        // The action key is public: anyone can seal other code under the
        // right binding. Only this check ties the code to the owner's policy.
        if Digest::of(&code) != binding.code_digest {
            return Err(ProtoError::Tampered(
                "sealed code (its digest is not the policy's)",
            ));
        }
        Ok(code)
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(FRAME)
            .bytes(self.owner.as_bytes())
            .bytes(&self.message.enc)
            .bytes(&self.message.ciphertext)
            .finish()
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, FRAME)?;
        let owner = ClientId(reader.array()?);
        let enc = reader.array()?;
        let ciphertext = reader.bytes()?.to_vec();
        reader.finish()?;
        if ciphertext.len() < crate::suite::TAG_LEN {
            return Err(ProtoError::Malformed("sealed code shorter than a tag"));
        }
        Ok(Self {
            owner,
            message: HpkeMessage { enc, ciphertext },
        })
    }
}

/// The plaintext of a confidential JavaScript action: its source and the
/// digest of the engine module (a wasm build of QuickJS) the owner allows
/// to run it. Sealed like a module, so the policy's code digest is the
/// digest of these bytes and commits to both: an enclave runs the source
/// only under that engine, whatever module the host hands it.
///
/// A module can never be read as this frame nor the frame as a module: a
/// frame starts with its domain's length (`00 00 00 12`), a module with
/// `\0asm`, whose length would be 6 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaScriptCode<'a> {
    /// SHA-256 of the engine module.
    pub engine: Digest,
    /// The action's source.
    pub source: &'a str,
}

impl<'a> JavaScriptCode<'a> {
    /// The plaintext to seal.
    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::new(JAVASCRIPT_FRAME)
            .bytes(self.engine.as_bytes())
            .str(self.source)
            .finish()
    }

    /// Reads opened code: `None` when it is not JavaScript (a module), an
    /// error when it is a JavaScript frame that does not parse.
    pub fn parse(code: &'a [u8]) -> Result<Option<Self>, ProtoError> {
        if Reader::domain(code).ok() != Some(JAVASCRIPT_FRAME.as_bytes()) {
            return Ok(None);
        }
        let mut reader = Reader::new(code, JAVASCRIPT_FRAME)?;
        let engine = Digest(reader.array()?);
        let source = reader.str()?;
        reader.finish()?;
        Ok(Some(Self { engine, source }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::os_rng;

    fn binding(version: u64, code: &[u8]) -> CodeBinding<'static> {
        CodeBinding {
            namespace: "guest",
            action: "a",
            version,
            code_digest: Digest::of(code),
            entry: DEFAULT_ENTRY,
        }
    }

    #[test]
    fn sealed_code_opens_only_under_its_binding() {
        let mut rng = os_rng();
        let keys = KemKeyPair::generate(&mut rng);
        let code = b"\0asm\x01\0\0\0";
        let sealed = SealedCode::seal(
            code,
            ClientId([7; 32]),
            &keys.public(),
            &binding(2, code),
            &mut rng,
        )
        .expect("seal");
        let parsed = SealedCode::from_bytes(&sealed.to_bytes()).expect("parse");
        assert_eq!(parsed.owner(), ClientId([7; 32]));
        assert_eq!(
            parsed
                .open(&keys, &binding(2, code))
                .expect("open")
                .as_slice(),
            code
        );
        // An older version of the same action (rollback) does not open.
        assert!(parsed.open(&keys, &binding(1, code)).is_err());
        // Nor does it pass for other code under the same name.
        assert!(parsed.open(&keys, &binding(2, b"other")).is_err());
        // Nor under another entry export of the same module.
        let other_entry = CodeBinding {
            entry: "other",
            ..binding(2, code)
        };
        assert!(parsed.open(&keys, &other_entry).is_err());
        // Other code sealed to the (public) action key under the genuine
        // binding is refused by the digest check.
        let forged = SealedCode::seal(
            b"evil",
            ClientId([7; 32]),
            &keys.public(),
            &binding(2, code),
            &mut rng,
        )
        .expect("seal");
        assert!(forged.open(&keys, &binding(2, code)).is_err());
        let mut flipped = sealed.to_bytes();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let flipped = SealedCode::from_bytes(&flipped).expect("still parses");
        assert!(flipped.open(&keys, &binding(2, code)).is_err());
    }
}

#[cfg(test)]
mod javascript_tests {
    use super::*;

    #[test]
    fn javascript_code_round_trips_and_a_module_is_not_javascript() {
        let code = JavaScriptCode {
            engine: Digest::of(b"engine"),
            source: "function main(p) { return p; }",
        };
        let bytes = code.to_bytes();
        assert_eq!(JavaScriptCode::parse(&bytes).expect("parse"), Some(code));
        assert_eq!(
            JavaScriptCode::parse(b"\0asm\x01\0\0\0").expect("a module"),
            None
        );
        assert_eq!(JavaScriptCode::parse(b"").expect("empty"), None);
        // A JavaScript frame cut short or extended is an error, not a module.
        for bad in [
            &bytes[..bytes.len() - 1],
            &[bytes.as_slice(), b"x"].concat()[..],
        ] {
            assert!(JavaScriptCode::parse(bad).is_err());
        }
    }
}
