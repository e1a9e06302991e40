//! Why `swarmd` could not start or keep running. Each message says what to do.

use std::path::PathBuf;

use swarm_agent::exec::memory_dir::MemoryDirError;
use swarm_ca::CaError;
use swarm_ca::TokenError;
use swarm_manager::StartError;
use swarm_manager::commit::CommitError;
use swarm_net::peer_client::PeerError;
use swarm_net::tls::TlsError;
use swarm_raft::ProposeError;

use crate::datadir::DataDirError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Manager(#[from] StartError),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot make keys and certificates: {0}")]
    Ca(#[from] CaError),
    #[error("--listen-addr {0:?} is not a valid IP:PORT")]
    ListenAddr(String),
    #[error("--advertise-addr {0:?} is not a valid IP or IP:PORT")]
    AdvertiseAddr(String),
    #[error("cannot determine an address to advertise to other nodes; pass --advertise-addr IP[:PORT]")]
    NoAdvertiseAddr,
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Certificate { path: PathBuf, source: CaError },
    #[error(
        "the node certificate {} expired at {expired}, while this node was off. Restart it with \
         `swarmd run --rejoin-token TOKEN`, TOKEN being the worker join token (`swarmctl swarm join-token -q worker` \
         on a manager): it comes back as node {node_id}, proving with its old key that it is that node",
        path.display()
    )]
    CertificateExpired {
        path: PathBuf,
        expired: String,
        node_id: String,
    },
    #[error("{0}")]
    ApiFlag(String),
    #[error("the Engine API's TLS files ({files}) are unusable: {source}")]
    ApiTls { files: String, source: TlsError },
    #[error("SWARMD_TEST_CERT_EXPIRY_SECS={0:?}: expected a number of seconds, at least 10")]
    TestCertExpiry(String),
    #[error("--default-addr-pool: {0}")]
    AddressPool(#[from] swarm_manager::ipam::IpamError),
    #[error("--snapshot-interval must be at least 1")]
    SnapshotInterval,
    #[error("--failure-rate must be between 0 and 1")]
    FailureRate,
    #[error("simulate needs a worker token: simulated nodes cannot be managers")]
    SimulateNeedsWorkerToken,
    #[error("cannot bootstrap raft: {0}")]
    Bootstrap(ProposeError),
    #[error("cannot create the cluster: {0}")]
    CreateCluster(CommitError),
    #[error("the manager did not assign a raft id to this manager")]
    NoRaftId,
    #[error(
        "registered as node {node_id} but could not become a raft member: {source}. Remove {} and join again",
        dir.display()
    )]
    NotRaftMember {
        node_id: String,
        dir: PathBuf,
        source: RaftJoinError,
    },
    #[error(
        "data dir {} was not fully set up (swarmd init or join was interrupted); remove it and run init or join again",
        .0.display()
    )]
    Unfinished(PathBuf),
    #[error("{} is served by another process", .0.display())]
    SocketInUse(PathBuf),
    #[error("cannot create control socket {}: {source}", path.display())]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("cannot listen for the Engine API on {addr}: {source}")]
    ApiListen { addr: String, source: std::io::Error },
    #[error("cannot remove the task files' tmpfs: {0}")]
    TaskFiles(MemoryDirError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a simulated node could not join: {0}")]
    SimulatedJoin(#[from] tokio::task::JoinError),
}

impl DaemonError {
    /// Whether this failed for want of disk space, which may be freed: worth trying again
    /// rather than ending the daemon halfway through a role switch or a restart.
    pub fn is_out_of_space(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && (io.kind() == std::io::ErrorKind::StorageFull
                    || io.kind() == std::io::ErrorKind::QuotaExceeded
                    || matches!(io.raw_os_error(), Some(28 | 122)))
            {
                return true;
            }
            cause = e.source();
        }
        let text = self.to_string();
        text.contains("No space left on device") || text.contains("Disk quota exceeded")
    }
}

/// Why the join handshake with a manager failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot fetch the root CA from the manager at {remote}: {source}")]
    FetchCa { remote: String, source: PeerError },
    #[error("the root CA from the manager is not text")]
    CaNotText,
    #[error(
        "the manager at {remote} presented a root CA whose digest does not match the join token: the token is \
         for another cluster, or the connection is being intercepted. Refusing to join"
    )]
    CaMismatch { remote: String },
    #[error("cannot encode the join request: {0}")]
    Encode(serde_json::Error),
    #[error("the manager at {remote} refused the join: {message}")]
    Refused { remote: String, message: String },
    #[error("cannot join through the manager at {remote}: {source}")]
    Unreachable { remote: String, source: PeerError },
    #[error("the manager's join answer is not understood: {0}")]
    Answer(serde_json::Error),
    #[error("the manager answered with a different root CA than the one pinned; refusing to join")]
    CaChanged,
    #[error("the join token is for another cluster than this node's (its CA digest differs)")]
    TokenForOtherCluster,
    #[error("this node knows of no manager to ask; its node.json lists none")]
    NoManagers,
}

/// Why a manager could not (yet) add this manager to raft.
#[derive(Debug, thiserror::Error)]
pub enum RaftJoinError {
    #[error("cannot encode the raft join request: {0}")]
    Encode(serde_json::Error),
    /// The manager answered, and said no: its message.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Peer(PeerError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let full = DaemonError::DataDir(DataDirError::Io {
            dir: "/d".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert!(full.is_out_of_space());
        let denied = DaemonError::DataDir(DataDirError::Io {
            dir: "/d".into(),
            source: std::io::Error::from_raw_os_error(13),
        });
        assert!(!denied.is_out_of_space());
        assert!(!DaemonError::NoAdvertiseAddr.is_out_of_space());
    }
}
