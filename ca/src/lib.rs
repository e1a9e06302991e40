//! The cluster CA: root certificate, node certificates signed from CSRs, and join tokens.
//!
//! Follows SwarmKit: the manager chooses the node ID and role and replaces everything the CSR
//! asked for; the CSR only contributes its public key (and proves possession of the key).

mod renewal;
mod token;
mod unlock_key;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::CertificateSigningRequestParams;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::PKCS_ECDSA_P256_SHA256;
use rcgen::SanType;
use rcgen::SerialNumber;
pub use renewal::RENEW_FROM;
pub use renewal::RENEW_UNTIL;
pub use renewal::check_rejoin_proof;
pub use renewal::random_renewal_point;
pub use renewal::rejoin_proof;
pub use renewal::renewal_delay;
use swarm_model::NodeRole;
use swarm_model::TlsInfo;
use swarm_model::base36;
use swarm_model::random_bytes;
pub use token::JoinToken;
pub use token::TokenError;
pub use token::check_join_token;
pub use unlock_key::UnlockKey;
pub use unlock_key::UnlockKeyError;
use x509_parser::prelude::FromDer;
use x509_parser::prelude::X509Certificate;

/// CN of the root certificate, as in SwarmKit.
pub const ROOT_CN: &str = "swarm-ca";
/// How long a root certificate is valid: 20 years.
const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Tolerated clock skew between nodes: certificates start this far in the past.
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// Default node certificate lifetime: 2160 h (90 days).
pub const NODE_CERT_EXPIRY: Duration = Duration::from_secs(2160 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate signing request is invalid: {0}")]
    BadCsr(String),
    #[error("CA certificate or key is unusable: {0}")]
    BadCa(String),
    #[error("certificate is unusable: {0}")]
    BadCert(String),
    #[error("private key is unusable: {0}")]
    BadKey(String),
    #[error("the proof of the old node key is invalid: {0}")]
    BadProof(String),
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes);
    bytes[0] &= 0x7f; // keep it positive
    SerialNumber::from_slice(&bytes)
}

/// A new root CA: ECDSA P-256, CN `swarm-ca`. Returns (certificate PEM, private key PEM).
pub fn generate_root() -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| CaError::BadCa(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, ROOT_CN);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = swarm_model::wall_clock_now();
    params.not_before = now - BACKDATE;
    params.not_after = now + ROOT_VALIDITY;
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key).map_err(|e| CaError::BadCa(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The SHA-256 digest of the root CA bundle (its PEM bytes) in base36, 50 characters: the
/// middle part of a join token.
pub fn root_digest(ca_pem: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    base36(digest.as_ref(), 50)
}

/// A fresh node key and a CSR for it. Returns (key PEM, CSR PEM).
pub fn new_key_and_csr() -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| CaError::BadCsr(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "swarm-node");
    let csr = params
        .serialize_request(&key)
        .map_err(|e| CaError::BadCsr(e.to_string()))?;
    let csr_pem = csr.pem().map_err(|e| CaError::BadCsr(e.to_string()))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// What a node certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    pub node_id: String,
    pub role: NodeRole,
    pub cluster_id: String,
}

/// Signs a node certificate: CN = node ID, OU = role, O = cluster ID, SANs = [OU, CN] plus
/// `swarm-ca` on managers, valid for `expiry`.
pub fn issue_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    csr_pem: &str,
    who: &CertIdentity,
    expiry: Duration,
) -> Result<String, CaError> {
    let key = KeyPair::from_pem(ca_key_pem).map_err(|e| CaError::BadCa(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| CaError::BadCa(e.to_string()))?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| CaError::BadCsr(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, who.node_id.as_str());
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, who.role.ou());
    params
        .distinguished_name
        .push(DnType::OrganizationName, who.cluster_id.as_str());
    let mut sans = vec![who.role.ou().to_string(), who.node_id.clone()];
    if who.role == NodeRole::Manager {
        sans.push(ROOT_CN.to_string());
    }
    params.subject_alt_names = sans
        .into_iter()
        .map(|s| {
            s.try_into()
                .map(SanType::DnsName)
                .map_err(|e: rcgen::Error| CaError::BadCert(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = swarm_model::wall_clock_now();
    params.not_before = now - BACKDATE;
    params.not_after = now + expiry;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    // Replace everything the CSR asked for: rcgen signs whatever it is given.
    csr.params = params;
    let cert = csr.signed_by(&issuer).map_err(|e| CaError::BadCsr(e.to_string()))?;
    Ok(cert.pem())
}

/// The DER of the first certificate in a PEM bundle.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, CaError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| CaError::BadCert("no certificate in PEM".to_string()))?
        .map(|c| c.to_vec())
        .map_err(|e| CaError::BadCert(e.to_string()))
}

/// Reads node ID, role and cluster from a node certificate (DER).
pub fn cert_identity(der: &[u8]) -> Result<CertIdentity, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::BadCert(e.to_string()))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let node_id = first(&mut subject.iter_common_name()).ok_or_else(|| CaError::BadCert("no CN".into()))?;
    let ou = first(&mut subject.iter_organizational_unit()).ok_or_else(|| CaError::BadCert("no OU".into()))?;
    let cluster_id = first(&mut subject.iter_organization()).ok_or_else(|| CaError::BadCert("no O".into()))?;
    let role = NodeRole::from_ou(&ou).ok_or_else(|| CaError::BadCert(format!("unknown role OU {ou:?}")))?;
    Ok(CertIdentity {
        node_id,
        role,
        cluster_id,
    })
}

/// SHA-256 of the certificate's public key (its SubjectPublicKeyInfo), base64: which key a
/// certificate was issued for.
pub fn public_key_digest(der: &[u8]) -> Result<String, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::BadCert(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Ok(STANDARD.encode(digest.as_ref()))
}

/// The certificate's start (backdated for clock skew), as seconds since the Unix epoch.
pub fn cert_not_before(der: &[u8]) -> Result<i64, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::BadCert(e.to_string()))?;
    Ok(cert.validity().not_before.timestamp())
}

