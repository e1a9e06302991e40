//! The replicated store: typed tables in memory, changed only by applying raft entries, with a
//! watch stream of every change. The store is the bus: controllers read it, react to its events
//! and write back through raft.

mod action;
pub mod addresses;
pub mod ports;
mod state;
pub mod subnets;
mod watch;

use std::sync::Mutex;
use std::sync::RwLock;

pub use action::Proposal;
pub use action::StoreAction;
pub use action::StoreError;
pub use action::Transaction;
pub use action::TxResults;
pub use state::StoreState;
pub use state::Table;
use swarm_sync::lock;
use swarm_sync::read;
use swarm_sync::write;
pub use watch::Event;
pub use watch::EventBatch;
pub use watch::WATCH_CAPACITY;
use watch::WatchSender;
pub use watch::Watcher;

use self::state::SNAPSHOT_FORMAT;
use self::state::SnapshotData;

/// The store of one manager. Every manager applies the same raft entries to its own store.
#[derive(Default)]
pub struct Store {
    state: RwLock<StoreState>,
    watchers: Mutex<Vec<WatchSender>>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on a consistent view of the state.
    pub fn view<R>(&self, f: impl FnOnce(&StoreState) -> R) -> R {
        let state = read(&self.state);
        f(&state)
    }

    /// Subscribes to all changes from now on.
    pub fn watch(&self) -> Watcher {
        let (tx, watcher) = watch::channel();
        self.lock_watchers().push(tx);
        watcher
    }

    /// Reads the state and subscribes atomically: no change is missed or seen twice.
    pub fn view_and_watch<R>(&self, f: impl FnOnce(&StoreState) -> R) -> (R, Watcher) {
        let state = read(&self.state);
        let watcher = self.watch();
        (f(&state), watcher)
    }

    /// The raft index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.view(|s| s.applied_index)
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, Vec<WatchSender>> {
        lock(&self.watchers)
    }

    /// Sends a batch to every live watcher. Called with the state's write lock held, so
    /// [`Store::view_and_watch`] sees each change either in the state or as an event, never both.
    fn publish(&self, events: Vec<Event>) {
        let batch = EventBatch::new(events);
        self.lock_watchers().retain(|w| w.offer(&batch));
    }

    /// Encodes a proposal for [`swarm_raft::RaftNode::propose`].
    pub fn encode_proposal(proposal: &Proposal) -> Result<Vec<u8>, std::io::Error> {
        swarm_raft::encode(proposal)
    }

    /// Decodes what [`swarm_raft::App::apply`] returned for a proposal.
    pub fn decode_results(bytes: &[u8]) -> Result<TxResults, std::io::Error> {
        swarm_raft::decode(bytes, "transaction results")
    }
}

impl swarm_raft::App for Store {
    fn apply(&self, index: u64, command: &[u8]) -> Vec<u8> {
        let mut state = write(&self.state);
        let mut events = Vec::new();
        let results: TxResults = match swarm_raft::decode::<Proposal>(command, "proposal") {
            Ok(proposal) => proposal
                .txs
                .into_iter()
                .map(|tx| state.apply_tx(index, tx.actions, &mut events))
                .collect(),
            Err(e) => vec![Err(StoreError::Invalid(e.to_string()))],
        };
        state.applied_index = index;
        events.push(Event::Commit { index });
        self.publish(events);
        drop(state);
        swarm_raft::encode(&results).unwrap_or_default()
    }

    fn snapshot(&self) -> Result<Vec<u8>, std::io::Error> {
        let data = self.view(|s| s.to_snapshot());
        swarm_raft::encode(&data)
    }

    fn restore(&self, data: &[u8]) -> Result<(), std::io::Error> {
        let data: SnapshotData = swarm_raft::decode(data, "store snapshot")?;
        if data.format != SNAPSHOT_FORMAT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "store snapshot format {} is not supported by this version (expects {SNAPSHOT_FORMAT})",
                    data.format
                ),
            ));
        }
        let restored = StoreState::from_snapshot(data);
        let index = restored.applied_index;
        let mut state = write(&self.state);
        *state = restored;
        self.publish(vec![Event::Restored { index }]);
        Ok(())
    }
}

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

/// Helpers for tests of controllers that read the store.
#[cfg(test)]
pub mod testing {
    use swarm_model::Object;
    use swarm_raft::App;

    use super::*;

    /// A store holding `objects`, created through the normal apply path.
    pub fn store_with(objects: Vec<Object>) -> Store {
        let store = Store::new();
        let proposal = Proposal {
            txs: objects
                .into_iter()
                .map(|o| Transaction::one(StoreAction::Create(o)))
                .collect(),
        };
        let out = store.apply(1, &Store::encode_proposal(&proposal).unwrap());
        let results = Store::decode_results(&out).unwrap();
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        store
    }
}
