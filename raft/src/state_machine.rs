//! openraft's state machine, delegating the meaning of commands to the application.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;

use futures_util::Stream;
use futures_util::TryStreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::alias::SnapshotOf;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use swarm_sync::lock;
use tokio::sync::watch;

use crate::snapshot_store::SnapshotFile;
use crate::snapshot_store::SnapshotStore;
use crate::types::CommandResult;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

/// The replicated application: a deterministic state machine over opaque commands.
///
/// Implementations keep their state in memory; durability comes from the raft log and snapshots.
pub trait App: Send + Sync + 'static {
    /// Applies one committed command. `index` is the raft log index of the entry and becomes the
    /// version of whatever the command changes. Must be deterministic: every manager applies the
    /// same commands in the same order and must reach the same state.
    fn apply(&self, index: u64, command: &[u8]) -> Vec<u8>;

    /// Serialises the whole state, consistent with the last applied command.
    fn snapshot(&self) -> Result<Vec<u8>, io::Error>;

    /// Replaces the whole state with a snapshot taken by [`App::snapshot`]; a snapshot this
    /// application cannot read is [`io::ErrorKind::InvalidData`].
    fn restore(&self, data: &[u8]) -> Result<(), io::Error>;
}

#[derive(Debug, Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// openraft's view of the state machine. Cheap to clone.
pub(crate) struct StateMachineStore<A: App> {
    app: Arc<A>,
    applied: Arc<Mutex<Applied>>,
    snapshots: SnapshotStore,
    applied_index: watch::Sender<u64>,
}

impl<A: App> Clone for StateMachineStore<A> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
            applied_index: self.applied_index.clone(),
        }
    }
}

impl<A: App> StateMachineStore<A> {
    /// Restores the application from the newest snapshot on disk, if there is one. openraft then
    /// re-applies the log from the snapshot up to the persisted committed index.
    pub(crate) fn open(app: Arc<A>, snapshots: SnapshotStore) -> Result<Self, io::Error> {
        let mut applied = Applied::default();
        if let Some(snap) = snapshots.latest()? {
            let data = snap.read_data()?;
            app.restore(&data).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cannot restore snapshot {}: {e}", snap.path.display()),
                )
            })?;
            tracing::info!(snapshot = %snap.path.display(), last_log_id = ?snap.meta.last_log_id, "restored state from snapshot");
            applied.last_applied = snap.meta.last_log_id;
            applied.membership = snap.meta.last_membership.clone();
        }
        let index = applied.last_applied.as_ref().map(|l| l.index).unwrap_or(0);
        let (applied_index, _) = watch::channel(index);
        Ok(Self {
            app,
            applied: Arc::new(Mutex::new(applied)),
            snapshots,
            applied_index,
        })
    }

    pub(crate) fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Applied> {
        lock(&self.applied)
    }
}

/// Builds a snapshot file from state captured when the builder was created, so applying can go
/// on while the file is written.
pub(crate) struct SnapshotBuilder {
    snapshots: SnapshotStore,
    meta: SnapshotMeta,
    data: Result<Vec<u8>, io::Error>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        // A builder builds once: the state is moved out, not copied.
        let data = std::mem::replace(&mut self.data, Err(io::Error::other("this snapshot was already built")))
            .map_err(|e| io::Error::other(format!("cannot serialise state: {e}")))?;
        let snapshots = self.snapshots.clone();
        let meta = self.meta.clone();
        let file = tokio::task::spawn_blocking(move || snapshots.write(&meta, data))
            .await
            .map_err(|e| io::Error::other(format!("snapshot writer task failed: {e}")))??;
        tracing::info!(path = %file.path.display(), last_log_id = ?file.meta.last_log_id, bytes = file.file_len(), "snapshot written");
        Ok(SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: file.meta.clone(),
            snapshot: file,
        })
    }
}

impl<A: App> RaftStateMachine<TypeConfig> for StateMachineStore<A> {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut last_index = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            let result = match &entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(cmd) => self.app.apply(index, &cmd.0),
                EntryPayload::Membership(membership) => {
                    self.lock().membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                    Vec::new()
                }
            };
            self.lock().last_applied = Some(entry.log_id);
            last_index = Some(index);
            if let Some(responder) = responder {
                responder.send(CommandResult(result));
            }
        }
        if let Some(index) = last_index {
            self.applied_index.send_replace(index);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (meta, data) = {
            // Capture state and position together: nothing is applied while this runs because
            // openraft calls it from the state machine worker.
            let applied = self.lock();
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
            };
            (meta, self.app.snapshot())
        };
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            meta,
            data,
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        // Make the file durable first: if that fails, the state machine is left untouched.
        let data = snapshot.read_data()?;
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.adopt(snapshot))
            .await
            .map_err(|e| io::Error::other(format!("snapshot adopt task failed: {e}")))??;
        self.app
            .restore(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot install snapshot: {e}")))?;
        {
            let mut applied = self.lock();
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
        }
        let index = meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0);
        self.applied_index.send_replace(index);
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot from leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let snapshots = self.snapshots.clone();
        let latest = tokio::task::spawn_blocking(move || snapshots.latest_existing())
            .await
            .map_err(|e| io::Error::other(format!("snapshot reader task failed: {e}")))??;
        Ok(latest.map(|file| SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: file.meta.clone(),
            snapshot: file,
        }))
    }
}
