//! Snapshot files: written to a temp file, fsynced, renamed into place, and the directory
//! fsynced, so a crash leaves either the old snapshot or the new one, never half of one.
//!
//! Layout of a snapshot file:
//!
//! ```text
//! "SWRSNAP1"  8 bytes magic
//! u32 BE      header length
//! header      MessagePack: SnapshotHeader { meta, data_len, data_crc32 }
//! data        data_len bytes of application state
//! ```

use std::fs;
use std::fs::File;
use std::io;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::SystemTime;

use serde::Deserialize;
use serde::Serialize;
use swarm_sync::lock;

use crate::codec;
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"SWRSNAP1";
const SUFFIX: &str = ".snap";
/// Refuse absurd header lengths instead of allocating them.
const MAX_HEADER_LEN: u32 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta,
    data_len: u64,
    data_crc32: u32,
}

/// One snapshot file on disk, validated when it was opened.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub meta: SnapshotMeta,
    data_offset: u64,
    data_len: u64,
    data_crc32: u32,
}

impl SnapshotFile {
    /// Size of the whole file, as it travels to another manager.
    pub fn file_len(&self) -> u64 {
        self.data_offset + self.data_len
    }

    /// Opens the file for streaming it to another manager.
    pub fn open_for_send(&self) -> Result<File, io::Error> {
        File::open(&self.path)
    }

    /// Reads and verifies the application data.
    pub fn read_data(&self) -> Result<Vec<u8>, io::Error> {
        let mut f = File::open(&self.path)?;
        let mut head = vec![0u8; self.data_offset as usize];
        f.read_exact(&mut head)?;
        let mut data = Vec::with_capacity(self.data_len as usize);
        f.take(self.data_len).read_to_end(&mut data)?;
        if data.len() as u64 != self.data_len {
            return Err(corrupt(&self.path, "data is shorter than its header says"));
        }
        if crc32fast::hash(&data) != self.data_crc32 {
            return Err(corrupt(&self.path, "data checksum mismatch"));
        }
        Ok(data)
    }

    /// Parses and fully verifies a snapshot file.
    pub fn open(path: &Path) -> Result<Self, io::Error> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 8];
        f.read_exact(&mut magic)
            .map_err(|_| corrupt(path, "file is too short"))?;
        if &magic != MAGIC {
            return Err(corrupt(path, "not a swarm-rs snapshot (bad magic)"));
        }
        let mut len = [0u8; 4];
        f.read_exact(&mut len).map_err(|_| corrupt(path, "file is too short"))?;
        let header_len = u32::from_be_bytes(len);
        if header_len > MAX_HEADER_LEN {
            return Err(corrupt(path, "header length is implausible"));
        }
        let mut header = vec![0u8; header_len as usize];
        f.read_exact(&mut header)
            .map_err(|_| corrupt(path, "header is truncated"))?;
        let header: SnapshotHeader =
            codec::decode(&header, "snapshot header").map_err(|e| corrupt(path, &e.to_string()))?;
        let data_offset = 12 + header_len as u64;
        let actual_len = f.metadata()?.len();
        if actual_len != data_offset + header.data_len {
            return Err(corrupt(
                path,
                &format!(
                    "file has {actual_len} bytes, header says {}",
                    data_offset + header.data_len
                ),
            ));
        }
        let file = SnapshotFile {
            path: path.to_path_buf(),
            meta: header.meta,
            data_offset,
            data_len: header.data_len,
            data_crc32: header.data_crc32,
        };
        // Verify the checksum now so a damaged snapshot is found at open, not at install.
        file.read_data()?;
        Ok(file)
    }
}

fn corrupt(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snapshot {} is corrupt: {why}", path.display()),
    )
}

/// The snapshot directory of one manager. Cheap to clone; clones serialise their changes.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// Building (on a background task) and installing (from the leader) can overlap: changes to
    /// the directory take this lock so an older snapshot never replaces a newer one.
    lock: Arc<Mutex<()>>,
}

fn index_of(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0)
}

/// The log index in a snapshot file name, `snapshot-<index>.snap`.
fn index_in_name(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?.strip_suffix(SUFFIX)?.parse().ok()
}

