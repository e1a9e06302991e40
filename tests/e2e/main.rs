//! End-to-end tests: real `swarmd` processes on 127.0.0.1 talking mutual TLS, driven through
//! `swarmctl` and the Engine API.

// All of this crate is test code, its helpers and the support module included: a panic is how a
// test fails. clippy.toml allows unwrap and expect only inside #[test] functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_errors;
mod api_tls;
mod authorization;
mod autolock;
mod bench;
mod certificates;
mod chaos;
mod docker_cli;
mod forming;
mod group_commit;
mod leader_loss;
mod manager_port;
mod orchestration;
mod overlay;
mod quorum;
mod request_bodies;
mod restart;
mod roles;
mod scale;
mod snapshots;
mod stacks;
mod storage_faults;
mod support;
mod swarmctl_objects;
mod updates;
mod workers;
