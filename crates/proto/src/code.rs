//! Sealed code: an action's WebAssembly module, or its JavaScript source
//! with the digest of the engine it must run under ([`JavaScriptCode`]),
//! sealed with HPKE to the action key, bound to the action's name, version,
//! code digest and entry export. The provider stores only this.
//!
//! An action with default parameters seals them with its code
//! ([`CodeWithDefaults`]): the policy's code digest is the digest of both,
//! so the parameters are bound to everything the code is bound to.

use clemmys_whisk::action::FinalParameterOverridden;
use rand_core::CryptoRng;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::suite::{HpkeMessage, KemKeyPair, hpke_open, hpke_seal};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, KemPublicKey, ProtoError};

const FRAME: &str = "clemmys/sealed-code/v2";
const JAVASCRIPT_FRAME: &str = "clemmys/js-code/v1";
const DEFAULTS_FRAME: &str = "clemmys/code-with-defaults/v1";

/// Bytes of the random salt sealed with default parameters.
pub const DEFAULTS_SALT_BYTES: usize = 32;

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
#[derive(Clone, PartialEq, Eq)]
pub struct JavaScriptCode<'a> {
    /// SHA-256 of the engine module.
    pub engine: Digest,
    /// The action's source.
    pub source: &'a str,
}

// The `Debug` of code and defaults shows sizes only: formatted, they must
// not carry an action's plaintext out of the enclave.
impl std::fmt::Debug for JavaScriptCode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JavaScriptCode")
            .field("engine", &self.engine)
            .field("source_bytes", &self.source.len())
            .finish()
    }
}

impl std::fmt::Debug for CodeWithDefaults<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeWithDefaults")
            .field("defaults", &self.defaults)
            .field("code_bytes", &self.code.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OpenedCode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCode")
            .field("code_bytes", &self.code.len())
            .field("defaults", &self.defaults)
            .finish()
    }
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

/// A confidential action's default parameters, as its owner bound them:
/// merged under each invoke's parameters inside the enclave, as OpenWhisk
/// merges an action's bound parameters. `Debug` shows no value.
pub struct DefaultParameters {
    parameters: Map<String, Value>,
    final_parameters: bool,
}

impl DefaultParameters {
    /// `parameters`; with `final_parameters` (OpenWhisk's `final: true`
    /// annotation) an invoke may not override any of them.
    pub fn new(parameters: Map<String, Value>, final_parameters: bool) -> Self {
        Self {
            parameters,
            final_parameters,
        }
    }

    /// The parameters.
    pub fn parameters(&self) -> &Map<String, Value> {
        &self.parameters
    }

    /// Whether an invoke may not override them.
    pub fn is_final(&self) -> bool {
        self.final_parameters
    }

    /// `invoke` over these defaults, as OpenWhisk merges: the invoke wins,
    /// unless the parameters are final and it names one of them.
    pub fn merge(
        &self,
        invoke: Map<String, Value>,
    ) -> Result<Map<String, Value>, FinalParameterOverridden> {
        if self.final_parameters && invoke.keys().any(|key| self.parameters.contains_key(key)) {
            return Err(FinalParameterOverridden);
        }
        let mut merged = self.parameters.clone();
        merged.extend(invoke);
        Ok(merged)
    }
}

impl std::fmt::Debug for DefaultParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultParameters")
            .field("count", &self.parameters.len())
            .field("final", &self.final_parameters)
            .finish_non_exhaustive()
    }
}

/// The plaintext of a confidential action with default parameters: a
/// random salt, the parameters and the action's code (a module or a
/// [`JavaScriptCode`] frame), sealed as one. The policy's code digest is
/// the digest of these bytes, so it commits to the parameters: the host
/// can neither drop them, nor bring back another version's, nor move
/// another action's here, without the sealed code failing to open. The
/// salt keeps the (public) digest from confirming guesses of the
/// parameters by whoever knows the code.
///
/// Like a JavaScript frame, it can never be read as a module.
pub struct CodeWithDefaults<'a> {
    /// Fresh random bytes.
    pub salt: [u8; DEFAULTS_SALT_BYTES],
    /// The default parameters.
    pub defaults: &'a DefaultParameters,
    /// The code they come with.
    pub code: &'a [u8],
}

