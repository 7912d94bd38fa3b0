//! The SGX DCAP verifier on real, published quotes (`tests/fixtures`,
//! from dcap-qvl's samples): what it accepts, and the tampering, relabelling
//! and policy cases it must refuse.

use clemmys_proto::identity::EnclaveKeys;
use clemmys_tee::sgx::{SgxPolicy, TcbStatus, evidence_from_quote};
use clemmys_tee::{AttestError, Evidence, Measurement, TeeKind, Verifier};

const SGX_QUOTE: &[u8] = include_bytes!("../fixtures/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../fixtures/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("../fixtures/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("../fixtures/tdx_quote_collateral.json");

/// 2025-07-01T00:00:00Z. The sample collateral is valid from 2025-06-19T10:56:11Z
/// (the TCB info's `issueDate`, the latest of the issue dates of TCB info, QE
/// identity and both CRLs) to 2025-07-19T10:01:18Z (the QE identity's
/// `nextUpdate`, the earliest expiry); this instant lies inside, and inside
/// the TDX sample's collateral too. `collateral_dates_are_the_pinned_ones`
/// checks the dates against the fixture.
const VALID_AT: u64 = 1_751_328_000;
/// 2025-06-19T10:56:11Z: the TCB info's `issueDate`.
const ISSUED_AT: u64 = 1_750_330_571;
/// 2025-07-19T10:01:18Z: the QE identity's `nextUpdate`.
const EXPIRES_AT: u64 = 1_752_919_278;

/// The sample's MRENCLAVE: bytes 112..144 of the quote (48-byte header, then
/// the report body, where MRENCLAVE follows CPUSVN, MISCSELECT, a reserved
/// field and ATTRIBUTES). Read once from the quote and pinned here.
const MRENCLAVE: [u8; 32] =
    hex32("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
/// The sample's MRSIGNER: bytes 176..208 of the quote.
const MRSIGNER: [u8; 32] =
    hex32("815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
/// Offset of ATTRIBUTES (16 bytes) in an SGX v3 quote.
const ATTRIBUTES_AT: usize = 48 + 48;
/// Offset of MRENCLAVE (32 bytes) in an SGX v3 quote.
const MRENCLAVE_AT: usize = 48 + 64;
/// Offset of the report data (64 bytes) in an SGX v3 quote.
const REPORT_DATA_AT: usize = 48 + 320;
/// Where the sample's certification data (the PEM PCK chain) starts: after
/// the header and report body (432), the signature data length (4), the
/// report signature and attestation key (64 + 64), the QE report and its
/// signature (384 + 64), the QE authentication data (2 + 32) and the
/// certification data's type and size (2 + 4).
const CERT_DATA_AT: usize = 1052;

/// The sample's platform is `ConfigurationAndSWHardeningNeeded` with these
/// advisories (as dcap-qvl's own tests also assert).
const SAMPLE_STATUS: TcbStatus = TcbStatus::ConfigurationAndSWHardeningNeeded;
const SAMPLE_ADVISORIES: [&str; 2] = ["INTEL-SA-00289", "INTEL-SA-00615"];

const fn hex32(text: &str) -> [u8; 32] {
    let text = text.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not lowercase hex"),
    }
}

/// The sample's report data: "Hello, world!" padded with zeros.
fn sample_report_data() -> [u8; 64] {
    let mut data = [0u8; 64];
    data[..13].copy_from_slice(b"Hello, world!");
    data
}

/// A policy that accepts the sample's platform, at `VALID_AT`.
fn accepting_policy() -> SgxPolicy {
    SgxPolicy::new().accept_status(SAMPLE_STATUS).at(VALID_AT)
}

fn verifier(policy: SgxPolicy) -> Verifier {
    Verifier::new().trust_sgx_dcap(policy)
}

fn sample() -> Evidence {
    evidence_from_quote(SGX_QUOTE, SGX_COLLATERAL)
}

fn flip(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[at] ^= mask;
    flipped
}

fn assert_quote_invalid(result: Result<clemmys_tee::VerifiedEvidence, AttestError>, what: &str) {
    match result {
        Err(AttestError::QuoteInvalid(reason)) => assert!(
            reason.to_lowercase().contains(&what.to_lowercase()),
            "expected {what:?}, got {reason:?}"
        ),
        other => panic!("expected QuoteInvalid({what:?}), got {other:?}"),
    }
}

#[test]
fn collateral_dates_are_the_pinned_ones() {
    let collateral = String::from_utf8_lossy(SGX_COLLATERAL);
    for date in [
        r#"\"issueDate\":\"2025-06-19T10:56:11Z\""#,
        r#"\"nextUpdate\":\"2025-07-19T10:01:18Z\""#,
    ] {
        assert!(collateral.contains(date), "{date}");
    }
}

#[test]
fn sample_quote_verifies_with_its_mrenclave_and_report_data() {
    let verified = verifier(accepting_policy())
        .verify(&sample())
        .expect("the sample verifies within its collateral's validity");
    assert_eq!(verified.tee(), TeeKind::SgxDcap);
    assert!(verified.is_hardware());
    assert_eq!(verified.measurement(), Measurement::sgx_dcap(MRENCLAVE));
    assert_eq!(verified.report_data(), &sample_report_data());
    let sgx = verified.sgx().expect("sgx details");
    assert_eq!(sgx.tcb_status(), SAMPLE_STATUS);
    assert_eq!(sgx.advisories(), SAMPLE_ADVISORIES);
    assert_eq!(sgx.mr_signer(), MRSIGNER);
    assert!(!sgx.is_debug());
}

#[test]
fn evidence_verifies_after_travelling_as_json() {
    let json = serde_json::to_vec(&sample()).expect("serialise");
    let evidence: Evidence = serde_json::from_slice(&json).expect("parse");
    let verified = verifier(accepting_policy())
        .verify(&evidence)
        .expect("verifies");
    assert_eq!(verified.measurement(), Measurement::sgx_dcap(MRENCLAVE));
}

#[test]
fn check_binds_compares_the_report_data() {
    let verified = verifier(accepting_policy())
        .verify(&sample())
        .expect("verifies");
    // The sample binds "Hello, world!", not the hash of any enclave's keys.
    let keys = EnclaveKeys::generate(&mut clemmys_tee::os_rng()).public();
    assert_ne!(verified.report_data(), &keys.report_data());
    assert_eq!(verified.check_binds(&keys), Err(AttestError::KeysNotBound));
}

#[test]
fn default_policy_refuses_the_sample_platform_tcb() {
    let error = verifier(SgxPolicy::new().at(VALID_AT))
        .verify(&sample())
        .expect_err("not UpToDate");
    assert_eq!(
        error,
        AttestError::TcbNotAccepted {
            status: SAMPLE_STATUS,
            advisories: SAMPLE_ADVISORIES.map(String::from).to_vec(),
        }
    );
}

#[test]
fn accepting_another_status_does_not_accept_the_sample() {
    let policy = SgxPolicy::new()
        .accept_status(TcbStatus::SWHardeningNeeded)
        .accept_status(TcbStatus::ConfigurationNeeded)
        .at(VALID_AT);
    assert!(matches!(
        verifier(policy).verify(&sample()),
        Err(AttestError::TcbNotAccepted {
            status: SAMPLE_STATUS,
            ..
        })
    ));
}

#[test]
fn collateral_validity_is_checked_at_the_policy_time() {
    let at = |secs| verifier(SgxPolicy::new().accept_status(SAMPLE_STATUS).at(secs));
    at(ISSUED_AT).verify(&sample()).expect("first valid second");
    at(EXPIRES_AT).verify(&sample()).expect("last valid second");
    assert_quote_invalid(at(ISSUED_AT - 1).verify(&sample()), "in the future");
    assert_quote_invalid(at(EXPIRES_AT + 1).verify(&sample()), "expired");
}

#[test]
fn expired_collateral_is_rejected_by_the_system_clock() {
    // The sample collateral expired in July 2025 (its QE identity, TCB info
    // and PCK CRL; the root CA CRL in April 2026): with the default clock
    // (now), it must be refused as expired before any policy applies.
    let policy = SgxPolicy::new().accept_status(SAMPLE_STATUS);
    assert_quote_invalid(verifier(policy).verify(&sample()), "expired");
}

#[test]
fn report_data_rewritten_by_the_host_is_rejected() {
    // A host that wants the evidence to bind its own keys edits the report
    // data: the attestation key's signature over the report breaks.
    let tampered = evidence_from_quote(&flip(SGX_QUOTE, REPORT_DATA_AT, 0x01), SGX_COLLATERAL);
    assert_quote_invalid(
        verifier(accepting_policy()).verify(&tampered),
        "ISV enclave report signature",
    );
}

#[test]
fn mrenclave_rewritten_by_the_host_is_rejected() {
    let tampered = evidence_from_quote(&flip(SGX_QUOTE, MRENCLAVE_AT, 0x80), SGX_COLLATERAL);
    assert_quote_invalid(
        verifier(accepting_policy()).verify(&tampered),
        "ISV enclave report signature",
    );
}

#[test]
fn any_flipped_bit_before_the_certificate_chain_is_rejected() {
    // Header, report body, their signature, the attestation key, the QE
    // report, its signature and the QE authentication data are all
    // authenticated. (Not every byte of the PEM chain after them is: PEM
    // whitespace, the unused copy of Intel's root, and bytes after the
    // quote can change without changing what verifies.) Every 5th byte,
    // each time a different bit, keeps the test fast.
    assert_eq!(&SGX_QUOTE[CERT_DATA_AT..][..10], b"-----BEGIN");
    let verifier = verifier(accepting_policy());
    for at in (0..CERT_DATA_AT).step_by(5) {
        let mask = 1 << (at % 8);
        let tampered = evidence_from_quote(&flip(SGX_QUOTE, at, mask), SGX_COLLATERAL);
        assert!(
            matches!(
                verifier.verify(&tampered),
                Err(AttestError::QuoteInvalid(_))
            ),
            "bit {mask:#04x} of byte {at} flipped"
        );
    }
}

#[test]
fn debug_bit_set_by_the_host_is_rejected() {
    // Flipping DEBUG in ATTRIBUTES breaks the signature: the quote is
    // invalid, not a (refusable) debug enclave.
    let tampered = evidence_from_quote(&flip(SGX_QUOTE, ATTRIBUTES_AT, 0x02), SGX_COLLATERAL);
    let policy = accepting_policy().allow_debug();
    assert_quote_invalid(
        verifier(policy).verify(&tampered),
        "ISV enclave report signature",
    );
}

#[test]
fn collateral_with_a_flipped_bit_is_rejected() {
    let collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(SGX_COLLATERAL).expect("collateral");
    let tcb_info_flipped = {
        // "tcbEvaluationDataNumber":17 -> 16, one bit of the signed TCB info.
        let mut c = collateral.clone();
        c.tcb_info = c.tcb_info.replacen(
            "\"tcbEvaluationDataNumber\":17",
            "\"tcbEvaluationDataNumber\":16",
            1,
        );
        assert_ne!(c.tcb_info, collateral.tcb_info);
        c
    };
    let tcb_signature_flipped = {
        let mut c = collateral.clone();
        c.tcb_info_signature[0] ^= 1;
        c
    };
    let qe_identity_flipped = {
        let mut c = collateral.clone();
        c.qe_identity = c
            .qe_identity
            .replacen("\"isvprodid\":1", "\"isvprodid\":0", 1);
        assert_ne!(c.qe_identity, collateral.qe_identity);
        c
    };
    let qe_signature_flipped = {
        let mut c = collateral.clone();
        c.qe_identity_signature[7] ^= 0x40;
        c
    };
    let pck_crl_flipped = {
        let mut c = collateral.clone();
        let last = c.pck_crl.len() - 1;
        c.pck_crl[last] ^= 1;
        c
    };
    for (name, tampered, reason) in [
        ("tcb info", tcb_info_flipped, "tcb_info"),
        ("tcb info signature", tcb_signature_flipped, "tcb_info"),
        ("qe identity", qe_identity_flipped, "qe_identity"),
        ("qe identity signature", qe_signature_flipped, "qe_identity"),
        ("pck crl", pck_crl_flipped, "InvalidCrlSignature"),
    ] {
        let json = serde_json::to_vec(&tampered).expect("serialise");
        let result = verifier(accepting_policy()).verify(&evidence_from_quote(SGX_QUOTE, &json));
        match result {
            Err(AttestError::QuoteInvalid(text)) => {
                assert!(text.contains(reason), "{name}: {text}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn collateral_upgraded_to_up_to_date_is_rejected() {
    // The host rewrites Intel's TCB info so the platform looks patched.
    let mut collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(SGX_COLLATERAL).expect("collateral");
    let original = collateral.tcb_info.clone();
    collateral.tcb_info = original.replace(
        "\"tcbStatus\":\"ConfigurationAndSWHardeningNeeded\"",
        "\"tcbStatus\":\"UpToDate\"",
    );
    assert_ne!(collateral.tcb_info, original);
    let json = serde_json::to_vec(&collateral).expect("serialise");
    assert_quote_invalid(
        verifier(SgxPolicy::new().at(VALID_AT)).verify(&evidence_from_quote(SGX_QUOTE, &json)),
        "tcb_info",
    );
}

#[test]
fn quote_with_another_quotes_collateral_is_rejected() {
    let swapped = evidence_from_quote(SGX_QUOTE, TDX_COLLATERAL);
    assert!(matches!(
        verifier(accepting_policy()).verify(&swapped),
        Err(AttestError::QuoteInvalid(_))
    ));
}

#[test]
fn tdx_quote_is_rejected_as_not_sgx() {
    let tdx = evidence_from_quote(TDX_QUOTE, TDX_COLLATERAL);
    let everything = SgxPolicy::new()
        .accept_status(TcbStatus::SWHardeningNeeded)
        .accept_status(TcbStatus::ConfigurationNeeded)
        .accept_status(TcbStatus::ConfigurationAndSWHardeningNeeded)
        .accept_status(TcbStatus::OutOfDate)
        .accept_status(TcbStatus::OutOfDateConfigurationNeeded)
        .allow_debug()
        .at(VALID_AT);
    assert_eq!(verifier(everything).verify(&tdx), Err(AttestError::NotSgx));
}

#[test]
fn verifier_without_sgx_trust_refuses_sgx_evidence() {
    assert_eq!(
        Verifier::new().verify(&sample()),
        Err(AttestError::Unsupported("sgx-dcap"))
    );
    let platform = clemmys_tee::sim::SimPlatform::generate();
    assert_eq!(
        Verifier::new()
            .trust_sim_platform(platform.public_key())
            .verify(&sample()),
        Err(AttestError::Unsupported("sgx-dcap"))
    );
}

#[test]
fn malformed_frames_are_rejected() {
    let raw_quote = Evidence {
        tee: TeeKind::SgxDcap,
        data: SGX_QUOTE.to_vec(),
    };
    assert_eq!(
        verifier(accepting_policy()).verify(&raw_quote),
        Err(AttestError::Malformed("sgx-dcap"))
    );
    let not_json = evidence_from_quote(SGX_QUOTE, &SGX_COLLATERAL[1..]);
    assert_eq!(
        verifier(accepting_policy()).verify(&not_json),
        Err(AttestError::Malformed("sgx-dcap collateral"))
    );
}
