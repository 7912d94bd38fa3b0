//! The `sim` backend next to the SGX one: trusting SGX changes nothing for
//! sim evidence, and evidence cannot be relabelled from one kind to the
//! other.

use clemmys_tee::sgx::{SgxPolicy, TcbStatus, evidence_from_quote};
use clemmys_tee::sim::SimPlatform;
use clemmys_tee::{AttestError, Evidence, TeeKind, Verifier};

const SGX_QUOTE: &[u8] = include_bytes!("../fixtures/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../fixtures/sgx_quote_collateral.json");

fn sgx_verifier() -> Verifier {
    Verifier::new().trust_sgx_dcap(
        SgxPolicy::new()
            .accept_status(TcbStatus::ConfigurationAndSWHardeningNeeded)
            .at(1_751_328_000),
    )
}

#[test]
fn trusting_sgx_does_not_trust_sim_platforms() {
    let platform = SimPlatform::generate();
    let evidence = platform.report(&[7; 32], &[1; 64]);
    assert_eq!(
        sgx_verifier().verify(&evidence),
        Err(AttestError::UntrustedPlatform(platform.public_key()))
    );
    let verified = sgx_verifier()
        .trust_sim_platform(platform.public_key())
        .verify(&evidence)
        .expect("trusted sim platform");
    assert!(!verified.is_hardware());
    assert!(verified.sgx().is_none());
}

#[test]
fn sim_evidence_relabelled_as_sgx_is_rejected() {
    let platform = SimPlatform::generate();
    let relabelled = Evidence {
        tee: TeeKind::SgxDcap,
        ..platform.report(&[7; 32], &[1; 64])
    };
    assert_eq!(
        sgx_verifier()
            .trust_sim_platform(platform.public_key())
            .verify(&relabelled),
        Err(AttestError::Malformed("sgx-dcap"))
    );
}

#[test]
fn sgx_evidence_relabelled_as_sim_is_rejected() {
    let relabelled = Evidence {
        tee: TeeKind::Sim,
        ..evidence_from_quote(SGX_QUOTE, SGX_COLLATERAL)
    };
    let platform = SimPlatform::generate();
    assert_eq!(
        sgx_verifier()
            .trust_sim_platform(platform.public_key())
            .verify(&relabelled),
        Err(AttestError::Malformed("sim"))
    );
}
