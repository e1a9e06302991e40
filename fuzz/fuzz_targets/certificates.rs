//! Certificates and CSRs from outside: a peer's certificate (DER), a join's CSR signed by the CA,
//! and a rejoin's expired certificate and proof; and unlock keys as `docker swarm unlock` sends
//! them, with what they open.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use swarm_ca::CertIdentity;

fn ca() -> &'static (String, String) {
    static CA: OnceLock<(String, String)> = OnceLock::new();
    CA.get_or_init(|| swarm_ca::generate_root().expect("a root CA"))
}

fn unlock_key() -> &'static swarm_ca::UnlockKey {
    static KEY: OnceLock<swarm_ca::UnlockKey> = OnceLock::new();
    KEY.get_or_init(swarm_ca::UnlockKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = unlock_key().open(data);
    let _ = swarm_ca::cert_identity(data);
    let _ = swarm_ca::cert_not_after(data);
    let _ = swarm_ca::renewal_delay(data, 0.0, 0.5);
    let _ = swarm_ca::check_rejoin_proof(data, "node", "csr", "AAAA");
    if let Ok(text) = std::str::from_utf8(data) {
        let who = CertIdentity {
            node_id: "node".to_string(),
            role: swarm_model::NodeRole::Worker,
            cluster_id: "cluster".to_string(),
        };
        let (cert, key) = ca();
        let _ = swarm_ca::issue_node_cert(cert, key, text, &who, Duration::from_secs(3600));
        let _ = swarm_ca::first_cert_der(text);
        let _ = swarm_ca::JoinToken::parse(text);
        let _ = swarm_ca::UnlockKey::parse(text);
    }
});
