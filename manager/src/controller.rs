//! Runs a leader-side controller: decide from a store view, commit, wait for the next change.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::Timestamp;
use swarm_net::pace::Pacer;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::commit::Committer;
use crate::interest;
use crate::interest::Wants;
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

/// One leader-side controller: what it decides and when it wakes.
#[derive(Clone, Copy)]
pub struct Controller {
    pub name: &'static str,
    pub decide: Decide,
    /// The changes that can alter its decision; see [`crate::interest`].
    pub wants: Wants,
    pub due: Option<Due>,
    /// The longest it goes without deciding, for what depends on time alone (monitor
    /// periods, restart windows) and for the changes its filter passes over.
    pub tick: Duration,
}

/// Runs `c.decide` whenever the store makes a change that `c` wants, when `c.due` says a
/// decision falls due, and at least every `c.tick`, until `stop`.
pub async fn run(c: Controller, store: Arc<Store>, committer: Arc<Committer>, mut stop: watch::Receiver<bool>) {
    let name = c.name;
    let mut watcher = store.watch();
    let mut pacer = Pacer::new(SETTLE_WINDOW);
    let mut busy_passes = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Timestamp::now();
        let txs = store.view(|s| (c.decide)(s, now));
        let next_tick = Instant::now() + c.tick;
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
        let wake_at = c
            .due
            .and_then(|due| store.view(|s| due(s, Timestamp::now())))
            .map_or(next_tick, |d| next_tick.min(Instant::now() + d));
        // Changes this controller does not want are passed over until the next tick.
        let store_changed = loop {
            tokio::select! {
                batch = watcher.next() => {
                    let Some(batch) = batch else { return };
                    if batch.iter().any(|e| interest::wakes(c.wants, e)) {
                        break true;
                    }
                }
                _ = tokio::time::sleep_until(wake_at) => break false,
                _ = stop.wait_for(|s| *s) => return,
            }
        };
        if store_changed {
            // A change after a quiet spell is decided on at once; a burst of changes lands
            // before the next decision, one per window.
            pacer.ready().await;
        }
        while watcher.try_next().is_some() {}
    }
}
