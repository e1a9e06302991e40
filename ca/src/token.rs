//! Join tokens in SwarmKit's format: `SWMTKN-1-<50-char CA digest>-<25-char secret>`.

use subtle::ConstantTimeEq;
use swarm_model::Cluster;
use swarm_model::NodeRole;
use swarm_model::base36;
use swarm_model::random_bytes;

const PREFIX: &str = "SWMTKN";
const VERSION: &str = "1";

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Base36 SHA-256 of the root CA bundle: lets a joiner pin the CA it is given.
    pub ca_digest: String,
    pub secret: String,
}

/// Why a join token was refused. Each message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid join token: {0}")]
    Malformed(String),
    #[error("the join token is for a different cluster: its CA digest does not match this cluster's root CA")]
    WrongCluster,
    #[error(
        "the join token has been rotated and is no longer valid; get the current one with `swarmctl swarm join-token worker|manager`"
    )]
    Rotated,
    #[error("invalid join token: it matches neither the worker nor the manager token of this cluster")]
    Unknown,
    #[error("the cluster is not initialised yet")]
    NoCluster,
}

impl JoinToken {
    /// A new token for the CA with digest `ca_digest`, with 128 random bits of secret.
    pub fn generate(ca_digest: &str) -> String {
        let mut secret = [0u8; 16];
        random_bytes(&mut secret);
        format!("{PREFIX}-{VERSION}-{ca_digest}-{}", base36(&secret, 25))
    }

    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let parts: Vec<&str> = token.trim().split('-').collect();
        if parts.len() != 4 || parts[0] != PREFIX {
            return Err(TokenError::Malformed(
                "expected SWMTKN-1-<digest>-<secret> (get one with `swarmctl swarm join-token`)".to_string(),
            ));
        }
        if parts[1] != VERSION {
            return Err(TokenError::Malformed(format!(
                "unsupported token version {:?}",
                parts[1]
            )));
        }
        let is_base36 = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
        if parts[2].len() != 50 || !is_base36(parts[2]) {
            return Err(TokenError::Malformed(
                "the CA digest part must be 50 base36 characters".to_string(),
            ));
        }
        if parts[3].len() != 25 || !is_base36(parts[3]) {
            return Err(TokenError::Malformed(
                "the secret part must be 25 base36 characters".to_string(),
            ));
        }
        Ok(Self {
            ca_digest: parts[2].to_string(),
            secret: parts[3].to_string(),
        })
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Decides which role a presented token grants, comparing secrets in constant time.
pub fn check_join_token(presented: &str, cluster: &Cluster, ca_digest: &str) -> Result<NodeRole, TokenError> {
    let presented = presented.trim();
    let parsed = JoinToken::parse(presented)?;
    if parsed.ca_digest != ca_digest {
        return Err(TokenError::WrongCluster);
    }
    let tokens = cluster.join_tokens.as_ref().ok_or(TokenError::NoCluster)?;
    // Compare against both, always, so timing does not reveal which one was close.
    let is_worker = ct_eq(presented, &tokens.worker);
    let is_manager = ct_eq(presented, &tokens.manager);
    if is_manager {
        return Ok(NodeRole::Manager);
    }
    if is_worker {
        return Ok(NodeRole::Worker);
    }
    let rotated = cluster
        .root_ca
        .as_ref()
        .map(|ca| ca.rotated_tokens.iter().fold(false, |acc, t| acc | ct_eq(presented, t)))
        .unwrap_or(false);
    if rotated {
        return Err(TokenError::Rotated);
    }
    Err(TokenError::Unknown)
}

#[cfg(test)]
mod tests {
    use swarm_model::JoinTokens;
    use swarm_model::RootCaState;

    use super::*;

    fn cluster(digest: &str) -> Cluster {
        Cluster {
            join_tokens: Some(JoinTokens {
                worker: JoinToken::generate(digest),
                manager: JoinToken::generate(digest),
            }),
            root_ca: Some(RootCaState::default()),
            ..Default::default()
        }
    }

    #[test]
    fn generated_tokens_parse_and_grant_their_role() {
        let digest = "a".repeat(50);
        let c = cluster(&digest);
        let tokens = c.join_tokens.clone().unwrap();
        assert_eq!(tokens.worker.len(), "SWMTKN-1-".len() + 50 + 1 + 25);
        assert_eq!(check_join_token(&tokens.worker, &c, &digest), Ok(NodeRole::Worker));
        assert_eq!(check_join_token(&tokens.manager, &c, &digest), Ok(NodeRole::Manager));
    }

    #[test]
    fn wrong_rotated_and_malformed_tokens_say_why() {
        let digest = "b".repeat(50);
        let mut c = cluster(&digest);
        let other = JoinToken::generate(&"c".repeat(50));
        assert_eq!(check_join_token(&other, &c, &digest), Err(TokenError::WrongCluster));
        let unknown = JoinToken::generate(&digest);
        assert_eq!(check_join_token(&unknown, &c, &digest), Err(TokenError::Unknown));
        let old = c.join_tokens.as_ref().unwrap().worker.clone();
        c.root_ca.as_mut().unwrap().rotated_tokens.push(old.clone());
        c.join_tokens.as_mut().unwrap().worker = JoinToken::generate(&digest);
        let err = check_join_token(&old, &c, &digest).unwrap_err();
        assert_eq!(err, TokenError::Rotated);
        assert!(err.to_string().contains("rotated"));
        let err = check_join_token("SWMTKN-1-short-x", &c, &digest).unwrap_err();
        assert!(err.to_string().starts_with("invalid join token"), "{err}");
    }
}
