//! Verifying evidence against trusted roots. The only way to obtain a
//! [`VerifiedEvidence`].

use clemmys_proto::identity::EnclavePublicKeys;
use clemmys_proto::{Evidence, Measurement, SigningPublicKey, TeeKind};

use crate::sgx::{self, SgxDetails, SgxPolicy, TcbStatus};
use crate::sim::SimReport;

/// Evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The bytes are not evidence of the claimed kind.
    #[error("malformed {0} evidence")]
    Malformed(&'static str),
    /// The signature over the evidence does not verify.
    #[error("forged evidence: the {0} signature does not verify")]
    Forged(&'static str),
    /// Signed by a platform this verifier does not trust.
    #[error("evidence from an untrusted platform key {0}")]
    UntrustedPlatform(SigningPublicKey),
    /// This verifier accepts no evidence of that kind.
    #[error("{0} evidence is not accepted by this verifier")]
    Unsupported(&'static str),
    /// The report data does not bind the keys presented with it.
    #[error("the evidence does not bind the presented enclave keys")]
    KeysNotBound,
    /// The DCAP quote or its collateral did not verify (bad signature,
    /// certificate chain, CRL, expired or not yet valid collateral, …);
    /// the text is the quote verification library's.
    #[error("invalid sgx-dcap quote: {0}")]
    QuoteInvalid(String),
    /// The quote verified, but the platform's TCB status is not one the
    /// policy accepts.
    #[error("sgx-dcap platform TCB status {status} is not accepted (advisories: {advisories:?})")]
    TcbNotAccepted {
        /// The platform's status.
        status: TcbStatus,
        /// The Intel security advisories that come with it.
        advisories: Vec<String>,
    },
    /// The quote is from a debug enclave, whose memory the host can read;
    /// the policy does not allow debug.
    #[error("sgx-dcap evidence from a debug enclave")]
    DebugEnclave,
    /// The quote is not of an SGX enclave (for example a TDX quote).
    #[error("the quote is not from an SGX enclave")]
    NotSgx,
}

/// Evidence that verified: its measurement and report data can be trusted
/// as far as its TEE kind can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvidence {
    tee: TeeKind,
    measurement: Measurement,
    report_data: [u8; 64],
    sgx: Option<SgxDetails>,
}

impl VerifiedEvidence {
    /// Which TEE produced it.
    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    /// Whether it comes from hardware that protects the enclave: never true
    /// for `sim`, nor for an SGX debug enclave (whose memory the host can
    /// read), which a verifier accepts only if told to.
    pub fn is_hardware(&self) -> bool {
        self.tee.is_hardware() && !self.sgx.as_ref().is_some_and(SgxDetails::is_debug)
    }

    /// The enclave's measurement (for `sgx-dcap`, MRENCLAVE).
    pub fn measurement(&self) -> Measurement {
        self.measurement
    }

    /// The 64 bytes of report data the evidence carries.
    pub fn report_data(&self) -> &[u8; 64] {
        &self.report_data
    }

    /// For `sgx-dcap` evidence, what the quote says besides measurement and
    /// report data: TCB status, advisories, MRSIGNER.
    pub fn sgx(&self) -> Option<&SgxDetails> {
        self.sgx.as_ref()
    }

    /// Checks that the report data binds `keys`.
    pub fn check_binds(&self, keys: &EnclavePublicKeys) -> Result<(), AttestError> {
        if self.report_data == keys.report_data() {
            Ok(())
        } else {
            Err(AttestError::KeysNotBound)
        }
    }
}

/// Verifies evidence against the roots it trusts.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    sim_platforms: Vec<SigningPublicKey>,
    sgx: Option<SgxPolicy>,
}

impl Verifier {
    /// A verifier accepting nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts `sim` evidence signed by `platform`. Such evidence gives
    /// no hardware protection (see [`crate::SIM_WARNING`]).
    pub fn trust_sim_platform(mut self, platform: SigningPublicKey) -> Self {
        if !self.sim_platforms.contains(&platform) {
            self.sim_platforms.push(platform);
        }
        self
    }

