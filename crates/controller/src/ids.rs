//! Fresh identifiers: activation ids and request codes, from the OS RNG.

use clemmys_whisk::ActivationId;

/// 16 random bytes from the operating system.
fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is unrecoverable for a server that must mint
    // unguessable ids; OpenWhisk would fail the same way.
    getrandom::fill(&mut bytes).expect("operating system RNG unavailable");
    bytes
}

/// A new random activation id.
pub fn activation_id() -> ActivationId {
    ActivationId::from_bytes(random_16())
}

/// A request code for error bodies (OpenWhisk's transaction id).
pub fn request_code() -> String {
    hex::encode(&random_16()[..8])
}
