//! A manager's TLS key under autolock: sealed on disk (`certs/node.key`) with a key made from
//! its raft data key, which is itself sealed with the unlock key. Swarm seals its TLS key too:
//! a locked manager's disk then gives neither its raft state nor its identity in the cluster
//! (with which one could forward writes to the leader as that manager).
//!
//! Sealing with the data key rather than the unlock key keeps a rotation of the unlock key to
//! one file (`raft/data-key.json`): the node key stays sealed with the same key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use swarm_ca::UnlockKey;

const BEGIN: &str = "-----BEGIN SWARM-RS SEALED NODE KEY-----";
const END: &str = "-----END SWARM-RS SEALED NODE KEY-----";

/// How the node key is kept, shared by every handle on one data dir.
#[derive(Debug, Default)]
pub(crate) struct NodeKeySealing {
    /// Opens (and seals) the node key: a manager's, made from its data key.
    pub(crate) sealer: Option<UnlockKey>,
    /// Whether to keep it sealed: autolock is on.
    pub(crate) sealed: bool,
}

/// Whether the stored node key is sealed.
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.trim_start().starts_with(BEGIN)
}

impl NodeKeySealing {
    /// The node key as it is to be written.
    pub(crate) fn encode(&self, key_pem: &str) -> Result<String, String> {
        match (&self.sealer, self.sealed) {
            (Some(sealer), true) => {
                let sealed = sealer.seal(key_pem.as_bytes()).map_err(|e| e.to_string())?;
                let body = STANDARD.encode(sealed);
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .map(|c| std::str::from_utf8(c).unwrap_or_default())
                    .collect();
                Ok(format!("{BEGIN}\n{}\n{END}\n", lines.join("\n")))
            }
            _ => Ok(key_pem.to_string()),
        }
    }

    /// The node key's PEM from what is stored; `what` names the file in errors.
    pub(crate) fn decode(&self, stored: &str, what: &str) -> Result<String, String> {
        if !is_sealed(stored) {
            return Ok(stored.to_string());
        }
        let sealer = self.sealer.as_ref().ok_or_else(|| {
            format!(
                "{what} is sealed with this manager's data key (autolock), which is not open; the node cannot use it"
            )
        })?;
        let body: String = stored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let sealed = STANDARD
            .decode(body)
            .map_err(|e| format!("{what} is sealed but not valid base64: {e}"))?;
        let plain = sealer
            .open(&sealed)
            .map_err(|_| format!("{what} is sealed with another key than this manager's data key"))?;
        String::from_utf8(plain).map_err(|_| format!("{what} does not hold a PEM key once opened"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_node_key_opens_only_with_its_sealer() {
        let pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let sealing = NodeKeySealing {
            sealer: Some(UnlockKey::generate()),
            sealed: true,
        };
        let stored = sealing.encode(pem).unwrap();
        assert!(is_sealed(&stored) && !stored.contains("PRIVATE KEY"), "{stored}");
        assert_eq!(sealing.decode(&stored, "node.key").unwrap(), pem);
        let other = NodeKeySealing {
            sealer: Some(UnlockKey::generate()),
            sealed: true,
        };
        assert!(other.decode(&stored, "node.key").unwrap_err().contains("another key"));
        let closed = NodeKeySealing::default();
        assert!(closed.decode(&stored, "node.key").unwrap_err().contains("not open"));
        assert_eq!(closed.encode(pem).unwrap(), pem, "kept plain when not sealing");
        assert_eq!(closed.decode(pem, "node.key").unwrap(), pem);
    }
}
