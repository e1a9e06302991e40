//! Durable raft log on top of raft-log's chunked WAL.
//!
//! raft-log batches pending writes on a background thread and fsyncs them together, then fires
//! the callbacks: group commit that maps onto openraft's `IOFlushed`. Every operation that openraft
//! expects to be durable when it returns (vote, committed index, truncation, purge) waits for its
//! fsync before returning.
//!
//! Every entry is sealed with the manager's data key before it is written ([`crate::sealing`]).
//! Logs written before sealing existed (their owner record says `sealed: false`) are rewritten
//! sealed when they are opened, next to the old log, which is swapped out only once the new one
//! is complete.

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

use crate::codec;
use crate::codec::Rmp;
use crate::durable_mark;
use crate::durable_mark::DurableMark;
use crate::sealing::DataKey;
use crate::sealing::Sealed;
use crate::sealing::Sealer;
use crate::types::Command;
use crate::types::Entry;
use crate::types::EntryPayload;
use crate::types::LogId;
use crate::types::Membership;
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

/// The owner record as raft-log keeps it. `sealed` is false in logs written before entries were
/// sealed, which decode with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerRecord {
    cluster_id: String,
    raft_id: RaftId,
    #[serde(default)]
    sealed: bool,
    /// A known value sealed with the data key: a log opened with another key is refused at
    /// once, with a clear message, instead of failing at its first read.
    #[serde(default)]
    key_check: Option<Sealed>,
}

const KEY_CHECK: &[u8] = b"swarm-rs raft data key";
const KEY_CHECK_CONTEXT: &[u8] = b"raft log key check";

impl OwnerRecord {
    fn sealed(owner: &LogOwner, sealer: &Sealer) -> Result<Self, io::Error> {
        Ok(Self {
            cluster_id: owner.cluster_id.clone(),
            raft_id: owner.raft_id,
            sealed: true,
            key_check: Some(sealer.seal(KEY_CHECK.to_vec(), KEY_CHECK_CONTEXT)?),
        })
    }

    /// Refuses a sealed log whose data key is not `sealer`'s.
    fn check_key(&self, sealer: &Sealer, dir: &Path) -> Result<(), io::Error> {
        let Some(check) = &self.key_check else { return Ok(()) };
        match sealer.open(check.clone(), KEY_CHECK_CONTEXT, "the raft log's key check") {
            Ok(plain) if plain == KEY_CHECK => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the raft log in {} is sealed with another data key than this manager's: its data key file was \
                     replaced or lost, and without it the log cannot be read",
                    dir.display()
                ),
            )),
        }
    }

    fn owner(&self) -> LogOwner {
        LogOwner {
            cluster_id: self.cluster_id.clone(),
            raft_id: self.raft_id,
        }
    }
}

/// What the log keeps for one entry. New entries are always `Sealed`: openraft's payload,
/// encoded and sealed, bound to its log id. The other variants have the names of openraft's
/// payload variants, so entries written before sealing decode; they are read only to rewrite
/// them sealed, and refused in a sealed log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredPayload {
    Blank,
    Normal(Command),
    Membership(Membership),
    Sealed(Sealed),
}

/// What sealed entry payloads are bound to: their log id, so one cannot be moved to another
/// place in the log.
fn entry_context(log_id: &LogId) -> Result<Vec<u8>, io::Error> {
    let mut context = b"raft log entry ".to_vec();
    context.extend(codec::encode(log_id)?);
    Ok(context)
}

fn seal_entry(sealer: &Sealer, entry: Entry) -> Result<(Rmp<LogId>, Rmp<StoredPayload>), io::Error> {
    let plain = codec::encode(&entry.payload)?;
    let sealed = sealer.seal(plain, &entry_context(&entry.log_id)?)?;
    Ok((Rmp(entry.log_id), Rmp(StoredPayload::Sealed(sealed))))
}

