//! Golden files of what managers keep on disk: a raft entry (a proposal of every store action)
//! and a store snapshot, both MessagePack with named fields. A renamed field would make old logs
//! and snapshots unreadable; these tests fail first. If a change is meant, rerun with
//! `SWARM_GOLDEN_UPDATE=1` and review the diff of `golden/`.

use std::path::PathBuf;

use swarm_model::sample::sample;
use swarm_model::sample::samples;
use swarm_raft::App;

use super::Proposal;
use super::Store;
use super::StoreAction;
use super::Transaction;
use super::state::SNAPSHOT_FORMAT;
use super::state::SnapshotData;

/// MessagePack as hex, 32 bytes a line, so a diff shows where the bytes changed.
fn hex_lines(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(32) {
        for b in chunk {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out
}

fn from_hex_lines(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Compares `bytes` with the golden file `name`, or writes it when updating; returns the golden
/// bytes.
fn check_golden(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name);
    let text = hex_lines(bytes);
    if std::env::var_os("SWARM_GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (SWARM_GOLDEN_UPDATE=1 creates it)", path.display()));
    if let Some(line) = want.lines().zip(text.lines()).position(|(a, b)| a != b) {
        panic!(
            "{} differs from what the code encodes, first at line {} (32 bytes a line). \
             If the change is meant, rerun with SWARM_GOLDEN_UPDATE=1 and review the diff.",
            path.display(),
            line + 1
        );
    }
    assert_eq!(want.len(), text.len(), "{} has another length", path.display());
    from_hex_lines(&want)
}

#[test]
fn a_raft_entry_of_every_action_matches_its_golden_bytes() {
    let actions: Vec<StoreAction> = samples(8).unwrap();
    assert_eq!(actions.len(), 8, "one sample of each store action");
    let proposal = Proposal {
        txs: vec![Transaction { actions }],
    };
    let bytes = Store::encode_proposal(&proposal).unwrap();
    let golden = check_golden("raft-entry.msgpack.hex", &bytes);
    let back: Proposal = swarm_raft::decode(&golden, "golden proposal").unwrap();
    assert_eq!(back, proposal);
}

#[test]
fn a_snapshot_matches_its_golden_bytes_and_restores() {
    let mut data: SnapshotData = sample(0).unwrap();
    data.format = SNAPSHOT_FORMAT;
    let bytes = swarm_raft::encode(&data).unwrap();
    let golden = check_golden("snapshot.msgpack.hex", &bytes);
    // What is on disk restores, and the restored store writes the same bytes again.
    let store = Store::new();
    store.restore(&golden).unwrap();
    assert_eq!(store.snapshot().unwrap(), golden);
}
