//! What nodes and managers send each other: dispatcher frames and requests (msgpack), raft
//! proposals and store snapshots.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_manager::store::Proposal;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::StatusRequest;
use swarm_protocol::dispatcher::unframe;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let _ = unframe(&mut buf);
    let _ = swarm_protocol::codec::decode::<StatusRequest>(data, "status report");
    let _ = swarm_protocol::codec::decode::<LogBatch>(data, "log batch");
    let _ = swarm_raft::decode::<Proposal>(data, "proposal");
    let store = swarm_manager::store::Store::new();
    let _ = swarm_raft::App::restore(&store, data);
    let _ = swarm_raft::App::apply(&store, 1, data);
});