/// The certificate's expiry, as seconds since the Unix epoch.
pub fn cert_not_after(der: &[u8]) -> Result<i64, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CaError::BadCert(e.to_string()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// `TLSInfo` for the API: the trust root, and the issuer's subject and public key in base64 DER.
pub fn tls_info(ca_pem: &str) -> TlsInfo {
    let Ok(der) = first_cert_der(ca_pem) else {
        return TlsInfo::default();
    };
    match X509Certificate::from_der(&der) {
        Ok((_, cert)) => TlsInfo {
            trust_root: ca_pem.to_string(),
            cert_issuer_subject: STANDARD.encode(cert.subject().as_raw()),
            cert_issuer_public_key: STANDARD.encode(cert.public_key().raw),
        },
        Err(_) => TlsInfo {
            trust_root: ca_pem.to_string(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_carries_the_managers_choice_not_the_csrs() {
        let (ca, ca_key) = generate_root().unwrap();
        let (_key, csr) = new_key_and_csr().unwrap();
        let who = CertIdentity {
            node_id: "abc123".into(),
            role: NodeRole::Manager,
            cluster_id: "cluster9".into(),
        };
        let cert = issue_node_cert(&ca, &ca_key, &csr, &who, NODE_CERT_EXPIRY).unwrap();
        let der = first_cert_der(&cert).unwrap();
        assert_eq!(cert_identity(&der).unwrap(), who);
        let expires = cert_not_after(&der).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((expires - now - 2160 * 3600).abs() < 60);
    }

    #[test]
    fn garbage_csr_is_refused_clearly() {
        let (ca, ca_key) = generate_root().unwrap();
        let who = CertIdentity {
            node_id: "n".into(),
            role: NodeRole::Worker,
            cluster_id: "c".into(),
        };
        let err = issue_node_cert(&ca, &ca_key, "not a csr", &who, NODE_CERT_EXPIRY).unwrap_err();
        assert!(err.to_string().contains("certificate signing request"), "{err}");
    }

    #[test]
    fn digest_is_50_base36_characters() {
        let (ca, _) = generate_root().unwrap();
        let d = root_digest(&ca);
        assert_eq!(d.len(), 50);
        assert_eq!(d, root_digest(&ca));
    }
}
