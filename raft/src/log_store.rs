//! Durable raft log on top of raft-log's chunked WAL.
//!
//! raft-log batches pending writes on a background thread and fsyncs them together, then fires
//! the callbacks: group commit that maps onto openraft's `IOFlushed`. Every operation that openraft
//! expects to be durable when it returns (vote, committed index, truncation, purge) waits for its
//! fsync before returning.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;
use raft_log::RaftLog;
use raft_log::api::raft_log_writer::RaftLogWriter;
use serde::Deserialize;
use serde::Serialize;
use swarm_sync::lock;

use crate::codec::Rmp;
use crate::types::Entry;
use crate::types::EntryPayload;
use crate::types::LogId;
use crate::types::RaftId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Who owns a log directory. Written once when the log is created and checked on every open, so
/// a log copied from another cluster or another node is refused instead of silently mixed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOwner {
    pub cluster_id: String,
    pub raft_id: RaftId,
}

/// A member's log that is gone: starting it empty would forget the manager's votes.
fn lost_log(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "the raft log in {} has no owner record: its files are lost, and with them this manager's state and \
             votes (it could vote twice in a term). Remove the data dir and join the cluster again as a new manager",
            dir.display()
        ),
    )
}

/// raft-log's type parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LogTypes;

impl raft_log::Types for LogTypes {
    type LogId = Rmp<LogId>;
    type LogPayload = Rmp<EntryPayload>;
    type Vote = Rmp<Vote>;
    type Callback = FlushCallback;
    type UserData = Rmp<LogOwner>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        match &payload.0 {
            openraft::EntryPayload::Normal(cmd) => cmd.0.len() as u64 + 32,
            _ => 256,
        }
    }
}

/// Adapts openraft's flush notification to raft-log's callback.
pub(crate) struct FlushCallback(IOFlushed<TypeConfig>);

impl raft_log::Callback for FlushCallback {
    fn send(self, res: Result<(), io::Error>) {
        self.0.io_completed(res)
    }
}

/// The raft log of one manager. Cheap to clone: clones share the WAL.
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<RaftLog<LogTypes>>>,
    entries_written: Arc<AtomicU64>,
}

/// How much the log wrote and how many fsyncs that took: the group-commit ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogWriteStats {
    /// Entries appended since this process started.
    pub entries_written: u64,
    /// fsync batches since this process started (appends, votes, commits, purges together).
    pub fsyncs: u64,
}

