//! RA-TLS certificates: a self-signed X.509 certificate whose extension
//! carries TEE evidence binding the certificate's own public key.
//!
//! The extension ([`EVIDENCE_OID`], not critical) holds a DER OCTET STRING
//! of the framed bytes
//!
//! ```text
//! "clemmys/ra-tls-evidence/v1" ‖ tee name ‖ evidence data ‖ gateway id (32)
//! ```
//!
//! and the evidence's 64 bytes of report data are
//! `SHA-512("clemmys/ra-tls-report-data/v1" ‖ SubjectPublicKeyInfo DER ‖
//! gateway id)` ([`report_data`]): the TLS key and the gateway's Ed25519
//! client identity, both generated inside the enclave. A verifier that
//! completed a TLS handshake with the certificate (which proves the server
//! holds its key), checked the evidence against the roots it trusts and
//! the measurement it expects, and found the report data to match, knows
//! that the other end of the connection is an enclave of that measurement
//! ([`RaTlsCertificate::verify`]). Nothing else in the certificate is
//! trusted: not its names, dates or signature.

use clemmys_proto::wire::{Reader, Writer};
use clemmys_proto::{ClientId, Evidence, Measurement, TeeKind};
use clemmys_tee::{AttestError, Tee, VerifiedEvidence, Verifier};
use sha2::{Digest as _, Sha512};

/// The X.509 extension carrying the evidence. Clemmys has no registered
/// arc: this is an unregistered private-enterprise number, which only
/// Clemmys' verifier reads; it must move to a registered one before the
/// format is relied on outside this project.
pub const EVIDENCE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57_999, 1, 1];
/// [`EVIDENCE_OID`] in dotted form.
pub const EVIDENCE_OID_TEXT: &str = "1.3.6.1.4.1.57999.1.1";

const EXTENSION_FRAME: &str = "clemmys/ra-tls-evidence/v1";
const REPORT_DATA_DOMAIN: &[u8] = b"clemmys/ra-tls-report-data/v1";

/// An RA-TLS certificate could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaTlsError {
    /// The bytes are not an X.509 certificate.
    #[error("not an X.509 certificate")]
    NotACertificate,
    /// The certificate carries no Clemmys evidence extension.
    #[error("the certificate carries no attestation evidence (extension {EVIDENCE_OID_TEXT})")]
    NoEvidence,
    /// The evidence extension is malformed.
    #[error("the certificate's evidence extension is malformed")]
    MalformedEvidence,
    /// The evidence does not verify against the trusted roots.
    #[error("the certificate's evidence does not verify: {0}")]
    Attestation(#[from] AttestError),
    /// The evidence verifies, but binds another key than the certificate's.
    #[error(
        "the evidence does not bind the certificate's public key: it was copied from another certificate"
    )]
    KeyNotBound,
    /// The evidence names another enclave than the one expected.
    #[error("the gateway's evidence names measurement {found}, but {expected} is expected")]
    UnexpectedMeasurement {
        /// What the evidence names.
        found: Measurement,
        /// What the verifier expects.
        expected: Measurement,
    },
    /// The enclave could not produce evidence.
    #[error("producing evidence: {0}")]
    Attest(AttestError),
    /// rcgen refused to make the certificate.
    #[error("making the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The report data binding `spki_der` (a SubjectPublicKeyInfo) and the
/// gateway identity `gateway`.
pub fn report_data(spki_der: &[u8], gateway: &ClientId) -> [u8; 64] {
    let mut hash = Sha512::new();
    hash.update(REPORT_DATA_DOMAIN);
    hash.update(
        Writer::new("clemmys/ra-tls-bound-keys/v1")
            .bytes(spki_der)
            .bytes(gateway.as_bytes())
            .finish(),
    );
    hash.finalize().into()
}

/// Makes the self-signed RA-TLS certificate of `tls_key` for `names` (DNS
/// names or IP addresses), with evidence from `tee` binding the key and
/// `gateway`.
pub fn make_certificate(
    tee: &dyn Tee,
    tls_key: &rcgen::KeyPair,
    gateway: &ClientId,
    names: &[String],
) -> Result<rcgen::Certificate, RaTlsError> {
    use rcgen::PublicKeyData as _;
    let spki = tls_key.subject_public_key_info();
    let evidence = tee
        .attest(&report_data(&spki, gateway))
        .map_err(RaTlsError::Attest)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Clemmys attested gateway");
    // No key usage and no CA flag: a plain self-signed server certificate,
    // which OpenSSL (curl, Node), Go (wsk) and rustls accept as a pinned
    // trust anchor for exactly itself.
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            EVIDENCE_OID,
            octet_string(&encode_extension(&evidence, gateway)),
        ));
    Ok(params.self_signed(tls_key)?)
}