/// Opens a stored entry. Unsealed entries are accepted only from a log written before sealing.
fn open_entry(
    sealer: &Sealer,
    log_id: LogId,
    stored: StoredPayload,
    unsealed_allowed: bool,
) -> Result<Entry, io::Error> {
    let payload = match stored {
        StoredPayload::Sealed(sealed) => {
            let what = format!("raft log entry {}", log_id.index);
            let plain = sealer.open(sealed, &entry_context(&log_id)?, &what)?;
            codec::decode(&plain, &what)?
        }
        _ if !unsealed_allowed => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft log entry {} is not sealed, but the log is: it was not written by this manager; refusing it",
                    log_id.index
                ),
            ));
        }
        StoredPayload::Blank => EntryPayload::Blank,
        StoredPayload::Normal(cmd) => EntryPayload::Normal(cmd),
        StoredPayload::Membership(m) => EntryPayload::Membership(m),
    };
    Ok(Entry { log_id, payload })
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
    type LogPayload = Rmp<StoredPayload>;
    type Vote = Rmp<Vote>;
    type Callback = FlushCallback;
    type UserData = Rmp<OwnerRecord>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        match &payload.0 {
            StoredPayload::Sealed(sealed) => sealed.data.len() as u64 + 64,
            StoredPayload::Normal(cmd) => cmd.0.len() as u64 + 32,
            _ => 256,
        }
    }
}

/// Adapts openraft's flush notification to raft-log's callback; after an append's fsync it
/// also raises the log's durable mark.
pub(crate) struct FlushCallback(IOFlushed<TypeConfig>, Option<(Arc<DurableMark>, u64, u64)>);

impl raft_log::Callback for FlushCallback {
    fn send(self, res: Result<(), io::Error>) {
        let raise = res.is_ok().then_some(self.1).flatten();
        self.0.io_completed(res);
        if let Some((mark, index, epoch)) = raise {
            mark.raise(index, epoch);
        }
    }
}