    /// Also accepts `sgx-dcap` evidence: quotes that chain to Intel's SGX
    /// production root, of SGX enclaves, that `policy` accepts (see
    /// [`SgxPolicy`]). Replaces any earlier SGX policy.
    pub fn trust_sgx_dcap(mut self, policy: SgxPolicy) -> Self {
        self.sgx = Some(policy);
        self
    }

    /// Verifies `evidence`.
    pub fn verify(&self, evidence: &Evidence) -> Result<VerifiedEvidence, AttestError> {
        match evidence.tee {
            TeeKind::Sim => {
                let report =
                    SimReport::parse(&evidence.data).map_err(|_| AttestError::Malformed("sim"))?;
                report
                    .verify_signature()
                    .map_err(|_| AttestError::Forged("sim platform"))?;
                if !self.sim_platforms.contains(&report.platform) {
                    return Err(AttestError::UntrustedPlatform(report.platform));
                }
                Ok(VerifiedEvidence {
                    tee: TeeKind::Sim,
                    measurement: report.measurement,
                    report_data: report.report_data,
                    sgx: None,
                })
            }
            TeeKind::SgxDcap => {
                let policy = self
                    .sgx
                    .as_ref()
                    .ok_or(AttestError::Unsupported("sgx-dcap"))?;
                let quote = sgx::verify(&evidence.data, policy)?;
                Ok(VerifiedEvidence {
                    tee: TeeKind::SgxDcap,
                    measurement: quote.mr_enclave,
                    report_data: quote.report_data,
                    sgx: Some(quote.details),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimPlatform;
    use clemmys_proto::identity::EnclaveKeys;

    #[test]
    fn accepts_trusted_sim_evidence_binding_the_keys() {
        let platform = SimPlatform::generate();
        let keys = EnclaveKeys::generate(&mut crate::os_rng()).public();
        let evidence = platform.report(&[3; 32], &keys.report_data());
        let verified = Verifier::new()
            .trust_sim_platform(platform.public_key())
            .verify(&evidence)
            .expect("valid");
        assert_eq!(verified.measurement(), Measurement::sim([3; 32]));
        assert!(!verified.is_hardware());
        verified.check_binds(&keys).expect("binds");
        let other = EnclaveKeys::generate(&mut crate::os_rng()).public();
        assert_eq!(verified.check_binds(&other), Err(AttestError::KeysNotBound));
    }

    #[test]
    fn sim_evidence_never_carries_an_sgx_measurement() {
        // The provider holds the sim platform key and can claim any digest,
        // an enclave's MRENCLAVE included: what verifies is still a `sim`
        // measurement, unequal to the `sgx-dcap` one of the same digest.
        let platform = SimPlatform::generate();
        let mr_enclave = [9; 32];
        let verified = Verifier::new()
            .trust_sim_platform(platform.public_key())
            .trust_sgx_dcap(SgxPolicy::new())
            .verify(&platform.report(&mr_enclave, &[0; 64]))
            .expect("valid sim evidence");
        assert_eq!(verified.measurement(), Measurement::sim(mr_enclave));
        assert_ne!(verified.measurement(), Measurement::sgx_dcap(mr_enclave));
    }

    #[test]
    fn refuses_forged_tampered_and_untrusted_evidence() {
        let platform = SimPlatform::generate();
        let verifier = Verifier::new().trust_sim_platform(platform.public_key());
        let evidence = platform.report(&[3; 32], &[0; 64]);

        let mut tampered = evidence.clone();
        // Flip a bit of the measurement: the platform signature breaks.
        tampered.data[40] ^= 1;
        assert!(matches!(
            verifier.verify(&tampered),
            Err(AttestError::Forged(_) | AttestError::Malformed(_))
        ));

        let stranger = SimPlatform::generate();
        let foreign = stranger.report(&[3; 32], &[0; 64]);
        assert_eq!(
            verifier.verify(&foreign),
            Err(AttestError::UntrustedPlatform(stranger.public_key()))
        );

        let unsigned = Evidence {
            tee: TeeKind::Sim,
            data: b"I am an enclave, trust me".to_vec(),
        };
        assert_eq!(
            verifier.verify(&unsigned),
            Err(AttestError::Malformed("sim"))
        );
        assert!(
            Verifier::new().verify(&evidence).is_err(),
            "no trusted roots, nothing verifies"
        );
    }
}
