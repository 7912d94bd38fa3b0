//! Intel SGX with DCAP attestation: the verifier side.
//!
//! An SGX enclave proves what it is with a *quote*: its report (MRENCLAVE,
//! MRSIGNER, attributes, 64 bytes of report data) signed by the platform's
//! Quoting Enclave, whose key is certified by a PCK certificate chaining to
//! Intel's SGX root CA. Checking a quote also needs *collateral* (TCB info,
//! QE identity, CRLs, issuer chains) that Intel signs and a PCCS serves; the
//! attesting host fetches it and attaches it to the evidence, so a verifier
//! needs no network. The collateral is signed by Intel, so the host that
//! attaches it cannot forge it; it can attach an older genuine one, which
//! is judged current against the verifier's clock (see docs/SGX.md: a
//! verifier on the provider's clock needs a floor of the newest collateral
//! it has seen, which is not built).
//!
//! Verification itself is done by the [`dcap_qvl`] crate (pure Rust,
//! RustCrypto backend, Intel's production root compiled in). This module
//! frames the evidence, and on top of `dcap-qvl` requires an SGX enclave
//! (not a TDX quote), refuses debug enclaves and applies the TCB-status
//! [`SgxPolicy`].
//!
//! Evidence bytes are not canonical: besides the collateral, which the host
//! refreshes from its PCCS, parts of a quote are not authenticated (PEM
//! whitespace in the PCK chain, the chain's copy of Intel's root, which is
//! not used since the root is compiled in, and bytes after the quote). Two
//! evidence blobs with different digests can verify to the same enclave.
//!
//! There is no SGX [`Tee`](crate::Tee) here: producing quotes needs SGX
//! hardware and a runtime such as Gramine (see `docs/SGX.md`).

use std::time::{SystemTime, UNIX_EPOCH};

use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{Evidence, Measurement, TeeKind};
use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::configs::RustCryptoConfig;
use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;

use crate::AttestError;

/// Domain of the frame carried in `sgx-dcap` evidence.
const EVIDENCE: &str = "clemmys/sgx-dcap-evidence/v1";

/// The DEBUG bit of an SGX report's `ATTRIBUTES.FLAGS` (bit 1 of byte 0).
const ATTRIBUTE_DEBUG: u8 = 0x02;

/// `sgx-dcap` evidence: the frame `clemmys/sgx-dcap-evidence/v1 {quote,
/// collateral_json}` of a raw DCAP quote (version 3) and the JSON of its
/// `QuoteCollateralV3`, as the host fetched it from its PCCS.
///
/// Nothing is checked here; [`Verifier::verify`](crate::Verifier::verify)
/// checks everything.
pub fn evidence_from_quote(quote: &[u8], collateral_json: &[u8]) -> Evidence {
    Evidence {
        tee: TeeKind::SgxDcap,
        data: Writer::new(EVIDENCE)
            .bytes(quote)
            .bytes(collateral_json)
            .finish(),
    }
}

/// The TCB status Intel's collateral assigns to a platform and its Quoting
/// Enclave, merged as Intel's quote verification library does.
///
/// Anything but [`TcbStatus::UpToDate`] means the platform lacks a
/// microcode or configuration fix for a published vulnerability (named by
/// the advisories that come with it). `Revoked` never gets this far: such
/// quotes are refused whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcbStatus {
    /// The platform is patched and configured as Intel recommends.
    UpToDate,
    /// Patched, but the enclave should be built with software mitigations
    /// for advisories that microcode cannot fix (e.g. LVI).
    SWHardeningNeeded,
    /// Patched, but the platform configuration (BIOS settings such as
    /// hyper-threading) leaves it exposed to the listed advisories.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// Microcode or the Quoting Enclave is older than the latest fixes.
    OutOfDate,
    /// Out of date and needing configuration.
    OutOfDateConfigurationNeeded,
}

