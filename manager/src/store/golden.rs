//! Golden files of what managers keep on disk: a raft entry (a proposal of every store action)
//! and a store snapshot, both MessagePack with named fields. Each must decode and encode again
//! to exactly its bytes: a renamed field would make old logs and snapshots unreadable, and
//! these tests fail first.
//!
//! The files were made from fully populated values (`swarm_model::sample`); after a meant
//! change, make them again and review the diff of `manager/golden/`:
//! `SWARM_GOLDEN_UPDATE=1 cargo test -p swarm-manager --features sample golden`.

use std::path::PathBuf;

use swarm_raft::App;

use super::Proposal;
use super::Store;
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

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name)
}

/// The golden bytes `name`, first written from `make` when making golden files (with the
/// `sample` feature).
fn golden(name: &str, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("SWARM_GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, hex_lines(&make())).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    from_hex_lines(&text)
}

/// `now` must be exactly the golden bytes of `name`.
fn assert_same(name: &str, golden: &[u8], now: &[u8]) {
    let (want, now) = (hex_lines(golden), hex_lines(now));
    if let Some(line) = want.lines().zip(now.lines()).position(|(a, b)| a != b) {
        panic!(
            "{} does not encode back to itself, first at line {} (32 bytes a line). If the change \
             is meant, make the golden files again (see manager/src/store/golden.rs) and review the diff.",
            golden_path(name).display(),
            line + 1
        );
    }
    assert_eq!(
        want.len(),
        now.len(),
        "{} encodes to another length",
        golden_path(name).display()
    );
}

#[cfg(feature = "sample")]
fn sample_entry() -> Vec<u8> {
    use super::StoreAction;
    use super::Transaction;
    let actions: Vec<StoreAction> = swarm_model::sample::samples(8).unwrap();
    let proposal = Proposal {
        txs: vec![Transaction { actions }],
    };
    Store::encode_proposal(&proposal).unwrap()
}

#[cfg(feature = "sample")]
fn sample_snapshot() -> Vec<u8> {
    let mut data: SnapshotData = swarm_model::sample::sample(0).unwrap();
    data.format = SNAPSHOT_FORMAT;
    swarm_raft::encode(&data).unwrap()
}

#[cfg(not(feature = "sample"))]
fn sample_entry() -> Vec<u8> {
    panic!("making golden files needs the sample feature: add --features sample")
}

#[cfg(not(feature = "sample"))]
fn sample_snapshot() -> Vec<u8> {
    sample_entry()
}

#[test]
fn a_raft_entry_of_every_action_decodes_and_encodes_to_its_golden_bytes() {
    let bytes = golden("raft-entry.msgpack.hex", sample_entry);
    let proposal: Proposal = swarm_raft::decode(&bytes, "golden proposal").unwrap();
    let kinds: std::collections::BTreeSet<_> = proposal.txs[0]
        .actions
        .iter()
        .map(std::mem::discriminant)
        .map(|d| format!("{d:?}"))
        .collect();
    assert_eq!(kinds.len(), 8, "one of each store action");
    assert_same(
        "raft-entry.msgpack.hex",
        &bytes,
        &Store::encode_proposal(&proposal).unwrap(),
    );
}

#[test]
fn a_snapshot_restores_and_is_written_again_to_its_golden_bytes() {
    let bytes = golden("snapshot.msgpack.hex", sample_snapshot);
    let data: SnapshotData = swarm_raft::decode(&bytes, "golden snapshot").unwrap();
    assert_eq!(data.format, SNAPSHOT_FORMAT);
    // What is on disk restores, and the restored store writes the same bytes again.
    let store = Store::new();
    store.restore(&bytes).unwrap();
    assert_same("snapshot.msgpack.hex", &bytes, &store.snapshot().unwrap());
}