impl CodeWithDefaults<'_> {
    /// The plaintext to seal.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
        let parameters = Zeroizing::new(
            serde_json::to_vec(&self.defaults.parameters)
                .map_err(|_| ProtoError::Malformed("default parameters are not JSON"))?,
        );
        Ok(Zeroizing::new(
            Writer::new(DEFAULTS_FRAME)
                .bytes(&self.salt)
                .u64(u64::from(self.defaults.final_parameters))
                .bytes(&parameters)
                .bytes(self.code)
                .finish(),
        ))
    }
}

/// Opened code, split into what runs and the default parameters sealed
/// with it, if any.
pub struct OpenedCode<'a> {
    /// The module, or a [`JavaScriptCode`] frame.
    pub code: &'a [u8],
    /// The owner's default parameters.
    pub defaults: Option<DefaultParameters>,
}

impl<'a> OpenedCode<'a> {
    /// Reads opened code: a [`CodeWithDefaults`] frame is split; anything
    /// else is code without defaults. A frame that does not parse, whose
    /// parameters are not a JSON object, or that nests another such frame
    /// is an error.
    pub fn parse(opened: &'a [u8]) -> Result<Self, ProtoError> {
        if Reader::domain(opened).ok() != Some(DEFAULTS_FRAME.as_bytes()) {
            return Ok(Self {
                code: opened,
                defaults: None,
            });
        }
        let mut reader = Reader::new(opened, DEFAULTS_FRAME)?;
        let _salt: [u8; DEFAULTS_SALT_BYTES] = reader.array()?;
        let final_parameters = match reader.u64()? {
            0 => false,
            1 => true,
            _ => return Err(ProtoError::Malformed("default parameters' final flag")),
        };
        let parameters = serde_json::from_slice::<Map<String, Value>>(reader.bytes()?)
            .map_err(|_| ProtoError::Malformed("default parameters are not a JSON object"))?;
        let code = reader.bytes()?;
        reader.finish()?;
        if Reader::domain(code).ok() == Some(DEFAULTS_FRAME.as_bytes()) {
            return Err(ProtoError::Malformed("nested default parameters"));
        }
        Ok(Self {
            code,
            defaults: Some(DefaultParameters::new(parameters, final_parameters)),
        })
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

    #[test]
    fn formatted_code_shows_its_size_not_its_source() {
        let source = "function main() { return {secret: 's3cr3t'}; }";
        let code = JavaScriptCode {
            engine: Digest::of(b"engine"),
            source,
        };
        let opened = OpenedCode {
            code: source.as_bytes(),
            defaults: None,
        };
        for formatted in [format!("{code:?}"), format!("{opened:?}")] {
            assert!(!formatted.contains("s3cr3t"), "{formatted}");
            assert!(formatted.contains(&source.len().to_string()), "{formatted}");
        }
    }
}

#[cfg(test)]
mod defaults_tests {
    use super::*;
    use crate::suite::tests::os_rng;
    use serde_json::json;

    fn defaults(value: Value, final_parameters: bool) -> DefaultParameters {
        let Value::Object(parameters) = value else {
            panic!("an object")
        };
        DefaultParameters::new(parameters, final_parameters)
    }

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(object) = value else {
            panic!("an object")
        };
        object
    }

    #[test]
    fn code_with_defaults_round_trips_and_plain_code_has_none() {
        let code = b"\0asm\x01\0\0\0";
        let defaults = defaults(json!({"key": "value", "n": 1}), true);
        let bytes = CodeWithDefaults {
            salt: [9; DEFAULTS_SALT_BYTES],
            defaults: &defaults,
            code,
        }
        .to_bytes()
        .expect("encode");
        let opened = OpenedCode::parse(&bytes).expect("parse");
        assert_eq!(opened.code, code);
        let parsed = opened.defaults.expect("defaults");
        assert_eq!(parsed.parameters(), defaults.parameters());
        assert!(parsed.is_final());
        // Debug shows no value.
        assert!(!format!("{parsed:?}").contains("value"));

        for plain in [
            &code[..],
            b"",
            &JavaScriptCode {
                engine: Digest::of(b"engine"),
                source: "function main(p) { return p; }",
            }
            .to_bytes(),
        ] {
            let opened = OpenedCode::parse(plain).expect("plain");
            assert_eq!(opened.code, plain);
            assert!(opened.defaults.is_none());
        }
    }