impl TcbStatus {
    /// Intel's name for the status, as it appears in TCB info.
    pub fn name(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
        }
    }

    fn from_dcap(status: dcap_qvl::TcbStatus) -> Result<Self, AttestError> {
        use dcap_qvl::TcbStatus as Dcap;
        match status {
            Dcap::UpToDate => Ok(TcbStatus::UpToDate),
            Dcap::SWHardeningNeeded => Ok(TcbStatus::SWHardeningNeeded),
            Dcap::ConfigurationNeeded => Ok(TcbStatus::ConfigurationNeeded),
            Dcap::ConfigurationAndSWHardeningNeeded => {
                Ok(TcbStatus::ConfigurationAndSWHardeningNeeded)
            }
            Dcap::OutOfDate => Ok(TcbStatus::OutOfDate),
            Dcap::OutOfDateConfigurationNeeded => Ok(TcbStatus::OutOfDateConfigurationNeeded),
            // dcap-qvl refuses revoked platforms itself, and the TD statuses
            // only exist for TDX; neither can describe a verified SGX quote.
            other @ (Dcap::Revoked
            | Dcap::TDRelaunchAdvised
            | Dcap::TDRelaunchAdvisedConfigurationNeeded) => Err(AttestError::QuoteInvalid(
                format!("TCB status {other} cannot be accepted for an SGX enclave"),
            )),
        }
    }
}

impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the verification time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    System,
    At(u64),
}

/// What a verifier accepts from SGX DCAP evidence.
///
/// The default accepts only production enclaves on `UpToDate` platforms,
/// checking the collateral's validity against the system clock. Everything
/// else is an explicit opt-in:
///
/// ```
/// use clemmys_tee::sgx::{SgxPolicy, TcbStatus};
///
/// let policy = SgxPolicy::new()
///     .accept_status(TcbStatus::SWHardeningNeeded)
///     .at(1_751_328_000); // a fixed instant, for tests and audits
/// assert!(policy.accepts(TcbStatus::SWHardeningNeeded));
/// assert!(!policy.accepts(TcbStatus::OutOfDate));
/// ```
///
/// When a status other than `UpToDate` is accepted, the advisories that
/// came with it stay on the [`VerifiedEvidence`](crate::VerifiedEvidence)
/// ([`SgxDetails::advisories`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxPolicy {
    accepted: Vec<TcbStatus>,
    allow_debug: bool,
    clock: Clock,
}

impl Default for SgxPolicy {
    fn default() -> Self {
        Self {
            accepted: vec![TcbStatus::UpToDate],
            allow_debug: false,
            clock: Clock::System,
        }
    }
}

impl SgxPolicy {
    /// The default policy: `UpToDate` only, no debug enclaves, system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts platforms of `status`. Their advisories are recorded on
    /// the verified evidence.
    #[must_use]
    pub fn accept_status(mut self, status: TcbStatus) -> Self {
        if !self.accepted.contains(&status) {
            self.accepted.push(status);
        }
        self
    }

    /// Also accepts debug enclaves. **A debug enclave's memory can be read
    /// and changed by the host**, so it protects nothing; its verified
    /// evidence does not count as hardware
    /// ([`VerifiedEvidence::is_hardware`](crate::VerifiedEvidence::is_hardware)
    /// is false). For development on an SGX machine only.
    #[must_use]
    pub fn allow_debug(mut self) -> Self {
        self.allow_debug = true;
        self
    }

    /// Verifies as of `unix_secs` (seconds since the Unix epoch) instead of
    /// the system clock: collateral is valid only between its issue date and
    /// its next update, and certificates and CRLs only in their validity.
    #[must_use]
    pub fn at(mut self, unix_secs: u64) -> Self {
        self.clock = Clock::At(unix_secs);
        self
    }

    /// Whether platforms of `status` are accepted.
    pub fn accepts(&self, status: TcbStatus) -> bool {
        self.accepted.contains(&status)
    }

    /// Whether debug enclaves are accepted.
    pub fn allows_debug(&self) -> bool {
        self.allow_debug
    }

