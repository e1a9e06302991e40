//! `make bench` and `make bench-peer`: measurements, never assertions. Each benchmark records
//! its figures with [`report::record`]; `bench::report::render` then rewrites the generated part
//! of docs/benchmarks.md. Ignored in `make test`.

mod creates;
mod failover;
mod peer;
mod raft_log;
pub(crate) mod report;
mod scale;
