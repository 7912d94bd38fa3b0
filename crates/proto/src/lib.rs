//! The Clemmys confidential protocol: wire types, envelopes and state, with
//! no I/O. Time and randomness come in as arguments.
//!
//! What it defines (the specification is `docs/PROTOCOL.md`):
//! * [`suite`]: the cipher suite, HPKE (RFC 9180) with DHKEM(X25519,
//!   HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, AES-256-GCM for
//!   session channels, and Ed25519;
//! * [`identity`]: client identities and enclave key pairs, and the report
//!   data binding enclave keys into attestation evidence;
//! * [`code`]: code sealed to an action key;
//! * [`invoke`]: sealed invocations, sealed answers and signed receipts;
//! * [`broker`]: client ↔ broker requests and enclave key grants;
//! * [`chain`]: chain tickets, sealed hops between steps, chain answers;
//! * [`chain_session`]: later runs of a chain with symmetric keys only;
//! * [`chain_plan`]: the owner's signed plan of a confidential sequence;
//! * [`chain_check`]: the client's check of a chain's answer;
//! * [`inbound`]: what a host hands an enclave to run, parsed once;
//! * [`replay`]: the nonce and counter windows that refuse replays;
//! * [`session`]: symmetric-key sessions opened by an attested invocation;
//! * [`wire`]: the injective binary framing all of the above use.
//!
//! Who holds what: clients hold their identity; enclaves hold their keys
//! and the action keys granted to them; the broker holds action keys and
//! policies. The provider (controller, invoker host, bus, store) handles
//! only the sealed forms defined here.

pub mod broker;
pub mod chain;
pub mod chain_check;
pub mod chain_plan;
pub mod chain_session;
pub mod code;
pub mod error;
pub mod evidence;
pub mod identity;
pub mod ids;
pub mod inbound;
pub mod invoke;
pub mod refusal;
pub mod replay;
pub mod session;
pub mod suite;
pub mod wire;

pub use error::ProtoError;
pub use evidence::{Evidence, TeeKind};
pub use ids::{ClientId, Digest, KemPublicKey, Measurement, SigningPublicKey};
