//! How raft messages leave this node: openraft's network traits over an application-supplied
//! [`Transport`] (mutual-TLS HTTP/2 in swarm-rs), so this crate carries no TLS or HTTP code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::alias::SnapshotOf;
use openraft::errors::Fatal;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::RaftError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::snapshot_store::SnapshotFile;
use crate::types::ManagerAddr;
use crate::types::RaftId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// The shortest deadline an append of entries gets (see `append_entries`).
const APPEND_DEADLINE_FLOOR: Duration = Duration::from_secs(1);

/// A boxed, sendable future, so [`Transport`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The raft RPCs that travel between managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// Log replication and heartbeats.
    Append,
    /// Leader election.
    Vote,
    /// Pre-vote round, so a manager coming back from a partition does not depose a healthy leader.
    PreVote,
    /// A write proposed on a follower, forwarded to the leader.
    Forward,
    /// A membership change (add or remove a manager), forwarded to the leader.
    Membership,
    /// A leader handing leadership to another manager (after it removed itself).
    Transfer,
    /// A follower asking the leader for the index a linearizable read must see.
    ReadIndex,
}

impl Rpc {
    pub const ALL: [Rpc; 7] = [
        Rpc::Append,
        Rpc::Vote,
        Rpc::PreVote,
        Rpc::Forward,
        Rpc::Membership,
        Rpc::Transfer,
        Rpc::ReadIndex,
    ];

    /// The short name used in URL paths and errors.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Append => "append",
            Rpc::Vote => "vote",
            Rpc::PreVote => "pre-vote",
            Rpc::Forward => "forward",
            Rpc::Membership => "membership",
            Rpc::Transfer => "transfer",
            Rpc::ReadIndex => "read-index",
        }
    }

    pub fn from_name(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Why an RPC to another manager failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to manager at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("manager at {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("request to manager at {addr} failed: {reason}")]
    Failed { addr: String, reason: String },
    #[error("manager at {addr} refused the request ({status}): {message}")]
    Refused { addr: String, status: u16, message: String },
}

/// Carries raft traffic between managers. Implemented by the application over its own secured
/// channel; every call has a deadline.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request and returns the response body.
    fn call(
        &self,
        target: &ManagerAddr,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>>;

    /// Streams a snapshot: `prefix` (already framed) followed by the whole snapshot file.
    /// The receiver hands the stream to [`crate::RaftNode::receive_snapshot`].
    fn send_snapshot(
        &self,
        target: &ManagerAddr,
        prefix: Vec<u8>,
        snapshot: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>>;
}

/// Frames the vote that precedes a snapshot in a snapshot stream: `u32 BE length` + MessagePack.
pub(crate) fn snapshot_prefix(vote: &Vote) -> Result<Vec<u8>, std::io::Error> {
    let body = codec::encode(vote)?;
    let mut prefix = (body.len() as u32).to_be_bytes().to_vec();
    prefix.extend_from_slice(&body);
    Ok(prefix)
}

pub(crate) struct NetworkFactory {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftId, node: &ManagerAddr) -> Self::Network {
        PeerClient {
            target,
            node: node.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// openraft's client for one peer manager.
pub(crate) struct PeerClient {
    target: RaftId,
    node: ManagerAddr,
    transport: Arc<dyn Transport>,
}

fn to_rpc_error(e: TransportError) -> RPCError<TypeConfig> {
    match e {
        TransportError::Unreachable { .. } | TransportError::Timeout { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl PeerClient {
    async fn request<Req, Resp>(&self, rpc: Rpc, req: &Req, timeout: Duration) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let bytes = self
            .transport
            .call(&self.node, rpc, body, timeout)
            .await
            .map_err(to_rpc_error)?;
        let res: Result<Resp, RaftError<TypeConfig>> =
            codec::decode(&bytes, rpc.name()).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| {
            tracing::debug!(target = self.target, error = %e, "peer could not handle {}", rpc.name());
            RPCError::Unreachable(Unreachable::new(&e))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft gives an append the heartbeat interval (200 ms) as its deadline, which
        // includes the follower's fsync; on busy cores that would fail healthy appends and back
        // replication off. Heartbeats keep their own, shorter, deadline in openraft.
        self.request(Rpc::Append, &rpc, option.hard_ttl().max(APPEND_DEADLINE_FLOOR))
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(Rpc::PreVote, &rpc, option.hard_ttl()).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(Rpc::Transfer, &req, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let prefix = snapshot_prefix(&vote).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        // Opened here (it is sealed with this manager's key) and sealed again by the receiver.
        let file = snapshot.snapshot;
        let bytes = tokio::task::spawn_blocking(move || file.wire_bytes())
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&std::io::Error::other(e.to_string()))))?
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        tracing::info!(target = self.target, bytes = bytes.len(), "sending snapshot");
        let send = self
            .transport
            .send_snapshot(&self.node, prefix, bytes, option.hard_ttl());
        tokio::pin!(cancel);
        let bytes = tokio::select! {
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            res = send => res.map_err(|e| StreamingError::from(to_rpc_error(e)))?,
        };
        let res: Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> =
            codec::decode(&bytes, "snapshot response").map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}