/// The raft log of one manager. Cheap to clone: clones share the WAL.
#[derive(Clone)]
pub struct LogStore {
    log: Arc<Mutex<RaftLog<LogTypes>>>,
    entries_written: Arc<AtomicU64>,
    sealer: Arc<Sealer>,
    mark: Arc<DurableMark>,
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
    /// Opens (or creates, unless `existing`) the log in `dir`, checks that it belongs to
    /// `owner`, and seals what it writes with `data_key`. A log written before sealing is
    /// rewritten sealed first.
    pub async fn open(dir: &Path, owner: &LogOwner, existing: bool, data_key: &DataKey) -> Result<Self, io::Error> {
        finish_interrupted_rewrite(dir)?;
        if existing {
            // Checked before opening, which would create files: nothing but a LOCK is no log.
            let files = std::fs::read_dir(dir)
                .map(|d| d.flatten().filter(|e| e.file_name() != "LOCK").count())
                .unwrap_or(0);
            if files == 0 {
                return Err(lost_log(dir));
            }
        }
        let sealer = Arc::new(Sealer::new(data_key.clone())?);
        let (mark, found_mark) = DurableMark::open(&beside(dir, "mark"));
        let mut log = open_raft_log(dir)?;
        match log.log_state().user_data.clone() {
            Some(Rmp(found)) if &found.owner() != owner => {
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
            Some(Rmp(found)) if !found.sealed => {
                tracing::info!(dir = %dir.display(), "sealing a raft log written before encryption at rest");
                rewrite_sealed(dir, log, owner, &sealer).await?;
                log = open_raft_log(dir)?;
            }
            Some(Rmp(found)) => found.check_key(&sealer, dir)?,
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
                durable_mark::check(dir, None, found_mark)?;
                log.save_user_data(Some(Rmp(OwnerRecord::sealed(owner, &sealer)?)))?;
                let store = Self {
                    log: Arc::new(Mutex::new(log)),
                    entries_written: Arc::default(),
                    sealer,
                    mark: Arc::new(mark),
                };
                store.flush_and_wait().await?;
                return Ok(store);
            }
        }
        durable_mark::check(dir, log.log_state().last().map(|l| l.0.index), found_mark)?;
        Ok(Self {
            log: Arc::new(Mutex::new(log)),
            entries_written: Arc::default(),
            sealer,
            mark: Arc::new(mark),
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
            log.flush(true, Some(FlushCallback(IOFlushed::signal(tx), None)))
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

fn open_raft_log(dir: &Path) -> Result<RaftLog<LogTypes>, io::Error> {
    std::fs::create_dir_all(dir)?;
    let mut config = raft_log::Config::new(dir.display());
    // Keep the in-memory payload cache modest; older entries are re-read from disk.
    config.log_cache_capacity = Some(128 << 20);
    config.log_cache_max_items = Some(50_000);
    RaftLog::<LogTypes>::open(Arc::new(config)).map_err(|e| {
        // Opening writes (a torn tail is cut off): a full disk is not a damaged log.
        let hint = if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
            "the disk is full; free some space"
        } else {
            "the log is damaged; see docs/operations.md"
        };
        io::Error::new(
            e.kind(),
            format!("cannot open raft log in {}: {e} ({hint})", dir.display()),
        )
    })
}

/// `log.<suffix>` next to the log directory `log`: its durable mark, and the directories of a
/// rewrite.
fn beside(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Where a log is rewritten sealed, and where the old log goes during the swap.
fn rewrite_dirs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (beside(dir, "sealing"), beside(dir, "unsealed"))
}

/// Flushes a raft log opened outside a [`LogStore`] and waits for its fsync.
async fn flush_durably(log: &mut RaftLog<LogTypes>) -> Result<(), io::Error> {
    let (tx, rx) = <TypeConfig as TypeConfigExt>::oneshot();
    log.flush(true, Some(FlushCallback(IOFlushed::signal(tx), None)))?;
    rx.await
        .map_err(|_| io::Error::other("raft log flush worker stopped"))?
}

/// Finishes or drops a rewrite that a crash interrupted. The new log is moved into place only
/// when it is complete, so: no log but a new one means the crash came between the two renames
/// of the swap; anything else left over is the old log's or an unfinished copy's.
fn finish_interrupted_rewrite(dir: &Path) -> Result<(), io::Error> {
    let (sealing, unsealed) = rewrite_dirs(dir);
    if !dir.exists() && unsealed.exists() && sealing.exists() {
        std::fs::rename(&sealing, dir)?;
        sync_parent(dir)?;
    }
    for leftover in [sealing, unsealed] {
        if leftover.exists() {
            std::fs::remove_dir_all(&leftover)?;
        }
    }
    Ok(())
}

fn sync_parent(dir: &Path) -> Result<(), io::Error> {
    match dir.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Rewrites `old` (a log from before sealing) with every entry sealed, then swaps it in.
async fn rewrite_sealed(
    dir: &Path,
    old: RaftLog<LogTypes>,
    owner: &LogOwner,
    sealer: &Sealer,
) -> Result<(), io::Error> {
    let (sealing, unsealed) = rewrite_dirs(dir);
    let state = old.log_state().clone();
    let mut new = open_raft_log(&sealing)?;
    if let Some(purged) = state.purged() {
        new.purge(purged.clone())?;
    }
    let mut next = state.purged().map(|p| p.0.index + 1).unwrap_or(0);
    let end = state.last().map(|l| l.0.index + 1).unwrap_or(0);
    while next < end {
        let batch_end = end.min(next + 1024);
        let mut batch = Vec::new();
        for record in old.read(next, batch_end) {
            let (log_id, Rmp(stored)) = record?;
            let entry = open_entry(sealer, log_id.0, stored, true)?;
            batch.push(seal_entry(sealer, entry)?);
        }
        let Some((last, _)) = batch.last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft log in {} has no entry {next}, though it ends at {}",
                    dir.display(),
                    end - 1
                ),
            ));
        };
        next = last.0.index + 1;
        new.append(batch)?;
    }
    if let Some(vote) = state.vote() {
        new.save_vote(vote.clone())?;
    }
    if let Some(committed) = state.committed() {
        new.commit(committed.clone())?;
    }
    new.save_user_data(Some(Rmp(OwnerRecord::sealed(owner, sealer)?)))?;
    flush_durably(&mut new).await?;
    drop(new);
    drop(old);
    std::fs::rename(dir, &unsealed)?;
    std::fs::rename(&sealing, dir)?;
    sync_parent(dir)?;
    std::fs::remove_dir_all(&unsealed)?;
    Ok(())
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
        let sealer = self.sealer.clone();
        self.off_runtime(move |log| {
            log.read(start, end)
                .map(|r| r.and_then(|(log_id, payload)| open_entry(&sealer, log_id.0, payload.0, false)))
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let n = entries.len() as u64;
        let written = self.entries_written.clone();
        let sealer = self.sealer.clone();
        let last = entries.last().map(|e| e.log_id.index);
        let mark = self.mark.clone();
        self.off_runtime(move |log| {
            let sealed = entries
                .into_iter()
                .map(|entry| seal_entry(&sealer, entry))
                .collect::<Result<Vec<_>, io::Error>>()?;
            log.append(sealed)?;
            written.fetch_add(n, Ordering::Relaxed);
            // Taken under the log's lock, as truncations lower the mark.
            let epoch = mark.epoch();
            log.flush(true, Some(FlushCallback(callback, last.map(|i| (mark, i, epoch)))))
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
        // The mark goes down first: it must never claim more than the log has.
        let mark = self.mark.clone();
        let keep = last_log_id.map(|l| l.index);
        self.change_and_flush(move |log| {
            mark.lower(keep)?;
            log.truncate(first_removed).map(drop)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.change_and_flush(move |log| log.purge(Rmp(log_id)).map(drop)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> LogOwner {
        LogOwner {
            cluster_id: "c".into(),
            raft_id: 1,
        }
    }

    fn log_id(index: u64) -> LogId {
        openraft::LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, index)
    }

    fn command(index: u64) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Command(format!("secret-value-{index}").into_bytes())),
        }
    }

    /// Every byte under `dir`.
    fn bytes_under(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_file() {
                all.extend(std::fs::read(entry.path()).unwrap());
            }
        }
        all
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    async fn append_and_wait(store: &mut LogStore, entries: Vec<Entry>) {
        let (tx, rx) = <TypeConfig as TypeConfigExt>::oneshot();
        store.append(entries, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_reach_the_disk_sealed_and_only_their_key_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate().unwrap();
        let mut store = LogStore::open(dir.path(), &owner(), false, &key).await.unwrap();
        append_and_wait(&mut store, (1..=3).map(command).collect()).await;
        drop(store);
        assert!(
            !contains(&bytes_under(dir.path()), b"secret-value"),
            "plain text on disk"
        );

        let mut store = LogStore::open(dir.path(), &owner(), true, &key).await.unwrap();
        let back = store.try_get_log_entries(1..=3).await.unwrap();
        assert_eq!(back, (1..=3).map(command).collect::<Vec<_>>());
        drop(store);

        let other = DataKey::generate().unwrap();
        let err = LogStore::open(dir.path(), &owner(), true, &other).await.err().unwrap();
        assert!(err.to_string().contains("sealed with another data key"), "{err}");
    }

    /// A log written before sealing: plain entries, an owner record without `sealed`.
    async fn write_unsealed_log(dir: &Path, entries: &[Entry]) {
        let mut log = open_raft_log(dir).unwrap();
        log.save_user_data(Some(Rmp(OwnerRecord {
            cluster_id: "c".into(),
            raft_id: 1,
            sealed: false,
            key_check: None,
        })))
        .unwrap();
        let records = entries
            .iter()
            .map(|e| {
                let stored = match &e.payload {
                    EntryPayload::Normal(cmd) => StoredPayload::Normal(cmd.clone()),
                    EntryPayload::Blank => StoredPayload::Blank,
                    EntryPayload::Membership(m) => StoredPayload::Membership(m.clone()),
                };
                (Rmp(e.log_id), Rmp(stored))
            })
            .collect::<Vec<_>>();
        log.append(records).unwrap();
        log.commit(Rmp(log_id(2))).unwrap();
        flush_durably(&mut log).await.unwrap();
    }

    fn mark_of(log_dir: &Path) -> Option<u64> {
        DurableMark::open(&beside(log_dir, "mark")).1
    }

    /// A new log in a temp dir with entries 1 to 5 on disk and its mark at 5.
    async fn five_entries_on_disk() -> (tempfile::TempDir, std::path::PathBuf, DataKey, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let key = DataKey::generate().unwrap();
        let mut store = LogStore::open(&log_dir, &owner(), false, &key).await.unwrap();
        append_and_wait(&mut store, (1..=5).map(command).collect()).await;
        wait_for_mark(&log_dir, 5).await;
        (dir, log_dir, key, store)
    }

    async fn wait_for_mark(log_dir: &Path, index: u64) {
        for _ in 0..500 {
            if mark_of(log_dir) == Some(index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the durable mark did not reach {index}: {:?}", mark_of(log_dir));
    }

    /// raft-log drops a record it cannot finish reading at the end of its last chunk, as if it
    /// were a torn write; a damaged length field looks the same. Records that were fsynced must
    /// not vanish silently.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_missing_fsynced_records_is_refused() {
        let (dir, log_dir, key, store) = five_entries_on_disk().await;
        drop(store);

        let mut chunks: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
            .collect();
        chunks.sort();
        let tail = chunks.last().expect("a chunk file");
        let len = std::fs::metadata(tail).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(tail)
            .unwrap()
            .set_len(len - 3)
            .unwrap();

        let err = LogStore::open(&log_dir, &owner(), true, &key)
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("records that were fsynced are missing"),
            "{err}"
        );
        assert!(err.to_string().contains("index 5"), "{err}");

        // Without the mark, the damage goes unnoticed: the log just ends earlier.
        std::fs::remove_file(dir.path().join("log.mark")).unwrap();
        let store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert_eq!(store.lock().log_state().last().map(|l| l.0.index), Some(4));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncating_uncommitted_entries_lowers_the_mark_first() {
        let (_dir, log_dir, key, mut store) = five_entries_on_disk().await;
        store.truncate_after(Some(log_id(3))).await.unwrap();
        assert_eq!(mark_of(&log_dir), Some(3));
        drop(store);
        let mut store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert_eq!(store.try_get_log_entries(1..=5).await.unwrap().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_from_before_sealing_is_rewritten_sealed_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let entries: Vec<Entry> = (1..=3).map(command).collect();
        write_unsealed_log(&log_dir, &entries).await;
        assert!(
            contains(&bytes_under(&log_dir), b"secret-value-2"),
            "the old format is plain"
        );

        let key = DataKey::generate().unwrap();
        let mut store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert!(!contains(&bytes_under(&log_dir), b"secret-value"), "rewritten sealed");
        assert_eq!(store.try_get_log_entries(1..=3).await.unwrap(), entries);
        assert_eq!(store.committed_index(), Some(2));
        assert!(!dir.path().join("log.sealing").exists() && !dir.path().join("log.unsealed").exists());
        drop(store);
        let mut store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert_eq!(store.try_get_log_entries(1..=3).await.unwrap(), entries);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rewrite_cut_short_by_a_crash_is_finished_or_started_over() {
        let entries: Vec<Entry> = (1..=3).map(command).collect();
        let key = DataKey::generate().unwrap();
        // Crash during the copy: the old log is intact, the copy is dropped and made again.
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        write_unsealed_log(&log_dir, &entries).await;
        std::fs::create_dir_all(dir.path().join("log.sealing")).unwrap();
        std::fs::write(dir.path().join("log.sealing/junk"), b"half").unwrap();
        let mut store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert_eq!(store.try_get_log_entries(1..=3).await.unwrap(), entries);
        drop(store);

        // Crash between the two renames of the swap: the complete copy is moved into place.
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let sealed_dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(sealed_dir.path(), &owner(), false, &key).await.unwrap();
        append_and_wait(&mut store, entries.clone()).await;
        drop(store);
        write_unsealed_log(&dir.path().join("log.unsealed"), &entries).await;
        std::fs::rename(sealed_dir.path(), dir.path().join("log.sealing")).unwrap();
        let mut store = LogStore::open(&log_dir, &owner(), true, &key).await.unwrap();
        assert_eq!(store.try_get_log_entries(1..=3).await.unwrap(), entries);
        assert!(!dir.path().join("log.unsealed").exists(), "the old log is removed");
    }

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
            let mut store = LogStore::open(dir.path(), &owner, false, &DataKey::generate().unwrap())
                .await
                .unwrap();
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