impl SnapshotStore {
    pub fn new(dir: &Path) -> Result<Self, io::Error> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
        })
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    /// Snapshot files by index, without opening them.
    fn snapshot_files(&self) -> Result<Vec<(u64, PathBuf)>, io::Error> {
        let mut snaps = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(index) = index_in_name(&entry.file_name().to_string_lossy()) {
                snaps.push((index, entry.path()));
            }
        }
        snaps.sort();
        Ok(snaps)
    }

    /// A fresh path for an incoming snapshot stream, inside the snapshot directory so the final
    /// rename stays on one filesystem.
    pub fn incoming_path(&self) -> PathBuf {
        self.dir.join(format!("incoming-{}.tmp", unique_suffix()))
    }

    fn final_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.dir.join(format!("snapshot-{:020}{SUFFIX}", index_of(meta)))
    }

    /// Writes a new snapshot durably and removes the older ones.
    pub fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<SnapshotFile, io::Error> {
        let header = codec::encode(&SnapshotHeader {
            meta: meta.clone(),
            data_len: data.len() as u64,
            data_crc32: crc32fast::hash(data),
        })?;
        let tmp = self.dir.join(format!("building-{}.tmp", unique_suffix()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&(header.len() as u32).to_be_bytes())?;
            f.write_all(&header)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        self.adopt(&tmp, meta)
    }

    /// Moves a complete snapshot file into place durably and removes older snapshots. If a newer
    /// snapshot is already in place (installed while this one was being built), the file is
    /// discarded and the newer snapshot is returned.
    pub fn adopt(&self, tmp: &Path, meta: &SnapshotMeta) -> Result<SnapshotFile, io::Error> {
        let _guard = self.guard();
        let index = index_of(meta);
        if let Some((newest, path)) = self.snapshot_files()?.pop()
            && newest > index
        {
            tracing::info!(discarded = index, kept = newest, "a newer snapshot is already in place");
            let _ = fs::remove_file(tmp);
            return SnapshotFile::open(&path);
        }
        File::open(tmp)?.sync_all()?;
        let target = self.final_path(meta);
        fs::rename(tmp, &target)?;
        File::open(&self.dir)?.sync_all()?;
        let file = SnapshotFile::open(&target)?;
        for (older, path) in self.snapshot_files()? {
            if older < index
                && let Err(e) = fs::remove_file(&path)
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove old snapshot");
            }
        }
        Ok(file)
    }

    /// Loads the newest snapshot, if any. Leftover temp files from a crash are removed. A newest
    /// snapshot that fails verification is an error: the log before it may already be purged,
    /// so falling back to an older one could silently lose committed state.
    pub fn latest(&self) -> Result<Option<SnapshotFile>, io::Error> {
        self.find_latest(true)
    }

    /// Like [`SnapshotStore::latest`], but leaves temp files alone: a snapshot may be arriving.
    pub fn latest_existing(&self) -> Result<Option<SnapshotFile>, io::Error> {
        self.find_latest(false)
    }

    fn find_latest(&self, remove_temp: bool) -> Result<Option<SnapshotFile>, io::Error> {
        let _guard = self.guard();
        if remove_temp {
            for entry in fs::read_dir(&self.dir)?.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        match self.snapshot_files()?.pop() {
            None => Ok(None),
            Some((_, path)) => SnapshotFile::open(&path).map(Some),
        }
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_at(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 7 },
                index,
            )),
            ..Default::default()
        }
    }

    #[test]
    fn written_snapshot_reads_back_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path()).unwrap();
        store.write(&meta_at(5), b"five").unwrap();
        let second = store.write(&meta_at(9), b"nine").unwrap();
        assert_eq!(second.read_data().unwrap(), b"nine");
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.meta.last_log_id.unwrap().index, 9);
        let snaps: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(snaps.len(), 1, "older snapshot is removed");
    }

    #[test]
    fn an_older_snapshot_finishing_late_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path()).unwrap();
        store.write(&meta_at(20), b"twenty").unwrap();
        let late = store.write(&meta_at(10), b"ten").unwrap();
        assert_eq!(late.meta.last_log_id.unwrap().index, 20, "the newer snapshot is kept");
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.read_data().unwrap(), b"twenty");
        assert_eq!(store.snapshot_files().unwrap().len(), 1);
    }

    #[test]
    fn flipped_byte_is_reported_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path()).unwrap();
        let file = store.write(&meta_at(3), b"some state bytes").unwrap();
        let mut bytes = fs::read(&file.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&file.path, bytes).unwrap();
        let err = store.latest().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(err.to_string().contains(&file.path.display().to_string()), "{err}");
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path()).unwrap();
        fs::write(dir.path().join("building-1.tmp"), b"half").unwrap();
        assert!(store.latest().unwrap().is_none());
        assert!(!dir.path().join("building-1.tmp").exists());
    }
}