    /// The verification time, in seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match self.clock {
            Clock::At(secs) => secs,
            // A clock before 1970 gives 0, before any collateral's issue
            // date: verification fails closed.
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

/// What a verified SGX quote says beyond measurement and report data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxDetails {
    tcb_status: TcbStatus,
    advisories: Vec<String>,
    mr_signer: [u8; 32],
    isv_prod_id: u16,
    isv_svn: u16,
    debug: bool,
}

impl SgxDetails {
    /// The platform's TCB status (one the policy accepted).
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }

    /// Intel security advisories (`INTEL-SA-…`) the platform is exposed to.
    pub fn advisories(&self) -> &[String] {
        &self.advisories
    }

    /// MRSIGNER: the hash of the key that signed the enclave.
    pub fn mr_signer(&self) -> [u8; 32] {
        self.mr_signer
    }

    /// The enclave's product id, as its signer set it.
    pub fn isv_prod_id(&self) -> u16 {
        self.isv_prod_id
    }

    /// The enclave's security version number, as its signer set it.
    pub fn isv_svn(&self) -> u16 {
        self.isv_svn
    }

    /// Whether it is a debug enclave (only if the policy allowed debug).
    pub fn is_debug(&self) -> bool {
        self.debug
    }
}

/// A quote that verified under a policy.
pub(crate) struct VerifiedQuote {
    pub mr_enclave: Measurement,
    pub report_data: [u8; 64],
    pub details: SgxDetails,
}

/// Verifies the `data` of `sgx-dcap` evidence under `policy`.
pub(crate) fn verify(data: &[u8], policy: &SgxPolicy) -> Result<VerifiedQuote, AttestError> {
    let (quote, collateral_json) = parse_frame(data)?;
    let collateral: QuoteCollateralV3 = serde_json::from_slice(collateral_json)
        .map_err(|_| AttestError::Malformed("sgx-dcap collateral"))?;

    // Refuse TDX (and other) quotes before any cryptography, so they are
    // named for what they are whatever state their collateral is in. The
    // header is not trusted here, only used to refuse; the verified report
    // is checked again below.
    let header = Quote::parse(quote)
        .map_err(|error| AttestError::QuoteInvalid(format!("{error:#}")))?
        .header;
    if !header.is_sgx() {
        return Err(AttestError::NotSgx);
    }

    let now = policy.now();
    // dcap-qvl's own debug check is turned off so that a debug enclave is
    // reported as `DebugEnclave` below rather than as an opaque error; that
    // check runs after all signatures verified, as ours does. `claims_only`
    // applies no business policy: the TCB status is appraised below.
    let claims = QuoteVerifier::new_prod()
        .with_config::<RustCryptoConfig>()
        .allow_debug(true)
        .verify_with_policy(
            quote,
            collateral,
            now,
            &dcap_qvl::QuotePolicy::claims_only(now),
        )
        .map_err(|error| AttestError::QuoteInvalid(format!("{error:#}")))?;

    let Report::SgxEnclave(report) = claims.report else {
        return Err(AttestError::NotSgx);
    };
    let debug = is_debug(&report.attributes);
    if debug && !policy.allow_debug {
        return Err(AttestError::DebugEnclave);
    }
    let tcb_status = TcbStatus::from_dcap(claims.tcb.status)?;
    if !policy.accepts(tcb_status) {
        return Err(AttestError::TcbNotAccepted {
            status: tcb_status,
            advisories: claims.tcb.advisory_ids,
        });
    }
    Ok(VerifiedQuote {
        mr_enclave: Measurement::sgx_dcap(report.mr_enclave),
        report_data: report.report_data,
        details: SgxDetails {
            tcb_status,
            advisories: claims.tcb.advisory_ids,
            mr_signer: report.mr_signer,
            isv_prod_id: report.isv_prod_id,
            isv_svn: report.isv_svn,
            debug,
        },
    })
}