fn encode_extension(evidence: &Evidence, gateway: &ClientId) -> Vec<u8> {
    Writer::new(EXTENSION_FRAME)
        .str(evidence.tee.name())
        .bytes(&evidence.data)
        .bytes(gateway.as_bytes())
        .finish()
}

/// `bytes` as a DER OCTET STRING.
fn octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut der = vec![0x04];
    let length = bytes.len();
    if length < 0x80 {
        // Fits the short form: one byte below 128.
        der.push(length as u8);
    } else {
        let significant: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        // At most 8 bytes of a usize: the long form's count fits 7 bits.
        der.push(0x80 | significant.len() as u8);
        der.extend_from_slice(&significant);
    }
    der.extend_from_slice(bytes);
    der
}

/// What an RA-TLS certificate claims, read but not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaTlsCertificate {
    spki_der: Vec<u8>,
    evidence: Evidence,
    gateway: ClientId,
}

impl RaTlsCertificate {
    /// Reads the certificate `der`.
    pub fn parse(der: &[u8]) -> Result<Self, RaTlsError> {
        let (_, certificate) =
            x509_parser::parse_x509_certificate(der).map_err(|_| RaTlsError::NotACertificate)?;
        let spki_der = certificate.public_key().raw.to_vec();
        let extension = certificate
            .extensions()
            .iter()
            .find(|extension| extension.oid.to_id_string() == EVIDENCE_OID_TEXT)
            .ok_or(RaTlsError::NoEvidence)?;
        let (rest, content) = x509_parser::der_parser::der::parse_der_octetstring(extension.value)
            .map_err(|_| RaTlsError::MalformedEvidence)?;
        if !rest.is_empty() {
            return Err(RaTlsError::MalformedEvidence);
        }
        let framed = content
            .as_slice()
            .map_err(|_| RaTlsError::MalformedEvidence)?;
        let mut reader =
            Reader::new(framed, EXTENSION_FRAME).map_err(|_| RaTlsError::MalformedEvidence)?;
        let malformed = |_| RaTlsError::MalformedEvidence;
        let tee = TeeKind::from_name(reader.str().map_err(malformed)?)
            .ok_or(RaTlsError::MalformedEvidence)?;
        let data = reader.bytes().map_err(malformed)?.to_vec();
        let gateway = ClientId(reader.array().map_err(malformed)?);
        reader.finish().map_err(malformed)?;
        Ok(Self {
            spki_der,
            evidence: Evidence { tee, data },
            gateway,
        })
    }

    /// The evidence the certificate carries.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// The certificate's SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The gateway identity it claims.
    pub fn gateway(&self) -> ClientId {
        self.gateway
    }

    /// Verifies the evidence with `verifier`, that it binds this
    /// certificate's key and gateway identity, and that it names
    /// `expected`. The caller must have completed a TLS handshake with
    /// this certificate (proof that the peer holds its key).
    pub fn verify(
        &self,
        verifier: &Verifier,
        expected: Measurement,
    ) -> Result<VerifiedGateway, RaTlsError> {
        let evidence = verifier.verify(&self.evidence)?;
        if evidence.report_data() != &report_data(&self.spki_der, &self.gateway) {
            return Err(RaTlsError::KeyNotBound);
        }
        if evidence.measurement() != expected {
            return Err(RaTlsError::UnexpectedMeasurement {
                found: evidence.measurement(),
                expected,
            });
        }
        Ok(VerifiedGateway {
            evidence,
            gateway: self.gateway,
        })
    }
}

/// A gateway whose RA-TLS certificate verified.
#[derive(Debug, Clone)]
pub struct VerifiedGateway {
    /// Its verified evidence (TEE kind, measurement, whether hardware).
    pub evidence: VerifiedEvidence,
    /// Its client identity, held only inside that enclave.
    pub gateway: ClientId,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clemmys_proto::identity::ClientIdentity;
    use clemmys_tee::sim::{SimPlatform, SimTee};
    use clemmys_tee::{Role, measurement, os_rng};

    use super::*;

    fn gateway_tee(platform: &Arc<SimPlatform>, role: Role) -> SimTee {
        SimTee::new(platform.clone(), &measurement::expected_digest(role))
    }