impl LogStore {
    /// Opens (or creates, unless `existing`) the log in `dir` and checks that it belongs to
    /// `owner`.
    pub async fn open(dir: &Path, owner: &LogOwner, existing: bool) -> Result<Self, io::Error> {
        if existing {
            // Checked before opening, which would create files: nothing but a LOCK is no log.
            let files = std::fs::read_dir(dir)
                .map(|d| d.flatten().filter(|e| e.file_name() != "LOCK").count())
                .unwrap_or(0);
            if files == 0 {
                return Err(lost_log(dir));
            }
        }
        std::fs::create_dir_all(dir)?;
        let mut config = raft_log::Config::new(dir.display());
        // Keep the in-memory payload cache modest; older entries are re-read from disk.
        config.log_cache_capacity = Some(128 << 20);
        config.log_cache_max_items = Some(50_000);
        let mut log = RaftLog::<LogTypes>::open(Arc::new(config)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open raft log in {}: {e} (the log is damaged; see docs/operations.md)",
                    dir.display()
                ),
            )
        })?;
        match log.log_state().user_data.clone() {
            Some(Rmp(found)) if &found != owner => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "raft log in {} belongs to cluster {} (raft id {:x}), but this node is cluster {} (raft id {:x}); \
                         refusing to mix state from another cluster or node",
                        dir.display(),
                        found.cluster_id,
                        found.raft_id,
                        owner.cluster_id,
                        owner.raft_id
                    ),
                ));
            }
            Some(_) => {}
            None if existing => return Err(lost_log(dir)),
            None => {
                let empty = log.log_state().last().is_none() && log.log_state().vote().is_none();
                if !empty {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "raft log in {} has entries but no owner record; refusing to use it",
                            dir.display()
                        ),
                    ));
                }
                log.save_user_data(Some(Rmp(owner.clone())))?;
                let store = Self {
                    log: Arc::new(Mutex::new(log)),
                    entries_written: Arc::default(),
                };
                store.flush_and_wait().await?;
                return Ok(store);
            }
        }
        Ok(Self {
            log: Arc::new(Mutex::new(log)),
            entries_written: Arc::default(),
        })
    }

    /// Drops this handle once every other clone is gone, so the WAL's directory lock is free
    /// when this returns and the log can be opened again. Raft's tasks drop their clones shortly
    /// after raft stops; if one outlives `patience`, the lock is left to whichever goes last.
    pub async fn close(self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        while Arc::strong_count(&self.log) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, RaftLog<LogTypes>> {
        // A poisoned lock means a panic while holding the WAL; continuing is still safe because
        // every write is validated by raft-log's state machine.
        lock(&self.log)
    }

    /// Runs `f` on the log on a blocking thread. Taking the lock, queueing writes to the flush
    /// worker (which waits when its queue is full) and reading entries that the cache no longer
    /// holds can all wait on the disk; openraft's tasks, heartbeats among them, must not.
    async fn off_runtime<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut RaftLog<LogTypes>) -> Result<R, io::Error> + Send + 'static,
    ) -> Result<R, io::Error> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&log)))
            .await
            .map_err(|e| io::Error::other(format!("raft log operation failed: {e}")))?
    }

    /// Does `change` (if any), queues a flush with fsync, and waits for the fsync.
    async fn change_and_flush(
        &self,
        change: impl FnOnce(&mut RaftLog<LogTypes>) -> Result<(), io::Error> + Send + 'static,
    ) -> Result<(), io::Error> {
        let (tx, rx) = <TypeConfig as TypeConfigExt>::oneshot();
        self.off_runtime(move |log| {
            change(log)?;
            log.flush(true, Some(FlushCallback(IOFlushed::signal(tx))))
        })
        .await?;
        rx.await
            .map_err(|_| io::Error::other("raft log flush worker stopped"))?
    }

    /// Queues a flush with fsync and waits for it.
    async fn flush_and_wait(&self) -> Result<(), io::Error> {
        self.change_and_flush(|_| Ok(())).await
    }

    pub fn write_stats(&self) -> LogWriteStats {
        LogWriteStats {
            entries_written: self.entries_written.load(Ordering::Relaxed),
            fsyncs: self.lock().stat().flush_metrics.sync_batch_count,
        }
    }

    /// The last purged log index recorded on disk.
    pub fn purged_index(&self) -> Option<u64> {
        self.lock().log_state().purged().map(|p| p.0.index)
    }

    /// The committed log id recorded on disk, for diagnostics.
    pub fn committed_index(&self) -> Option<u64> {
        self.lock().log_state().committed().map(|c| c.0.index)
    }
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&x) => x,
        Bound::Excluded(&x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&x) => x.saturating_add(1),
        Bound::Excluded(&x) => x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        self.off_runtime(move |log| {
            log.read(start, end)
                .map(|r| {
                    r.map(|(log_id, payload)| Entry {
                        log_id: log_id.0,
                        payload: payload.0,
                    })
                })
                .collect()
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.off_runtime(|log| Ok(log.log_state().vote().map(|v| v.0))).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        self.off_runtime(|log| {
            let state = log.log_state();
            let last_purged_log_id = state.purged().map(|p| p.0);
            let last_log_id = state.last().map(|l| l.0).or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        self.change_and_flush(move |log| log.save_vote(Rmp(vote)).map(drop))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(committed) = committed {
            self.change_and_flush(move |log| log.commit(Rmp(committed)).map(drop))
                .await?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.off_runtime(|log| Ok(log.log_state().committed().map(|c| c.0)))
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<(Rmp<LogId>, Rmp<EntryPayload>)> =
            entries.into_iter().map(|e| (Rmp(e.log_id), Rmp(e.payload))).collect();
        let n = entries.len() as u64;
        let written = self.entries_written.clone();
        self.off_runtime(move |log| {
            log.append(entries)?;
            written.fetch_add(n, Ordering::Relaxed);
            log.flush(true, Some(FlushCallback(callback)))
        })
        .await
        .map(drop)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let has_tail = self
            .off_runtime(move |log| {
                Ok(log
                    .log_state()
                    .last()
                    .map(|l| l.0.index >= first_removed)
                    .unwrap_or(false))
            })
            .await?;
        if !has_tail {
            return Ok(());
        }
        self.change_and_flush(move |log| log.truncate(first_removed).map(drop))
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.change_and_flush(move |log| log.purge(Rmp(log_id)).map(drop)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow disk used to stall openraft's tasks: the log was locked, written and read on the
    /// async runtime. Here the log is held (as a stuck write would hold it) by a thread that lets
    /// go only when a task on the same, single-threaded runtime gets to run; with log
    /// operations waiting on the runtime's only thread, that task never would.
    #[test]
    fn log_operations_wait_off_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let owner = LogOwner {
                cluster_id: "c".into(),
                raft_id: 1,
            };
            let mut store = LogStore::open(dir.path(), &owner, false).await.unwrap();
            let held = store.log.clone();
            let (ran_tx, ran_rx) = std::sync::mpsc::channel::<()>();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let _guard = lock(&held);
                locked_tx.send(()).unwrap();
                // Let go when the runtime shows it is free, or give up after a while.
                ran_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            });
            locked_rx.recv().unwrap();
            let other_task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let _ = ran_tx.send(());
            });
            // Waits for the held log, off the runtime.
            store.read_vote().await.unwrap();
            store.try_get_log_entries(0..10).await.unwrap();
            other_task.await.unwrap();
            assert!(
                holder.join().unwrap(),
                "a task on the runtime ran while the log was held"
            );
        });
    }
}
