//! Runs a leader-side controller: decide from a store view, commit, wait for the next change.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::Timestamp;
use swarm_net::pace::Pacer;
use tokio::sync::watch;

use crate::commit::Committer;
use crate::store::Store;
use crate::store::StoreState;
use crate::store::Transaction;

/// At most one decision per window while the store keeps changing.
const SETTLE_WINDOW: Duration = Duration::from_millis(20);

/// A controller's decision: the transactions that move the store toward what it wants.
pub type Decide = fn(&StoreState, Timestamp) -> Vec<Transaction>;

/// When a controller's next decision falls due with no change to the store (a restart delay
/// ending), so that it wakes then rather than on its next tick. None: nothing is waiting.
pub type Due = fn(&StoreState, Timestamp) -> Option<Duration>;

/// Runs `decide` whenever the store changes, when `due` says a decision falls due, and at least
/// every `tick`, until `stop`.
pub async fn run(
    name: &'static str,
    store: Arc<Store>,
    committer: Arc<Committer>,
    decide: Decide,
    due: Option<Due>,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut watcher = store.watch();
    let mut pacer = Pacer::new(SETTLE_WINDOW);
    let mut busy_passes = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Timestamp::now();
        let txs = store.view(|s| decide(s, now));
        if !txs.is_empty() {
            let n = txs.len();
            match committer.commit_chunked(name, txs).await {
                Ok(refused) => tracing::debug!(controller = name, transactions = n, refused, "committed"),
                Err(e) => {
                    tracing::warn!(controller = name, error = %e, "cannot commit; waiting for the log to settle");
                    // The write may still commit: decide nothing until everything appended so
                    // far is applied, or this manager stops leading.
                    if !committer.settled(&mut stop).await {
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
        let wait = due
            .and_then(|due| store.view(|s| due(s, Timestamp::now())))
            .map_or(tick, |d| d.min(tick));
        let store_changed = tokio::select! {
            batch = watcher.next() => {
                if batch.is_none() {
                    return;
                }
                true
            }
            _ = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|s| *s) => return,
        };
        if store_changed {
            // A change after a quiet spell is decided on at once; a burst of changes lands
            // before the next decision, one per window.
            pacer.ready().await;
        }
        while watcher.try_next().is_some() {}
    }
}
