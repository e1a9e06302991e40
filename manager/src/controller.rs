//! Runs a leader-side controller: decide from a store view, commit, wait for the next change.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::Timestamp;
use tokio::sync::watch;

use super::runtime::Manager;
use super::store::StoreState;
use super::store::Transaction;

/// A controller's decision: the transactions that move the store toward what it wants.
pub type Decide = fn(&StoreState, Timestamp) -> Vec<Transaction>;

/// Largest number of transactions in one raft entry.
pub const MAX_TXS_PER_PROPOSAL: usize = 500;

/// Commits `txs` in raft entries of at most [`MAX_TXS_PER_PROPOSAL`] transactions, as leader.
/// The entries are proposed together, so raft appends (and fsyncs) them as one batch. Returns
/// how many transactions were refused (they are decided again on the next pass).
pub async fn commit_chunked(m: &Manager, name: &str, mut txs: Vec<Transaction>) -> Result<usize, String> {
    let mut chunks = Vec::new();
    while !txs.is_empty() {
        let rest = txs.split_off(txs.len().min(MAX_TXS_PER_PROPOSAL));
        chunks.push(std::mem::replace(&mut txs, rest));
    }
    let outcomes = futures_util::future::join_all(chunks.into_iter().map(|c| m.commit_txs_as_leader(c))).await;
    let mut refused = 0;
    let mut failure = None;
    for outcome in outcomes {
        match outcome {
            Ok((_, results)) => {
                for e in results.into_iter().filter_map(Result::err) {
                    refused += 1;
                    tracing::debug!(controller = name, error = %e, "transaction refused");
                }
            }
            Err(e) => failure = Some(e.message),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(refused),
    }
}

/// Waits until this leader has applied every entry in its log. False if it stopped leading.
async fn wait_settled(m: &Manager, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let st = m.raft.status();
        if !st.is_leader() {
            return false;
        }
        if st.applied >= st.last_log_index {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
    }
}

/// Runs `decide` whenever the store changes (and at least every `tick`) until `stop`.
pub async fn run(name: &'static str, m: Arc<Manager>, decide: Decide, tick: Duration, mut stop: watch::Receiver<bool>) {
    let mut watcher = m.store.watch();
    let mut busy_passes = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Timestamp::now();
        let txs = m.store.view(|s| decide(s, now));
        if !txs.is_empty() {
            let n = txs.len();
            match commit_chunked(&m, name, txs).await {
                Ok(refused) => tracing::debug!(controller = name, transactions = n, refused, "committed"),
                Err(e) => {
                    tracing::warn!(controller = name, error = %e, "cannot commit; waiting for the log to settle");
                    // The write may still commit: decide nothing until everything appended so
                    // far is applied, or this manager stops leading.
                    if !wait_settled(&m, &mut stop).await {
                        return;
                    }
                }
            }
            // Work that keeps coming back unchanged would spin; slow down instead.
            busy_passes += 1;
            if busy_passes > 50 {
                tracing::warn!(controller = name, "decisions keep repeating; pausing for a second");
                busy_passes = 0;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            continue;
        }
        busy_passes = 0;
        tokio::select! {
            batch = watcher.next() => if batch.is_none() { return },
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Let a burst of changes land before deciding again.
        tokio::time::sleep(Duration::from_millis(20)).await;
        while watcher.try_next().is_some() {}
    }
}