/// Splits the evidence frame into the quote and the collateral JSON.
fn parse_frame(data: &[u8]) -> Result<(&[u8], &[u8]), AttestError> {
    let malformed = |_| AttestError::Malformed("sgx-dcap");
    let mut reader = Reader::new(data, EVIDENCE).map_err(malformed)?;
    let quote = reader.bytes().map_err(malformed)?;
    let collateral = reader.bytes().map_err(malformed)?;
    reader.finish().map_err(malformed)?;
    Ok((quote, collateral))
}

/// Whether SGX report `attributes` mark a debug enclave.
fn is_debug(attributes: &[u8; 16]) -> bool {
    attributes[0] & ATTRIBUTE_DEBUG != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_rejects_junk() {
        let evidence = evidence_from_quote(b"quote", b"{}");
        assert_eq!(evidence.tee, TeeKind::SgxDcap);
        let (quote, collateral) = parse_frame(&evidence.data).expect("frame");
        assert_eq!((quote, collateral), (&b"quote"[..], &b"{}"[..]));

        let mut trailing = evidence.data.clone();
        trailing.push(0);
        assert_eq!(
            parse_frame(&trailing),
            Err(AttestError::Malformed("sgx-dcap"))
        );
        let sim_domain = Writer::new("clemmys/sim-report/v1").bytes(b"q").finish();
        assert_eq!(
            parse_frame(&sim_domain),
            Err(AttestError::Malformed("sgx-dcap"))
        );
        for len in 0..evidence.data.len() {
            assert!(parse_frame(&evidence.data[..len]).is_err(), "truncated");
        }
    }

    #[test]
    fn malformed_collateral_and_quote_are_refused_without_panicking() {
        let policy = SgxPolicy::new().at(1_751_328_000);
        assert!(matches!(
            verify(&evidence_from_quote(b"quote", b"not json").data, &policy),
            Err(AttestError::Malformed("sgx-dcap collateral"))
        ));
        let collateral = include_bytes!("../tests/fixtures/sgx_quote_collateral.json");
        let quote = include_bytes!("../tests/fixtures/sgx_quote");
        for len in [0, 1, 47, 48, 431, 432, quote.len() - 1] {
            let evidence = evidence_from_quote(&quote[..len], collateral);
            assert!(
                matches!(
                    verify(&evidence.data, &policy),
                    Err(AttestError::QuoteInvalid(_))
                ),
                "quote truncated to {len} bytes"
            );
        }
    }

    #[test]
    fn debug_bit_is_bit_one_of_the_first_attribute_byte() {
        // INIT | MODE64BIT, as in a production enclave.
        let mut attributes = [0u8; 16];
        attributes[0] = 0x05;
        assert!(!is_debug(&attributes));
        attributes[0] |= ATTRIBUTE_DEBUG;
        assert!(is_debug(&attributes));
    }

    #[test]
    fn default_policy_accepts_only_up_to_date_and_no_debug() {
        let policy = SgxPolicy::default();
        assert!(policy.accepts(TcbStatus::UpToDate));
        for status in [
            TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::ConfigurationAndSWHardeningNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded,
        ] {
            assert!(!policy.accepts(status), "{status}");
            assert!(policy.clone().accept_status(status).accepts(status));
        }
        assert!(!policy.allows_debug());
        assert!(policy.clone().allow_debug().allows_debug());
        assert_eq!(policy.clone().at(42).now(), 42);
        assert!(policy.now() > 1_700_000_000, "system clock");
    }

    #[test]
    fn revoked_and_td_statuses_are_never_accepted() {
        for status in [
            dcap_qvl::TcbStatus::Revoked,
            dcap_qvl::TcbStatus::TDRelaunchAdvised,
            dcap_qvl::TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
        ] {
            assert!(matches!(
                TcbStatus::from_dcap(status),
                Err(AttestError::QuoteInvalid(_))
            ));
        }
        assert_eq!(
            TcbStatus::from_dcap(dcap_qvl::TcbStatus::ConfigurationAndSWHardeningNeeded),
            Ok(TcbStatus::ConfigurationAndSWHardeningNeeded)
        );
    }
}
