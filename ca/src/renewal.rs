//! When a node renews its certificate, and how a node whose certificate expired proves that it
//! is still the node it was.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::ECDSA_P256_SHA256_ASN1;
use ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
use ring::signature::EcdsaKeyPair;
use ring::signature::UnparsedPublicKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use swarm_model::random_bytes;
use x509_parser::prelude::FromDer;
use x509_parser::prelude::X509Certificate;

use crate::BACKDATE;
use crate::CaError;

/// Renewal happens at a random point between these fractions of a certificate's lifetime, as
/// in SwarmKit, so that nodes that joined together do not all renew at once.
pub const RENEW_FROM: f64 = 0.5;
pub const RENEW_UNTIL: f64 = 0.8;

/// A random fraction of the lifetime in [`RENEW_FROM`, `RENEW_UNTIL`).
pub fn random_renewal_point() -> f64 {
    let mut bytes = [0u8; 4];
    random_bytes(&mut bytes);
    let unit = f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0);
    RENEW_FROM + unit * (RENEW_UNTIL - RENEW_FROM)
}

/// How long from `now` (Unix seconds) until the certificate should be renewed: at `point` of
/// its lifetime, counted from when it was issued (its start is backdated for clock skew). Zero
/// when that point has passed.
pub fn renewal_delay(cert_der: &[u8], now: f64, point: f64) -> Result<Duration, CaError> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|e| CaError::BadCert(e.to_string()))?;
    let validity = cert.validity();
    let not_after = validity.not_after.timestamp() as f64;
    let issued = (validity.not_before.timestamp() as f64 + BACKDATE.as_secs_f64()).min(not_after);
    let due = issued + (not_after - issued) * point.clamp(0.0, 1.0);
    Ok(Duration::from_secs_f64((due - now).max(0.0)))
}

/// What a rejoining node signs with its old key: its node ID and the CSR of its new key, so
/// that the proof cannot be replayed for any other key.
fn rejoin_message(node_id: &str, csr_pem: &str) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, csr_pem.as_bytes());
    let mut message = b"swarm-rs rejoin v1\n".to_vec();
    message.extend_from_slice(node_id.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(digest.as_ref());
    message
}

/// Signs a rejoin request with the node's old private key (PEM, PKCS#8 P-256). Base64.
pub fn rejoin_proof(old_key_pem: &str, node_id: &str, csr_pem: &str) -> Result<String, CaError> {
    let bad_key = |e: String| CaError::BadKey(e);
    let der = match PrivateKeyDer::from_pem_slice(old_key_pem.as_bytes()).map_err(|e| bad_key(e.to_string()))? {
        PrivateKeyDer::Pkcs8(k) => k,
        _ => return Err(bad_key("not a PKCS#8 key".to_string())),
    };
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_pkcs8_der(), &rng)
        .map_err(|e| bad_key(e.to_string()))?;
    let signature = pair
        .sign(&rng, &rejoin_message(node_id, csr_pem))
        .map_err(|e| bad_key(e.to_string()))?;
    Ok(STANDARD.encode(signature.as_ref()))
}

/// Checks a rejoin proof against the public key of the node's old certificate (DER).
pub fn check_rejoin_proof(old_cert_der: &[u8], node_id: &str, csr_pem: &str, proof: &str) -> Result<(), CaError> {
    let (_, cert) = X509Certificate::from_der(old_cert_der).map_err(|e| CaError::BadCert(e.to_string()))?;
    let signature = STANDARD
        .decode(proof.trim())
        .map_err(|_| CaError::BadProof("the proof is not base64".to_string()))?;
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &cert.public_key().subject_public_key.data[..]);
    key.verify(&rejoin_message(node_id, csr_pem), &signature)
        .map_err(|_| CaError::BadProof("it was not signed by the key of the node's certificate".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertIdentity;
    use crate::first_cert_der;
    use crate::generate_root;
    use crate::issue_node_cert;
    use crate::new_key_and_csr;

    fn node_cert(lifetime: Duration) -> (String, Vec<u8>) {
        let (ca, ca_key) = generate_root().unwrap();
        let (key, csr) = new_key_and_csr().unwrap();
        let who = CertIdentity {
            node_id: "node1".into(),
            role: swarm_model::NodeRole::Worker,
            cluster_id: "c".into(),
        };
        let cert = issue_node_cert(&ca, &ca_key, &csr, &who, lifetime).unwrap();
        (key, first_cert_der(&cert).unwrap())
    }

    fn now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_lifetime_from_issue() {
        let (_, der) = node_cert(Duration::from_secs(1000));
        let now = now();
        let early = renewal_delay(&der, now, RENEW_FROM).unwrap().as_secs_f64();
        let late = renewal_delay(&der, now, RENEW_UNTIL).unwrap().as_secs_f64();
        // The backdated start does not count: the hour of skew allowance would put renewal
        // after expiry for short lifetimes.
        assert!((early - 500.0).abs() < 3.0, "{early}");
        assert!((late - 800.0).abs() < 3.0, "{late}");
        assert_eq!(renewal_delay(&der, now + 2000.0, RENEW_FROM).unwrap(), Duration::ZERO);
        for _ in 0..1000 {
            let p = random_renewal_point();
            assert!((RENEW_FROM..RENEW_UNTIL).contains(&p), "{p}");
        }
    }

    #[test]
    fn a_rejoin_proof_holds_only_for_the_old_key_the_node_and_the_csr() {
        let (old_key, old_der) = node_cert(Duration::from_secs(60));
        let (other_key, _) = node_cert(Duration::from_secs(60));
        let (_, csr) = new_key_and_csr().unwrap();
        let (_, other_csr) = new_key_and_csr().unwrap();
        let proof = rejoin_proof(&old_key, "node1", &csr).unwrap();
        check_rejoin_proof(&old_der, "node1", &csr, &proof).unwrap();
        for (node, csr, proof) in [
            ("node2", csr.as_str(), proof.clone()),
            ("node1", other_csr.as_str(), proof.clone()),
            ("node1", csr.as_str(), rejoin_proof(&other_key, "node1", &csr).unwrap()),
            ("node1", csr.as_str(), "bm90IGEgc2lnbmF0dXJl".to_string()),
        ] {
            let err = check_rejoin_proof(&old_der, node, csr, &proof).unwrap_err();
            assert!(err.to_string().contains("not signed by the key"), "{err}");
        }
        let err = check_rejoin_proof(&old_der, "node1", &csr, "%%%").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
