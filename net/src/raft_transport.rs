//! Carries raft traffic between managers over the mutual-TLS HTTP/2 peer client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use swarm_raft::BoxFuture;
use swarm_raft::ManagerAddr;
use swarm_raft::Rpc;
use swarm_raft::Transport;
use swarm_raft::TransportError;

use crate::peer_client::PeerClient;
use crate::peer_client::PeerError;
use crate::peer_client::full;

/// Snapshots go out in frames of this size.
const SNAPSHOT_CHUNK: usize = 256 << 10;

/// Carries raft RPCs to `POST /raft/{rpc}` and snapshots to `POST /raft/snapshot` of the
/// target manager, which must prove by its certificate that it is the member called.
pub struct RaftTransport {
    pub peers: Arc<PeerClient>,
}

fn convert(e: PeerError) -> TransportError {
    match e {
        PeerError::Connect { addr, reason } => TransportError::Unreachable { addr, reason },
        PeerError::Timeout { addr, timeout } => TransportError::Timeout { addr, timeout },
        PeerError::Failed { addr, reason } => TransportError::Failed { addr, reason },
        PeerError::Status { addr, status, message } => TransportError::Refused { addr, status, message },
    }
}

impl Transport for RaftTransport {
    fn call(
        &self,
        target: &ManagerAddr,
        rpc: Rpc,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let (addr, node_id) = (target.addr.clone(), target.node_id.clone());
        Box::pin(async move {
            let path = format!("/raft/{}", rpc.name());
            self.peers
                .call_node(&addr, &node_id, &path, Some(full(body)), timeout)
                .await
                .map(|b| b.to_vec())
                .map_err(convert)
        })
    }

    fn send_snapshot(
        &self,
        target: &ManagerAddr,
        prefix: Vec<u8>,
        snapshot: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let (addr, node_id) = (target.addr.clone(), target.node_id.clone());
        Box::pin(async move {
            let snapshot = Bytes::from(snapshot);
            let chunks: Vec<Bytes> = (0..snapshot.len())
                .step_by(SNAPSHOT_CHUNK)
                .map(|at| snapshot.slice(at..snapshot.len().min(at + SNAPSHOT_CHUNK)))
                .collect();
            let stream = futures_util::stream::iter(std::iter::once(Bytes::from(prefix)).chain(chunks))
                .map(|chunk| Ok::<_, std::io::Error>(Frame::data(chunk)));
            let body = BodyExt::boxed(StreamBody::new(stream));
            self.peers
                .call_node(&addr, &node_id, "/raft/snapshot", Some(body), timeout)
                .await
                .map(|b| b.to_vec())
                .map_err(convert)
        })
    }
}
