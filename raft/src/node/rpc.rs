//! Raft traffic that arrives from other managers: replication, votes, leadership transfer,
//! forwarded writes and membership changes, and streamed snapshots.

use std::io;

use openraft::alias::SnapshotOf;
use openraft::errors::RaftError;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::RaftNode;
use super::error::ForwardError;
use super::membership::MembershipChange;
use crate::codec;
use crate::network::Rpc;
use crate::snapshot_store::SnapshotFile;
use crate::state_machine::App;
use crate::types::Command;
use crate::types::TypeConfig;
use crate::types::Vote;

impl<A: App> RaftNode<A> {
    /// Handles a raft RPC that arrived from another manager and returns the encoded response.
    /// The caller must already have checked that the peer is a manager of this cluster.
    pub async fn handle_rpc(&self, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, io::Error> {
        match rpc {
            Rpc::Append => {
                let req = codec::decode(body, "append-entries request")?;
                codec::encode(&self.raft.append_entries(req).await)
            }
            Rpc::Vote => {
                let req = codec::decode(body, "vote request")?;
                codec::encode(&self.raft.vote(req).await)
            }
            Rpc::PreVote => {
                let req = codec::decode(body, "pre-vote request")?;
                codec::encode(&self.raft.pre_vote(req).await)
            }
            Rpc::Transfer => {
                let req = codec::decode(body, "transfer-leader request")?;
                let res: Result<_, RaftError<TypeConfig>> =
                    self.raft.handle_transfer_leader(req).await.map_err(RaftError::Fatal);
                codec::encode(&res)
            }
            Rpc::Forward => {
                let Command(command) = codec::decode(body, "forwarded write")?;
                let start = Instant::now();
                let res = if self.status().is_leader() {
                    self.propose_local(command, start + self.config.propose_timeout, start)
                        .await
                } else {
                    Err(ForwardError::NotLeader)
                };
                codec::encode(&res)
            }
            Rpc::ReadIndex => {
                let start = Instant::now();
                let res = if self.status().is_leader() {
                    self.read_index_local(start + self.config.propose_timeout).await
                } else {
                    Err(ForwardError::NotLeader)
                };
                codec::encode(&res)
            }
            Rpc::Membership => {
                let change: MembershipChange = codec::decode(body, "membership change")?;
                let res = if self.status().is_leader() {
                    self.change_membership_local(change)
                        .await
                        .map_err(ForwardError::Membership)
                } else {
                    Err(ForwardError::NotLeader)
                };
                codec::encode(&res)
            }
        }
    }

    /// Receives a snapshot stream sent by [`Transport::send_snapshot`]: verifies it, writes it
    /// sealed to a temp file, installs it, and returns the encoded response for the leader.
    pub async fn receive_snapshot<R>(&self, mut reader: R) -> Result<Vec<u8>, io::Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len);
        if len > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot stream header is implausibly long",
            ));
        }
        let mut vote = vec![0u8; len as usize];
        reader.read_exact(&mut vote).await?;
        let vote: Vote = codec::decode(&vote, "snapshot vote")?;

        // Snapshots travel in plain text (inside TLS) and are sealed with this manager's own
        // data key as they are written.
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        let snapshots = self.snapshots.clone();
        let snapshot = tokio::task::spawn_blocking(move || snapshots.receive(bytes))
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        tracing::info!(bytes = snapshot.file_len(), last_log_id = ?snapshot.meta.last_log_id, "received snapshot");
        let path = snapshot.path.clone();
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: snapshot.meta.clone(),
            snapshot,
        };
        let res = self.raft.install_full_snapshot(vote, snapshot).await;
        let _ = tokio::fs::remove_file(&path).await;
        codec::encode(&res)
    }
}