    #[test]
    fn malformed_code_with_defaults_is_an_error() {
        let code = b"\0asm\x01\0\0\0";
        let good = defaults(json!({"k": 1}), false);
        let bytes = CodeWithDefaults {
            salt: [1; DEFAULTS_SALT_BYTES],
            defaults: &good,
            code,
        }
        .to_bytes()
        .expect("encode");
        assert!(OpenedCode::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(OpenedCode::parse(&[bytes.as_slice(), b"x"].concat()).is_err());
        let frame = |flag: u64, parameters: &[u8], code: &[u8]| {
            Writer::new(DEFAULTS_FRAME)
                .bytes(&[0; DEFAULTS_SALT_BYTES])
                .u64(flag)
                .bytes(parameters)
                .bytes(code)
                .finish()
        };
        assert!(OpenedCode::parse(&frame(0, b"{}", code)).is_ok());
        assert!(OpenedCode::parse(&frame(2, b"{}", code)).is_err());
        assert!(OpenedCode::parse(&frame(0, b"[1]", code)).is_err());
        assert!(OpenedCode::parse(&frame(0, b"{", code)).is_err());
        assert!(OpenedCode::parse(&frame(0, b"{}", &bytes)).is_err());
    }

    #[test]
    fn invoke_parameters_win_unless_the_defaults_are_final() {
        let open = defaults(json!({"a": 1, "b": 2}), false);
        assert_eq!(
            open.merge(object(json!({"b": 3, "c": 4}))).expect("merge"),
            object(json!({"a": 1, "b": 3, "c": 4}))
        );
        let fixed = defaults(json!({"a": 1}), true);
        assert_eq!(
            fixed.merge(object(json!({"c": 4}))).expect("merge"),
            object(json!({"a": 1, "c": 4}))
        );
        assert_eq!(
            fixed.merge(object(json!({"a": 5}))),
            Err(FinalParameterOverridden)
        );
    }

    #[test]
    fn the_code_digest_commits_to_the_defaults() {
        let mut rng = os_rng();
        let keys = KemKeyPair::generate(&mut rng);
        let code = b"\0asm\x01\0\0\0";
        let sealed_with = |value: Value, salt: u8| {
            CodeWithDefaults {
                salt: [salt; DEFAULTS_SALT_BYTES],
                defaults: &defaults(value, false),
                code,
            }
            .to_bytes()
            .expect("encode")
        };
        let plaintext = sealed_with(json!({"secret": "s1"}), 1);
        // The same parameters under another salt give another digest.
        assert_ne!(
            Digest::of(&plaintext),
            Digest::of(&sealed_with(json!({"secret": "s1"}), 2))
        );
        let binding = CodeBinding {
            namespace: "guest",
            action: "a",
            version: 1,
            code_digest: Digest::of(&plaintext),
            entry: DEFAULT_ENTRY,
        };
        let genuine = SealedCode::seal(
            &plaintext,
            ClientId([7; 32]),
            &keys.public(),
            &binding,
            &mut rng,
        )
        .expect("seal");
        assert_eq!(
            genuine.open(&keys, &binding).expect("open").as_slice(),
            plaintext.as_slice()
        );
        // The code without them (stripped), or with other ones, sealed by
        // anyone to the public action key under the genuine binding: refused.
        let stripped = SealedCode::seal(
            code,
            ClientId([7; 32]),
            &keys.public(),
            &binding,
            &mut os_rng(),
        )
        .expect("seal");
        assert!(stripped.open(&keys, &binding).is_err());
        let other = SealedCode::seal(
            &sealed_with(json!({"secret": "s2"}), 1),
            ClientId([7; 32]),
            &keys.public(),
            &binding,
            &mut os_rng(),
        )
        .expect("seal");
        assert!(other.open(&keys, &binding).is_err());
    }
}
