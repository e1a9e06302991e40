//! The watch stream: every committed change, in commit order, for controllers.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use swarm_model::Object;
use tokio::sync::mpsc;

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Create(Object),
    Update {
        old: Object,
        new: Object,
    },
    Delete(Object),
    /// Everything before this point belongs to raft entry `index`.
    Commit {
        index: u64,
    },
    /// The whole state was replaced from a snapshot; watchers must re-read it.
    Restored {
        index: u64,
    },
}

/// The events of one raft entry, ending with [`Event::Commit`].
pub type EventBatch = Arc<Vec<Event>>;

/// How many batches (raft entries) a watcher may have waiting. One that falls further behind
/// (a session whose node stopped reading, say) is not sent more: its queue is dropped and it
/// re-reads the whole state instead, as after a snapshot. A full queue stays bounded in memory.
pub const WATCH_CAPACITY: usize = 4096;

/// A subscription to the store's changes, bounded: a watcher that lags by more than
/// [`WATCH_CAPACITY`] batches gets [`Event::Restored`] next and must re-read the state, so a slow
/// reader never blocks raft and never grows the manager's memory. Dropping it unsubscribes.
pub struct Watcher {
    pub(crate) rx: mpsc::Receiver<EventBatch>,
    /// Set by the store when a batch did not fit.
    pub(crate) lagged: Arc<AtomicBool>,
}

impl Watcher {
    /// The next batch, or `None` if the store is gone.
    pub async fn next(&mut self) -> Option<EventBatch> {
        if let Some(resync) = self.resync() {
            return Some(resync);
        }
        let batch = self.rx.recv().await?;
        Some(self.resync().unwrap_or(batch))
    }

    /// A batch if one is ready now.
    pub fn try_next(&mut self) -> Option<EventBatch> {
        self.resync().or_else(|| self.rx.try_recv().ok())
    }

    /// After an overflow: drops what is queued (the state already holds it) and says to re-read.
    fn resync(&mut self) -> Option<EventBatch> {
        if !self.lagged.swap(false, Ordering::AcqRel) {
            return None;
        }
        while self.rx.try_recv().is_ok() {}
        Some(Arc::new(vec![Event::Restored { index: 0 }]))
    }
}

/// The store's end of a watcher.
pub(crate) struct WatchSender {
    pub(crate) tx: mpsc::Sender<EventBatch>,
    pub(crate) lagged: Arc<AtomicBool>,
}

impl WatchSender {
    /// Queues `batch`, or marks the watcher lagged if its queue is full. False once the
    /// watcher is gone.
    pub(crate) fn offer(&self, batch: &EventBatch) -> bool {
        match self.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A new watcher and the store's end of it.
pub(crate) fn channel() -> (WatchSender, Watcher) {
    let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
    let lagged = Arc::new(AtomicBool::new(false));
    (
        WatchSender {
            tx,
            lagged: lagged.clone(),
        },
        Watcher { rx, lagged },
    )
}