    fn made(tee: &SimTee, key: &rcgen::KeyPair, id: &ClientId) -> Vec<u8> {
        make_certificate(tee, key, id, &["localhost".into(), "127.0.0.1".into()])
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn a_certificate_verifies_for_its_measurement_and_key() {
        let platform = Arc::new(SimPlatform::generate());
        let tee = gateway_tee(&platform, Role::Gateway);
        let key = rcgen::KeyPair::generate().expect("key");
        let id = ClientIdentity::generate(&mut os_rng()).id();
        let der = made(&tee, &key, &id);
        let parsed = RaTlsCertificate::parse(&der).expect("parsed");
        assert_eq!(parsed.gateway(), id);
        let verifier = Verifier::new().trust_sim_platform(platform.public_key());
        let verified = parsed
            .verify(&verifier, measurement::expected(Role::Gateway))
            .expect("verified");
        assert!(!verified.evidence.is_hardware());
        assert_eq!(verified.gateway, id);
    }

    #[test]
    fn evidence_of_another_measurement_is_refused() {
        let platform = Arc::new(SimPlatform::generate());
        // A genuine platform signing for another program (the broker's
        // measurement here): the gateway's measurement is what is expected.
        let tee = gateway_tee(&platform, Role::KeyBroker);
        let key = rcgen::KeyPair::generate().expect("key");
        let id = ClientIdentity::generate(&mut os_rng()).id();
        let parsed = RaTlsCertificate::parse(&made(&tee, &key, &id)).expect("parsed");
        let verifier = Verifier::new().trust_sim_platform(platform.public_key());
        assert!(matches!(
            parsed.verify(&verifier, measurement::expected(Role::Gateway)),
            Err(RaTlsError::UnexpectedMeasurement { .. })
        ));
    }

    #[test]
    fn evidence_copied_into_another_certificate_is_refused() {
        let platform = Arc::new(SimPlatform::generate());
        let tee = gateway_tee(&platform, Role::Gateway);
        let id = ClientIdentity::generate(&mut os_rng()).id();
        let genuine =
            RaTlsCertificate::parse(&made(&tee, &rcgen::KeyPair::generate().expect("key"), &id))
                .expect("parsed");
        // The provider's own key, carrying the genuine gateway's evidence.
        let mut copied =
            RaTlsCertificate::parse(&made(&tee, &rcgen::KeyPair::generate().expect("key"), &id))
                .expect("parsed");
        copied.evidence = genuine.evidence.clone();
        let verifier = Verifier::new().trust_sim_platform(platform.public_key());
        assert!(matches!(
            copied.verify(&verifier, measurement::expected(Role::Gateway)),
            Err(RaTlsError::KeyNotBound)
        ));
        // And another gateway identity under the genuine evidence.
        let mut renamed = genuine.clone();
        renamed.gateway = ClientIdentity::generate(&mut os_rng()).id();
        assert!(matches!(
            renamed.verify(&verifier, measurement::expected(Role::Gateway)),
            Err(RaTlsError::KeyNotBound)
        ));
        // Signed by a platform nobody trusts.
        let stranger = Verifier::new().trust_sim_platform(SimPlatform::generate().public_key());
        assert!(matches!(
            genuine.verify(&stranger, measurement::expected(Role::Gateway)),
            Err(RaTlsError::Attestation(AttestError::UntrustedPlatform(_)))
        ));
    }

    #[test]
    fn certificates_without_evidence_or_with_garbage_are_refused() {
        let plain = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("certificate");
        assert!(matches!(
            RaTlsCertificate::parse(plain.der()),
            Err(RaTlsError::NoEvidence)
        ));
        assert!(matches!(
            RaTlsCertificate::parse(b"not a certificate"),
            Err(RaTlsError::NotACertificate)
        ));
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                EVIDENCE_OID,
                octet_string(b"junk"),
            ));
        let junk = params
            .self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("certificate");
        assert!(matches!(
            RaTlsCertificate::parse(junk.der()),
            Err(RaTlsError::MalformedEvidence)
        ));
    }

    #[test]
    fn long_octet_strings_use_the_long_form() {
        assert_eq!(octet_string(&[7; 3]), vec![4, 3, 7, 7, 7]);
        let long = octet_string(&[0; 300]);
        assert_eq!(&long[..4], &[4, 0x82, 1, 44]);
        assert_eq!(long.len(), 304);
    }
}
