//! The watch stream: every committed change, in commit order, for controllers.

use std::sync::Arc;

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

/// A subscription to the store's changes. Unbounded, like SwarmKit's watch queue, so a slow
/// controller never blocks raft; dropping it unsubscribes.
pub struct Watcher {
    pub(crate) rx: mpsc::UnboundedReceiver<EventBatch>,
}

impl Watcher {
    /// The next batch, or `None` if the store is gone.
    pub async fn next(&mut self) -> Option<EventBatch> {
        self.rx.recv().await
    }

    /// A batch if one is ready now.
    pub fn try_next(&mut self) -> Option<EventBatch> {
        self.rx.try_recv().ok()
    }
}
